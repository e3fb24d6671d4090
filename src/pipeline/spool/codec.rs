//! A spool record's payload: one request's fully mapped items.
//!
//! `time_ms: u64 LE | JSON {"s": stream, "i": [{"k": key, "a": item}]}`
//! with `item` in DynamoDB's typed JSON, so every attribute keeps its exact
//! type and the sort key assigned by the router: a replay writes the very
//! same items (an overwrite in DynamoDB, never a duplicate).

use std::collections::HashMap;

use aws_sdk_dynamodb::primitives::Blob;
use aws_sdk_dynamodb::types::AttributeValue;
use base64::Engine;
use serde_json::{json, Map, Value};

use crate::event::attr::item_to_typed_json;
use crate::event::{Item, KeyId};

/// A payload that does not decode (a bug or a foreign file: its checksum was fine).
#[derive(Debug, thiserror::Error)]
#[error("undecodable spool record: {0}")]
pub struct DecodeError(String);

/// One decoded record.
#[derive(Debug, Clone, PartialEq)]
pub struct Decoded {
    pub time_ms: u64,
    pub stream: String,
    pub items: Vec<(KeyId, HashMap<String, AttributeValue>)>,
}

/// Encodes one request's items.
pub fn encode(time_ms: u64, stream: &str, items: &[Item]) -> Vec<u8> {
    let body = json!({
        "s": stream,
        "i": items
            .iter()
            .map(|it| json!({"k": &*it.key, "a": item_to_typed_json(&it.attrs)}))
            .collect::<Vec<_>>(),
    });
    let mut out = time_ms.to_le_bytes().to_vec();
    // Writing JSON into a Vec cannot fail.
    let _ = serde_json::to_writer(&mut out, &body);
    out
}

/// The record's time without decoding the rest.
pub fn time_ms(payload: &[u8]) -> Option<u64> {
    Some(u64::from_le_bytes(payload.get(..8)?.try_into().ok()?))
}

/// Decodes a payload written by [`encode`].
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
            let attrs = match &it["a"] {
                Value::Object(m) => attrs_from_typed(m)?,
                _ => return Err(bad("item without attributes")),
            };
            Ok((KeyId::from(key), attrs))
        })
        .collect::<Result<_, _>>()?;
    Ok(Decoded {
        time_ms,
        stream,
        items,
    })
}

fn attrs_from_typed(
    m: &Map<String, Value>,
) -> Result<HashMap<String, AttributeValue>, DecodeError> {
    m.iter()
        .map(|(k, v)| Ok((k.clone(), from_typed(v)?)))
        .collect()
}

fn from_typed(v: &Value) -> Result<AttributeValue, DecodeError> {
    let bad = || DecodeError(format!("not a typed attribute: {v}"));
    let (tag, inner) = match v {
        Value::Object(m) if m.len() == 1 => m.iter().next().ok_or_else(bad)?,
        _ => return Err(bad()),
    };
    let text = || inner.as_str().map(str::to_owned).ok_or_else(bad);
    let texts = || {
        inner
            .as_array()
            .ok_or_else(bad)?
            .iter()
            .map(|s| s.as_str().map(str::to_owned).ok_or_else(bad))
            .collect::<Result<Vec<_>, _>>()
    };
    let blob = |s: &str| {
        base64::engine::general_purpose::STANDARD
            .decode(s)
            .map(Blob::new)
            .map_err(|_| bad())
    };
    Ok(match tag.as_str() {
        "S" => AttributeValue::S(text()?),
        "N" => AttributeValue::N(text()?),
        "B" => AttributeValue::B(blob(&text()?)?),
        "BOOL" => AttributeValue::Bool(inner.as_bool().ok_or_else(bad)?),
        "NULL" => AttributeValue::Null(inner.as_bool().ok_or_else(bad)?),
        "L" => AttributeValue::L(
            inner
                .as_array()
                .ok_or_else(bad)?
                .iter()
                .map(from_typed)
                .collect::<Result<_, _>>()?,
        ),
        "M" => AttributeValue::M(attrs_from_typed(inner.as_object().ok_or_else(bad)?)?),
        "SS" => AttributeValue::Ss(texts()?),
        "NS" => AttributeValue::Ns(texts()?),
        "BS" => AttributeValue::Bs(texts()?.iter().map(|s| blob(s)).collect::<Result<_, _>>()?),
        _ => return Err(bad()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
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
        let item = Item {
            attrs: attrs.clone(),
            key: "d-1\u{0}1732761600123".into(),
            size: 100,
            stream: Arc::from("sensor"),
            received: Instant::now(),
            acks: Vec::new(),
        };
        let payload = encode(42, "sensor", &[item]);
        let d = decode(&payload).expect("decodes");
        assert_eq!(d.time_ms, 42);
        assert_eq!(d.stream, "sensor");
        assert_eq!(d.items, vec![(KeyId::from("d-1\u{0}1732761600123"), attrs)]);
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
