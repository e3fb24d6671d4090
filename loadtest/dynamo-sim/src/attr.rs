//! Attribute values in DynamoDB's wire shape, parsed once into a compact
//! typed form (`Attr`, `AttrMap`) instead of a generic JSON tree.
//!
//! Why: a `serde_json::Value` spends a B-tree node per `{"S": ..}` wrapper;
//! on the BatchWriteItem hot path that allocation churn dominated CPU. An
//! `AttrMap` is a flat `Vec` of (name, value).
//!
//! Strings borrow from the request text when they need no unescaping
//! (nearly all of them): a BatchWriteItem item is parsed, checked, sized
//! and written into its stored text without an allocation per attribute
//! name and value. Values parsed from a `serde_json::Value` own theirs.
//!
//! Deserialization is lenient about DynamoDB-level mistakes: an empty or
//! multi-typed value becomes `Attr::Invalid(message)` so the operation can
//! answer a ValidationException with DynamoDB's text; only JSON of the wrong
//! JSON type fails to parse (SerializationException, as DynamoDB).

use std::borrow::Cow;
use std::fmt;

use serde::de::{IgnoredAny, MapAccess, Visitor};
use serde::ser::SerializeMap;
use serde::ser::SerializeSeq;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::Value;

use crate::error::{ApiError, ApiResult};

/// A string of an attribute value or name: borrowed from the request text
/// when it had no escapes, else owned.
pub type Text<'a> = Cow<'a, str>;

/// One attribute value. B and BS keep the base64 text from the wire.
#[derive(Debug, Clone, PartialEq)]
pub enum Attr<'a> {
    /// String.
    S(Text<'a>),
    /// Number (exact text).
    N(Text<'a>),
    /// Binary (base64 text).
    B(Text<'a>),
    /// Boolean.
    Bool(bool),
    /// Null (the wire value must be `true`).
    Null(bool),
    /// Map.
    M(AttrMap<'a>),
    /// List.
    L(Vec<Attr<'a>>),
    /// String set.
    Ss(Vec<Text<'a>>),
    /// Number set.
    Ns(Vec<Text<'a>>),
    /// Binary set (base64 texts).
    Bs(Vec<Text<'a>>),
    /// Not a valid AttributeValue; the message says why. Never stored.
    Invalid(&'static str),
}

/// An item or key: attributes in wire order, names unique.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct AttrMap<'a>(pub Vec<(Text<'a>, Attr<'a>)>);

/// DynamoDB's message for `{}`.
pub const EMPTY_VALUE: &str =
    "Supplied AttributeValue is empty, must contain exactly one of the supported datatypes";
/// DynamoDB's message for `{"S": .., "N": ..}`.
pub const MULTI_VALUE: &str = "Supplied AttributeValue has more than one datatypes set, must contain exactly one of the supported datatypes";

impl<'a> AttrMap<'a> {
    /// The attribute called `name`.
    pub fn get(&self, name: &str) -> Option<&Attr<'a>> {
        self.0.iter().find(|(n, _)| n == name).map(|(_, v)| v)
    }

    /// Number of attributes.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// No attributes?
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Wire JSON.
    pub fn to_json(&self) -> Value {
        serde_json::to_value(self).unwrap_or(Value::Null)
    }
}

impl AttrMap<'static> {
    /// From wire JSON (already parsed); the strings are moved out of `v`.
    pub fn from_json(v: Value) -> ApiResult<AttrMap<'static>> {
        AttrMap::deserialize(v).map_err(|e| ApiError::Serialization(e.to_string()))
    }
}

impl<'a> Attr<'a> {
    /// The wire type tag (`S`, `N`, `M`, ...).
    pub fn tag(&self) -> &'static str {
        match self {
            Attr::S(_) => "S",
            Attr::N(_) => "N",
            Attr::B(_) => "B",
            Attr::Bool(_) => "BOOL",
            Attr::Null(_) => "NULL",
            Attr::M(_) => "M",
            Attr::L(_) => "L",
            Attr::Ss(_) => "SS",
            Attr::Ns(_) => "NS",
            Attr::Bs(_) => "BS",
            Attr::Invalid(_) => "",
        }
    }

    /// From wire JSON (already parsed), borrowing its strings.
    pub fn from_json(v: &'a Value) -> ApiResult<Attr<'a>> {
        Attr::deserialize(v).map_err(|e| ApiError::Serialization(e.to_string()))
    }
}

/// The type key of an AttributeValue, read without allocating.
enum Tag {
    S,
    N,
    B,
    Bool,
    Null,
    M,
    L,
    Ss,
    Ns,
    Bs,
    Other,
}

struct TagVisitor;

impl Visitor<'_> for TagVisitor {
    type Value = Tag;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("an AttributeValue type")
    }

    fn visit_str<E>(self, v: &str) -> Result<Tag, E> {
        Ok(match v {
            "S" => Tag::S,
            "N" => Tag::N,
            "B" => Tag::B,
            "BOOL" => Tag::Bool,
            "NULL" => Tag::Null,
            "M" => Tag::M,
            "L" => Tag::L,
            "SS" => Tag::Ss,
            "NS" => Tag::Ns,
            "BS" => Tag::Bs,
            _ => Tag::Other,
        })
    }
}

impl<'de> Deserialize<'de> for Tag {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_identifier(TagVisitor)
    }
}

/// A string that borrows from the input when the deserializer can lend it
/// (serde_json does for strings without escapes), else is copied.
struct TextVisitor;

impl<'de> Visitor<'de> for TextVisitor {
    type Value = Text<'de>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a string")
    }

    fn visit_borrowed_str<E>(self, v: &'de str) -> Result<Text<'de>, E> {
        Ok(Cow::Borrowed(v))
    }

    fn visit_str<E>(self, v: &str) -> Result<Text<'de>, E> {
        Ok(Cow::Owned(v.to_owned()))
    }

    fn visit_string<E>(self, v: String) -> Result<Text<'de>, E> {
        Ok(Cow::Owned(v))
    }
}

/// [`Text`] as a `Deserialize` type (serde's own `Cow` impl always copies).
struct Lent<'a>(Text<'a>);

impl<'de> Deserialize<'de> for Lent<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_str(TextVisitor).map(Lent)
    }
}

/// A JSON array of strings, each lent where possible.
struct LentList<'a>(Vec<Text<'a>>);

impl<'de> Deserialize<'de> for LentList<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let list: Vec<Lent<'de>> = Vec::deserialize(d)?;
        Ok(LentList(list.into_iter().map(|t| t.0).collect()))
    }
}

struct AttrVisitor;

impl<'de> Visitor<'de> for AttrVisitor {
    type Value = Attr<'de>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a DynamoDB AttributeValue object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Attr<'de>, A::Error> {
        let mut found: Option<Attr> = None;
        let mut many = false;
        while let Some(tag) = map.next_key::<Tag>()? {
            let v = match tag {
                Tag::S => Attr::S(map.next_value::<Lent>()?.0),
                Tag::N => Attr::N(map.next_value::<Lent>()?.0),
                Tag::B => Attr::B(map.next_value::<Lent>()?.0),
                Tag::Bool => Attr::Bool(map.next_value()?),
                Tag::Null => Attr::Null(map.next_value()?),
                Tag::M => Attr::M(map.next_value()?),
                Tag::L => Attr::L(map.next_value()?),
                Tag::Ss => Attr::Ss(map.next_value::<LentList>()?.0),
                Tag::Ns => Attr::Ns(map.next_value::<LentList>()?.0),
                Tag::Bs => Attr::Bs(map.next_value::<LentList>()?.0),
                Tag::Other => {
                    map.next_value::<IgnoredAny>()?;
                    continue;
                }
            };
            if found.is_some() {
                many = true;
            }
            found = Some(v);
        }
        Ok(match (found, many) {
            (_, true) => Attr::Invalid(MULTI_VALUE),
            (Some(v), false) => v,
            (None, false) => Attr::Invalid(EMPTY_VALUE),
        })
    }
}

impl<'de: 'a, 'a> Deserialize<'de> for Attr<'a> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_map(AttrVisitor)
    }
}

struct MapVisitor;

impl<'de> Visitor<'de> for MapVisitor {
    type Value = AttrMap<'de>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a map of attribute names to AttributeValues")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<AttrMap<'de>, A::Error> {
        let mut out: Vec<(Text<'de>, Attr<'de>)> = Vec::with_capacity(map.size_hint().unwrap_or(8));
        while let Some(Lent(name)) = map.next_key::<Lent>()? {
            let v: Attr<'de> = map.next_value()?;
            // Duplicate JSON keys: the last one wins, as in DynamoDB's parser.
            match out.iter_mut().find(|(n, _)| *n == name) {
                Some(slot) => slot.1 = v,
                None => out.push((name, v)),
            }
        }
        Ok(AttrMap(out))
    }
}

impl<'de: 'a, 'a> Deserialize<'de> for AttrMap<'a> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_map(MapVisitor)
    }
}

struct StrSet<'a, 'b>(&'a [Text<'b>]);

impl Serialize for StrSet<'_, '_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut seq = s.serialize_seq(Some(self.0.len()))?;
        for v in self.0 {
            seq.serialize_element(v.as_ref())?;
        }
        seq.end()
    }
}

impl Serialize for Attr<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        if let Attr::Invalid(_) = self {
            return s.serialize_map(Some(0))?.end();
        }
        let mut m = s.serialize_map(Some(1))?;
        match self {
            Attr::S(v) | Attr::N(v) | Attr::B(v) => m.serialize_entry(self.tag(), v.as_ref())?,
            Attr::Bool(v) | Attr::Null(v) => m.serialize_entry(self.tag(), v)?,
            Attr::M(v) => m.serialize_entry("M", v)?,
            Attr::L(v) => m.serialize_entry("L", v)?,
            Attr::Ss(v) | Attr::Ns(v) | Attr::Bs(v) => m.serialize_entry(self.tag(), &StrSet(v))?,
            Attr::Invalid(_) => {}
        }
        m.end()
    }
}

impl Serialize for AttrMap<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut m = s.serialize_map(Some(self.0.len()))?;
        for (k, v) in &self.0 {
            m.serialize_entry(k.as_ref(), v)?;
        }
        m.end()
    }
}

/// Map a serde error while reading a request to DynamoDB's exception.
pub fn parse_error(e: impl fmt::Display) -> ApiError {
    ApiError::Serialization(e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn roundtrips_every_type() {
        let wire = json!({
            "s": {"S": "x"}, "n": {"N": "1.50"}, "b": {"B": "AAE="}, "t": {"BOOL": true},
            "z": {"NULL": true}, "m": {"M": {"k": {"L": [{"N": "1"}, {"SS": ["a"]}]}}},
            "ns": {"NS": ["1", "2"]}, "bs": {"BS": ["AA=="]}
        });
        let m = AttrMap::from_json(wire.clone()).expect("parses");
        assert_eq!(m.get("n"), Some(&Attr::N("1.50".into())));
        assert_eq!(m.to_json(), wire);
    }

    #[test]
    fn strings_without_escapes_borrow_from_the_request_text() {
        let text = r#"{"plain": {"S": "abc"}, "esc\"aped": {"S": "a\nb"},
            "set": {"SS": ["x", "y\\z"]}, "m": {"M": {"k": {"N": "1.5"}}}}"#;
        let m: AttrMap = serde_json::from_str(text).expect("parses");
        let names: Vec<&Text> = m.0.iter().map(|(n, _)| n).collect();
        assert!(matches!(
            names[..],
            [
                Cow::Borrowed("plain"),
                Cow::Owned(_),
                Cow::Borrowed("set"),
                Cow::Borrowed("m")
            ]
        ));
        assert_eq!(names[1], "esc\"aped");
        assert!(matches!(
            m.get("plain"),
            Some(Attr::S(Cow::Borrowed("abc")))
        ));
        match m.get("esc\"aped") {
            Some(Attr::S(Cow::Owned(s))) => assert_eq!(s, "a\nb"),
            other => panic!("escaped value not unescaped into its own string: {other:?}"),
        }
        match m.get("set") {
            Some(Attr::Ss(v)) => {
                assert!(matches!(v[..], [Cow::Borrowed("x"), Cow::Owned(_)]));
                assert_eq!(v[1], "y\\z");
            }
            other => panic!("string set: {other:?}"),
        }
        match m.get("m") {
            Some(Attr::M(inner)) => {
                assert!(matches!(
                    inner.get("k"),
                    Some(Attr::N(Cow::Borrowed("1.5")))
                ))
            }
            other => panic!("map: {other:?}"),
        }
        // From a parsed `Value` (its keys sorted) the strings are owned.
        let owned = AttrMap::from_json(serde_json::from_str(text).expect("json")).expect("parses");
        assert_eq!(owned.len(), m.len());
        for (name, value) in &m.0 {
            assert_eq!(owned.get(name), Some(value));
        }
        assert!(owned.0.iter().all(|(n, _)| matches!(n, Cow::Owned(_))));
    }

    #[test]
    fn dynamodb_mistakes_become_invalid_values() {
        let m = AttrMap::from_json(json!({"a": {}, "b": {"S": "x", "N": "1"}})).expect("parses");
        assert_eq!(m.get("a"), Some(&Attr::Invalid(EMPTY_VALUE)));
        assert_eq!(m.get("b"), Some(&Attr::Invalid(MULTI_VALUE)));
        assert!(AttrMap::from_json(json!({"a": {"S": 5}})).is_err());
    }
}
