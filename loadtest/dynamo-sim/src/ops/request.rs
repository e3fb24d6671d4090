//! Field access on a parsed request body with DynamoDB's validation texts,
//! plus the shared `ConsumedCapacity` and throttling helpers.

use serde_json::{json, Map, Value};

use crate::capacity::{Billing, ThrottleCause};
use crate::error::{ApiError, ApiResult, ThrottleKind, ThrottlingReason};
use crate::table::Table;

/// The request body as an object.
pub fn body(req: &Value) -> ApiResult<&Map<String, Value>> {
    req.as_object().ok_or_else(|| {
        ApiError::Serialization("Start of structure or map found where not expected".into())
    })
}

/// `1 validation error detected: Value null at 'x' failed ...`
pub fn missing(wire: &str) -> ApiError {
    ApiError::validation(format!(
        "1 validation error detected: Value null at '{wire}' failed to satisfy constraint: Member must not be null"
    ))
}

/// An optional string field.
pub fn opt_str<'a>(req: &'a Map<String, Value>, field: &str) -> ApiResult<Option<&'a str>> {
    match req.get(field) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s)),
        Some(_) => Err(ApiError::Serialization(format!(
            "Unexpected value type in payload for field {field}"
        ))),
    }
}

/// The required `TableName`.
pub fn table_name(req: &Map<String, Value>) -> ApiResult<&str> {
    opt_str(req, "TableName")?.ok_or_else(|| missing("tableName"))
}

/// An optional map field.
pub fn opt_map<'a>(
    req: &'a Map<String, Value>,
    field: &str,
) -> ApiResult<Option<&'a Map<String, Value>>> {
    match req.get(field) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Object(m)) => Ok(Some(m)),
        Some(_) => Err(ApiError::Serialization(format!(
            "Unexpected value type in payload for field {field}"
        ))),
    }
}

/// A required map field.
pub fn req_map<'a>(
    req: &'a Map<String, Value>,
    field: &str,
    wire: &str,
) -> ApiResult<&'a Map<String, Value>> {
    opt_map(req, field)?.ok_or_else(|| missing(wire))
}

/// An optional boolean field.
pub fn opt_bool(req: &Map<String, Value>, field: &str) -> ApiResult<Option<bool>> {
    match req.get(field) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Bool(b)) => Ok(Some(*b)),
        Some(_) => Err(ApiError::Serialization(format!(
            "Unexpected value type in payload for field {field}"
        ))),
    }
}

/// An optional positive `Limit`-style integer.
pub fn opt_limit(req: &Map<String, Value>, field: &str, wire: &str) -> ApiResult<Option<u64>> {
    match req.get(field) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Number(n)) => {
            let text = n.to_string();
            match text.parse::<i64>() {
                Ok(v) if v >= 1 => Ok(Some(v as u64)),
                Ok(_) => Err(ApiError::validation(format!(
                    "1 validation error detected: Value '{text}' at '{wire}' failed to satisfy constraint: Member must have value greater than or equal to 1"
                ))),
                Err(_) => Err(ApiError::Serialization(format!(
                    "Unexpected value type in payload for field {field}"
                ))),
            }
        }
        Some(_) => Err(ApiError::Serialization(format!(
            "Unexpected value type in payload for field {field}"
        ))),
    }
}

/// Refuse parameters the simulator does not implement, so a client never
/// gets silently different semantics.
pub fn reject_unsupported(req: &Map<String, Value>, fields: &[&str]) -> ApiResult<()> {
    for f in fields {
        if req.get(*f).is_some_and(|v| !v.is_null()) {
            return Err(ApiError::validation(format!(
                "dynamo-sim does not support the {f} parameter"
            )));
        }
    }
    Ok(())
}

/// `ReturnConsumedCapacity` mode.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Consumed {
    /// Not requested.
    None,
    /// TOTAL.
    Total,
    /// INDEXES (table only: the simulator has no indexes).
    Indexes,
}

/// Parse `ReturnConsumedCapacity`.
pub fn consumed_mode(req: &Map<String, Value>) -> ApiResult<Consumed> {
    consumed_from(opt_str(req, "ReturnConsumedCapacity")?)
}

/// Parse a `ReturnConsumedCapacity` value.
pub fn consumed_from(value: Option<&str>) -> ApiResult<Consumed> {
    match value {
        None | Some("NONE") => Ok(Consumed::None),
        Some("TOTAL") => Ok(Consumed::Total),
        Some("INDEXES") => Ok(Consumed::Indexes),
        Some(other) => Err(ApiError::validation(format!(
            "1 validation error detected: Value '{other}' at 'returnConsumedCapacity' failed to satisfy constraint: Member must satisfy enum value set: [INDEXES, TOTAL, NONE]"
        ))),
    }
}

/// One `ConsumedCapacity` object.
pub fn consumed_json(table: &str, units: f64, mode: Consumed) -> Value {
    let mut v = json!({"TableName": table, "CapacityUnits": units});
    if mode == Consumed::Indexes {
        v["Table"] = json!({"CapacityUnits": units});
    }
    v
}

/// Read cost of an item: 4 KB units, halved for eventually consistent reads.
pub fn read_units(size: usize, consistent: bool) -> f64 {
    let units = size.div_ceil(4096).max(1) as f64;
    if consistent {
        units
    } else {
        units / 2.0
    }
}

const PROVISIONED_MSG: &str = "The level of configured provisioned throughput for the table was exceeded. Consider increasing your provisioning level with the UpdateTable API.";
const HOT_OR_SCALING_MSG: &str = "Throughput exceeds the current capacity of your table or index. DynamoDB is automatically scaling your table or index so please try again shortly. If exceptions persist, check if you have a hot key: https://docs.aws.amazon.com/amazondynamodb/latest/developerguide/bp-partition-key-design.html";

/// The throttling reason string for a refusal on `table`.
pub fn throttle_reason(table: &Table, cause: ThrottleCause) -> ThrottlingReason {
    let reason = match (cause, table.capacity.billing()) {
        (ThrottleCause::Partition, _) => "TableWriteKeyRangeThroughputExceeded",
        (ThrottleCause::Table, Billing::Provisioned { .. }) => {
            "TableWriteProvisionedThroughputExceeded"
        }
        (ThrottleCause::Account, _) => "TableWriteAccountLimitExceeded",
        (ThrottleCause::Maximum, _) => "TableWriteMaxOnDemandThroughputExceeded",
        // Above double the previous peak: AWS names no reason of its own
        // for it; the nearest is the on-demand limit.
        (ThrottleCause::Table, Billing::OnDemand) => "TableWriteMaxOnDemandThroughputExceeded",
    };
    ThrottlingReason {
        reason: reason.to_string(),
        resource: table.arn.clone(),
    }
}

/// The error for a call on `table` that admitted nothing.
pub fn throttle_error(table: &Table, reasons: Vec<ThrottlingReason>) -> ApiError {
    let hot = reasons
        .iter()
        .all(|r| r.reason == "TableWriteKeyRangeThroughputExceeded");
    match table.capacity.billing() {
        Billing::Provisioned { .. } => ApiError::Throttled {
            kind: ThrottleKind::Provisioned,
            message: if hot {
                HOT_OR_SCALING_MSG
            } else {
                PROVISIONED_MSG
            }
            .to_string(),
            reasons,
        },
        Billing::OnDemand => ApiError::Throttled {
            kind: ThrottleKind::OnDemand,
            message: HOT_OR_SCALING_MSG.to_string(),
            reasons,
        },
    }
}
