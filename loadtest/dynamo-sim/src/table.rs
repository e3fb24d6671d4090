//! One table: schema, key extraction with DynamoDB's messages, storage,
//! capacity state and stats, all behind the table's single mutex.
//!
//! Invariant: items in `store` always carry valid keys of `schema`'s types;
//! every write path goes through `key_of_item` / `key_of_key` first.

use serde_json::{json, Map, Value};

use crate::attr::AttrMap;
use crate::capacity::{Billing, WriteCapacity};
use crate::error::{ApiError, ApiResult};
use crate::key::{scalar_of_type, type_tag, KeyType, KeyValue};
use crate::stats::{TableStatsView, WriteStats};
use crate::storage::{SortKey, TableStore};

/// The warm throughput DescribeTable reports for an on-demand table of an
/// `--unlimited` simulator, which admits everything: finite, so that a
/// client's gauges and charts of it stay readable, and far above what one
/// machine can write (a writer that starts at a table's warm throughput
/// starts here at once).
pub const UNLIMITED_WARM_WCU: u64 = 1_000_000;

/// Account id used in ARNs.
pub const ACCOUNT_ID: &str = "000000000000";
/// Region used in ARNs.
pub const REGION: &str = "us-east-1";

/// Key schema: partition key and optional sort key.
#[derive(Debug, Clone, PartialEq)]
pub struct KeySchema {
    /// Partition (HASH) key name and type.
    pub hash: (String, KeyType),
    /// Sort (RANGE) key name and type.
    pub range: Option<(String, KeyType)>,
}

impl KeySchema {
    fn key_parts(&self) -> impl Iterator<Item = (&String, KeyType, bool)> {
        std::iter::once((&self.hash.0, self.hash.1, true))
            .chain(self.range.iter().map(|(n, t)| (n, *t, false)))
    }

    /// Key of an item to write (PutItem / PutRequest), with PutItem's messages.
    pub fn key_of_item(&self, item: &AttrMap) -> ApiResult<(KeyValue, SortKey)> {
        let pk = item_key_part(item, &self.hash.0, self.hash.1, true)?;
        let sk = match &self.range {
            Some((name, ty)) => Some(item_key_part(item, name, *ty, false)?),
            None => None,
        };
        Ok((pk, sk))
    }

    /// Key given as a `Key` map (GetItem, DeleteItem, DeleteRequest, ...).
    pub fn key_of_key(&self, key: &AttrMap) -> ApiResult<(KeyValue, SortKey)> {
        let expected = 1 + usize::from(self.range.is_some());
        if key.len() != expected {
            return Err(key_mismatch());
        }
        let mut out = Vec::with_capacity(2);
        for (name, ty, is_hash) in self.key_parts() {
            let v = key.get(name).ok_or_else(key_mismatch)?;
            let kv = scalar_of_type(v, ty)?.ok_or_else(key_mismatch)?;
            if is_empty_key(&kv) {
                return Err(ApiError::validation(format!(
                    "One or more parameter values were invalid: The AttributeValue for a key attribute cannot contain an empty {} value. Key: {name}",
                    empty_word(ty)
                )));
            }
            check_key_size(&kv, is_hash)?;
            out.push(kv);
        }
        split_key(out)
    }
}

/// What a programmatic `Simulator::create_table` needs.
#[derive(Debug, Clone)]
pub struct TableSpec {
    /// Table name.
    pub name: String,
    /// Key schema.
    pub schema: KeySchema,
    /// Billing mode and WCU.
    pub billing: Billing,
    /// Reported RCU (reads are not throttled).
    pub rcu: u64,
}

impl TableSpec {
    /// An on-demand table with a partition key and optional sort key.
    pub fn on_demand(name: &str, hash: (&str, KeyType), range: Option<(&str, KeyType)>) -> Self {
        TableSpec {
            name: name.to_string(),
            schema: KeySchema {
                hash: (hash.0.to_string(), hash.1),
                range: range.map(|(n, t)| (n.to_string(), t)),
            },
            billing: Billing::OnDemand,
            rcu: 0,
        }
    }

    /// The same table, provisioned with `wcu` (and as many RCU).
    pub fn provisioned(mut self, wcu: u64) -> Self {
        self.billing = Billing::Provisioned { wcu: wcu as f64 };
        self.rcu = wcu;
        self
    }
}

/// Time-to-live setting.
#[derive(Debug, Clone, PartialEq)]
pub struct TtlSetting {
    /// Attribute holding the expiry epoch.
    pub attribute: String,
    /// Enabled or not.
    pub enabled: bool,
}

/// A table and all its mutable state.
#[derive(Debug)]
pub struct Table {
    /// Name.
    pub name: String,
    /// ARN.
    pub arn: String,
    /// Key schema.
    pub schema: KeySchema,
    /// Reported RCU.
    pub rcu: u64,
    /// Creation time, seconds since the Unix epoch.
    pub created_epoch: f64,
    /// Last switch to PAY_PER_REQUEST, seconds since the Unix epoch.
    pub last_pay_per_request_epoch: Option<f64>,
    /// TTL setting, if ever set.
    pub ttl: Option<TtlSetting>,
    /// Items.
    pub store: TableStore,
    /// Write capacity state.
    pub capacity: WriteCapacity,
    /// Write statistics.
    pub stats: WriteStats,
}

fn key_mismatch() -> ApiError {
    ApiError::validation("The provided key element does not match the schema")
}

/// One key attribute of an item to write, checked as PutItem checks it.
fn item_key_part(item: &AttrMap, name: &str, ty: KeyType, is_hash: bool) -> ApiResult<KeyValue> {
    let Some(v) = item.get(name) else {
        return Err(ApiError::validation(format!(
            "One or more parameter values were invalid: Missing the key {name} in the item"
        )));
    };
    let Some(kv) = scalar_of_type(v, ty)? else {
        return Err(ApiError::validation(format!(
            "One or more parameter values were invalid: Type mismatch for key {name} expected: {} actual: {}",
            ty.as_str(),
            type_tag(v)
        )));
    };
    if is_empty_key(&kv) {
        return Err(ApiError::validation(format!(
            "One or more parameter values are not valid. The AttributeValue for a key attribute cannot contain an empty {} value. Key: {name}",
            empty_word(ty)
        )));
    }
    check_key_size(&kv, is_hash)?;
    Ok(kv)
}

fn check_key_size(v: &KeyValue, is_hash: bool) -> ApiResult<()> {
    if is_hash && v.byte_len() > 2048 {
        return Err(ApiError::validation(
            "One or more parameter values were invalid: Size of hashkey has exceeded the maximum size limit of2048 bytes",
        ));
    }
    if !is_hash && v.byte_len() > 1024 {
        return Err(ApiError::validation(
            "One or more parameter values were invalid: Aggregated size of all range keys has exceeded the size limit of 1024 bytes",
        ));
    }
    Ok(())
}

fn is_empty_key(v: &KeyValue) -> bool {
    match v {
        KeyValue::S(s) => s.is_empty(),
        KeyValue::B(b) => b.is_empty(),
        KeyValue::N(..) => false,
    }
}

fn empty_word(t: KeyType) -> &'static str {
    if t == KeyType::B {
        "binary"
    } else {
        "string"
    }
}

impl Table {
    /// Billing mode wire name.
    pub fn billing_mode(&self) -> &'static str {
        match self.capacity.billing() {
            Billing::Provisioned { .. } => "PROVISIONED",
            Billing::OnDemand => "PAY_PER_REQUEST",
        }
    }

    /// Key of an item to write; see [`KeySchema::key_of_item`].
    pub fn key_of_item(&self, item: &AttrMap) -> ApiResult<(KeyValue, SortKey)> {
        self.schema.key_of_item(item)
    }

    /// Key given as a `Key` map; see [`KeySchema::key_of_key`].
    pub fn key_of_key(&self, key: &AttrMap) -> ApiResult<(KeyValue, SortKey)> {
        self.schema.key_of_key(key)
    }

    /// The key attributes of an item as a wire-format `Key` map.
    pub fn key_json(&self, pk: &KeyValue, sk: &SortKey) -> Value {
        let mut m = Map::new();
        m.insert(self.schema.hash.0.clone(), pk.to_json());
        if let (Some((name, _)), Some(sk)) = (&self.schema.range, sk) {
            m.insert(name.clone(), sk.to_json());
        }
        Value::Object(m)
    }

    /// DescribeTable's `Table` object as of `now` (simulator clock): the
    /// provisioned WCU is the capacity in force then (schedule included).
    pub fn describe(&self, now: f64) -> Value {
        let mut attrs = vec![json!({
            "AttributeName": self.schema.hash.0, "AttributeType": self.schema.hash.1.as_str()
        })];
        let mut keys = vec![json!({"AttributeName": self.schema.hash.0, "KeyType": "HASH"})];
        if let Some((n, t)) = &self.schema.range {
            attrs.push(json!({"AttributeName": n, "AttributeType": t.as_str()}));
            keys.push(json!({"AttributeName": n, "KeyType": "RANGE"}));
        }
        // Provisioned rates, what the table serves at once (DynamoDB's
        // WarmThroughput) and an on-demand table's configured maximum. A
        // provisioned table serves its provisioned rates. An on-demand one
        // has none: it serves the write rate admission applies now
        // (max(warm, 2 × previous peak); UNLIMITED_WARM_WCU when unlimited)
        // and three times that for reads, as AWS's 12,000 / 4,000 for a new
        // table; its maximum is part of its description (the account's
        // quota is not).
        let (rcu, wcu, warm_read, warm_write, on_demand_max) = match self.capacity.billing() {
            Billing::Provisioned { wcu } => {
                let wcu = self.capacity.provisioned_wcu_at(now).unwrap_or(wcu) as u64;
                (self.rcu, wcu, self.rcu, wcu, None)
            }
            Billing::OnDemand => {
                let rate = self.capacity.warm_wcu(now);
                let w = if rate.is_finite() {
                    rate as u64
                } else {
                    UNLIMITED_WARM_WCU
                };
                (
                    0,
                    0,
                    w.saturating_mul(3),
                    w,
                    self.capacity.on_demand_max_wcu(),
                )
            }
        };
        let mut billing = json!({"BillingMode": self.billing_mode()});
        if let Some(t) = self.last_pay_per_request_epoch {
            billing["LastUpdateToPayPerRequestDateTime"] = json!(t);
        }
        let mut description = json!({
            "AttributeDefinitions": attrs,
            "KeySchema": keys,
            "TableName": self.name,
            "TableArn": self.arn,
            "TableId": format!("{:016x}-sim", KeyValue::S(self.arn.clone()).stable_hash()),
            "TableStatus": "ACTIVE",
            "CreationDateTime": self.created_epoch,
            "ItemCount": self.store.item_count(),
            "TableSizeBytes": self.store.byte_count(),
            "ProvisionedThroughput": {
                "NumberOfDecreasesToday": 0,
                "ReadCapacityUnits": rcu,
                "WriteCapacityUnits": wcu,
            },
            "BillingModeSummary": billing,
            "WarmThroughput": {
                "ReadUnitsPerSecond": warm_read,
                "WriteUnitsPerSecond": warm_write,
                "Status": "ACTIVE",
            },
            "DeletionProtectionEnabled": false,
        });
        // -1: no maximum for reads.
        if let Some(max) = on_demand_max {
            description["OnDemandThroughput"] = json!({
                "MaxReadRequestUnits": -1,
                "MaxWriteRequestUnits": max as i64,
            });
        }
        description
    }

    /// Stats view as of `now` (simulator clock).
    pub fn stats_view(&mut self, now: f64) -> TableStatsView {
        let mut v = self.stats.view(now);
        v.items_stored = self.store.item_count();
        v.bytes_stored = self.store.byte_count();
        let rate = self.capacity.rate(now);
        v.capacity_wcu_now = rate.is_finite().then_some(rate);
        v.partitions = self.capacity.partition_count();
        v.billing_mode = self.billing_mode();
        v
    }
}

fn split_key(mut parts: Vec<KeyValue>) -> ApiResult<(KeyValue, SortKey)> {
    let sk = if parts.len() > 1 { parts.pop() } else { None };
    let pk = parts.pop().ok_or_else(key_mismatch)?;
    Ok((pk, sk))
}

/// ARN of a table.
pub fn table_arn(name: &str) -> String {
    format!("arn:aws:dynamodb:{REGION}:{ACCOUNT_ID}:table/{name}")
}
