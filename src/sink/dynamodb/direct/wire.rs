//! The BatchWriteItem wire format (DynamoDB's JSON 1.0 protocol), written
//! and read without the SDK's model types: the request body is the items'
//! typed JSON (written once at intake) copied into place, and the response
//! mapped back to the batch (unprocessed indexes, consumed WCU) or to a
//! [`WriteError`] by its `__type` code.

use std::borrow::Cow;
use std::collections::HashMap;

use aws_sdk_dynamodb::types::AttributeValue;
use serde::Deserialize;
use serde_json::value::RawValue;
use serde_json::Value;

use crate::config::TableSpec;
use crate::event::map::key_id;
use crate::event::Item;
use crate::sink::dynamodb::request::match_unprocessed;
use crate::sink::dynamodb::retry::{classify_code, WriteError};
use crate::sink::dynamodb::writer::WriteOutcome;

/// `X-Amz-Target` of the operation.
pub const TARGET: &str = "DynamoDB_20120810.BatchWriteItem";
/// `Content-Type` of the JSON 1.0 protocol.
pub const CONTENT_TYPE: &str = "application/x-amz-json-1.0";

/// The BatchWriteItem request body: one PutRequest per item, in order,
/// `ReturnConsumedCapacity: TOTAL`. Each item's typed JSON was written at
/// intake and is copied as it is.
pub fn request_body(table: &str, items: &[Item]) -> Vec<u8> {
    let estimate: usize = items.iter().map(|i| i.json().len() + 32).sum();
    let mut out = Vec::with_capacity(estimate + 96 + table.len());
    out.extend_from_slice(b"{\"RequestItems\":{");
    // serde_json's escaping of a &str into a Vec cannot fail.
    let _ = serde_json::to_writer(&mut out, table);
    out.extend_from_slice(b":[");
    for (i, item) in items.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        out.extend_from_slice(b"{\"PutRequest\":{\"Item\":");
        out.extend_from_slice(item.json());
        out.extend_from_slice(b"}}");
    }
    out.extend_from_slice(b"]},\"ReturnConsumedCapacity\":\"TOTAL\"}");
    out
}

/// A 200 response mapped back to the batch. An unparseable body is a
/// server error (retried).
pub fn outcome(table: &TableSpec, items: &[Item], body: &[u8]) -> Result<WriteOutcome, WriteError> {
    let response: Response<'_> =
        serde_json::from_slice(body).map_err(|e| WriteError::Retriable {
            cause: "server_error",
            message: format!("unparseable BatchWriteItem response: {e}"),
        })?;
    // Leniently, as before: a ConsumedCapacity of another shape is ignored
    // (now also the whole list when one entry has another shape; the
    // figure only corrects the rate limiter's charge).
    let consumed: Vec<f64> = response
        .consumed
        .and_then(|raw| serde_json::from_str::<Vec<Consumed<'_>>>(raw.get()).ok())
        .into_iter()
        .flatten()
        .filter(|c| c.table.as_deref() == Some(table.name.as_str()))
        .filter_map(|c| c.units)
        .collect();
    // Almost every response has `"UnprocessedItems":{}`: only a non-empty
    // one is parsed into values and matched to the batch.
    let unprocessed = match response.unprocessed {
        Some(raw) if raw.get() != "{}" => {
            let v: Value = serde_json::from_str(raw.get()).unwrap_or(Value::Null);
            match v.get(&table.name).and_then(Value::as_array) {
                Some(list) if !list.is_empty() => unprocessed_indexes(table, items, list),
                _ => Vec::new(),
            }
        }
        _ => Vec::new(),
    };
    Ok(WriteOutcome {
        unprocessed,
        consumed_wcu: (!consumed.is_empty()).then(|| consumed.iter().sum()),
    })
}

/// The members of a BatchWriteItem response the writer reads, left as text
/// until needed; the rest is skipped.
#[derive(Deserialize)]
struct Response<'a> {
    #[serde(rename = "UnprocessedItems", borrow, default)]
    unprocessed: Option<&'a RawValue>,
    #[serde(rename = "ConsumedCapacity", borrow, default)]
    consumed: Option<&'a RawValue>,
}

/// One `ConsumedCapacity` entry.
#[derive(Deserialize)]
struct Consumed<'a> {
    #[serde(rename = "TableName", borrow, default)]
    table: Option<Cow<'a, str>>,
    #[serde(rename = "CapacityUnits", default)]
    units: Option<f64>,
}

fn unprocessed_indexes(table: &TableSpec, items: &[Item], list: &[Value]) -> Vec<usize> {
    let key_names: Vec<&String> = std::iter::once(&table.partition_key.name)
        .chain(table.sort_key.as_ref().map(|s| &s.name))
        .collect();
    let ids = list.iter().map(|w| {
        let item = w.get("PutRequest")?.get("Item")?.as_object()?;
        let keys: HashMap<String, AttributeValue> = key_names
            .iter()
            .filter_map(|name| Some(((*name).clone(), key_attribute(item.get(*name)?)?)))
            .collect();
        Some(key_id(&keys, &table.partition_key, table.sort_key.as_ref()))
    });
    match_unprocessed(table, items, ids)
}

/// A key attribute as it comes back (`{"S": …}` or `{"N": …}`; binary keys
/// have no text form in the key id, as in [`key_id`]).
fn key_attribute(v: &Value) -> Option<AttributeValue> {
    if let Some(s) = v.get("S").and_then(Value::as_str) {
        return Some(AttributeValue::S(s.to_owned()));
    }
    if let Some(n) = v.get("N").and_then(Value::as_str) {
        return Some(AttributeValue::N(n.to_owned()));
    }
    None
}

/// An error response (4xx/5xx) classified by its `__type` code (or the
/// `x-amzn-ErrorType` header), with its ThrottlingReasons; without a code,
/// 5xx is retried and anything else is fatal.
pub fn error(status: u16, error_type_header: Option<&str>, body: &[u8]) -> WriteError {
    let v: Value = serde_json::from_slice(body).unwrap_or(Value::Null);
    let raw_code = v
        .get("__type")
        .and_then(Value::as_str)
        .or(error_type_header)
        .unwrap_or_default();
    // `com.amazonaws.dynamodb.v20120810#Code` or `Code:http://…`.
    let code = raw_code.rsplit('#').next().unwrap_or_default();
    let code = code.split(':').next().unwrap_or_default();
    let message = v
        .get("message")
        .or_else(|| v.get("Message"))
        .and_then(Value::as_str)
        .map(str::to_owned)
        .unwrap_or_else(|| format!("HTTP {status}"));
    let reasons: Vec<&str> = v
        .get("ThrottlingReasons")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|r| r.get("reason").and_then(Value::as_str))
        .collect();
    if code.is_empty() {
        return if status >= 500 {
            WriteError::Retriable {
                cause: "server_error",
                message,
            }
        } else {
            WriteError::Fatal {
                message: format!("HTTP {status}: {message}"),
            }
        };
    }
    classify_code(code, message, &reasons)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{KeySpec, KeyType, TableSpec};
    use crate::event::ItemText;
    use aws_sdk_dynamodb::primitives::Blob;
    use std::sync::Arc;
    use std::time::Instant;

    fn item(attrs: HashMap<String, AttributeValue>, key: &str) -> Item {
        let json =
            serde_json::to_vec(&crate::event::attr::item_to_typed_json(&attrs)).expect("json");
        Item {
            text: ItemText::new(&json, key),
            size: 10,
            stream: Arc::from("s"),
            received: Instant::now(),
            acks: Default::default(),
        }
    }

    fn attrs(pairs: &[(&str, AttributeValue)]) -> HashMap<String, AttributeValue> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), v.clone()))
            .collect()
    }

    #[test]
    fn the_body_carries_every_type_in_dynamodb_json() {
        let nested = attrs(&[("n", AttributeValue::N("1.50".into()))]);
        let a = attrs(&[
            ("pk", AttributeValue::S("dev\"1\n".into())),
            ("sk", AttributeValue::N("17".into())),
            ("b", AttributeValue::B(Blob::new(vec![0, 1, 2, 255]))),
            ("t", AttributeValue::Bool(true)),
            ("z", AttributeValue::Null(true)),
            ("m", AttributeValue::M(nested)),
            (
                "l",
                AttributeValue::L(vec![
                    AttributeValue::S("x".into()),
                    AttributeValue::Bool(false),
                ]),
            ),
            ("ss", AttributeValue::Ss(vec!["a".into(), "b".into()])),
            ("ns", AttributeValue::Ns(vec!["1".into(), "2e3".into()])),
            ("bs", AttributeValue::Bs(vec![Blob::new(vec![7u8])])),
        ]);
        let body = request_body("T\u{e9}", &[item(a, "k")]);
        let v: Value = serde_json::from_slice(&body).expect("valid JSON");
        assert_eq!(v["ReturnConsumedCapacity"], "TOTAL");
        let it = &v["RequestItems"]["T\u{e9}"][0]["PutRequest"]["Item"];
        assert_eq!(it["pk"]["S"], "dev\"1\n");
        assert_eq!(it["sk"]["N"], "17");
        assert_eq!(it["b"]["B"], "AAEC/w==");
        assert_eq!(it["t"]["BOOL"], true);
        assert_eq!(it["z"]["NULL"], true);
        assert_eq!(it["m"]["M"]["n"]["N"], "1.50");
        assert_eq!(it["l"]["L"][0]["S"], "x");
        assert_eq!(it["l"]["L"][1]["BOOL"], false);
        assert_eq!(it["ss"]["SS"][1], "b");
        assert_eq!(it["ns"]["NS"][1], "2e3");
        assert_eq!(it["bs"]["BS"][0], "Bw==");
    }

    #[test]
    fn unprocessed_items_map_back_to_their_indexes_and_capacity_is_summed() {
        let table = TableSpec {
            partition_key: KeySpec {
                name: "pk".into(),
                kind: KeyType::S,
            },
            sort_key: Some(KeySpec {
                name: "sk".into(),
                kind: KeyType::N,
            }),
            ..TableSpec::string_keyed("t")
        };
        let mk = |p: &str, s: &str| {
            let a = attrs(&[
                ("pk", AttributeValue::S(p.into())),
                ("sk", AttributeValue::N(s.into())),
            ]);
            let id = key_id(&a, &table.partition_key, table.sort_key.as_ref());
            item(a, &id)
        };
        let items = [mk("a", "1"), mk("b", "2"), mk("c", "3")];
        let body = br#"{"UnprocessedItems":{"t":[
            {"PutRequest":{"Item":{"pk":{"S":"c"},"sk":{"N":"3"},"x":{"S":"y"}}}},
            {"PutRequest":{"Item":{"pk":{"S":"a"},"sk":{"N":"1.0"}}}}]},
            "ConsumedCapacity":[{"TableName":"t","CapacityUnits":1.5},{"TableName":"other","CapacityUnits":9}]}"#;
        let out = outcome(&table, &items, body).expect("outcome");
        assert_eq!(out.unprocessed, vec![0, 2]);
        assert_eq!(out.consumed_wcu, Some(1.5));
        let unknown = br#"{"UnprocessedItems":{"t":[{"PutRequest":{"Item":{"pk":{"S":"zz"},"sk":{"N":"9"}}}}]}}"#;
        assert_eq!(
            outcome(&table, &items, unknown)
                .expect("outcome")
                .unprocessed,
            vec![0, 1, 2],
            "an entry that matches no item: everything is re-sent, nothing counted as written"
        );
        let none = outcome(&table, &items, br#"{"UnprocessedItems":{}}"#).expect("outcome");
        assert!(none.unprocessed.is_empty());
        assert_eq!(none.consumed_wcu, None);
        // Spacing, nulls, other tables and members of another shape are
        // read as before the members were left as text.
        let spaced = br#"{ "ConsumedCapacity" : [ {"CapacityUnits": 2, "TableName": "t", "Table": {"CapacityUnits": 2}} ],
            "UnprocessedItems" : { "other": [], "t" : [ {"PutRequest":{"Item":{"sk":{"N":"2"},"pk":{"S":"b"}}}} ] } }"#;
        let out = outcome(&table, &items, spaced).expect("outcome");
        assert_eq!(out.unprocessed, vec![1]);
        assert_eq!(out.consumed_wcu, Some(2.0));
        for odd in [
            &br#"{"UnprocessedItems":null,"ConsumedCapacity":null}"#[..],
            br#"{"UnprocessedItems":{ },"ConsumedCapacity":{"TableName":"t","CapacityUnits":1}}"#,
            br#"{"UnprocessedItems":{"t":[]},"ConsumedCapacity":[{"TableName":"t"}]}"#,
            br#"{"UnprocessedItems":[],"ConsumedCapacity":"x"}"#,
        ] {
            let out = outcome(&table, &items, odd).expect("outcome");
            assert!(
                out.unprocessed.is_empty(),
                "{}",
                String::from_utf8_lossy(odd)
            );
            assert_eq!(out.consumed_wcu, None, "{}", String::from_utf8_lossy(odd));
        }
        assert!(matches!(
            outcome(&table, &items, b"<html>"),
            Err(WriteError::Retriable {
                cause: "server_error",
                ..
            })
        ));
    }

    #[test]
    fn error_bodies_are_classified_by_their_code_and_reasons() {
        let ptee = br#"{"__type":"com.amazonaws.dynamodb.v20120810#ProvisionedThroughputExceededException","message":"slow down"}"#;
        assert_eq!(
            error(400, None, ptee),
            WriteError::Throttled {
                reason: "provisioned_throughput_exceeded",
                message: "slow down".into()
            }
        );
        let key_range = br#"{"__type":"com.amazonaws.dynamodb.v20120810#ThrottlingException","message":"hot","ThrottlingReasons":[{"reason":"TableWriteKeyRangeThroughputExceeded","resource":"arn"}]}"#;
        assert!(matches!(
            error(400, None, key_range),
            WriteError::Throttled {
                reason: "key_range",
                ..
            }
        ));
        let validation =
            br#"{"__type":"com.amazon.coral.validate#ValidationException","Message":"bad item"}"#;
        assert_eq!(
            error(400, None, validation),
            WriteError::Validation {
                message: "bad item".into()
            }
        );
        let missing = br#"{"__type":"com.amazonaws.dynamodb.v20120810#ResourceNotFoundException","message":"no table"}"#;
        assert!(matches!(
            error(400, None, missing),
            WriteError::Fatal { .. }
        ));
        assert!(matches!(
            error(
                500,
                None,
                br#"{"__type":"com.amazonaws.dynamodb.v20120810#InternalServerError"}"#
            ),
            WriteError::Retriable {
                cause: "server_error",
                ..
            }
        ));
        assert!(matches!(
            error(503, None, b""),
            WriteError::Retriable {
                cause: "server_error",
                ..
            }
        ));
        assert!(matches!(error(403, None, b""), WriteError::Fatal { .. }));
        assert!(matches!(
            error(
                400,
                Some("ThrottlingException:http://internal.amazon.com/"),
                b""
            ),
            WriteError::Throttled {
                reason: "throttling",
                ..
            }
        ));
    }
}
