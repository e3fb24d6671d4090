//! BatchWriteItem and BatchGetItem.
//!
//! BatchWriteItem validates the whole request first (shape, size, keys,
//! duplicates) so an invalid batch writes nothing. It then offers each write
//! to the capacity model in request order: admitted writes are applied,
//! refused ones are returned verbatim in `UnprocessedItems`. A call that
//! admits nothing at all fails with the table's throttling exception, as
//! DynamoDB does. Each table's lock is taken once per phase.

use std::collections::BTreeSet;

use std::collections::BTreeMap;

use serde::Deserialize;
use serde_json::{json, Map, Value};

use super::request::{
    body, consumed_from, consumed_json, consumed_mode, missing, read_units, reject_unsupported,
    throttle_error, throttle_reason, Consumed,
};
use crate::attr::{parse_error, AttrMap};
use crate::error::{ApiError, ApiResult, ThrottlingReason};
use crate::key::KeyValue;
use crate::simulator::{lock, Simulator, TableRef};
use crate::size::{item_size, value_size, write_units, MAX_ITEM_BYTES};
use crate::storage::{Item, SortKey};

/// Most write requests in one BatchWriteItem call.
pub const MAX_BATCH_WRITE: usize = 25;
/// Most keys in one BatchGetItem call.
pub const MAX_BATCH_GET: usize = 100;

/// A BatchWriteItem request as read by serde_json, or by
/// [`super::batch_scan`] (which fills the same types).
#[derive(Debug, Default, PartialEq, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub(super) struct WireBatchWrite<'a> {
    #[serde(default, borrow)]
    pub(super) request_items: Option<BTreeMap<String, Vec<WireWrite<'a>>>>,
    #[serde(default)]
    pub(super) return_consumed_capacity: Option<String>,
}

#[derive(Debug, Default, PartialEq, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub(super) struct WireWrite<'a> {
    #[serde(default, borrow)]
    pub(super) put_request: Option<WirePut<'a>>,
    #[serde(default, borrow)]
    pub(super) delete_request: Option<WireDelete<'a>>,
}

#[derive(Debug, PartialEq, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub(super) struct WirePut<'a> {
    #[serde(default, borrow)]
    pub(super) item: Option<WireItem<'a>>,
}

#[derive(Debug, PartialEq, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub(super) struct WireDelete<'a> {
    #[serde(default, borrow)]
    pub(super) key: Option<AttrMap<'a>>,
}

/// A PutRequest's item: its attributes and, when the scan read it, its
/// JSON text as the request held it, stored as it is (serde_json cannot
/// say where a value was; then the text is written anew from the
/// attributes). Two items are equal when their attributes are.
#[derive(Debug)]
pub(super) struct WireItem<'a> {
    pub(super) attrs: AttrMap<'a>,
    pub(super) text: Option<&'a str>,
}

impl PartialEq for WireItem<'_> {
    fn eq(&self, other: &Self) -> bool {
        self.attrs == other.attrs
    }
}

impl<'de: 'a, 'a> Deserialize<'de> for WireItem<'a> {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Ok(WireItem {
            attrs: AttrMap::deserialize(d)?,
            text: None,
        })
    }
}

enum Write<'a> {
    Put(WireItem<'a>, usize),
    Delete(AttrMap<'a>),
}

/// A write ready to apply: a put already in its stored form, built before
/// the table lock is taken (with `storage.retain = false` a put is only
/// counted, so it keeps its parsed attributes and no stored form is built).
enum Staged<'a> {
    Put(Item),
    Counted(AttrMap<'a>, usize),
    Delete(AttrMap<'a>),
}

struct Prepared<'a> {
    pk: KeyValue,
    sk: SortKey,
    hash: u64,
    write: Staged<'a>,
}

impl Prepared<'_> {
    fn units(&self) -> u64 {
        match &self.write {
            Staged::Put(item) => write_units(item.size),
            Staged::Counted(_, size) => write_units(*size),
            Staged::Delete(_) => 1,
        }
    }

    fn into_wire(self) -> Value {
        match self.write {
            Staged::Put(item) => json!({"PutRequest": {"Item": item.to_json()}}),
            Staged::Counted(attrs, _) => json!({"PutRequest": {"Item": attrs.to_json()}}),
            Staged::Delete(key) => json!({"DeleteRequest": {"Key": key.to_json()}}),
        }
    }
}

fn too_few(what: &str) -> ApiError {
    ApiError::validation(format!(
        "1 validation error detected: Value '{{}}' at '{what}' failed to satisfy constraint: Member must have length greater than or equal to 1"
    ))
}

/// Check one WriteRequest: value shapes and item size.
fn check_write(w: WireWrite<'_>) -> ApiResult<Write<'_>> {
    match (w.put_request, w.delete_request) {
        (Some(p), None) => {
            let item = p
                .item
                .ok_or_else(|| missing("requestItems.member.putRequest.item"))?;
            let size = item_size(&item.attrs)?;
            if size > MAX_ITEM_BYTES {
                return Err(ApiError::validation(
                    "Item size has exceeded the maximum allowed size",
                ));
            }
            Ok(Write::Put(item, size))
        }
        (None, Some(d)) => {
            let key = d
                .key
                .ok_or_else(|| missing("requestItems.member.deleteRequest.key"))?;
            for (_, v) in &key.0 {
                value_size(v)?;
            }
            Ok(Write::Delete(key))
        }
        _ => Err(ApiError::validation(
            "Supplied AttributeValue has more than one datatypes set, must contain exactly one of the supported datatypes",
        )),
    }
}

/// Two writes to one key? At most 25 writes: every pair, the partition
/// hashes first, so keys are only compared when those match.
fn has_duplicate_keys(writes: &[Prepared]) -> bool {
    writes.iter().enumerate().any(|(i, a)| {
        writes[i + 1..]
            .iter()
            .any(|b| a.hash == b.hash && a.pk == b.pk && a.sk == b.sk)
    })
}

/// BatchWriteItem, parsed straight from the body into typed items: by
/// [`super::batch_scan`] when it can (the common shape), else by serde_json.
pub fn batch_write_item(sim: &Simulator, body: &[u8]) -> ApiResult<Value> {
    // UTF-8 checked once for the whole body (serde_json's slice reader
    // checks each string on its own, ~14 per item): then read as text.
    let text = std::str::from_utf8(body).map_err(parse_error)?;
    let req = match super::batch_scan::scan(text) {
        Some(req) => req,
        None => serde_json::from_str(text).map_err(parse_error)?,
    };
    let consumed = consumed_from(req.return_consumed_capacity.as_deref())?;
    let request_items = req.request_items.ok_or_else(|| missing("requestItems"))?;
    if request_items.is_empty() {
        return Err(too_few("requestItems"));
    }
    let mut total = 0;
    for list in request_items.values() {
        if list.is_empty() {
            return Err(ApiError::validation(
                "1 validation error detected: Value at 'requestItems' failed to satisfy constraint: Map value must satisfy constraint: [Member must have length less than or equal to 25, Member must have length greater than or equal to 1]",
            ));
        }
        total += list.len();
    }
    if total > MAX_BATCH_WRITE {
        return Err(ApiError::validation(
            "Too many items requested for the BatchWriteItem call",
        ));
    }

    // Phase 1: shapes and sizes, no lock held.
    let mut parsed: Vec<(String, Vec<Write>)> = Vec::with_capacity(request_items.len());
    for (name, list) in request_items {
        let writes = list
            .into_iter()
            .map(check_write)
            .collect::<ApiResult<Vec<_>>>()?;
        parsed.push((name, writes));
    }

    // Phase 2: tables exist, keys match the schema, no duplicate keys; puts
    // take their stored form here, outside the lock.
    let retain = sim.config().storage.retain;
    let mut prepared: Vec<(String, TableRef, Vec<Prepared>)> = Vec::with_capacity(parsed.len());
    for (name, writes) in parsed {
        let t = sim.table(&name)?;
        // The schema never changes: copy it and work without the lock.
        let schema = lock(&t).schema.clone();
        let mut out = Vec::with_capacity(writes.len());
        for w in writes {
            let key = match &w {
                Write::Put(item, _) => schema.key_of_item(&item.attrs),
                Write::Delete(key) => schema.key_of_key(key),
            };
            let (pk, sk) = key.map_err(|e| match e {
                ApiError::Validation(m)
                    if m.contains("Missing the key") || m.contains("Type mismatch for key") =>
                {
                    ApiError::validation("The provided key element does not match the schema")
                }
                other => other,
            })?;
            let hash = pk.stable_hash();
            let write = match w {
                Write::Put(item, size) if retain => Staged::Put(match item.text {
                    Some(text) => Item::from_text(text, size),
                    None => Item::new(&item.attrs, size),
                }),
                Write::Put(item, size) => Staged::Counted(item.attrs, size),
                Write::Delete(key) => Staged::Delete(key),
            };
            out.push(Prepared {
                pk,
                sk,
                hash,
                write,
            });
        }
        if has_duplicate_keys(&out) {
            return Err(ApiError::validation(
                "Provided list of item keys contains duplicates",
            ));
        }
        prepared.push((name, t, out));
    }

    // Phase 3: admit in order, apply what is admitted.
    let now = sim.now();
    let mut unprocessed = Map::new();
    let mut consumed_list = Vec::new();
    let mut admitted_any = false;
    let mut first_refusal: Option<(TableRef, Vec<ThrottlingReason>)> = None;
    let mut refused_per_table: Vec<(TableRef, u64)> = Vec::new();
    // Replaced items and counted-only writes are freed after the table
    // lock is released.
    let mut replaced: Vec<Item> = Vec::new();
    let mut counted: Vec<Staged> = Vec::new();
    for (name, t, writes) in prepared {
        let mut table = lock(&t);
        let mut units_admitted = 0u64;
        let mut items_admitted = 0u64;
        let mut left = Vec::new();
        let mut reasons: Vec<ThrottlingReason> = Vec::new();
        for p in writes {
            let units = p.units();
            match table.capacity.try_admit(p.hash, units, now) {
                Ok(()) => {
                    units_admitted += units;
                    items_admitted += 1;
                    // With `retain = false` phase 2 staged no stored form and
                    // nothing is applied: the write is only counted.
                    match p.write {
                        Staged::Put(item) => {
                            let old =
                                table
                                    .store
                                    .put_hashed(sim.budget(), p.pk, p.hash, p.sk, item)?;
                            replaced.extend(old);
                        }
                        Staged::Delete(_) if retain => {
                            replaced.extend(table.store.delete(sim.budget(), &p.pk, &p.sk));
                        }
                        only_counted => counted.push(only_counted),
                    }
                }
                Err(cause) => {
                    let r = throttle_reason(&table, cause);
                    if !reasons.contains(&r) {
                        reasons.push(r);
                    }
                    left.push(p.into_wire());
                }
            }
        }
        if items_admitted > 0 {
            admitted_any = true;
            table
                .stats
                .admitted(units_admitted as f64, items_admitted, now);
        }
        if consumed != Consumed::None {
            consumed_list.push(consumed_json(&name, units_admitted as f64, consumed));
        }
        if !left.is_empty() {
            refused_per_table.push((t.clone(), left.len() as u64));
            if first_refusal.is_none() {
                first_refusal = Some((t.clone(), reasons));
            }
            unprocessed.insert(name, Value::Array(left));
        }
    }
    if !admitted_any {
        if let Some((t, reasons)) = first_refusal {
            for (rt, n) in &refused_per_table {
                lock(rt).stats.throttled_call(*n);
            }
            let table = lock(&t);
            return Err(throttle_error(&table, reasons));
        }
    }
    for (rt, n) in &refused_per_table {
        lock(rt).stats.unprocessed(*n);
    }
    let mut out = json!({ "UnprocessedItems": unprocessed });
    if consumed != Consumed::None {
        out["ConsumedCapacity"] = Value::Array(consumed_list);
    }
    Ok(out)
}

/// BatchGetItem (reads are never throttled).
pub fn batch_get_item(sim: &Simulator, req: &Value) -> ApiResult<Value> {
    let r = body(req)?;
    let consumed = consumed_mode(r)?;
    let items = r
        .get("RequestItems")
        .and_then(Value::as_object)
        .ok_or_else(|| missing("requestItems"))?;
    if items.is_empty() {
        return Err(too_few("requestItems"));
    }
    let mut total = 0;
    for spec in items.values() {
        let spec = spec.as_object().ok_or_else(|| missing("requestItems"))?;
        reject_unsupported(spec, &["ProjectionExpression", "AttributesToGet"])?;
        total += spec
            .get("Keys")
            .and_then(Value::as_array)
            .map(Vec::len)
            .unwrap_or(0);
    }
    if total > MAX_BATCH_GET {
        return Err(ApiError::validation(
            "Too many items requested for the BatchGetItem call",
        ));
    }
    let mut responses = Map::new();
    let mut consumed_list = Vec::new();
    for (name, spec) in items {
        let keys = spec
            .get("Keys")
            .and_then(Value::as_array)
            .ok_or_else(|| missing("requestItems.member.keys"))?;
        let consistent = spec
            .get("ConsistentRead")
            .and_then(Value::as_bool)
            .unwrap_or(false);
        let t = sim.table(name)?;
        let table = lock(&t);
        let mut seen = BTreeSet::new();
        let mut found = Vec::new();
        let mut units = 0.0;
        for k in keys {
            let k = AttrMap::from_json(k.clone())?;
            let (pk, sk) = table.key_of_key(&k)?;
            if !seen.insert((pk.clone(), sk.clone())) {
                return Err(ApiError::validation(
                    "Provided list of item keys contains duplicates",
                ));
            }
            if let Some(item) = table.store.get(&pk, &sk) {
                units += read_units(item.size, consistent);
                found.push(item.to_json());
            }
        }
        responses.insert(name.clone(), Value::Array(found));
        if consumed != Consumed::None {
            consumed_list.push(consumed_json(name, units, consumed));
        }
    }
    let mut out = json!({ "Responses": responses, "UnprocessedKeys": {} });
    if consumed != Consumed::None {
        out["ConsumedCapacity"] = Value::Array(consumed_list);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use crate::{ApiError, KeyType, SimConfig, Simulator, TableSpec};
    use serde_json::json;

    fn sim() -> Simulator {
        let sim = Simulator::new(SimConfig::default()).expect("simulator");
        sim.create_table(TableSpec::on_demand(
            "t",
            ("pk", KeyType::S),
            Some(("sk", KeyType::N)),
        ))
        .expect("table");
        sim
    }

    #[test]
    fn a_batch_item_reads_back_whole_whatever_its_spacing_escapes_and_repeated_names() {
        let sim = sim();
        // Whitespace, an escape, a name given twice (the last wins), nesting.
        let body = br#"{"RequestItems": {"t": [ {"PutRequest": {"Item": {
            "pk" : {"S": "a\"b"}, "sk": {"N": "1"}, "x": {"S": "first"},
            "x": {"S": "last"}, "m": {"M": {"k": {"L": [{"N": "2.50"}, {"NULL": true}]}}} }}} ]}}"#;
        sim.handle("DynamoDB_20120810.BatchWriteItem", body)
            .expect("written");
        let got = sim
            .handle_value(
                "DynamoDB_20120810.GetItem",
                json!({"TableName": "t", "Key": {"pk": {"S": "a\"b"}, "sk": {"N": "1"}}}),
            )
            .expect("read");
        assert_eq!(
            got["Item"],
            json!({"pk": {"S": "a\"b"}, "sk": {"N": "1"}, "x": {"S": "last"},
                   "m": {"M": {"k": {"L": [{"N": "2.50"}, {"NULL": true}]}}}})
        );
    }

    #[test]
    fn a_mistyped_value_is_a_serialization_error_positioned_in_the_request() {
        let sim = sim();
        let body = br#"{"RequestItems": {"t": [{"PutRequest": {"Item": {"pk": {"S": 5}}}}]}}"#;
        match sim.handle("DynamoDB_20120810.BatchWriteItem", body) {
            Err(ApiError::Serialization(m)) => {
                assert!(
                    m.starts_with("invalid type: integer `5`, expected a string at line 1 column "),
                    "{m}"
                );
                assert_eq!(m.matches(" at line ").count(), 1, "{m}");
            }
            other => panic!("expected a SerializationException: {other:?}"),
        }
    }
}
