//! Attribute values in DynamoDB's wire shape, parsed once into a compact
//! typed form (`Attr`, `AttrMap`) instead of a generic JSON tree.
//!
//! Why: a `serde_json::Value` spends a B-tree node per `{"S": ..}` wrapper;
//! on the BatchWriteItem hot path that allocation churn dominated CPU. An
//! `AttrMap` is a flat `Vec` of (name, value).
//!
//! Deserialization is lenient about DynamoDB-level mistakes: an empty or
//! multi-typed value becomes `Attr::Invalid(message)` so the operation can
//! answer a ValidationException with DynamoDB's text; only JSON of the wrong
//! JSON type fails to parse (SerializationException, as DynamoDB).

use std::fmt;

use serde::de::{IgnoredAny, MapAccess, Visitor};
use serde::ser::SerializeMap;
use serde::ser::SerializeSeq;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::Value;

use crate::error::{ApiError, ApiResult};

/// One attribute value. B and BS keep the base64 text from the wire.
#[derive(Debug, Clone, PartialEq)]
pub enum Attr {
    /// String.
    S(String),
    /// Number (exact text).
    N(String),
    /// Binary (base64 text).
    B(String),
    /// Boolean.
    Bool(bool),
    /// Null (the wire value must be `true`).
    Null(bool),
    /// Map.
    M(AttrMap),
    /// List.
    L(Vec<Attr>),
    /// String set.
    Ss(Vec<String>),
    /// Number set.
    Ns(Vec<String>),
    /// Binary set (base64 texts).
    Bs(Vec<String>),
    /// Not a valid AttributeValue; the message says why. Never stored.
    Invalid(&'static str),
}

/// An item or key: attributes in wire order, names unique.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct AttrMap(pub Vec<(String, Attr)>);

/// DynamoDB's message for `{}`.
pub const EMPTY_VALUE: &str =
    "Supplied AttributeValue is empty, must contain exactly one of the supported datatypes";
/// DynamoDB's message for `{"S": .., "N": ..}`.
pub const MULTI_VALUE: &str = "Supplied AttributeValue has more than one datatypes set, must contain exactly one of the supported datatypes";

impl AttrMap {
    /// The attribute called `name`.
    pub fn get(&self, name: &str) -> Option<&Attr> {
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

    /// From wire JSON (already parsed).
    pub fn from_json(v: Value) -> ApiResult<AttrMap> {
        serde_json::from_value(v).map_err(|e| ApiError::Serialization(e.to_string()))
    }
}

impl Attr {
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

    /// From wire JSON (already parsed).
    pub fn from_json(v: &Value) -> ApiResult<Attr> {
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

struct AttrVisitor;

impl<'de> Visitor<'de> for AttrVisitor {
    type Value = Attr;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a DynamoDB AttributeValue object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Attr, A::Error> {
        let mut found: Option<Attr> = None;
        let mut many = false;
        while let Some(tag) = map.next_key::<Tag>()? {
            let v = match tag {
                Tag::S => Attr::S(map.next_value()?),
                Tag::N => Attr::N(map.next_value()?),
                Tag::B => Attr::B(map.next_value()?),
                Tag::Bool => Attr::Bool(map.next_value()?),
                Tag::Null => Attr::Null(map.next_value()?),
                Tag::M => Attr::M(map.next_value()?),
                Tag::L => Attr::L(map.next_value()?),
                Tag::Ss => Attr::Ss(map.next_value()?),
                Tag::Ns => Attr::Ns(map.next_value()?),
                Tag::Bs => Attr::Bs(map.next_value()?),
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

impl<'de> Deserialize<'de> for Attr {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_map(AttrVisitor)
    }
}

struct MapVisitor;

impl<'de> Visitor<'de> for MapVisitor {
    type Value = AttrMap;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a map of attribute names to AttributeValues")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<AttrMap, A::Error> {
        let mut out: Vec<(String, Attr)> = Vec::with_capacity(map.size_hint().unwrap_or(8));
        while let Some(name) = map.next_key::<String>()? {
            let v: Attr = map.next_value()?;
            // Duplicate JSON keys: the last one wins, as in DynamoDB's parser.
            match out.iter_mut().find(|(n, _)| *n == name) {
                Some(slot) => slot.1 = v,
                None => out.push((name, v)),
            }
        }
        Ok(AttrMap(out))
    }
}

impl<'de> Deserialize<'de> for AttrMap {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_map(MapVisitor)
    }
}

struct StrSet<'a>(&'a [String]);

impl Serialize for StrSet<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut seq = s.serialize_seq(Some(self.0.len()))?;
        for v in self.0 {
            seq.serialize_element(v)?;
        }
        seq.end()
    }
}

impl Serialize for Attr {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        if let Attr::Invalid(_) = self {
            return s.serialize_map(Some(0))?.end();
        }
        let mut m = s.serialize_map(Some(1))?;
        match self {
            Attr::S(v) | Attr::N(v) | Attr::B(v) => m.serialize_entry(self.tag(), v)?,
            Attr::Bool(v) | Attr::Null(v) => m.serialize_entry(self.tag(), v)?,
            Attr::M(v) => m.serialize_entry("M", v)?,
            Attr::L(v) => m.serialize_entry("L", v)?,
            Attr::Ss(v) | Attr::Ns(v) | Attr::Bs(v) => m.serialize_entry(self.tag(), &StrSet(v))?,
            Attr::Invalid(_) => {}
        }
        m.end()
    }
}

impl Serialize for AttrMap {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut m = s.serialize_map(Some(self.0.len()))?;
        for (k, v) in &self.0 {
            m.serialize_entry(k, v)?;
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
    fn dynamodb_mistakes_become_invalid_values() {
        let m = AttrMap::from_json(json!({"a": {}, "b": {"S": "x", "N": "1"}})).expect("parses");
        assert_eq!(m.get("a"), Some(&Attr::Invalid(EMPTY_VALUE)));
        assert_eq!(m.get("b"), Some(&Attr::Invalid(MULTI_VALUE)));
        assert!(AttrMap::from_json(json!({"a": {"S": 5}})).is_err());
    }
}
