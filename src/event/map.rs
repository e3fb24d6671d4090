//! One JSON event → one item of a stream's table: key attributes found and
//! type-checked, context fields (query, path, topic) merged, numbers exact,
//! size checked against DynamoDB's 400 KB limit.
//!
//! The server-assigned sort key and the TTL attribute are added by the
//! router (they need the clock); this module only reports that the sort key
//! is still to be assigned.

use std::collections::HashMap;

use aws_sdk_dynamodb::types::AttributeValue;
use serde_json::{Map, Value};

use super::attr;
use super::number;
use crate::config::{KeySpec, KeyType, ScalarType, SortKeySource, StreamSpec};

/// DynamoDB's limits on key value sizes.
const MAX_PARTITION_KEY_BYTES: usize = 2048;
const MAX_SORT_KEY_BYTES: usize = 1024;

/// Why an event cannot become an item. Each names the field at fault.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MapError {
    #[error("event is not a JSON object")]
    NotAnObject,
    #[error("missing key attribute `{0}`")]
    MissingKey(String),
    #[error("key attribute `{name}` must be {expected}, got {got}")]
    MistypedKey {
        name: String,
        expected: &'static str,
        got: &'static str,
    },
    #[error("key attribute `{0}` must not be empty")]
    EmptyKey(String),
    #[error("key attribute `{name}` is {size} bytes, over DynamoDB's limit of {limit}")]
    KeyTooLong {
        name: String,
        size: usize,
        limit: usize,
    },
    #[error("field `{name}`: {reason}")]
    BadField { name: String, reason: String },
    #[error("field `{name}` must be {expected}, got {got}")]
    MistypedField {
        name: String,
        expected: &'static str,
        got: &'static str,
    },
    #[error("sort key `{0}` is assigned by the gateway for this stream and must not be sent")]
    ServerAssigned(String),
    #[error("item is {0} bytes by DynamoDB's size rules, over the 400 KB limit")]
    TooLarge(usize),
}

impl MapError {
    /// A stable, low-cardinality reason for metrics.
    pub fn reason(&self) -> &'static str {
        match self {
            MapError::NotAnObject => "not_an_object",
            MapError::MissingKey(_) => "missing_key",
            MapError::MistypedKey { .. } => "mistyped_key",
            MapError::EmptyKey(_) => "empty_key",
            MapError::KeyTooLong { .. } => "key_too_long",
            MapError::BadField { .. }
            | MapError::MistypedField { .. }
            | MapError::ServerAssigned(_) => "bad_field",
            MapError::TooLarge(_) => "item_too_large",
        }
    }
}

/// A mapped event that still needs the router's clock.
#[derive(Debug)]
pub struct Mapped {
    pub attrs: HashMap<String, AttributeValue>,
    /// True when the router must assign the sort key (server time).
    pub needs_sort_key: bool,
}

/// Maps one decoded event. `context` holds text fields from the request
/// (query parameters, path or topic captures); they fill attributes the JSON
/// lacks and are converted by the stream's `attribute_types`.
pub fn map_event(
    stream: &StreamSpec,
    event: Value,
    context: &[(String, String)],
) -> Result<Mapped, MapError> {
    let Value::Object(object) = event else {
        return Err(MapError::NotAnObject);
    };
    map_object(stream, object, context)
}

fn map_object(
    stream: &StreamSpec,
    object: Map<String, Value>,
    context: &[(String, String)],
) -> Result<Mapped, MapError> {
    let mut attrs = HashMap::with_capacity(object.len() + context.len() + 2);
    for (name, value) in object {
        if let Some(ty) = stream.attribute_types.get(&name) {
            check_json_type(&name, *ty, &value)?;
        }
        let v = attr::from_json(value, 0).map_err(|e| bad_field(&name, e))?;
        attrs.insert(name, v);
    }
    for (name, text) in context {
        if attrs.contains_key(name) {
            continue;
        }
        let ty = stream
            .attribute_types
            .get(name)
            .copied()
            .unwrap_or_else(|| key_scalar(stream, name));
        attrs.insert(name.clone(), from_text(name, text, ty)?);
    }
    check_key(&attrs, &stream.partition_key, MAX_PARTITION_KEY_BYTES)?;
    let needs_sort_key = match &stream.sort_key {
        None => false,
        Some(sk) => {
            let key = KeySpec {
                name: sk.name.clone(),
                kind: sk.kind,
            };
            match (sk.source, attrs.contains_key(&sk.name)) {
                (SortKeySource::ServerTime, true) => {
                    return Err(MapError::ServerAssigned(sk.name.clone()))
                }
                (SortKeySource::ServerTime, false) | (SortKeySource::Auto, false) => true,
                (SortKeySource::Field, _) | (SortKeySource::Auto, true) => {
                    check_key(&attrs, &key, MAX_SORT_KEY_BYTES)?;
                    false
                }
            }
        }
    };
    Ok(Mapped {
        attrs,
        needs_sort_key,
    })
}

/// Key attributes filled from text take the key's type.
fn key_scalar(stream: &StreamSpec, name: &str) -> ScalarType {
    let kind = if stream.partition_key.name == name {
        Some(stream.partition_key.kind)
    } else {
        stream
            .sort_key
            .as_ref()
            .filter(|k| k.name == name)
            .map(|k| k.kind)
    };
    match kind {
        Some(KeyType::N) => ScalarType::N,
        _ => ScalarType::S,
    }
}

fn from_text(name: &str, text: &str, ty: ScalarType) -> Result<AttributeValue, MapError> {
    match ty {
        ScalarType::S => Ok(AttributeValue::S(text.to_owned())),
        ScalarType::N => {
            number::normalize(text).map_err(|e| bad_field(name, e))?;
            Ok(AttributeValue::N(text.to_owned()))
        }
        ScalarType::Bool => match text {
            "true" => Ok(AttributeValue::Bool(true)),
            "false" => Ok(AttributeValue::Bool(false)),
            _ => Err(MapError::BadField {
                name: name.to_owned(),
                reason: format!("`{text}` is not true or false"),
            }),
        },
    }
}

fn check_json_type(name: &str, ty: ScalarType, value: &Value) -> Result<(), MapError> {
    let ok = matches!(
        (ty, value),
        (ScalarType::S, Value::String(_))
            | (ScalarType::N, Value::Number(_))
            | (ScalarType::Bool, Value::Bool(_))
    );
    if ok {
        return Ok(());
    }
    let expected = match ty {
        ScalarType::S => "a string",
        ScalarType::N => "a number",
        ScalarType::Bool => "a boolean",
    };
    Err(MapError::MistypedField {
        name: name.to_owned(),
        expected,
        got: json_kind(value),
    })
}

fn check_key(
    attrs: &HashMap<String, AttributeValue>,
    key: &KeySpec,
    limit: usize,
) -> Result<(), MapError> {
    let value = attrs
        .get(&key.name)
        .ok_or_else(|| MapError::MissingKey(key.name.clone()))?;
    let (size, empty) = match (key.kind, value) {
        (KeyType::S, AttributeValue::S(s)) => (s.len(), s.is_empty()),
        (KeyType::N, AttributeValue::N(n)) => (n.len(), false),
        (kind, other) => {
            return Err(MapError::MistypedKey {
                name: key.name.clone(),
                expected: match kind {
                    KeyType::S => "a string",
                    KeyType::N => "a number",
                },
                got: attr_kind(other),
            })
        }
    };
    if empty {
        return Err(MapError::EmptyKey(key.name.clone()));
    }
    if size > limit {
        return Err(MapError::KeyTooLong {
            name: key.name.clone(),
            size,
            limit,
        });
    }
    Ok(())
}

/// The normalized identity of an item's primary key (numbers in canonical form).
pub fn key_id(
    attrs: &HashMap<String, AttributeValue>,
    partition: &KeySpec,
    sort: Option<&KeySpec>,
) -> Box<str> {
    let part = |name: &str| match attrs.get(name) {
        Some(AttributeValue::S(s)) => s.clone(),
        Some(AttributeValue::N(n)) => number::normalize(n)
            .map(|n| n.canonical())
            .unwrap_or_else(|_| n.clone()),
        _ => String::new(),
    };
    let mut id = part(&partition.name);
    if let Some(sk) = sort {
        id.push('\0');
        id.push_str(&part(&sk.name));
    }
    id.into_boxed_str()
}

fn bad_field(name: &str, e: impl std::fmt::Display) -> MapError {
    MapError::BadField {
        name: name.to_owned(),
        reason: e.to_string(),
    }
}

fn json_kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

fn attr_kind(v: &AttributeValue) -> &'static str {
    match v {
        AttributeValue::S(_) => "a string",
        AttributeValue::N(_) => "a number",
        AttributeValue::Bool(_) => "a boolean",
        AttributeValue::Null(_) => "null",
        AttributeValue::L(_) => "an array",
        AttributeValue::M(_) => "an object",
        _ => "another type",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{Overrides, ValidatedConfig, DEFAULT_TOML};

    fn stream(name: &str) -> StreamSpec {
        let c =
            ValidatedConfig::from_toml("t", DEFAULT_TOML, &Overrides::default()).expect("default");
        c.streams
            .into_iter()
            .find(|s| &*s.name == name)
            .expect("stream")
    }

    fn json(t: &str) -> Value {
        serde_json::from_str(t).expect("json")
    }

    fn ctx(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(a, b)| ((*a).to_owned(), (*b).to_owned()))
            .collect()
    }

    #[test]
    fn sensor_event_keeps_exact_types_and_needs_server_time() {
        let m = map_event(
            &stream("sensor"),
            json(r#"{"device_id":"D001","temperature":30.5,"humidity":67}"#),
            &[],
        )
        .expect("ok");
        assert!(m.needs_sort_key);
        assert_eq!(m.attrs["temperature"], AttributeValue::N("30.5".into()));
        assert_eq!(m.attrs["humidity"], AttributeValue::N("67".into()));
        assert_eq!(m.attrs["device_id"], AttributeValue::S("D001".into()));
    }

    #[test]
    fn payload_timestamp_is_the_identity_in_auto_mode() {
        let m = map_event(
            &stream("sensor"),
            json(r#"{"device_id":"D1","timestamp":1695678123}"#),
            &[],
        )
        .expect("ok");
        assert!(!m.needs_sort_key);
        let e = map_event(
            &stream("sensor"),
            json(r#"{"device_id":"D1","timestamp":"yesterday"}"#),
            &[],
        )
        .unwrap_err();
        assert_eq!(
            e,
            MapError::MistypedKey {
                name: "timestamp".into(),
                expected: "a number",
                got: "a string"
            }
        );
    }

    #[test]
    fn context_fills_missing_fields_with_declared_types() {
        let m = map_event(
            &stream("cart"),
            Value::Object(Map::new()),
            &ctx(&[
                ("user_id", "U123"),
                ("item_id", "P101"),
                ("name", "Book"),
                ("quantity", "1"),
                ("price", "10"),
            ]),
        )
        .expect("ok");
        assert!(!m.needs_sort_key);
        assert_eq!(m.attrs["quantity"], AttributeValue::N("1".into()));
        assert_eq!(m.attrs["price"], AttributeValue::N("10".into()));
        assert_eq!(m.attrs["name"], AttributeValue::S("Book".into()));
        let e = map_event(
            &stream("cart"),
            Value::Object(Map::new()),
            &ctx(&[("user_id", "U1"), ("item_id", "P"), ("quantity", "lots")]),
        )
        .unwrap_err();
        assert!(
            matches!(e, MapError::BadField { ref name, .. } if name == "quantity"),
            "{e}"
        );
    }

    #[test]
    fn key_errors_name_the_attribute() {
        let s = stream("sensor");
        assert_eq!(
            map_event(&s, json(r#"{"temperature":1}"#), &[]).unwrap_err(),
            MapError::MissingKey("device_id".into())
        );
        assert_eq!(
            map_event(&s, json(r#"{"device_id":""}"#), &[]).unwrap_err(),
            MapError::EmptyKey("device_id".into())
        );
        assert!(matches!(
            map_event(&s, json(r#"{"device_id":7}"#), &[]).unwrap_err(),
            MapError::MistypedKey { .. }
        ));
        let long = format!(r#"{{"device_id":"{}"}}"#, "x".repeat(2049));
        assert!(matches!(
            map_event(&s, json(&long), &[]).unwrap_err(),
            MapError::KeyTooLong { .. }
        ));
        assert_eq!(
            map_event(&s, json("[1]"), &[]).unwrap_err(),
            MapError::NotAnObject
        );
        let cart = stream("cart");
        assert_eq!(
            map_event(&cart, json(r#"{"user_id":"U"}"#), &[]).unwrap_err(),
            MapError::MissingKey("item_id".into())
        );
        let e = map_event(
            &cart,
            json(r#"{"user_id":"U","item_id":"P","quantity":"1"}"#),
            &[],
        )
        .unwrap_err();
        assert!(matches!(e, MapError::MistypedField { ref name, .. } if name == "quantity"));
    }

    #[test]
    fn key_identity_normalizes_numbers() {
        let s = stream("sensor");
        let a = map_event(&s, json(r#"{"device_id":"D","timestamp":1}"#), &[]).expect("ok");
        let b = map_event(&s, json(r#"{"device_id":"D","timestamp":1.0}"#), &[]).expect("ok");
        let sk = KeySpec {
            name: "timestamp".into(),
            kind: KeyType::N,
        };
        assert_eq!(
            key_id(&a.attrs, &s.partition_key, Some(&sk)),
            key_id(&b.attrs, &s.partition_key, Some(&sk))
        );
    }
}
