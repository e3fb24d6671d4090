//! The MQTT 3.1.1 packets a simulated device needs, by hand: CONNECT,
//! PUBLISH, PINGREQ and DISCONNECT written into a buffer, and what a broker
//! sends back (CONNACK, PUBACK, PINGRESP; anything else skipped) read from
//! one. Sits under [`super::device`], which owns the sockets; no I/O here.
//!
//! A device only ever receives small packets, so an incoming packet larger
//! than [`MAX_INCOMING`] is a protocol error rather than something to
//! buffer.

/// The largest packet a device accepts from the broker (it expects acks).
pub const MAX_INCOMING: usize = 64 * 1024;

pub const PINGREQ: [u8; 2] = [0xC0, 0x00];
pub const DISCONNECT: [u8; 2] = [0xE0, 0x00];

/// A packet from the broker.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Incoming {
    /// CONNACK with its return code (0 = accepted).
    ConnAck {
        code: u8,
    },
    /// PUBACK of packet id `pkid`.
    PubAck {
        pkid: u16,
    },
    PingResp,
    /// Any other packet type (high nibble of the first byte), skipped.
    Other(u8),
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum WireError {
    #[error("malformed remaining length")]
    Length,
    #[error("packet of {0} bytes from the broker (a device expects acks, at most {MAX_INCOMING})")]
    TooLarge(usize),
    #[error("malformed {0} packet")]
    Malformed(&'static str),
}

/// Appends a CONNECT with a clean session.
pub fn connect(buf: &mut Vec<u8>, client_id: &str, keep_alive_secs: u16) {
    let id = client_id.as_bytes();
    buf.push(0x10);
    remaining_length(buf, 10 + 2 + id.len());
    buf.extend_from_slice(&[0, 4, b'M', b'Q', b'T', b'T', 4, 0x02]);
    buf.extend_from_slice(&keep_alive_secs.to_be_bytes());
    string(buf, id);
}

/// Appends a PUBLISH (not retained); `pkid` is sent only for QoS 1.
pub fn publish(buf: &mut Vec<u8>, topic: &str, qos: u8, pkid: u16, payload: &[u8]) {
    let id_len = if qos > 0 { 2 } else { 0 };
    buf.push(0x30 | (qos.min(1) << 1));
    remaining_length(buf, 2 + topic.len() + id_len + payload.len());
    string(buf, topic.as_bytes());
    if qos > 0 {
        buf.extend_from_slice(&pkid.to_be_bytes());
    }
    buf.extend_from_slice(payload);
}

fn string(buf: &mut Vec<u8>, s: &[u8]) {
    // Topics and client ids are ours, far below 64 KiB.
    buf.extend_from_slice(&(s.len().min(u16::MAX as usize) as u16).to_be_bytes());
    buf.extend_from_slice(&s[..s.len().min(u16::MAX as usize)]);
}

fn remaining_length(buf: &mut Vec<u8>, mut len: usize) {
    loop {
        let mut byte = (len % 128) as u8;
        len /= 128;
        if len > 0 {
            byte |= 0x80;
        }
        buf.push(byte);
        if len == 0 {
            return;
        }
    }
}

/// The first whole packet in `buf` and its length in bytes, or None if
/// `buf` holds only part of one.
pub fn next(buf: &[u8]) -> Result<Option<(Incoming, usize)>, WireError> {
    let Some(&first) = buf.first() else {
        return Ok(None);
    };
    let mut len = 0usize;
    let mut header = 1;
    loop {
        let Some(&b) = buf.get(header) else {
            return Ok(None);
        };
        len |= usize::from(b & 0x7F) << (7 * (header - 1));
        header += 1;
        if b & 0x80 == 0 {
            break;
        }
        if header > 4 {
            return Err(WireError::Length);
        }
    }
    if len > MAX_INCOMING {
        return Err(WireError::TooLarge(len));
    }
    let Some(body) = buf.get(header..header + len) else {
        return Ok(None);
    };
    let packet = match first >> 4 {
        2 => match body {
            [_, code] => Incoming::ConnAck { code: *code },
            _ => return Err(WireError::Malformed("CONNACK")),
        },
        4 => match body {
            [hi, lo] => Incoming::PubAck {
                pkid: u16::from_be_bytes([*hi, *lo]),
            },
            _ => return Err(WireError::Malformed("PUBACK")),
        },
        13 => Incoming::PingResp,
        t => Incoming::Other(t),
    };
    Ok(Some((packet, header + len)))
}

/// What a CONNACK return code means (MQTT 3.1.1, 3.2.2.3).
pub fn connack_reason(code: u8) -> &'static str {
    match code {
        1 => "unacceptable protocol version",
        2 => "client identifier rejected",
        3 => "server unavailable",
        4 => "bad user name or password",
        5 => "not authorized",
        _ => "refused",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn connect_matches_the_spec_example() {
        let mut b = Vec::new();
        connect(&mut b, "dev1", 30);
        assert_eq!(
            b,
            [
                0x10, 16, 0, 4, b'M', b'Q', b'T', b'T', 4, 0x02, 0, 30, 0, 4, b'd', b'e', b'v',
                b'1'
            ]
        );
    }

    #[test]
    fn publish_carries_a_packet_id_only_at_qos_1() {
        let mut b = Vec::new();
        publish(&mut b, "a/b", 1, 0x0102, b"{}");
        assert_eq!(b, [0x32, 9, 0, 3, b'a', b'/', b'b', 1, 2, b'{', b'}']);
        b.clear();
        publish(&mut b, "a/b", 0, 7, b"{}");
        assert_eq!(b, [0x30, 7, 0, 3, b'a', b'/', b'b', b'{', b'}']);
    }

    #[test]
    fn long_payloads_get_a_multi_byte_length() {
        let mut b = Vec::new();
        let payload = vec![b'x'; 300];
        publish(&mut b, "t", 1, 1, &payload);
        // 2 + 1 + 2 + 300 = 305 = 0b10_0110001 → 0xB1 0x02.
        assert_eq!(&b[..3], &[0x32, 0xB1, 0x02]);
        assert_eq!(b.len(), 3 + 305);
    }

    #[test]
    fn acks_are_read_whole_across_any_split() {
        let stream = [
            0x20, 2, 0, 0, // CONNACK accepted
            0x40, 2, 0, 1, // PUBACK 1
            0x90, 3, 0, 9, 0, // SUBACK, skipped
            0xD0, 0, // PINGRESP
            0x40, 2, 0x12, 0x34, // PUBACK 0x1234
        ];
        let want = [
            Incoming::ConnAck { code: 0 },
            Incoming::PubAck { pkid: 1 },
            Incoming::Other(9),
            Incoming::PingResp,
            Incoming::PubAck { pkid: 0x1234 },
        ];
        for split in 0..=stream.len() {
            // Bytes arrive in two reads, cut at `split`.
            let mut buf = stream[..split].to_vec();
            let mut got = Vec::new();
            let mut fed = false;
            loop {
                match next(&buf).expect("valid") {
                    Some((p, n)) => {
                        got.push(p);
                        buf.drain(..n);
                    }
                    None if !fed => {
                        buf.extend_from_slice(&stream[split..]);
                        fed = true;
                    }
                    None => break,
                }
            }
            assert_eq!(got, want, "split at {split}");
            assert!(buf.is_empty());
        }
    }

    #[test]
    fn bad_packets_are_errors_not_buffering() {
        assert_eq!(
            next(&[0x40, 3, 0, 1, 2]),
            Err(WireError::Malformed("PUBACK"))
        );
        assert_eq!(
            next(&[0x40, 0xFF, 0xFF, 0xFF, 0xFF]),
            Err(WireError::Length)
        );
        assert_eq!(
            next(&[0x30, 0x81, 0x80, 0x04]),
            Err(WireError::TooLarge(65_537))
        );
        assert_eq!(next(&[0x20, 2, 0]), Ok(None));
    }
}
