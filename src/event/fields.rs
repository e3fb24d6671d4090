//! One decoded event: its top-level fields, borrowed from the request body
//! or MQTT payload (names unescaped only when they hold escapes, values as
//! their raw JSON text). The sources decode into this, the mapper writes the
//! item's typed JSON from it, nested objects read the same way level by
//! level: no JSON tree is built. Most objects are read by [`super::scan`]'s
//! single pass; the rest, and every error, by serde_json.

use std::borrow::Cow;
use std::fmt;

use serde::de::{Deserialize, Deserializer, MapAccess, Visitor};
use serde_json::value::RawValue;
use smallvec::SmallVec;

/// Objects with more fields than this find duplicates through a hash set.
pub(super) const LINEAR_DEDUP: usize = 32;

/// The fields of one JSON object, in their first order; a name given twice
/// keeps its last value (as a JSON object read into a map would).
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Fields<'a> {
    list: FieldList<'a>,
}

/// Fields' names and values; most events have at most 4, kept inline (no
/// allocation per event); more move to the heap.
pub(super) type FieldList<'a> = SmallVec<[(Cow<'a, str>, Raw<'a>); 4]>;

/// A JSON value's text as the input held it: valid JSON, without the
/// whitespace around it (like serde_json's `RawValue`, which can only be
/// borrowed from serde_json's own parser).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Raw<'a>(&'a str);

impl<'a> Raw<'a> {
    /// The value's JSON text.
    pub fn get(self) -> &'a str {
        self.0
    }

    /// Text [`super::scan`] found to be one JSON value.
    pub(super) fn checked(text: &'a str) -> Self {
        Raw(text)
    }
}

impl<'a> From<&'a RawValue> for Raw<'a> {
    fn from(value: &'a RawValue) -> Self {
        Raw(value.get())
    }
}

/// What a raw JSON value is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    String,
    Number,
    Bool,
    Null,
    Array,
    Object,
}

impl Kind {
    /// The kind of a raw JSON value (valid JSON, no surrounding whitespace).
    pub fn of(raw: Raw<'_>) -> Kind {
        match raw.get().as_bytes().first() {
            Some(b'"') => Kind::String,
            Some(b't' | b'f') => Kind::Bool,
            Some(b'n') => Kind::Null,
            Some(b'[') => Kind::Array,
            Some(b'{') => Kind::Object,
            _ => Kind::Number,
        }
    }

    /// For error messages: "a string", "an array", ...
    pub fn describe(self) -> &'static str {
        match self {
            Kind::String => "a string",
            Kind::Number => "a number",
            Kind::Bool => "a boolean",
            Kind::Null => "null",
            Kind::Array => "an array",
            Kind::Object => "an object",
        }
    }
}

/// The text of a raw JSON string, unescaped (borrowed when it has no
/// escapes). Escapes JSON allows but text cannot hold (a lone surrogate)
/// are an error, as is a value that is not a string.
pub fn string_text(raw: Raw<'_>) -> Result<Cow<'_, str>, serde_json::Error> {
    let text = raw.get();
    let plain = text
        .strip_prefix('"')
        .and_then(|t| t.strip_suffix('"'))
        .filter(|inner| !inner.contains('\\'));
    match plain {
        Some(inner) => Ok(Cow::Borrowed(inner)),
        None => serde_json::from_str::<String>(text).map(Cow::Owned),
    }
}

impl<'a> Fields<'a> {
    /// Parses one JSON object from `text` (the whole text must be that
    /// object): in one pass when [`super::scan`] can, else (and for every
    /// error) with serde_json, which words the error.
    pub fn parse(text: &'a [u8]) -> Result<Fields<'a>, serde_json::Error> {
        match super::scan::flat_object(text) {
            Some(list) => Ok(Fields { list }),
            None => Self::parse_by_serde(text),
        }
    }

    /// [`Fields::parse`] by serde_json alone: the reference the fast path
    /// is tested and fuzzed against.
    pub fn parse_by_serde(text: &'a [u8]) -> Result<Fields<'a>, serde_json::Error> {
        let mut de = serde_json::Deserializer::from_slice(text);
        let fields = Fields::deserialize(&mut de)?;
        de.end()?;
        Ok(fields)
    }

    /// The fields, in order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, Raw<'a>)> + '_ {
        self.list.iter().map(|(n, v)| (n.as_ref(), *v))
    }

    pub fn len(&self) -> usize {
        self.list.len()
    }

    pub fn is_empty(&self) -> bool {
        self.list.is_empty()
    }

    /// The raw value of field `name`.
    pub fn get(&self, name: &str) -> Option<Raw<'a>> {
        self.list.iter().find(|(n, _)| n == name).map(|(_, v)| *v)
    }

    pub fn contains(&self, name: &str) -> bool {
        self.get(name).is_some()
    }
}

impl<'de> Deserialize<'de> for Fields<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_map(FieldsVisitor)
    }
}

struct FieldsVisitor;

impl<'de> Visitor<'de> for FieldsVisitor {
    type Value = Fields<'de>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut list = FieldList::with_capacity(map.size_hint().unwrap_or(0));
        let mut index: Option<std::collections::HashMap<Cow<'de, str>, usize>> = None;
        while let Some(Name(name)) = map.next_key()? {
            let value = Raw::from(map.next_value::<&'de RawValue>()?);
            let earlier = match &mut index {
                Some(index) => index.get(&name).copied(),
                None => list.iter().position(|(n, _)| *n == name),
            };
            if let Some(i) = earlier {
                list[i].1 = value;
                continue;
            }
            if let Some(index) = &mut index {
                index.insert(name.clone(), list.len());
            }
            list.push((name, value));
            if index.is_none() && list.len() > LINEAR_DEDUP {
                index = Some(
                    list.iter()
                        .enumerate()
                        .map(|(i, (n, _))| (n.clone(), i))
                        .collect(),
                );
            }
        }
        Ok(Fields { list })
    }
}

/// A field name, borrowed from the input unless it holds escapes.
struct Name<'a>(Cow<'a, str>);

impl<'de> Deserialize<'de> for Name<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_str(NameVisitor)
    }
}

struct NameVisitor;

impl<'de> Visitor<'de> for NameVisitor {
    type Value = Name<'de>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a field name")
    }

    fn visit_borrowed_str<E>(self, v: &'de str) -> Result<Self::Value, E> {
        Ok(Name(Cow::Borrowed(v)))
    }

    fn visit_str<E>(self, v: &str) -> Result<Self::Value, E> {
        Ok(Name(Cow::Owned(v.to_owned())))
    }

    fn visit_string<E>(self, v: String) -> Result<Self::Value, E> {
        Ok(Name(Cow::Owned(v)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_keep_order_raw_values_and_unescaped_names() {
        let f = Fields::parse(br#" {"a":1.50, "b\u0041":"x\ny", "c":{"d":[1,2]}, "e":null} "#)
            .expect("object");
        let names: Vec<&str> = f.iter().map(|(n, _)| n).collect();
        assert_eq!(names, ["a", "bA", "c", "e"]);
        assert_eq!(f.get("a").map(Raw::get), Some("1.50"));
        assert_eq!(f.get("c").map(Raw::get), Some(r#"{"d":[1,2]}"#));
        let b = f.get("bA").expect("b");
        assert_eq!(Kind::of(b), Kind::String);
        assert_eq!(string_text(b).ok().as_deref(), Some("x\ny"));
        assert_eq!(Kind::of(f.get("e").expect("e")), Kind::Null);
        assert_eq!(
            f,
            Fields::parse_by_serde(br#" {"a":1.50, "b\u0041":"x\ny", "c":{"d":[1,2]}, "e":null} "#)
                .expect("object")
        );
        assert!(!f.contains("b"));
    }

    #[test]
    fn raw_values_carry_no_surrounding_whitespace() {
        let f = Fields::parse(b"{ \"a\" :\t \"x\" , \"b\" :\r\n [ 1 ] , \"c\": true }")
            .expect("object");
        assert_eq!(f.get("a").map(Raw::get), Some("\"x\""));
        assert_eq!(f.get("b").map(Raw::get), Some("[ 1 ]"));
        assert_eq!(f.get("c").map(Kind::of), Some(Kind::Bool));
    }

    #[test]
    fn a_name_given_twice_keeps_its_last_value_in_its_first_place() {
        let f = Fields::parse(br#"{"a":1,"b":2,"a":3}"#).expect("object");
        let pairs: Vec<(&str, &str)> = f.iter().map(|(n, v)| (n, v.get())).collect();
        assert_eq!(pairs, [("a", "3"), ("b", "2")]);
        let wide: String = (0..100)
            .map(|i| format!(r#""f{}":{i}"#, i % 50))
            .collect::<Vec<_>>()
            .join(",");
        let wide = format!("{{{wide}}}");
        let f = Fields::parse(wide.as_bytes()).expect("object");
        assert_eq!(f.len(), 50);
        assert_eq!(f.get("f7").map(Raw::get), Some("57"));
    }

    #[test]
    fn only_a_whole_object_parses() {
        assert!(Fields::parse(b"[1]").is_err());
        assert!(Fields::parse(b"{} x").is_err());
        assert!(Fields::parse(br#"{"a":}"#).is_err());
        assert!(
            Fields::parse(br#"{"a":"\ud800"}"#).is_ok(),
            "raw, checked when written"
        );
    }
}
