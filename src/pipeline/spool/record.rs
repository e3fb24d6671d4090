//! The on-disk frame of one spool record and the scan that recovers a
//! segment file.
//!
//! Frame: `len: u32 LE | crc32c(payload): u32 LE | payload (len bytes)`.
//! A frame is intact when its whole payload is present and its checksum
//! matches. The scan keeps every intact frame; a frame whose checksum fails
//! but whose successor parses is skipped alone (its length was right, its
//! bytes were not); anything else ends the segment there (a torn tail from
//! a crash mid-write, or a corrupted length) and the rest is cut.

/// Bytes before the payload.
pub const HEADER_BYTES: usize = 8;

/// Largest payload accepted when scanning; a bigger length is corruption.
/// A request is at most the HTTP body limit mapped to items, far below this.
pub const MAX_PAYLOAD_BYTES: usize = 256 << 20;

/// Appends one frame holding `payload` to `out`.
pub fn encode_frame(payload: &[u8], out: &mut Vec<u8>) {
    out.reserve(HEADER_BYTES + payload.len());
    out.extend_from_slice(&(payload.len() as u32).to_le_bytes());
    out.extend_from_slice(&crc32c::crc32c(payload).to_le_bytes());
    out.extend_from_slice(payload);
}

/// What a scan of one segment found.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Scan {
    /// Byte offset and length of every intact frame, in file order.
    pub frames: Vec<(usize, usize)>,
    /// Frames skipped for a bad checksum (their successor was intact).
    pub corrupted: usize,
    /// Where the intact prefix ends, when bytes after it must be cut.
    pub cut_at: Option<usize>,
}

/// Scans a whole segment file's bytes.
pub fn scan(buf: &[u8]) -> Scan {
    let mut out = Scan::default();
    let mut at = 0;
    while at < buf.len() {
        match frame_at(buf, at) {
            Frame::Intact(len) => {
                out.frames.push((at + HEADER_BYTES, len));
                at += HEADER_BYTES + len;
            }
            Frame::BadChecksum(len) => {
                let next = at + HEADER_BYTES + len;
                if next < buf.len() && matches!(frame_at(buf, next), Frame::Intact(_)) {
                    out.corrupted += 1;
                    at = next;
                } else {
                    out.cut_at = Some(at);
                    return out;
                }
            }
            Frame::Truncated => {
                out.cut_at = Some(at);
                return out;
            }
        }
    }
    out
}

enum Frame {
    Intact(usize),
    BadChecksum(usize),
    Truncated,
}

fn frame_at(buf: &[u8], at: usize) -> Frame {
    let Some(header) = buf.get(at..at + HEADER_BYTES) else {
        return Frame::Truncated;
    };
    let len = u32::from_le_bytes([header[0], header[1], header[2], header[3]]) as usize;
    let crc = u32::from_le_bytes([header[4], header[5], header[6], header[7]]);
    if len == 0 || len > MAX_PAYLOAD_BYTES {
        return Frame::Truncated;
    }
    let Some(payload) = buf.get(at + HEADER_BYTES..at + HEADER_BYTES + len) else {
        return Frame::Truncated;
    };
    if crc32c::crc32c(payload) == crc {
        Frame::Intact(len)
    } else {
        Frame::BadChecksum(len)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn segment(payloads: &[&[u8]]) -> Vec<u8> {
        let mut buf = Vec::new();
        for p in payloads {
            encode_frame(p, &mut buf);
        }
        buf
    }

    fn payloads<'a>(buf: &'a [u8], scan: &Scan) -> Vec<&'a [u8]> {
        scan.frames.iter().map(|&(o, l)| &buf[o..o + l]).collect()
    }

    #[test]
    fn intact_segment_yields_every_record() {
        let buf = segment(&[b"one", b"two", b"three"]);
        let s = scan(&buf);
        assert_eq!(payloads(&buf, &s), vec![&b"one"[..], b"two", b"three"]);
        assert_eq!((s.corrupted, s.cut_at), (0, None));
    }

    #[test]
    fn torn_tail_is_cut_at_the_last_intact_frame() {
        let full = segment(&[b"one", b"two", b"three"]);
        let intact = segment(&[b"one", b"two"]).len();
        for torn_len in intact + 1..full.len() {
            let buf = &full[..torn_len];
            let s = scan(buf);
            assert_eq!(
                payloads(buf, &s),
                vec![&b"one"[..], b"two"],
                "at {torn_len}"
            );
            assert_eq!(s.cut_at, Some(intact));
        }
    }

    #[test]
    fn corrupted_payload_is_skipped_and_later_records_kept() {
        let mut buf = segment(&[b"one", b"two", b"three"]);
        let second_payload = HEADER_BYTES + 3 + HEADER_BYTES;
        buf[second_payload] ^= 0xff;
        let s = scan(&buf);
        assert_eq!(payloads(&buf, &s), vec![&b"one"[..], b"three"]);
        assert_eq!((s.corrupted, s.cut_at), (1, None));
    }

    #[test]
    fn corrupted_length_cuts_the_rest() {
        let mut buf = segment(&[b"one", b"two", b"three"]);
        let second_len = HEADER_BYTES + 3;
        buf[second_len] = 200;
        let s = scan(&buf);
        assert_eq!(payloads(&buf, &s), vec![&b"one"[..]]);
        assert_eq!(s.cut_at, Some(second_len));
    }

    #[test]
    fn zeroed_tail_from_a_preallocated_block_is_cut() {
        let mut buf = segment(&[b"one"]);
        let end = buf.len();
        buf.extend_from_slice(&[0; 64]);
        let s = scan(&buf);
        assert_eq!(s.frames.len(), 1);
        assert_eq!(s.cut_at, Some(end));
    }
}
