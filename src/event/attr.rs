//! JSON ↔ the SDK's DynamoDB attribute values, exact both ways: the
//! reference model the intake's typed-JSON writer ([`super::typed`]) is
//! tested against (test builds only; items travel as typed JSON).
//!
//! JSON numbers keep their decimal text (serde_json's `arbitrary_precision`),
//! checked against DynamoDB's number limits; strings → S, bools → BOOL,
//! null → NULL, objects → M, arrays → L. The reverse direction renders
//! DynamoDB's typed JSON (`{"S": ...}`).

use std::collections::HashMap;

use aws_sdk_dynamodb::types::AttributeValue;
use base64::Engine;
use serde_json::{Map, Value};

use super::number::{self, NumberError};
use super::typed::{AttrError, MAX_DEPTH};

/// Converts a JSON value; `depth` is the nesting level of `value` (0 at the item's top level).
pub fn from_json(value: Value, depth: usize) -> Result<AttributeValue, AttrError> {
    Ok(match value {
        Value::Null => AttributeValue::Null(true),
        Value::Bool(b) => AttributeValue::Bool(b),
        Value::String(s) => AttributeValue::S(s),
        Value::Number(n) => {
            let text = n.to_string();
            number::normalize(&text)?;
            AttributeValue::N(text)
        }
        Value::Array(items) => {
            if depth >= MAX_DEPTH {
                return Err(AttrError::TooDeep);
            }
            AttributeValue::L(
                items
                    .into_iter()
                    .map(|v| from_json(v, depth + 1))
                    .collect::<Result<_, _>>()?,
            )
        }
        Value::Object(map) => {
            if depth >= MAX_DEPTH {
                return Err(AttrError::TooDeep);
            }
            AttributeValue::M(
                map.into_iter()
                    .map(|(k, v)| Ok((k, from_json(v, depth + 1)?)))
                    .collect::<Result<_, AttrError>>()?,
            )
        }
    })
}

/// Renders an item in DynamoDB's typed JSON, e.g. `{"user_id":{"S":"U1"}}`.
pub fn item_to_typed_json(attrs: &HashMap<String, AttributeValue>) -> Value {
    Value::Object(
        attrs
            .iter()
            .map(|(k, v)| (k.clone(), to_typed_json(v)))
            .collect(),
    )
}

fn to_typed_json(v: &AttributeValue) -> Value {
    let b64 = |b: &aws_sdk_dynamodb::primitives::Blob| {
        base64::engine::general_purpose::STANDARD.encode(b.as_ref())
    };
    let tagged = |tag: &str, v: Value| Value::Object(Map::from_iter([(tag.to_owned(), v)]));
    match v {
        AttributeValue::S(s) => tagged("S", Value::String(s.clone())),
        AttributeValue::N(n) => tagged("N", Value::String(n.clone())),
        AttributeValue::B(b) => tagged("B", Value::String(b64(b))),
        AttributeValue::Bool(b) => tagged("BOOL", Value::Bool(*b)),
        AttributeValue::Null(b) => tagged("NULL", Value::Bool(*b)),
        AttributeValue::L(l) => tagged("L", Value::Array(l.iter().map(to_typed_json).collect())),
        AttributeValue::M(m) => tagged("M", item_to_typed_json(m)),
        AttributeValue::Ss(ss) => tagged("SS", ss.iter().cloned().map(Value::String).collect()),
        AttributeValue::Ns(ns) => tagged("NS", ns.iter().cloned().map(Value::String).collect()),
        AttributeValue::Bs(bs) => tagged("BS", bs.iter().map(|b| Value::String(b64(b))).collect()),
        other => tagged("UNKNOWN", Value::String(format!("{other:?}"))),
    }
}

/// Converts an attribute back to plain JSON (the inverse of [`from_json`]).
pub fn to_plain_json(v: &AttributeValue) -> Value {
    match v {
        AttributeValue::S(s) => Value::String(s.clone()),
        AttributeValue::N(n) => serde_json::from_str::<serde_json::Number>(n)
            .map(Value::Number)
            .unwrap_or(Value::String(n.clone())),
        AttributeValue::Bool(b) => Value::Bool(*b),
        AttributeValue::Null(_) => Value::Null,
        AttributeValue::L(l) => Value::Array(l.iter().map(to_plain_json).collect()),
        AttributeValue::M(m) => Value::Object(
            m.iter()
                .map(|(k, v)| (k.clone(), to_plain_json(v)))
                .collect(),
        ),
        other => to_typed_json(other),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn json(text: &str) -> Value {
        serde_json::from_str(text).expect("valid json")
    }

    #[test]
    fn numbers_keep_their_exact_text() {
        for text in [
            "30.5",
            "0.1",
            "12345678901234567890123456789012345678",
            "1e-5",
            "-0.000001",
            "67",
        ] {
            assert_eq!(
                from_json(json(text), 0),
                Ok(AttributeValue::N(text.to_owned())),
                "{text}"
            );
        }
    }

    #[test]
    fn numbers_beyond_dynamodb_limits_are_rejected() {
        assert!(matches!(
            from_json(json("1e400"), 0),
            Err(AttrError::Number(NumberError::Range(_)))
        ));
        assert!(matches!(
            from_json(json(&"1".repeat(39)), 0),
            Err(AttrError::Number(NumberError::Precision(_)))
        ));
    }

    #[test]
    fn types_map_one_to_one() {
        let v = from_json(
            json(r#"{"s":"x","b":true,"z":null,"l":[1,"a"],"m":{"k":false}}"#),
            0,
        )
        .expect("ok");
        let AttributeValue::M(m) = v else {
            panic!("not a map")
        };
        assert_eq!(m["s"], AttributeValue::S("x".into()));
        assert_eq!(m["b"], AttributeValue::Bool(true));
        assert_eq!(m["z"], AttributeValue::Null(true));
        assert_eq!(
            m["l"],
            AttributeValue::L(vec![
                AttributeValue::N("1".into()),
                AttributeValue::S("a".into())
            ])
        );
        assert_eq!(
            m["m"],
            AttributeValue::M(HashMap::from([("k".into(), AttributeValue::Bool(false))]))
        );
    }

    #[test]
    fn depth_limit_is_enforced() {
        let deep = format!("{}1{}", "[".repeat(33), "]".repeat(33));
        assert_eq!(from_json(json(&deep), 0), Err(AttrError::TooDeep));
        let ok = format!("{}1{}", "[".repeat(32), "]".repeat(32));
        assert!(from_json(json(&ok), 0).is_ok());
    }

    fn arb_json() -> impl Strategy<Value = Value> {
        let number = prop_oneof![
            any::<i64>().prop_map(|i| i.to_string()),
            (any::<i32>(), 0u32..20, -60i32..60).prop_map(|(m, f, e)| format!("{m}.{f}e{e}")),
            "[1-9][0-9]{0,37}".prop_map(|s| s),
        ]
        .prop_map(|t| Value::Number(serde_json::from_str(&t).expect("number")));
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::Bool),
            ".{0,12}".prop_map(Value::String),
            number,
        ];
        leaf.prop_recursive(4, 32, 6, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
                prop::collection::btree_map("[a-z]{1,6}", inner, 0..6)
                    .prop_map(|m| Value::Object(m.into_iter().collect())),
            ]
        })
    }

    /// JSON number text within DynamoDB's limits (at most 38 digits,
    /// magnitude between 1e-130 and 1e126): sign, integer and fraction
    /// parts, optional exponent in either case and with an explicit sign.
    fn arb_number_text() -> impl Strategy<Value = String> {
        (
            any::<bool>(),
            "0|[1-9][0-9]{0,18}",
            proptest::option::of("[0-9]{1,19}"),
            proptest::option::of((
                prop_oneof![Just("e"), Just("E")],
                prop_oneof![Just(""), Just("+"), Just("-")],
                0u32..90,
            )),
        )
            .prop_map(|(neg, int, frac, exp)| {
                let mut t = String::new();
                if neg {
                    t.push('-');
                }
                t.push_str(&int);
                if let Some(f) = frac {
                    t.push('.');
                    t.push_str(&f);
                }
                if let Some((e, sign, n)) = exp {
                    t.push_str(&format!("{e}{sign}{n}"));
                }
                t
            })
    }

    proptest! {
        #[test]
        fn json_round_trips_exactly(v in arb_json()) {
            let attr = from_json(v.clone(), 0).expect("in limits");
            prop_assert_eq!(to_plain_json(&attr), v);
        }

        /// Numbers are carried as decimal text, never through a float: the
        /// attribute holds exactly the client's value (its very text unless
        /// it has an exponent, which serde_json spells `e+N`), and converts
        /// back to the same JSON number.
        #[test]
        fn numbers_keep_their_exact_value_both_ways(text in arb_number_text()) {
            let attr = from_json(json(&text), 0).expect("in limits");
            let AttributeValue::N(n) = &attr else {
                return Err(TestCaseError::fail(format!("{attr:?} is not a number")));
            };
            let canonical = |t: &str| number::normalize(t).map(|v| v.canonical());
            prop_assert_eq!(canonical(n), canonical(&text));
            if !text.contains(['e', 'E']) {
                prop_assert_eq!(n, &text);
            }
            prop_assert_eq!(to_plain_json(&attr), json(&text));
        }

        /// The intake's typed-JSON writer agrees with this model: the same
        /// attribute values read back, the same size by DynamoDB's rules.
        #[test]
        fn the_typed_writer_agrees_with_the_model(fields in proptest::collection::vec(("[a-z]{1,6}", arb_json()), 0..6)) {
            let mut writer = crate::event::typed::ItemWriter::with_capacity(64);
            let mut model = HashMap::new();
            for (name, value) in &fields {
                if model.contains_key(name) {
                    continue;
                }
                writer.json(name, value).expect("in limits");
                model.insert(name.clone(), from_json(value.clone(), 0).expect("in limits"));
            }
            let (json, size) = writer.finish();
            prop_assert_eq!(crate::event::typed::parse_item(&json).expect("typed json"), model.clone());
            prop_assert_eq!(size, crate::event::size::item_size(&model));
        }
    }
}
