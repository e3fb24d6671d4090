//! Single-item operations: PutItem, GetItem, DeleteItem.
//!
//! Writes pass the capacity model before touching storage; a refused write
//! changes nothing and answers the table's throttling exception.

use serde_json::{json, Map, Value};

use super::request::{
    body, consumed_json, consumed_mode, missing, opt_bool, opt_str, read_units, reject_unsupported,
    req_map, table_name, throttle_error, throttle_reason, Consumed,
};
use crate::attr::AttrMap;
use crate::error::{ApiError, ApiResult};
use crate::simulator::{lock, Simulator};
use crate::size::{item_size, write_units, MAX_ITEM_BYTES};
use crate::storage::Item;

const UNSUPPORTED_WRITE: &[&str] = &[
    "ConditionExpression",
    "Expected",
    "ConditionalOperator",
    "ReturnItemCollectionMetrics",
    "ReturnValuesOnConditionCheckFailure",
];

fn return_all_old(req: &Map<String, Value>) -> ApiResult<bool> {
    match opt_str(req, "ReturnValues")? {
        None | Some("NONE") => Ok(false),
        Some("ALL_OLD") => Ok(true),
        Some(other) => Err(ApiError::validation(format!(
            "dynamo-sim supports ReturnValues NONE and ALL_OLD only, not {other}"
        ))),
    }
}

/// PutItem.
pub fn put_item(sim: &Simulator, mut req: Value) -> ApiResult<Value> {
    let r = body(&req)?;
    let name = table_name(r)?.to_string();
    reject_unsupported(r, UNSUPPORTED_WRITE)?;
    let all_old = return_all_old(r)?;
    let consumed = consumed_mode(r)?;
    req_map(r, "Item", "item")?;
    let attrs = match req.get_mut("Item").map(Value::take) {
        Some(v @ Value::Object(_)) => AttrMap::from_json(v)?,
        _ => return Err(missing("item")),
    };
    let size = item_size(&attrs)?;
    if size > MAX_ITEM_BYTES {
        return Err(ApiError::validation(
            "Item size has exceeded the maximum allowed size",
        ));
    }
    let units = write_units(size);
    let t = sim.table(&name)?;
    let now = sim.now();
    // The stored form is built before the lock is taken (and not at all
    // when the simulator only counts writes).
    let retain = sim.config().storage.retain;
    let item = retain.then(|| Item::new(&attrs, size));
    let mut table = lock(&t);
    let (pk, sk) = table.key_of_item(&attrs)?;
    if let Err(cause) = table.capacity.try_admit(pk.stable_hash(), units, now) {
        table.stats.throttled_call(1);
        let reason = throttle_reason(&table, cause);
        return Err(throttle_error(&table, vec![reason]));
    }
    table.stats.admitted(units as f64, 1, now);
    let old = match item {
        Some(item) => table.store.put(sim.budget(), pk, sk, item)?,
        None => None,
    };
    drop(table);
    let mut out = json!({});
    if all_old {
        if let Some(old) = old {
            out["Attributes"] = old.to_json();
        }
    }
    if consumed != Consumed::None {
        out["ConsumedCapacity"] = consumed_json(&name, units as f64, consumed);
    }
    Ok(out)
}

/// GetItem.
pub fn get_item(sim: &Simulator, req: &Value) -> ApiResult<Value> {
    let r = body(req)?;
    let name = table_name(r)?;
    reject_unsupported(r, &["ProjectionExpression", "AttributesToGet"])?;
    let consumed = consumed_mode(r)?;
    let consistent = opt_bool(r, "ConsistentRead")?.unwrap_or(false);
    let key = AttrMap::from_json(Value::Object(req_map(r, "Key", "key")?.clone()))?;
    let t = sim.table(name)?;
    let table = lock(&t);
    let (pk, sk) = table.key_of_key(&key)?;
    let mut out = json!({});
    let mut size = 0;
    if let Some(item) = table.store.get(&pk, &sk) {
        size = item.size;
        out["Item"] = item.to_json();
    }
    if consumed != Consumed::None {
        out["ConsumedCapacity"] = consumed_json(name, read_units(size, consistent), consumed);
    }
    Ok(out)
}

/// DeleteItem (costs 1 WCU).
pub fn delete_item(sim: &Simulator, req: &Value) -> ApiResult<Value> {
    let r = body(req)?;
    let name = table_name(r)?;
    reject_unsupported(r, UNSUPPORTED_WRITE)?;
    let all_old = return_all_old(r)?;
    let consumed = consumed_mode(r)?;
    let key = AttrMap::from_json(Value::Object(req_map(r, "Key", "key")?.clone()))?;
    let t = sim.table(name)?;
    let now = sim.now();
    let mut table = lock(&t);
    let (pk, sk) = table.key_of_key(&key)?;
    if let Err(cause) = table.capacity.try_admit(pk.stable_hash(), 1, now) {
        table.stats.throttled_call(1);
        let reason = throttle_reason(&table, cause);
        return Err(throttle_error(&table, vec![reason]));
    }
    table.stats.admitted(1.0, 1, now);
    let old = table.store.delete(sim.budget(), &pk, &sk);
    let mut out = json!({});
    if all_old {
        if let Some(old) = old {
            out["Attributes"] = old.to_json();
        }
    }
    if consumed != Consumed::None {
        out["ConsumedCapacity"] = consumed_json(name, 1.0, consumed);
    }
    Ok(out)
}
