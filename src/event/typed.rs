//! An item in DynamoDB's typed JSON (`{"device_id":{"S":"D1"},"t":{"N":"1.5"}}`).
//!
//! The mapper writes each item's typed JSON once, at intake, straight from
//! the decoded event (no attribute values in between) and counts its size by
//! DynamoDB's rules on the way. From then on the item travels as these bytes:
//! the direct request path copies them into the BatchWriteItem body, the
//! spool and the dead-letter file store them. Only the SDK request path and
//! tests read them back into the SDK's [`AttributeValue`]s ([`parse_item`]).

use std::borrow::Cow;
use std::collections::HashMap;

use aws_sdk_dynamodb::primitives::Blob;
use aws_sdk_dynamodb::types::AttributeValue;
use base64::Engine;
use serde_json::value::RawValue;
use serde_json::{Map, Value};

use super::fields::{string_text, Fields, Kind, Raw};

use super::number::{self, NumberError};

/// DynamoDB's limit on nested document depth.
pub const MAX_DEPTH: usize = 32;

/// Why a JSON value cannot become an attribute.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AttrError {
    #[error("{0}")]
    Number(#[from] NumberError),
    #[error("nested deeper than DynamoDB's limit of 32 levels")]
    TooDeep,
    #[error("{0}")]
    BadText(String),
}

/// Writes one item's attributes, in the order they are added.
#[derive(Debug)]
pub struct ItemWriter {
    out: Vec<u8>,
    size: usize,
    empty: bool,
}

impl ItemWriter {
    /// A writer whose buffer starts with room for `capacity` bytes (tests;
    /// the intake reuses one buffer through [`Self::reusing`]).
    #[cfg(test)]
    pub fn with_capacity(capacity: usize) -> Self {
        Self::reusing(Vec::with_capacity(capacity))
    }

    /// A writer into `buffer`, emptied first (its capacity is kept).
    pub fn reusing(mut buffer: Vec<u8>) -> Self {
        buffer.clear();
        buffer.push(b'{');
        Self {
            out: buffer,
            size: 0,
            empty: true,
        }
    }

    /// The item's size so far, by DynamoDB's rules.
    pub fn size(&self) -> usize {
        self.size
    }

    fn name(&mut self, name: &str) {
        if !self.empty {
            self.out.push(b',');
        }
        self.empty = false;
        string(&mut self.out, name);
        self.out.push(b':');
        self.size += name.len();
    }

    /// Adds an attribute from a JSON value in a tree, through its text
    /// (pretty-printed, so the tests that use it cover whitespace too).
    #[cfg(test)]
    pub fn json(&mut self, name: &str, value: &Value) -> Result<(), AttrError> {
        let text =
            serde_json::to_string_pretty(value).map_err(|e| AttrError::BadText(e.to_string()))?;
        let raw = RawValue::from_string(text).map_err(|e| AttrError::BadText(e.to_string()))?;
        self.raw(name, Raw::from(&*raw))
    }

    /// Adds an attribute from a raw JSON value (strings → S, numbers → N
    /// with their exact text, bools → BOOL, null → NULL, arrays → L,
    /// objects → M): a string without escapes and a number are copied as
    /// they are; nested arrays and objects are walked level by level as raw
    /// values (no tree built).
    pub fn raw(&mut self, name: &str, value: Raw<'_>) -> Result<(), AttrError> {
        self.name(name);
        self.size += raw_value(&mut self.out, value, 0)?;
        Ok(())
    }

    /// Adds a string attribute.
    pub fn s(&mut self, name: &str, value: &str) {
        self.name(name);
        string_value(&mut self.out, value);
        self.size += value.len();
    }

    /// Adds a number attribute from its decimal text, checked against
    /// DynamoDB's limits.
    pub fn n(&mut self, name: &str, text: &str) -> Result<(), NumberError> {
        let size = number::checked_size(text)?;
        self.name(name);
        number_value(&mut self.out, text);
        self.size += size;
        Ok(())
    }

    /// Adds an unsigned integer attribute from its decimal digits as `itoa`
    /// writes them (nothing to check; the size from the digits alone).
    pub fn integer(&mut self, name: &str, digits: &str) {
        self.name(name);
        number_value(&mut self.out, digits);
        self.size += number::integer_size(digits);
    }

    /// Adds a boolean attribute.
    pub fn bool(&mut self, name: &str, value: bool) {
        self.name(name);
        bool_value(&mut self.out, value);
        self.size += 1;
    }

    /// The item's typed JSON and its size (tests; the intake uses
    /// [`Self::finish_in_place`]).
    #[cfg(test)]
    pub fn finish(mut self) -> (Box<[u8]>, usize) {
        self.out.push(b'}');
        (self.out.into_boxed_slice(), self.size)
    }

    /// The buffer holding the item's whole typed JSON, and its size: the
    /// caller copies the JSON out and hands the buffer to the next item's
    /// [`Self::reusing`].
    pub fn finish_in_place(mut self) -> (Vec<u8>, usize) {
        self.out.push(b'}');
        (self.out, self.size)
    }
}

/// A byte a JSON string cannot hold as it is: `"`, `\` or a control
/// character (the writer escapes these; the one-pass reader stops at them).
pub(super) fn json_special(b: u8) -> bool {
    (b < 0x20) | (b == b'"') | (b == b'\\')
}

fn string(out: &mut Vec<u8>, s: &str) {
    // Most names and values need no escape: copied between quotes.
    // No early exit: the compiler checks many bytes per step.
    let plain = !s.bytes().fold(false, |bad, b| bad | json_special(b));
    if plain {
        out.reserve(s.len() + 2);
        out.push(b'"');
        out.extend_from_slice(s.as_bytes());
        out.push(b'"');
        return;
    }
    // serde_json's escaping of a &str into a Vec cannot fail.
    let _ = serde_json::to_writer(&mut *out, s);
}

fn string_value(out: &mut Vec<u8>, s: &str) {
    out.extend_from_slice(b"{\"S\":");
    string(out, s);
    out.push(b'}');
}

fn null_value(out: &mut Vec<u8>) {
    out.extend_from_slice(b"{\"NULL\":true}");
}

fn number_value(out: &mut Vec<u8>, text: &str) {
    out.extend_from_slice(b"{\"N\":\"");
    // Checked decimal text has nothing to escape.
    out.extend_from_slice(text.as_bytes());
    out.extend_from_slice(b"\"}");
}

fn bool_value(out: &mut Vec<u8>, value: bool) {
    out.extend_from_slice(if value {
        b"{\"BOOL\":true}"
    } else {
        b"{\"BOOL\":false}"
    });
}

/// Writes the raw JSON `value` typed and returns its size (without a
/// name); `depth` is its nesting level (0 at the item's top level). A name
/// given twice in an object keeps its last value (as in a tree); the
/// entries keep their first order.
fn raw_value(out: &mut Vec<u8>, value: Raw<'_>, depth: usize) -> Result<usize, AttrError> {
    let text = value.get();
    let bad = |e: serde_json::Error| AttrError::BadText(e.to_string());
    Ok(match Kind::of(value) {
        // Unescaped and escaped again when it holds escapes: DynamoDB gets
        // a normal form, and escapes text cannot hold are refused.
        Kind::String => match string_text(value).map_err(bad)? {
            Cow::Borrowed(inner) => {
                out.extend_from_slice(b"{\"S\":");
                out.extend_from_slice(text.as_bytes());
                out.push(b'}');
                inner.len()
            }
            Cow::Owned(s) => {
                string_value(out, &s);
                s.len()
            }
        },
        Kind::Number => {
            let size = number::checked_size(text)?;
            number_value(out, text);
            size
        }
        Kind::Bool => {
            bool_value(out, text == "true");
            1
        }
        Kind::Null => {
            null_value(out);
            1
        }
        Kind::Array => {
            if depth >= MAX_DEPTH {
                return Err(AttrError::TooDeep);
            }
            let items: Vec<&RawValue> = serde_json::from_str(text).map_err(bad)?;
            out.extend_from_slice(b"{\"L\":[");
            let mut size = 3;
            for (i, v) in items.into_iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                size += 1 + raw_value(out, Raw::from(v), depth + 1)?;
            }
            out.extend_from_slice(b"]}");
            size
        }
        Kind::Object => {
            if depth >= MAX_DEPTH {
                return Err(AttrError::TooDeep);
            }
            let fields = Fields::parse(text.as_bytes()).map_err(bad)?;
            out.extend_from_slice(b"{\"M\":{");
            let mut size = 3;
            for (i, (k, v)) in fields.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                string(out, k);
                out.push(b':');
                size += 1 + k.len() + raw_value(out, v, depth + 1)?;
            }
            out.extend_from_slice(b"}}");
            size
        }
    })
}

/// Typed JSON that does not read back as an item.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("not an item in DynamoDB's typed JSON: {0}")]
pub struct TypedError(String);

/// Reads an item's typed JSON back into attribute values.
pub fn parse_item(json: &[u8]) -> Result<HashMap<String, AttributeValue>, TypedError> {
    match serde_json::from_slice(json) {
        Ok(Value::Object(m)) => attrs_from_typed(&m),
        Ok(other) => Err(TypedError(format!("{other}"))),
        Err(e) => Err(TypedError(e.to_string())),
    }
}

/// Reads a typed JSON object (`{"name": {"S": ...}, ...}`) into attribute values.
pub fn attrs_from_typed(
    m: &Map<String, Value>,
) -> Result<HashMap<String, AttributeValue>, TypedError> {
    m.iter()
        .map(|(k, v)| Ok((k.clone(), from_typed(v)?)))
        .collect()
}

fn from_typed(v: &Value) -> Result<AttributeValue, TypedError> {
    let bad = || TypedError(format!("not a typed attribute: {v}"));
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
    use crate::event::{attr, size};

    proptest::proptest! {
        #[test]
        fn strings_are_written_as_serde_json_writes_them(s in "\\PC*|[\\x00-\\x7f\"\\\\]{0,12}") {
            let mut out = Vec::new();
            string(&mut out, &s);
            proptest::prop_assert_eq!(out, serde_json::to_vec(&s).expect("json"));
        }
    }

    #[test]
    fn nested_raw_values_keep_the_last_of_a_repeated_name_and_refuse_depth_33() {
        let boxed = |t: &str| RawValue::from_string(t.to_owned()).expect("raw");
        let mut w = ItemWriter::with_capacity(64);
        w.raw(
            "m",
            Raw::from(&*boxed(
                r#"{ "a" : 1, "b": [true, null, "x\ny", {"c": "d"}], "a": 2.50 }"#,
            )),
        )
        .expect("nested");
        let (json, size) = w.finish();
        assert_eq!(
            std::str::from_utf8(&json).expect("utf8"),
            r#"{"m":{"M":{"a":{"N":"2.50"},"b":{"L":[{"BOOL":true},{"NULL":true},{"S":"x\ny"},{"M":{"c":{"S":"d"}}}]}}}}"#
        );
        let model = model_of(r#"{"m": {"a": 2.50, "b": [true, null, "x\ny", {"c": "d"}]}}"#);
        assert_eq!(size, size::item_size(&model), "the size the model gives");

        let deep = format!(
            "{}1{}",
            "[".repeat(MAX_DEPTH + 1),
            "]".repeat(MAX_DEPTH + 1)
        );
        let mut w = ItemWriter::with_capacity(64);
        assert_eq!(
            w.raw("d", Raw::from(&*boxed(&deep))),
            Err(AttrError::TooDeep)
        );
        let ok = format!("{}1{}", "[".repeat(MAX_DEPTH), "]".repeat(MAX_DEPTH));
        let mut w = ItemWriter::with_capacity(64);
        assert!(w.raw("d", Raw::from(&*boxed(&ok))).is_ok());
        assert!(matches!(
            ItemWriter::with_capacity(8).raw("s", Raw::from(&*boxed(r#"{"x": "\ud800"}"#))),
            Err(AttrError::BadText(_))
        ));
    }

    /// The attribute model (`attr`, independent of this writer) of an event.
    fn model_of(event: &str) -> HashMap<String, AttributeValue> {
        let Value::Object(m) = serde_json::from_str(event).expect("json") else {
            panic!("not an object")
        };
        m.into_iter()
            .map(|(k, v)| (k, attr::from_json(v, 0).expect("in limits")))
            .collect()
    }

    fn written(event: &str) -> (Box<[u8]>, usize) {
        let Value::Object(m) = serde_json::from_str(event).expect("json") else {
            panic!("not an object")
        };
        let mut w = ItemWriter::with_capacity(64);
        for (k, v) in &m {
            w.json(k, v).expect("writes");
        }
        w.finish()
    }

    #[test]
    fn typed_json_reads_back_as_the_attribute_values_of_the_event() {
        let event = r#"{"id":"D\"1\u00e9","t":1.50,"big":12345678901234567890123456789012345678,
            "ok":true,"none":null,"tags":["a",2,[false]],"nested":{"x":{"y":"z"},"n":-0.0}}"#;
        let (json, size) = written(event);
        let Value::Object(m) = serde_json::from_str(event).expect("json") else {
            panic!()
        };
        let expected: HashMap<String, AttributeValue> = m
            .into_iter()
            .map(|(k, v)| (k, attr::from_json(v, 0).expect("attr")))
            .collect();
        assert_eq!(parse_item(&json).expect("parses"), expected);
        assert_eq!(size, size::item_size(&expected), "same size rules");
        assert!(
            std::str::from_utf8(&json)
                .expect("utf8")
                .contains(r#""t":{"N":"1.50"}"#),
            "numbers keep their text"
        );
    }

    #[test]
    fn raw_values_are_written_as_their_parsed_form_is() {
        let event = r#"{"id":"D\"1\u00e9","plain":"ok é","t":1.50,"ok":true,"f":false,
            "none":null,"tags":["a",2,[false]],"nested":{"x":{"y":"z"},"n":-0.0}}"#;
        let fields = crate::event::fields::Fields::parse(event.as_bytes()).expect("fields");
        let mut w = ItemWriter::with_capacity(64);
        for (k, v) in fields.iter() {
            w.raw(k, v).expect("writes");
        }
        let (raw_json, raw_size) = w.finish();
        let model = model_of(event);
        assert_eq!(parse_item(&raw_json).expect("parses"), model);
        assert_eq!(raw_size, size::item_size(&model));
        let mut w = ItemWriter::with_capacity(8);
        let e = serde_json::value::RawValue::from_string("-2E+3".to_owned()).expect("raw");
        w.raw("e", Raw::from(&*e)).expect("number");
        assert_eq!(
            parse_item(&w.finish().0).expect("parses")["e"],
            AttributeValue::N("-2E+3".into()),
            "a number keeps the client's very text"
        );
        let mut w = ItemWriter::with_capacity(8);
        let lone = serde_json::value::RawValue::from_string(r#""\ud800""#.to_owned()).expect("raw");
        assert!(matches!(
            w.raw("s", Raw::from(&*lone)),
            Err(AttrError::BadText(_))
        ));
    }

    #[test]
    fn scalar_attributes_and_their_sizes() {
        let mut w = ItemWriter::with_capacity(8);
        w.s("a", "xyz");
        w.n("b", "100").expect("number");
        w.bool("c", false);
        assert!(w.n("d", "1e200").is_err(), "out of range");
        let (json, size) = w.finish();
        assert_eq!(
            std::str::from_utf8(&json).expect("utf8"),
            r#"{"a":{"S":"xyz"},"b":{"N":"100"},"c":{"BOOL":false}}"#
        );
        assert_eq!(size, (1 + 3) + (1 + 2) + (1 + 1));
    }

    #[test]
    fn nesting_deeper_than_dynamodb_allows_is_refused_as_by_attr() {
        for levels in [32, 33] {
            let deep = format!(r#"{}1{}"#, "[".repeat(levels), "]".repeat(levels));
            let value: Value = serde_json::from_str(&deep).expect("json");
            let mut w = ItemWriter::with_capacity(8);
            let ours = w.json("a", &value);
            let theirs = attr::from_json(value, 0);
            assert_eq!(ours.is_err(), theirs.is_err(), "{levels} levels");
            assert_eq!(ours.is_err(), levels > 32, "{levels} levels");
        }
    }

    #[test]
    fn foreign_json_is_not_an_item() {
        assert!(parse_item(b"[1]").is_err());
        assert!(parse_item(br#"{"a":{"X":"1"}}"#).is_err());
        assert!(parse_item(br#"{"a":"plain"}"#).is_err());
    }
}
