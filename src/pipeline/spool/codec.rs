//! A spool record's payload: one request's fully mapped items.
//!
//! `time_ms: u64 LE | JSON {"s": stream, "i": [{"k": key, "a": item}]}`
//! with `item` in DynamoDB's typed JSON, so every attribute keeps its exact
//! type and the sort key assigned by the router: a replay writes the very
//! same items (an overwrite in DynamoDB, never a duplicate).

use serde_json::Value;

use crate::event::typed::attrs_from_typed;
use crate::event::{size, Item, ItemText};

/// A payload that does not decode (a bug or a foreign file: its checksum was fine).
#[derive(Debug, thiserror::Error)]
#[error("undecodable spool record: {0}")]
pub struct DecodeError(String);

/// One decoded record.
#[derive(Debug, Clone, PartialEq)]
pub struct Decoded {
    pub time_ms: u64,
    pub stream: String,
    pub items: Vec<DecodedItem>,
}

/// One item of a record, as the router mapped it.
#[derive(Debug, Clone, PartialEq)]
pub struct DecodedItem {
    /// Typed JSON and key, as in [`Item::text`].
    pub text: ItemText,
    /// Size by DynamoDB's rules.
    pub size: usize,
}

/// Encodes one request's items (each item's typed JSON copied as it is).
pub fn encode(time_ms: u64, stream: &str, items: &[Item]) -> Vec<u8> {
    let estimate: usize = items
        .iter()
        .map(|i| i.text.json().len() + i.text.key().len() + 16)
        .sum();
    let mut out = Vec::with_capacity(8 + 16 + stream.len() + estimate);
    out.extend_from_slice(&time_ms.to_le_bytes());
    // Writing JSON strings into a Vec cannot fail.
    out.extend_from_slice(b"{\"s\":");
    let _ = serde_json::to_writer(&mut out, stream);
    out.extend_from_slice(b",\"i\":[");
    for (i, it) in items.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        out.extend_from_slice(b"{\"k\":");
        let _ = serde_json::to_writer(&mut out, it.key());
        out.extend_from_slice(b",\"a\":");
        out.extend_from_slice(it.json());
        out.push(b'}');
    }
    out.extend_from_slice(b"]}");
    out
}

/// The record's time without decoding the rest.
pub fn time_ms(payload: &[u8]) -> Option<u64> {
    Some(u64::from_le_bytes(payload.get(..8)?.try_into().ok()?))
}

/// Decodes a payload written by [`encode`]; every item's typed JSON is
/// checked (it must read back as attribute values) and sized.
pub fn decode(payload: &[u8]) -> Result<Decoded, DecodeError> {
    let bad = |m: &str| DecodeError(m.to_owned());
    let time_ms = time_ms(payload).ok_or_else(|| bad("shorter than its time stamp"))?;
    let body: Value =
        serde_json::from_slice(&payload[8..]).map_err(|e| DecodeError(e.to_string()))?;
    let stream = body["s"]
        .as_str()
        .ok_or_else(|| bad("no stream"))?
        .to_owned();
    let items = body["i"]
        .as_array()
        .ok_or_else(|| bad("no items"))?
        .iter()
        .map(|it| {
            let key = it["k"].as_str().ok_or_else(|| bad("item without key"))?;
            let typed = &it["a"];
            let attrs = match typed {
                Value::Object(m) => attrs_from_typed(m).map_err(|e| DecodeError(e.to_string()))?,
                _ => return Err(bad("item without attributes")),
            };
            let json = serde_json::to_vec(typed).map_err(|e| DecodeError(e.to_string()))?;
            Ok(DecodedItem {
                text: ItemText::new(&json, key),
                size: size::item_size(&attrs),
            })
        })
        .collect::<Result<_, _>>()?;
    Ok(Decoded {
        time_ms,
        stream,
        items,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::typed::parse_item;
    use aws_sdk_dynamodb::primitives::Blob;
    use aws_sdk_dynamodb::types::AttributeValue;
    use std::collections::HashMap;
    use std::sync::Arc;
    use std::time::Instant;

    #[test]
    fn every_attribute_type_survives_a_round_trip() {
        let attrs: HashMap<String, AttributeValue> = [
            ("device_id", AttributeValue::S("d-1".into())),
            ("timestamp", AttributeValue::N("1732761600123".into())),
            ("exact", AttributeValue::N("12345678901234567890.5".into())),
            ("raw", AttributeValue::B(Blob::new(vec![0u8, 255, 7]))),
            ("ok", AttributeValue::Bool(true)),
            ("none", AttributeValue::Null(true)),
            (
                "nested",
                AttributeValue::M(
                    [(
                        "l".to_owned(),
                        AttributeValue::L(vec![
                            AttributeValue::N("1".into()),
                            AttributeValue::S("x".into()),
                        ]),
                    )]
                    .into(),
                ),
            ),
            ("tags", AttributeValue::Ss(vec!["a".into(), "b".into()])),
            ("ns", AttributeValue::Ns(vec!["1.5".into()])),
            ("bs", AttributeValue::Bs(vec![Blob::new(vec![1u8])])),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v))
        .collect();
        let json =
            serde_json::to_vec(&crate::event::attr::item_to_typed_json(&attrs)).expect("json");
        let item = Item {
            text: ItemText::new(&json, "d-1\u{0}1732761600123"),
            size: 100,
            stream: Arc::from("sensor"),
            received: Instant::now(),
            acks: Default::default(),
        };
        let payload = encode(42, "sensor", &[item]);
        let d = decode(&payload).expect("decodes");
        assert_eq!(d.time_ms, 42);
        assert_eq!(d.stream, "sensor");
        assert_eq!(d.items.len(), 1);
        assert_eq!(d.items[0].text.key(), "d-1\u{0}1732761600123");
        assert_eq!(parse_item(d.items[0].text.json()).expect("typed"), attrs);
        assert_eq!(d.items[0].size, size::item_size(&attrs));
    }

    #[test]
    fn a_foreign_payload_is_an_error_not_a_panic() {
        for p in [
            &b""[..],
            b"12345678",
            b"12345678{\"s\":1}",
            b"12345678{\"s\":\"a\",\"i\":[{\"k\":\"x\",\"a\":{\"v\":{\"Q\":1}}}]}",
        ] {
            assert!(decode(p).is_err(), "{p:?}");
        }
    }
}
