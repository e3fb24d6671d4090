//! The on-disk frame of one spool record and the scan that recovers a
//! segment file.
//!
//! Frame: `len: u32 LE | crc32c(payload): u32 LE | payload (len bytes)`.
//! A frame is intact when its whole payload is present and its checksum
//! matches. The scan keeps every intact frame; a frame whose checksum fails
//! but whose successor parses is skipped alone (its length was right, its
//! bytes were not); anything else ends the segment there (a torn tail from
//! a crash mid-write, or a corrupted length) and the rest is cut. Every
//! frame has an ordinal (its position in the segment, damaged ones
//! included): the release log ([`super::release`]) names records by
//! `(segment, ordinal)`.

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
    /// Every intact frame, in file order.
    pub frames: Vec<Found>,
    /// Frames skipped for a bad checksum (their successor was intact).
    pub corrupted: usize,
    /// Where the intact prefix ends, when bytes after it must be cut.
    pub cut_at: Option<usize>,
}

/// One intact frame's payload.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Found {
    /// Byte offset of the payload in the file.
    pub offset: usize,
    pub len: usize,
    /// Position of the frame in its segment (0-based, damaged frames count).
    pub ordinal: u32,
}

impl Found {
    pub fn payload<'a>(&self, buf: &'a [u8]) -> &'a [u8] {
        &buf[self.offset..self.offset + self.len]
    }
}

/// Scans a whole segment file's bytes.
pub fn scan(buf: &[u8]) -> Scan {
    let mut out = Scan::default();
    let mut at = 0;
    let mut ordinal = 0;
    while at < buf.len() {
        match frame_at(buf, at) {
            Frame::Intact(len) => {
                out.frames.push(Found {
                    offset: at + HEADER_BYTES,
                    len,
                    ordinal,
                });
                ordinal += 1;
                at += HEADER_BYTES + len;
            }
            Frame::BadChecksum(len) => {
                let next = at + HEADER_BYTES + len;
                if next < buf.len() && matches!(frame_at(buf, next), Frame::Intact(_)) {
                    out.corrupted += 1;
                    ordinal += 1;
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

/// The intact frames before the first damaged one, and where they end: for
/// a log whose meaning depends on order (the release log), a damaged frame
/// invalidates everything after it.
pub fn scan_prefix(buf: &[u8]) -> (Vec<Found>, usize) {
    let mut frames = Vec::new();
    let mut at = 0;
    while let Frame::Intact(len) = frame_at(buf, at) {
        frames.push(Found {
            offset: at + HEADER_BYTES,
            len,
            ordinal: frames.len() as u32,
        });
        at += HEADER_BYTES + len;
    }
    (frames, at)
}

/// Reads one frame back whose payload starts at `offset` and checks it:
/// `None` if its bytes no longer match their checksum.
pub fn read_at(file: &std::fs::File, offset: u64, len: u32) -> std::io::Result<Option<Vec<u8>>> {
    use std::os::unix::fs::FileExt;
    let start = offset
        .checked_sub(HEADER_BYTES as u64)
        .ok_or_else(|| std::io::Error::other("offset inside a frame header"))?;
    let mut buf = vec![0; HEADER_BYTES + len as usize];
    file.read_exact_at(&mut buf, start)?;
    Ok(match frame_at(&buf, 0) {
        Frame::Intact(l) if l == len as usize => Some(buf.split_off(HEADER_BYTES)),
        _ => None,
    })
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
        scan.frames.iter().map(|f| f.payload(buf)).collect()
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
        let ordinals: Vec<u32> = s.frames.iter().map(|f| f.ordinal).collect();
        assert_eq!(ordinals, vec![0, 2], "the damaged frame keeps its place");
        let (prefix, end) = scan_prefix(&buf);
        assert_eq!(prefix.len(), 1, "an ordered log stops at the damage");
        assert_eq!(end, HEADER_BYTES + 3);
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
    fn a_frame_is_read_back_by_its_place_and_checked() {
        let dir = tempfile::tempdir().expect("tmp");
        let path = dir.path().join("s");
        let mut buf = segment(&[b"one", b"two"]);
        std::fs::write(&path, &buf).expect("write");
        let f = std::fs::File::open(&path).expect("open");
        let second = (2 * HEADER_BYTES + 3) as u64;
        assert_eq!(read_at(&f, second, 3).expect("read"), Some(b"two".to_vec()));
        buf[second as usize] ^= 1;
        std::fs::write(&path, &buf).expect("write");
        let f = std::fs::File::open(&path).expect("open");
        assert_eq!(read_at(&f, second, 3).expect("read"), None, "damaged since");
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
