//! Query and Scan with DynamoDB's paging rules.
//!
//! A page ends after `Limit` items or once 1 MB of items has been read; when
//! it ends for either reason `LastEvaluatedKey` is the last item's key (even
//! if no item follows, as DynamoDB and dynalite do). `Count`/`ScannedCount`
//! are equal because FilterExpression is not supported (refused, not
//! ignored).

use std::ops::Bound;

use serde_json::{json, Map, Value};

use super::key_condition::{self, KeyOp};
use super::request::{
    body, consumed_json, consumed_mode, opt_bool, opt_limit, opt_map, opt_str, read_units,
    reject_unsupported, table_name, Consumed,
};
use crate::attr::{Attr, AttrMap};
use crate::error::{ApiError, ApiResult};
use crate::key::{scalar_of_type, KeyType, KeyValue};
use crate::simulator::{lock, Simulator};
use crate::storage::{Item, SortKey, StoredKey};
use crate::table::Table;

/// Bytes of items after which a page ends.
const PAGE_BYTES: usize = 1024 * 1024;

fn count_only(req: &Map<String, Value>) -> ApiResult<bool> {
    match opt_str(req, "Select")? {
        None | Some("ALL_ATTRIBUTES") => Ok(false),
        Some("COUNT") => Ok(true),
        Some(other) => Err(ApiError::validation(format!(
            "dynamo-sim supports Select ALL_ATTRIBUTES and COUNT only, not {other}"
        ))),
    }
}

fn type_mismatch() -> ApiError {
    ApiError::validation(
        "One or more parameter values were invalid: Condition parameter type does not match schema type",
    )
}

fn key_operand(v: &Value, ty: KeyType) -> ApiResult<KeyValue> {
    scalar_of_type(&Attr::from_json(v)?, ty)?.ok_or_else(type_mismatch)
}

fn short(v: &KeyValue) -> String {
    match v {
        KeyValue::S(s) => format!("{{S:{s}}}"),
        KeyValue::N(_, n) => format!("{{N:{n}}}"),
        KeyValue::B(_) => "{B:..}".to_string(),
    }
}

/// Sort-key bounds and an optional prefix for begins_with.
struct RangeSpec {
    lower: Bound<SortKey>,
    upper: Bound<SortKey>,
    prefix: Option<KeyValue>,
}

fn range_spec(op: Option<KeyOp>, ty: KeyType) -> ApiResult<RangeSpec> {
    let inc = |v: KeyValue| Bound::Included(Some(v));
    let exc = |v: KeyValue| Bound::Excluded(Some(v));
    let (lower, upper, prefix) = match op {
        None => (Bound::Unbounded, Bound::Unbounded, None),
        Some(KeyOp::Eq(v)) => {
            let k = key_operand(&v, ty)?;
            (inc(k.clone()), inc(k), None)
        }
        Some(KeyOp::Lt(v)) => (Bound::Unbounded, exc(key_operand(&v, ty)?), None),
        Some(KeyOp::Le(v)) => (Bound::Unbounded, inc(key_operand(&v, ty)?), None),
        Some(KeyOp::Gt(v)) => (exc(key_operand(&v, ty)?), Bound::Unbounded, None),
        Some(KeyOp::Ge(v)) => (inc(key_operand(&v, ty)?), Bound::Unbounded, None),
        Some(KeyOp::Between(a, b)) => {
            let (lo, hi) = (key_operand(&a, ty)?, key_operand(&b, ty)?);
            if lo > hi {
                return Err(ApiError::validation(format!(
                    "Invalid KeyConditionExpression: The BETWEEN operator requires upper bound to be greater than or equal to lower bound; lower bound operand: AttributeValue: {}, upper bound operand: AttributeValue: {}",
                    short(&lo),
                    short(&hi)
                )));
            }
            (inc(lo), inc(hi), None)
        }
        Some(KeyOp::BeginsWith(v)) => {
            if ty == KeyType::N {
                return Err(ApiError::validation(
                    "Invalid KeyConditionExpression: Incorrect operand type for operator or function; operator or function: begins_with, operand type: N",
                ));
            }
            let p = key_operand(&v, ty)?;
            (inc(p.clone()), Bound::Unbounded, Some(p))
        }
    };
    Ok(RangeSpec {
        lower,
        upper,
        prefix,
    })
}

fn bound_value(b: &Bound<SortKey>) -> Option<&SortKey> {
    match b {
        Bound::Included(v) | Bound::Excluded(v) => Some(v),
        Bound::Unbounded => None,
    }
}

/// Narrow `lower` to start after `start` if that is tighter.
fn after(lower: Bound<SortKey>, start: SortKey) -> Bound<SortKey> {
    match bound_value(&lower) {
        Some(v) if *v > start => lower,
        _ => Bound::Excluded(start),
    }
}

/// Narrow `upper` to end before `start` if that is tighter.
fn before(upper: Bound<SortKey>, start: SortKey) -> Bound<SortKey> {
    match bound_value(&upper) {
        Some(v) if *v < start => upper,
        _ => Bound::Excluded(start),
    }
}

struct Page<'a> {
    items: Vec<Value>,
    count: u64,
    bytes: usize,
    last: Option<(&'a StoredKey, &'a StoredKey)>,
    full: bool,
}

fn collect<'a>(
    iter: impl Iterator<Item = (&'a StoredKey, &'a StoredKey, &'a Item)>,
    limit: Option<u64>,
    count_only: bool,
) -> Page<'a> {
    let mut page = Page {
        items: Vec::new(),
        count: 0,
        bytes: 0,
        last: None,
        full: false,
    };
    for (pk, sk, item) in iter {
        if limit.is_some_and(|l| page.count >= l) || page.bytes >= PAGE_BYTES {
            page.full = true;
            break;
        }
        page.count += 1;
        page.bytes += item.size;
        page.last = Some((pk, sk));
        if !count_only {
            page.items.push(item.to_json());
        }
    }
    if limit.is_some_and(|l| page.count >= l) || page.bytes >= PAGE_BYTES {
        page.full = true;
    }
    page
}

fn respond(
    table: &Table,
    page: Page,
    count_only: bool,
    consumed: Consumed,
    consistent: bool,
) -> Value {
    let mut out = json!({"Count": page.count, "ScannedCount": page.count});
    if !count_only {
        out["Items"] = Value::Array(page.items);
    }
    if page.full {
        if let Some((pk, sk)) = page.last {
            out["LastEvaluatedKey"] = table.key_json(&pk.to_key(), &sk.to_sort());
        }
    }
    if consumed != Consumed::None {
        out["ConsumedCapacity"] =
            consumed_json(&table.name, read_units(page.bytes, consistent), consumed);
    }
    out
}

fn start_key(table: &Table, req: &Map<String, Value>) -> ApiResult<Option<(KeyValue, SortKey)>> {
    match opt_map(req, "ExclusiveStartKey")? {
        None => Ok(None),
        Some(k) => table
            .key_of_key(&AttrMap::from_json(Value::Object(k.clone()))?)
            .map(Some)
            .map_err(|e| match e {
                ApiError::Validation(m) => {
                    ApiError::validation(format!("The provided starting key is invalid: {m}"))
                }
                other => other,
            }),
    }
}

/// Query.
pub fn query(sim: &Simulator, req: &Value) -> ApiResult<Value> {
    let r = body(req)?;
    let name = table_name(r)?;
    reject_unsupported(
        r,
        &[
            "FilterExpression",
            "ProjectionExpression",
            "IndexName",
            "QueryFilter",
            "AttributesToGet",
            "ConditionalOperator",
            "KeyConditions",
        ],
    )?;
    let expr = opt_str(r, "KeyConditionExpression")?.ok_or_else(|| {
        ApiError::validation(
            "Either the KeyConditions or KeyConditionExpression parameter must be specified in the request.",
        )
    })?;
    let count_only = count_only(r)?;
    let limit = opt_limit(r, "Limit", "limit")?;
    let forward = opt_bool(r, "ScanIndexForward")?.unwrap_or(true);
    let consistent = opt_bool(r, "ConsistentRead")?.unwrap_or(false);
    let consumed = consumed_mode(r)?;
    let conds = key_condition::parse(
        expr,
        opt_map(r, "ExpressionAttributeNames")?,
        opt_map(r, "ExpressionAttributeValues")?,
    )?;
    let t = sim.table(name)?;
    let table = lock(&t);
    let (hash_name, hash_type) = table.schema.hash.clone();
    let range = table.schema.range.clone();
    if range.is_none() && conds.len() > 1 {
        return Err(ApiError::validation("Query key condition not supported"));
    }
    let mut hash_op = None;
    let mut range_op = None;
    for c in conds {
        let slot = if c.attr == hash_name {
            &mut hash_op
        } else if range.as_ref().is_some_and(|(n, _)| *n == c.attr) {
            &mut range_op
        } else {
            let missing = if hash_op.is_none() {
                &hash_name
            } else {
                range.as_ref().map(|(n, _)| n).unwrap_or(&hash_name)
            };
            return Err(ApiError::validation(format!(
                "Query condition missed key schema element: {missing}"
            )));
        };
        if slot.is_some() {
            return Err(ApiError::validation(
                "KeyConditionExpressions must only contain one condition per key",
            ));
        }
        *slot = Some(c.op);
    }
    let Some(hash_op) = hash_op else {
        return Err(ApiError::validation(format!(
            "Query condition missed key schema element: {hash_name}"
        )));
    };
    let KeyOp::Eq(hash_value) = hash_op else {
        return Err(ApiError::validation("Query key condition not supported"));
    };
    let pk = key_operand(&hash_value, hash_type)?;
    let range_type = range.as_ref().map(|(_, t)| *t).unwrap_or(KeyType::S);
    let mut spec = range_spec(range_op, range_type)?;
    if let Some((start_pk, start_sk)) = start_key(&table, r)? {
        if start_pk != pk {
            return Err(ApiError::validation(
                "The provided starting key is outside query boundaries based on provided conditions",
            ));
        }
        if forward {
            spec.lower = after(spec.lower, start_sk);
        } else {
            spec.upper = before(spec.upper, start_sk);
        }
    }
    let prefix = spec.prefix.clone();
    let stored_pk = StoredKey::partition(pk.clone());
    let iter = table
        .store
        .range(&pk, spec.lower, spec.upper, forward)
        .filter(move |(sk, _)| prefix.as_ref().is_none_or(|p| sk.begins_with(p)))
        .map(|(sk, item)| (&stored_pk, sk, item));
    let page = collect(iter, limit, count_only);
    Ok(respond(&table, page, count_only, consumed, consistent))
}

/// Scan.
pub fn scan(sim: &Simulator, req: &Value) -> ApiResult<Value> {
    let r = body(req)?;
    let name = table_name(r)?;
    reject_unsupported(
        r,
        &[
            "FilterExpression",
            "ProjectionExpression",
            "IndexName",
            "ScanFilter",
            "AttributesToGet",
            "ConditionalOperator",
        ],
    )?;
    for field in ["ExpressionAttributeNames", "ExpressionAttributeValues"] {
        if r.get(field).is_some_and(|v| !v.is_null()) {
            return Err(ApiError::validation(format!(
                "{field} can only be specified when using expressions"
            )));
        }
    }
    let count_only = count_only(r)?;
    let limit = opt_limit(r, "Limit", "limit")?;
    let consistent = opt_bool(r, "ConsistentRead")?.unwrap_or(false);
    let consumed = consumed_mode(r)?;
    let segment = r.get("Segment").map(|v| v.to_string().parse::<u64>());
    let total = r.get("TotalSegments").map(|v| v.to_string().parse::<u64>());
    let segments = match (segment, total) {
        (None, None) => None,
        (Some(Ok(s)), Some(Ok(t))) if t >= 1 && s < t => Some((s, t)),
        (Some(Ok(_)), Some(Ok(_))) => {
            return Err(ApiError::validation(
                "The Segment parameter is zero-based and must be less than parameter TotalSegments",
            ))
        }
        _ => {
            return Err(ApiError::validation(
                "The TotalSegments parameter is required but was not present in the request when Segment parameter is present",
            ))
        }
    };
    let t = sim.table(name)?;
    let table = lock(&t);
    let start = start_key(&table, r)?;
    let iter = table
        .store
        .scan_from(start)
        .filter(|(pk, _, _)| segments.is_none_or(|(s, t)| pk.partition_hash() % t == s));
    let page = collect(iter, limit, count_only);
    Ok(respond(&table, page, count_only, consumed, consistent))
}
