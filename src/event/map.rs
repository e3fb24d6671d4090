//! One JSON event → one item of a stream's table: key attributes found and
//! type-checked, context fields (query, path, topic) merged, numbers exact,
//! size checked against DynamoDB's 400 KB limit.
//!
//! The item is written once, as DynamoDB typed JSON ([`super::typed`]),
//! straight from the decoded event; the server-assigned sort key and the
//! TTL attribute come from the router through [`Fill`] (they need its clock).

use std::cell::Cell;
use std::collections::HashMap;

use aws_sdk_dynamodb::types::AttributeValue;
use smallvec::SmallVec;

use super::fields::{string_text, Fields, Kind, Raw};
use super::number;
use super::size::MAX_ITEM_BYTES;
use super::typed::ItemWriter;
use super::ItemText;
use crate::config::{KeySpec, KeyType, ScalarType, SortKeySource, StreamSpec};

/// DynamoDB's limits on key value sizes.
const MAX_PARTITION_KEY_BYTES: usize = 2048;
const MAX_SORT_KEY_BYTES: usize = 1024;

/// Why an event cannot become an item. Each names the field at fault.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MapError {
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

/// What the router adds to every event of a request.
pub struct Fill<'a> {
    /// Assigns the server-time sort key for a partition, given the
    /// [`hash_str`](super::hash_str) of its normalized partition key: the
    /// router's clock.
    pub stamp: &'a dyn Fn(u64) -> u64,
    /// The TTL attribute's name and value (epoch seconds as text), set when
    /// the event lacks that attribute.
    pub ttl: Option<(&'a str, &'a str)>,
}

/// A mapped event: the item's typed JSON and key identity, and its size.
#[derive(Debug)]
pub struct Mapped {
    /// The item in DynamoDB's typed JSON ([`super::typed`]) and its key.
    pub text: ItemText,
    /// Size by DynamoDB's rules, in bytes (at most 400 KB).
    pub size: usize,
}

/// A context field converted to its attribute type.
#[derive(Debug, Clone, Copy)]
enum Scalar<'a> {
    S(&'a str),
    N(&'a str),
    Bool(bool),
}

/// Where a key attribute's value came from.
#[derive(Clone, Copy)]
enum Found<'a> {
    Json(Raw<'a>),
    Context(Scalar<'a>),
}

thread_local! {
    /// The buffers an item's typed JSON and key text are written into, one
    /// pair per thread: each result is copied out at its exact size, so no
    /// item's buffer is guessed, grown or shrunk (cheaper than allocating a
    /// buffer per item and shrinking it to fit).
    static SCRATCH_JSON: Cell<Vec<u8>> = const { Cell::new(Vec::new()) };
    static SCRATCH_KEY: Cell<String> = const { Cell::new(String::new()) };
}

/// A scratch buffer larger than this (an unusually large item) is freed
/// rather than kept for the thread's next item.
const MAX_KEPT_SCRATCH: usize = 64 * 1024;

/// Maps one decoded event. `context` holds text fields from the request
/// (query parameters, path or topic captures); they fill attributes the JSON
/// lacks and are converted by the stream's `attribute_types`.
pub fn map_event(
    stream: &StreamSpec,
    event: &Fields<'_>,
    context: &[(&str, &str)],
    fill: &Fill<'_>,
) -> Result<Mapped, MapError> {
    let mut item = ItemWriter::reusing(SCRATCH_JSON.take());
    for (name, value) in event.iter() {
        if let Some(ty) = stream.attribute_types.get(name) {
            check_json_type(name, *ty, Kind::of(value))?;
        }
        item.raw(name, value).map_err(|e| bad_field(name, e))?;
    }
    // Context fields are few (a topic's or path's captures): kept inline.
    let mut extra: SmallVec<[(&str, Scalar<'_>); 4]> = SmallVec::new();
    for &(name, text) in context {
        if event.contains(name) || extra.iter().any(|(n, _)| *n == name) {
            continue;
        }
        let ty = stream
            .attribute_types
            .get(name)
            .copied()
            .unwrap_or_else(|| key_scalar(stream, name));
        let value = from_text(name, text, ty)?;
        match value {
            Scalar::S(s) => item.s(name, s),
            Scalar::N(n) => item.n(name, n).map_err(|e| bad_field(name, e))?,
            Scalar::Bool(b) => item.bool(name, b),
        }
        extra.push((name, value));
    }
    let find = |name: &str| {
        event.get(name).map(Found::Json).or_else(|| {
            extra
                .iter()
                .find(|(n, _)| *n == name)
                .map(|(_, v)| Found::Context(*v))
        })
    };
    let pk = &stream.partition_key;
    let pk_found = find(&pk.name);
    let sk_found = stream.sort_key.as_ref().and_then(|sk| find(&sk.name));
    let mut key = SCRATCH_KEY.take();
    key.clear();
    key_part(
        &mut key,
        pk_found,
        &pk.name,
        pk.kind,
        MAX_PARTITION_KEY_BYTES,
    )?;
    // Hashed once: for the clock's counter and the item's key identity.
    let partition_hash = super::hash_str(&key);
    if let Some(sk) = &stream.sort_key {
        match (sk.source, sk_found.is_some()) {
            (SortKeySource::ServerTime, true) => {
                return Err(MapError::ServerAssigned(sk.name.clone()))
            }
            (SortKeySource::ServerTime, false) | (SortKeySource::Auto, false) => {
                // Stamped per normalized partition key, so `1` and `1.0` share one sequence.
                let mut text = itoa::Buffer::new();
                let stamp = text.format((fill.stamp)(partition_hash));
                item.integer(&sk.name, stamp);
                key.push('\0');
                number::push_integer_canonical(&mut key, stamp);
            }
            (SortKeySource::Field, _) | (SortKeySource::Auto, true) => {
                key.push('\0');
                key_part(&mut key, sk_found, &sk.name, sk.kind, MAX_SORT_KEY_BYTES)?;
            }
        }
    }
    if let Some((name, value)) = fill.ttl {
        if find(name).is_none() {
            item.n(name, value).map_err(|e| bad_field(name, e))?;
        }
    }
    let size = item.size();
    if size > MAX_ITEM_BYTES {
        return Err(MapError::TooLarge(size));
    }
    let (buffer, size) = item.finish_in_place();
    let mapped = Mapped {
        text: ItemText::keyed(&buffer, &key, partition_hash),
        size,
    };
    if buffer.capacity() <= MAX_KEPT_SCRATCH {
        SCRATCH_JSON.set(buffer);
    }
    if key.capacity() <= MAX_KEPT_SCRATCH {
        SCRATCH_KEY.set(key);
    }
    Ok(mapped)
}

/// Appends the key identity's text for one key attribute to `id`, after
/// DynamoDB's checks (present, of the key's type, not empty, within the
/// size limit).
fn key_part(
    id: &mut String,
    found: Option<Found<'_>>,
    name: &str,
    kind: KeyType,
    limit: usize,
) -> Result<(), MapError> {
    let found = found.ok_or_else(|| MapError::MissingKey(name.to_owned()))?;
    let json_string;
    let (text, number) = match (kind, found) {
        (KeyType::S, Found::Json(raw)) if Kind::of(raw) == Kind::String => {
            json_string = string_text(raw).map_err(|e| bad_field(name, e))?;
            (json_string.as_ref(), false)
        }
        (KeyType::S, Found::Context(Scalar::S(s))) => (s, false),
        (KeyType::N, Found::Json(raw)) if Kind::of(raw) == Kind::Number => (raw.get(), true),
        (KeyType::N, Found::Context(Scalar::N(n))) => (n, true),
        (kind, other) => {
            return Err(MapError::MistypedKey {
                name: name.to_owned(),
                expected: match kind {
                    KeyType::S => "a string",
                    KeyType::N => "a number",
                },
                got: match other {
                    Found::Json(v) => Kind::of(v).describe(),
                    Found::Context(Scalar::S(_)) => "a string",
                    Found::Context(Scalar::N(_)) => "a number",
                    Found::Context(Scalar::Bool(_)) => "a boolean",
                },
            })
        }
    };
    if !number && text.is_empty() {
        return Err(MapError::EmptyKey(name.to_owned()));
    }
    if text.len() > limit {
        return Err(MapError::KeyTooLong {
            name: name.to_owned(),
            size: text.len(),
            limit,
        });
    }
    if number {
        push_number(id, text);
    } else {
        id.push_str(text);
    }
    Ok(())
}

/// Appends a number's text in key identities (its own text if it is not a number).
fn push_number(id: &mut String, text: &str) {
    let start = id.len();
    if number::push_canonical(id, text).is_err() {
        id.truncate(start);
        id.push_str(text);
    }
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

fn from_text<'a>(name: &str, text: &'a str, ty: ScalarType) -> Result<Scalar<'a>, MapError> {
    match ty {
        ScalarType::S => Ok(Scalar::S(text)),
        ScalarType::N => {
            number::checked_size(text).map_err(|e| bad_field(name, e))?;
            Ok(Scalar::N(text))
        }
        ScalarType::Bool => match text {
            "true" => Ok(Scalar::Bool(true)),
            "false" => Ok(Scalar::Bool(false)),
            _ => Err(MapError::BadField {
                name: name.to_owned(),
                reason: format!("`{text}` is not true or false"),
            }),
        },
    }
}

fn check_json_type(name: &str, ty: ScalarType, kind: Kind) -> Result<(), MapError> {
    let ok = matches!(
        (ty, kind),
        (ScalarType::S, Kind::String)
            | (ScalarType::N, Kind::Number)
            | (ScalarType::Bool, Kind::Bool)
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
        got: kind.describe(),
    })
}

/// The normalized identity of an item's primary key (numbers in canonical form).
pub fn key_id(
    attrs: &HashMap<String, AttributeValue>,
    partition: &KeySpec,
    sort: Option<&KeySpec>,
) -> Box<str> {
    let part = |name: &str| match attrs.get(name) {
        Some(AttributeValue::S(s)) => s.clone(),
        Some(AttributeValue::N(n)) => {
            let mut id = String::new();
            push_number(&mut id, n);
            id
        }
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{Overrides, ValidatedConfig, DEFAULT_TOML};
    use serde_json::{Map, Value};

    fn stream(name: &str) -> StreamSpec {
        let c =
            ValidatedConfig::from_toml("t", DEFAULT_TOML, &Overrides::default()).expect("default");
        c.streams
            .into_iter()
            .find(|s| &*s.name == name)
            .expect("stream")
    }

    const STAMP: u64 = 1_732_761_600_123;

    fn map_event(
        stream: &StreamSpec,
        event: Value,
        context: &[(&str, &str)],
    ) -> Result<Mapped, MapError> {
        let fill = Fill {
            stamp: &|_| STAMP,
            ttl: None,
        };
        with_fill(stream, &event.to_string(), context, &fill)
    }

    fn with_fill(
        stream: &StreamSpec,
        event: &str,
        context: &[(&str, &str)],
        fill: &Fill<'_>,
    ) -> Result<Mapped, MapError> {
        let fields = Fields::parse(event.as_bytes()).expect("a JSON object");
        super::map_event(stream, &fields, context, fill)
    }

    fn attrs(m: &Mapped) -> HashMap<String, AttributeValue> {
        crate::event::typed::parse_item(m.text.json()).expect("typed json")
    }

    fn json(t: &str) -> Value {
        serde_json::from_str(t).expect("json")
    }

    fn ctx<'a>(pairs: &[(&'a str, &'a str)]) -> Vec<(&'a str, &'a str)> {
        pairs.to_vec()
    }

    #[test]
    fn sensor_event_keeps_exact_types_and_needs_server_time() {
        let m = map_event(
            &stream("sensor"),
            json(r#"{"device_id":"D001","temperature":30.5,"humidity":67}"#),
            &[],
        )
        .expect("ok");
        let a = attrs(&m);
        assert_eq!(a["timestamp"], AttributeValue::N(STAMP.to_string()));
        assert_eq!(a["temperature"], AttributeValue::N("30.5".into()));
        assert_eq!(a["humidity"], AttributeValue::N("67".into()));
        assert_eq!(a["device_id"], AttributeValue::S("D001".into()));
        assert_eq!(m.size, crate::event::size::item_size(&a));
        assert_eq!(m.text.key(), "D001\u{0}0.1732761600123e13");
    }

    #[test]
    fn each_item_is_written_afresh_whatever_the_thread_mapped_before() {
        // The thread's buffers are reused: a large item, then a failure
        // part-way through (fields written, the key missing), then small
        // ones must each come out exactly as on a thread that mapped
        // nothing before.
        let small = r#"{"device_id":"D1","t":20}"#;
        let fresh = std::thread::spawn(move || {
            let m = map_event(&stream("sensor"), json(small), &[]).expect("ok");
            (m.text.json().to_vec(), m.text.key().to_owned())
        })
        .join()
        .expect("thread");
        let long = "x".repeat(70_000);
        let big = map_event(
            &stream("sensor"),
            json(&format!(r#"{{"device_id":"{long}","note":"{long}"}}"#)),
            &[],
        );
        assert!(
            big.is_err(),
            "a 2 KB partition key is refused after the item was written"
        );
        let large = map_event(
            &stream("sensor"),
            json(&format!(r#"{{"device_id":"D2","note":"{long}"}}"#)),
            &[],
        )
        .expect("ok");
        assert_eq!(attrs(&large)["note"], AttributeValue::S(long.clone()));
        let partial = map_event(&stream("sensor"), json(r#"{"a":1,"b":"c"}"#), &[]);
        assert_eq!(
            partial.unwrap_err(),
            MapError::MissingKey("device_id".into())
        );
        for _ in 0..2 {
            let m = map_event(&stream("sensor"), json(small), &[]).expect("ok");
            assert_eq!((m.text.json().to_vec(), m.text.key().to_owned()), fresh);
        }
    }

    #[test]
    fn server_stamps_are_sized_and_keyed_as_their_text() {
        // Trailing zeros do not count in DynamoDB's size of a number, and
        // the key text is the canonical form the parser gives.
        for stamp in [1_700_000_000_000, 1_732_761_600_120, 5, 10, 0, u64::MAX] {
            let fill = Fill {
                stamp: &|_| stamp,
                ttl: None,
            };
            let m = with_fill(
                &stream("sensor"),
                r#"{"device_id":"D1","t":20}"#,
                &[],
                &fill,
            )
            .expect("ok");
            let a = attrs(&m);
            assert_eq!(a["timestamp"], AttributeValue::N(stamp.to_string()));
            assert_eq!(m.size, crate::event::size::item_size(&a), "{stamp}");
            let canonical = number::normalize(&stamp.to_string())
                .expect("valid")
                .canonical();
            assert_eq!(m.text.key(), format!("D1\u{0}{canonical}"), "{stamp}");
        }
    }

    #[test]
    fn payload_timestamp_is_the_identity_in_auto_mode() {
        let m = map_event(
            &stream("sensor"),
            json(r#"{"device_id":"D1","timestamp":1695678123}"#),
            &[],
        )
        .expect("ok");
        assert_eq!(
            attrs(&m)["timestamp"],
            AttributeValue::N("1695678123".into())
        );
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
        let a = attrs(&m);
        assert_eq!(a.len(), 5, "{a:?}");
        assert_eq!(a["quantity"], AttributeValue::N("1".into()));
        assert_eq!(a["price"], AttributeValue::N("10".into()));
        assert_eq!(a["name"], AttributeValue::S("Book".into()));
        assert_eq!(m.text.key(), "U123\u{0}P101");
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
        assert_eq!(a.text.key(), b.text.key());
        let sk = KeySpec {
            name: "timestamp".into(),
            kind: KeyType::N,
        };
        assert_eq!(
            &*key_id(&attrs(&a), &s.partition_key, Some(&sk)),
            a.text.key(),
            "the response side computes the same identity"
        );
    }

    #[test]
    fn the_ttl_attribute_is_added_unless_the_event_has_one() {
        let s = stream("sensor");
        let fill = Fill {
            stamp: &|_| STAMP,
            ttl: Some(("expires_at", "1800000000")),
        };
        let m = with_fill(&s, r#"{"device_id":"D"}"#, &[], &fill).expect("ok");
        assert_eq!(
            attrs(&m)["expires_at"],
            AttributeValue::N("1800000000".into())
        );
        let m = with_fill(&s, r#"{"device_id":"D","expires_at":5}"#, &[], &fill).expect("ok");
        assert_eq!(attrs(&m)["expires_at"], AttributeValue::N("5".into()));
    }

    #[test]
    fn items_over_400_kb_are_refused_with_their_size() {
        let big = format!(r#"{{"device_id":"D","blob":"{}"}}"#, "x".repeat(400 * 1024));
        assert!(matches!(
            map_event(&stream("sensor"), json(&big), &[]).unwrap_err(),
            MapError::TooLarge(size) if size > 400 * 1024
        ));
    }

    #[test]
    fn the_stamp_is_asked_for_the_normalized_partition_key() {
        let s = stream("sensor");
        let seen = std::cell::RefCell::new(Vec::new());
        let stamp = |partition_hash: u64| {
            seen.borrow_mut().push(partition_hash);
            7
        };
        let fill = Fill {
            stamp: &stamp,
            ttl: None,
        };
        let m = with_fill(&s, r#"{"device_id":"D9"}"#, &[], &fill).expect("ok");
        assert_eq!(*seen.borrow(), [crate::event::hash_str("D9")]);
        assert_eq!(m.text.key(), "D9\u{0}0.7e1");
        assert_eq!(m.text.partition_hash(), crate::event::hash_str("D9"));
        assert_eq!(m.text.hash(), crate::event::hash_str("D9\u{0}0.7e1"));
    }
}
