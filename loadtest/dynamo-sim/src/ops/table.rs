//! Control plane: CreateTable, DescribeTable, DeleteTable, ListTables,
//! UpdateTable, UpdateTimeToLive, DescribeTimeToLive. Tables are ACTIVE at
//! once; there are no secondary indexes.

use serde_json::{json, Map, Value};

use super::request::{body, missing, opt_limit, opt_map, opt_str, reject_unsupported, table_name};
use crate::capacity::Billing;
use crate::error::{ApiError, ApiResult};
use crate::key::KeyType;
use crate::simulator::{lock, Simulator};
use crate::table::{KeySchema, TableSpec, TtlSetting};

fn not_found(name: &str) -> ApiError {
    ApiError::ResourceNotFound(format!(
        "Requested resource not found: Table: {name} not found"
    ))
}

fn invalid(msg: &str) -> ApiError {
    ApiError::validation(format!("One or more parameter values were invalid: {msg}"))
}

fn check_table_name(name: &str) -> ApiResult<()> {
    let bound = if name.len() < 3 {
        Some("greater than or equal to 3")
    } else if name.len() > 255 {
        Some("less than or equal to 255")
    } else {
        None
    };
    if let Some(bound) = bound {
        return Err(ApiError::validation(format!(
            "1 validation error detected: Value '{name}' at 'tableName' failed to satisfy constraint: Member must have length {bound}"
        )));
    }
    if !name
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'))
    {
        return Err(ApiError::validation(format!(
            "1 validation error detected: Value '{name}' at 'tableName' failed to satisfy constraint: Member must satisfy regular expression pattern: [a-zA-Z0-9_.-]+"
        )));
    }
    Ok(())
}

/// Parse `ProvisionedThroughput` into (RCU, WCU).
fn throughput(req: &Map<String, Value>) -> ApiResult<Option<(u64, u64)>> {
    let Some(pt) = opt_map(req, "ProvisionedThroughput")? else {
        return Ok(None);
    };
    let num = |field: &str, wire: &str| -> ApiResult<u64> {
        let v = pt
            .get(field)
            .ok_or_else(|| missing(&format!("provisionedThroughput.{wire}")))?;
        let n: i64 = v
            .to_string()
            .parse()
            .map_err(|_| ApiError::Serialization(format!("Unexpected value for {field}")))?;
        if n < 1 {
            return Err(ApiError::validation(format!(
                "1 validation error detected: Value '{n}' at 'provisionedThroughput.{wire}' failed to satisfy constraint: Member must have value greater than or equal to 1"
            )));
        }
        Ok(n as u64)
    };
    Ok(Some((
        num("ReadCapacityUnits", "readCapacityUnits")?,
        num("WriteCapacityUnits", "writeCapacityUnits")?,
    )))
}

fn billing_of(mode: Option<&str>, pt: Option<(u64, u64)>) -> ApiResult<(Billing, u64)> {
    match (mode.unwrap_or("PROVISIONED"), pt) {
        ("PROVISIONED", Some((r, w))) => Ok((Billing::Provisioned { wcu: w as f64 }, r)),
        ("PROVISIONED", None) => Err(invalid(
            "ReadCapacityUnits and WriteCapacityUnits must both be specified when BillingMode is PROVISIONED",
        )),
        ("PAY_PER_REQUEST", None) => Ok((Billing::OnDemand, 0)),
        ("PAY_PER_REQUEST", Some(_)) => Err(invalid(
            "Neither ReadCapacityUnits nor WriteCapacityUnits can be specified when BillingMode is PAY_PER_REQUEST",
        )),
        (other, _) => Err(ApiError::validation(format!(
            "1 validation error detected: Value '{other}' at 'billingMode' failed to satisfy constraint: Member must satisfy enum value set: [PROVISIONED, PAY_PER_REQUEST]"
        ))),
    }
}

/// CreateTable.
pub fn create_table(sim: &Simulator, req: &Value) -> ApiResult<Value> {
    let req = body(req)?;
    let name = table_name(req)?;
    check_table_name(name)?;
    reject_unsupported(
        req,
        &[
            "GlobalSecondaryIndexes",
            "LocalSecondaryIndexes",
            "StreamSpecification",
        ],
    )?;
    let defs = req
        .get("AttributeDefinitions")
        .and_then(Value::as_array)
        .ok_or_else(|| missing("attributeDefinitions"))?;
    let keys = req
        .get("KeySchema")
        .and_then(Value::as_array)
        .ok_or_else(|| missing("keySchema"))?;
    let mut attr_types = Vec::new();
    for d in defs {
        let n = d["AttributeName"]
            .as_str()
            .ok_or_else(|| missing("attributeDefinitions.member.attributeName"))?;
        let t = d["AttributeType"]
            .as_str()
            .ok_or_else(|| missing("attributeDefinitions.member.attributeType"))?;
        let t = KeyType::parse(t).ok_or_else(|| {
            ApiError::validation(format!(
                "1 validation error detected: Value '{t}' at 'attributeDefinitions.1.member.attributeType' failed to satisfy constraint: Member must satisfy enum value set: [B, N, S]"
            ))
        })?;
        attr_types.push((n.to_string(), t));
    }
    if keys.is_empty() || keys.len() > 2 {
        return Err(ApiError::validation(format!(
            "1 validation error detected: Value '{}' at 'keySchema' failed to satisfy constraint: Member must have length {}",
            Value::Array(keys.clone()),
            if keys.is_empty() { "greater than or equal to 1" } else { "less than or equal to 2" }
        )));
    }
    let mut schema_parts = Vec::new();
    for (i, k) in keys.iter().enumerate() {
        let n = k["AttributeName"]
            .as_str()
            .ok_or_else(|| missing("keySchema.member.attributeName"))?;
        let kt = k["KeyType"]
            .as_str()
            .ok_or_else(|| missing("keySchema.member.keyType"))?;
        let want = if i == 0 { "HASH" } else { "RANGE" };
        if kt != want {
            return Err(invalid(if i == 0 {
                "Invalid KeySchema: The first KeySchemaElement is not a HASH key type"
            } else {
                "Invalid KeySchema: The second KeySchemaElement is not a RANGE key type"
            }));
        }
        schema_parts.push(n.to_string());
    }
    if schema_parts.len() == 2 && schema_parts[0] == schema_parts[1] {
        return Err(invalid(
            "Both the Hash Key and the Range Key element in the KeySchema have the same name",
        ));
    }
    let lookup = |n: &str| attr_types.iter().find(|(a, _)| a == n).map(|(_, t)| *t);
    let missing_keys: Vec<&String> = schema_parts
        .iter()
        .filter(|n| lookup(n).is_none())
        .collect();
    if !missing_keys.is_empty() {
        let def_names: Vec<&String> = attr_types.iter().map(|(n, _)| n).collect();
        return Err(invalid(&format!(
            "Some index key attributes are not defined in AttributeDefinitions. Keys: [{}], AttributeDefinitions: [{}]",
            missing_keys.iter().map(|s| s.as_str()).collect::<Vec<_>>().join(", "),
            def_names.iter().map(|s| s.as_str()).collect::<Vec<_>>().join(", ")
        )));
    }
    if attr_types.len() != schema_parts.len() {
        return Err(invalid(
            "Number of attributes in KeySchema does not exactly match number of attributes defined in AttributeDefinitions",
        ));
    }
    let (billing, rcu) = billing_of(opt_str(req, "BillingMode")?, throughput(req)?)?;
    let hash_name = schema_parts[0].clone();
    let hash_type = lookup(&hash_name).unwrap_or(KeyType::S);
    let range = schema_parts
        .get(1)
        .map(|n| (n.clone(), lookup(n).unwrap_or(KeyType::S)));
    sim.create_table(TableSpec {
        name: name.to_string(),
        schema: KeySchema {
            hash: (hash_name, hash_type),
            range,
        },
        billing,
        rcu,
    })?;
    let t = sim.table(name)?;
    let desc = lock(&t).describe(sim.now());
    Ok(json!({ "TableDescription": desc }))
}

/// DescribeTable.
pub fn describe_table(sim: &Simulator, req: &Value) -> ApiResult<Value> {
    let name = table_name(body(req)?)?;
    let t = sim.table(name).map_err(|_| not_found(name))?;
    let desc = lock(&t).describe(sim.now());
    Ok(json!({ "Table": desc }))
}

/// DeleteTable.
pub fn delete_table(sim: &Simulator, req: &Value) -> ApiResult<Value> {
    let name = table_name(body(req)?)?;
    let t = sim.remove_table(name).ok_or_else(|| not_found(name))?;
    let mut desc = lock(&t).describe(sim.now());
    desc["TableStatus"] = json!("DELETING");
    Ok(json!({ "TableDescription": desc }))
}

/// ListTables.
pub fn list_tables(sim: &Simulator, req: &Value) -> ApiResult<Value> {
    let req = body(req)?;
    let limit = opt_limit(req, "Limit", "limit")?.unwrap_or(100);
    if limit > 100 {
        return Err(ApiError::validation(format!(
            "1 validation error detected: Value '{limit}' at 'limit' failed to satisfy constraint: Member must have value less than or equal to 100"
        )));
    }
    let start = opt_str(req, "ExclusiveStartTableName")?;
    let names: Vec<String> = sim
        .table_names()
        .into_iter()
        .filter(|n| start.is_none_or(|s| n.as_str() > s))
        .collect();
    let page: Vec<&String> = names.iter().take(limit as usize).collect();
    let mut out = json!({ "TableNames": page });
    if names.len() > limit as usize {
        if let Some(last) = page.last() {
            out["LastEvaluatedTableName"] = json!(last);
        }
    }
    Ok(out)
}

/// UpdateTable: billing mode and provisioned throughput.
pub fn update_table(sim: &Simulator, req: &Value) -> ApiResult<Value> {
    let req = body(req)?;
    let name = table_name(req)?;
    reject_unsupported(
        req,
        &[
            "GlobalSecondaryIndexUpdates",
            "AttributeDefinitions",
            "StreamSpecification",
            "ReplicaUpdates",
        ],
    )?;
    let t = sim.table(name).map_err(|_| not_found(name))?;
    let mode = opt_str(req, "BillingMode")?;
    let pt = throughput(req)?;
    if mode.is_none() && pt.is_none() {
        return Err(ApiError::validation(
            "At least one of ProvisionedThroughput, BillingMode, UpdateStreamEnabled, GlobalSecondaryIndexUpdates or SSESpecification or ReplicaUpdates is required",
        ));
    }
    let now = sim.now();
    let mut table = lock(&t);
    let current_mode = table.billing_mode();
    let mode = mode.unwrap_or(current_mode);
    let (billing, rcu) = billing_of(Some(mode), pt)?;
    if let (Billing::Provisioned { wcu }, Billing::Provisioned { wcu: old }) =
        (billing, table.capacity.billing())
    {
        if wcu == old && rcu == table.rcu {
            return Err(ApiError::validation(
                "The provisioned throughput for the table will not change. The requested value equals the current value. Current ReadCapacityUnits provisioned for the table: ".to_string()
                    + &format!("{}. Requested ReadCapacityUnits: {rcu}. Current WriteCapacityUnits provisioned for the table: {old}. Requested WriteCapacityUnits: {wcu}. Refer to the Amazon DynamoDB Developer Guide for current limits and how to request higher limits.", table.rcu),
            ));
        }
    }
    if billing == Billing::OnDemand && current_mode != "PAY_PER_REQUEST" {
        table.last_pay_per_request_epoch = Some(
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_secs_f64())
                .unwrap_or(0.0),
        );
    }
    table.capacity.set_billing(billing, now);
    table.rcu = rcu;
    Ok(json!({ "TableDescription": table.describe(now) }))
}

/// UpdateTimeToLive.
pub fn update_ttl(sim: &Simulator, req: &Value) -> ApiResult<Value> {
    let req = body(req)?;
    let name = table_name(req)?;
    let spec = opt_map(req, "TimeToLiveSpecification")?
        .ok_or_else(|| missing("timeToLiveSpecification"))?;
    let attr = spec
        .get("AttributeName")
        .and_then(Value::as_str)
        .ok_or_else(|| missing("timeToLiveSpecification.attributeName"))?;
    let enabled = spec
        .get("Enabled")
        .and_then(Value::as_bool)
        .ok_or_else(|| missing("timeToLiveSpecification.enabled"))?;
    let t = sim.table(name).map_err(|_| not_found(name))?;
    let mut table = lock(&t);
    let currently = table.ttl.as_ref().is_some_and(|t| t.enabled);
    if enabled && currently {
        return Err(ApiError::validation("TimeToLive is already enabled"));
    }
    if !enabled && !currently {
        return Err(ApiError::validation("TimeToLive is already disabled"));
    }
    table.ttl = Some(TtlSetting {
        attribute: attr.to_string(),
        enabled,
    });
    Ok(json!({ "TimeToLiveSpecification": { "AttributeName": attr, "Enabled": enabled } }))
}

/// DescribeTimeToLive.
pub fn describe_ttl(sim: &Simulator, req: &Value) -> ApiResult<Value> {
    let name = table_name(body(req)?)?;
    let t = sim.table(name).map_err(|_| not_found(name))?;
    let table = lock(&t);
    let desc = match &table.ttl {
        Some(TtlSetting {
            attribute,
            enabled: true,
        }) => json!({"TimeToLiveStatus": "ENABLED", "AttributeName": attribute}),
        _ => json!({"TimeToLiveStatus": "DISABLED"}),
    };
    Ok(json!({ "TimeToLiveDescription": desc }))
}
