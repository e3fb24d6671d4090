//! Just enough MQTT 3.1.1 framing for the front to police a connection and
//! take PUBLISHes itself: the fixed header of every packet, the CONNECT
//! packet's credentials and keep-alive, a PUBLISH packet's QoS, retain
//! flag, topic, packet id and payload, and the PUBACK and PINGREQ the front
//! writes. Everything else passes through to rumqttd untouched. Pure
//! functions over byte slices (fuzzed, unit-tested); they never panic on any
//! input.

/// MQTT's largest remaining length (4 length bytes).
pub const MAX_REMAINING: usize = 268_435_455;

/// Control packet types the front looks at.
pub const CONNECT: u8 = 1;
pub const CONNACK: u8 = 2;
pub const PUBLISH: u8 = 3;
pub const PINGRESP: u8 = 13;

/// A PINGREQ packet (the front keeps rumqttd's keep-alive timer fed with it).
pub const PINGREQ_PACKET: [u8; 2] = [0xc0, 0x00];

/// A fixed header: packet type, its flags, and where the body lies.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header {
    pub kind: u8,
    pub flags: u8,
    /// Bytes of the fixed header itself (2 to 5).
    pub header_len: usize,
    /// Bytes after the fixed header.
    pub remaining: usize,
}

impl Header {
    /// The whole packet's length.
    pub fn total(&self) -> usize {
        self.header_len + self.remaining
    }
}

/// Why bytes are not MQTT.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PacketError {
    #[error("remaining length uses more than 4 bytes")]
    BadLength,
    #[error("the first packet is not CONNECT")]
    NotConnect,
    #[error("unsupported protocol `{name}` level {level}")]
    Protocol { name: String, level: u8 },
    #[error("malformed {0} packet")]
    Malformed(&'static str),
    #[error("PUBLISH with QoS 3")]
    BadQos,
    #[error("PUBLISH topic is not a valid topic name")]
    BadTopic,
}

/// Parses a fixed header at the start of `buf`; `Ok(None)` when more bytes are needed.
pub fn header(buf: &[u8]) -> Result<Option<Header>, PacketError> {
    let Some(&first) = buf.first() else {
        return Ok(None);
    };
    let mut remaining = 0usize;
    for i in 0..4 {
        let Some(&b) = buf.get(1 + i) else {
            return Ok(None);
        };
        remaining |= usize::from(b & 0x7f) << (7 * i);
        if b & 0x80 == 0 {
            return Ok(Some(Header {
                kind: first >> 4,
                flags: first & 0x0f,
                header_len: 2 + i,
                remaining,
            }));
        }
    }
    Err(PacketError::BadLength)
}

/// The parts of CONNECT the front needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Connect {
    pub level: u8,
    /// Seconds; 0 turns keep-alive off (rumqttd refuses that).
    pub keep_alive: u16,
    pub client_id: String,
    pub username: Option<String>,
    pub password: Option<Vec<u8>>,
}

/// Reads a CONNECT body (the bytes after the fixed header).
pub fn connect(body: &[u8]) -> Result<Connect, PacketError> {
    let mut r = Reader(body);
    let name = r.string().ok_or(PacketError::Malformed("CONNECT"))?;
    let level = r.u8().ok_or(PacketError::Malformed("CONNECT"))?;
    if name != "MQTT" || level != 4 {
        return Err(PacketError::Protocol { name, level });
    }
    let flags = r.u8().ok_or(PacketError::Malformed("CONNECT"))?;
    let keep_alive = r.u16().ok_or(PacketError::Malformed("CONNECT"))?;
    let client_id = r.string().ok_or(PacketError::Malformed("CONNECT"))?;
    if flags & 0x04 != 0 {
        r.string().ok_or(PacketError::Malformed("CONNECT"))?;
        r.binary().ok_or(PacketError::Malformed("CONNECT"))?;
    }
    let username = if flags & 0x80 != 0 {
        Some(r.string().ok_or(PacketError::Malformed("CONNECT"))?)
    } else {
        None
    };
    let password = if flags & 0x40 != 0 {
        Some(
            r.binary()
                .ok_or(PacketError::Malformed("CONNECT"))?
                .to_vec(),
        )
    } else {
        None
    };
    Ok(Connect {
        level,
        keep_alive,
        client_id,
        username,
        password,
    })
}

/// The parts of PUBLISH the front needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PublishInfo<'a> {
    pub qos: u8,
    pub retain: bool,
    pub topic: &'a str,
    /// Payload bytes.
    pub payload_len: usize,
}

/// Reads a PUBLISH packet's QoS (from the fixed-header flags) and topic.
/// Only the topic's bytes need to be in `body`; `remaining` is the body's full length.
pub fn publish(flags: u8, body: &[u8], remaining: usize) -> Result<PublishInfo<'_>, PacketError> {
    let qos = (flags >> 1) & 0x03;
    if qos == 3 {
        return Err(PacketError::BadQos);
    }
    let mut r = Reader(body);
    let len = r.u16().ok_or(PacketError::Malformed("PUBLISH"))? as usize;
    let raw = r.bytes(len).ok_or(PacketError::Malformed("PUBLISH"))?;
    // Wildcards and NUL are ASCII, which UTF-8 never uses inside another
    // character: a byte scan (no early exit, so many bytes per step)
    // finds them faster than a search by characters.
    let forbidden = raw
        .iter()
        .fold(false, |bad, &b| bad | (b == b'+') | (b == b'#') | (b == 0));
    if raw.is_empty() || forbidden {
        return Err(PacketError::BadTopic);
    }
    let topic = std::str::from_utf8(raw).map_err(|_| PacketError::BadTopic)?;
    let id_len = if qos > 0 { 2 } else { 0 };
    let payload_len = remaining
        .checked_sub(2 + len + id_len)
        .ok_or(PacketError::Malformed("PUBLISH"))?;
    Ok(PublishInfo {
        qos,
        retain: flags & 0x01 != 0,
        topic,
        payload_len,
    })
}

/// Where a complete PUBLISH body (QoS 0 or 1) keeps its parts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PublishParts {
    /// The topic's bytes within the body.
    pub topic: std::ops::Range<usize>,
    /// The packet id (QoS 1), to be acknowledged.
    pub packet_id: Option<u16>,
    /// The payload's bytes within the body.
    pub payload: std::ops::Range<usize>,
}

/// Locates the parts of a complete PUBLISH body already checked by [`publish`].
pub fn publish_parts(qos: u8, body: &[u8]) -> Result<PublishParts, PacketError> {
    let mut r = Reader(body);
    let len = r.u16().ok_or(PacketError::Malformed("PUBLISH"))? as usize;
    r.bytes(len).ok_or(PacketError::Malformed("PUBLISH"))?;
    let packet_id = match qos {
        0 => None,
        _ => Some(r.u16().ok_or(PacketError::Malformed("PUBLISH"))?),
    };
    let start = body.len() - r.0.len();
    Ok(PublishParts {
        topic: 2..2 + len,
        packet_id,
        payload: start..body.len(),
    })
}

/// PUBACK for `packet_id`.
pub fn puback(packet_id: u16) -> [u8; 4] {
    let [hi, lo] = packet_id.to_be_bytes();
    [0x40, 0x02, hi, lo]
}

/// Bytes of a PUBLISH body needed to read its topic (`None`: not yet known).
pub fn publish_topic_bytes(body: &[u8]) -> Option<usize> {
    let len = u16::from_be_bytes([*body.first()?, *body.get(1)?]);
    Some(2 + len as usize)
}

/// CONNACK for MQTT 3.1.1 with a refusal `code` (4: bad username or password, 5: not authorized).
pub fn connack_refused(code: u8) -> [u8; 4] {
    [0x20, 0x02, 0x00, code]
}

struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn bytes(&mut self, n: usize) -> Option<&'a [u8]> {
        if self.0.len() < n {
            return None;
        }
        let (head, tail) = self.0.split_at(n);
        self.0 = tail;
        Some(head)
    }
    fn u8(&mut self) -> Option<u8> {
        self.bytes(1).map(|b| b[0])
    }
    fn u16(&mut self) -> Option<u16> {
        self.bytes(2).map(|b| u16::from_be_bytes([b[0], b[1]]))
    }
    fn binary(&mut self) -> Option<&'a [u8]> {
        let n = self.u16()? as usize;
        self.bytes(n)
    }
    fn string(&mut self) -> Option<String> {
        std::str::from_utf8(self.binary()?).ok().map(str::to_owned)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn connect_bytes(user: Option<&str>, pass: Option<&[u8]>, will: bool) -> Vec<u8> {
        let mut body = vec![0, 4, b'M', b'Q', b'T', b'T', 4];
        let mut flags = 0x02;
        if will {
            flags |= 0x04;
        }
        if user.is_some() {
            flags |= 0x80;
        }
        if pass.is_some() {
            flags |= 0x40;
        }
        body.push(flags);
        body.extend([0, 60]);
        body.extend([0, 2, b'd', b'1']);
        if will {
            body.extend([0, 1, b'w', 0, 2, b'x', b'y']);
        }
        if let Some(u) = user {
            body.extend((u.len() as u16).to_be_bytes());
            body.extend(u.as_bytes());
        }
        if let Some(p) = pass {
            body.extend((p.len() as u16).to_be_bytes());
            body.extend(p);
        }
        body
    }

    #[test]
    fn fixed_header_lengths() {
        assert_eq!(header(&[0x30]).expect("ok"), None);
        let h = header(&[0x32, 0x7f]).expect("ok").expect("complete");
        assert_eq!((h.kind, h.flags, h.header_len, h.remaining), (3, 2, 2, 127));
        let h = header(&[0x30, 0x80, 0x01]).expect("ok").expect("complete");
        assert_eq!((h.header_len, h.remaining), (3, 128));
        let h = header(&[0x30, 0xff, 0xff, 0xff, 0x7f])
            .expect("ok")
            .expect("complete");
        assert_eq!(h.remaining, MAX_REMAINING);
        assert_eq!(
            header(&[0x30, 0xff, 0xff, 0xff, 0xff, 0x01]),
            Err(PacketError::BadLength)
        );
    }

    #[test]
    fn connect_credentials_and_will() {
        let c = connect(&connect_bytes(Some("dev"), Some(b"pw"), true)).expect("valid");
        assert_eq!((c.client_id.as_str(), c.keep_alive), ("d1", 60));
        assert_eq!(c.username.as_deref(), Some("dev"));
        assert_eq!(c.password.as_deref(), Some(&b"pw"[..]));
        let c = connect(&connect_bytes(None, None, false)).expect("valid");
        assert_eq!((c.username, c.password), (None, None));
        let mut v5 = connect_bytes(None, None, false);
        v5[6] = 5;
        assert!(matches!(
            connect(&v5),
            Err(PacketError::Protocol { level: 5, .. })
        ));
        let full = connect_bytes(Some("dev"), Some(b"pw"), false);
        assert_eq!(
            connect(&full[..full.len() - 1]),
            Err(PacketError::Malformed("CONNECT"))
        );
    }

    #[test]
    fn publish_topic_qos_and_payload() {
        let body = [&[0, 3][..], b"a/b", &[0, 7], b"{}"].concat();
        let p = publish(0x02, &body, body.len()).expect("valid");
        assert_eq!(
            (p.qos, p.retain, p.topic, p.payload_len),
            (1, false, "a/b", 2)
        );
        assert!(publish(0x03, &body, body.len()).expect("valid").retain);
        let parts = publish_parts(1, &body).expect("complete");
        assert_eq!(&body[parts.topic], b"a/b");
        assert_eq!(parts.packet_id, Some(7));
        assert_eq!(&body[parts.payload], b"{}");
        assert_eq!(puback(7), [0x40, 2, 0, 7]);
        assert_eq!(puback(0x1234), [0x40, 2, 0x12, 0x34]);
        let body0 = [&[0, 3][..], b"a/b", b"{}"].concat();
        assert_eq!(
            publish(0, &body0, body0.len()).expect("valid").payload_len,
            2
        );
        let parts = publish_parts(0, &body0).expect("complete");
        assert_eq!((parts.packet_id, &body0[parts.payload]), (None, &b"{}"[..]));
        assert!(publish_parts(1, &body0[..5]).is_err());
        assert_eq!(publish(0x06, &body, body.len()), Err(PacketError::BadQos));
        let wild = [&[0, 3][..], b"a/#"].concat();
        assert_eq!(publish(0, &wild, wild.len()), Err(PacketError::BadTopic));
        assert_eq!(publish_topic_bytes(&body), Some(5));
        assert_eq!(publish_topic_bytes(&[0]), None);
    }

    proptest! {
        #[test]
        fn a_topic_is_accepted_by_its_characters(
            raw in prop_oneof![
                "[a/+#\\x00é€]{0,8}".prop_map(String::into_bytes),
                proptest::collection::vec(any::<u8>(), 0..12),
            ]
        ) {
            let expected = std::str::from_utf8(&raw)
                .ok()
                .filter(|t| !t.is_empty() && !t.contains(['+', '#', '\0']));
            let body = [&(raw.len() as u16).to_be_bytes()[..], &raw].concat();
            let got = publish(0, &body, body.len()).ok().map(|info| info.topic);
            prop_assert_eq!(got, expected);
        }

        #[test]
        fn parsers_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..300), flags in any::<u8>()) {
            let _ = header(&bytes);
            let _ = connect(&bytes);
            let _ = publish(flags, &bytes, bytes.len());
            let _ = publish_topic_bytes(&bytes);
            let _ = publish_parts(flags & 1, &bytes);
        }
    }
}
