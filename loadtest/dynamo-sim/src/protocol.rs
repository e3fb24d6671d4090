//! DynamoDB JSON 1.0 protocol: operation names from `X-Amz-Target`, and the
//! response bodies and headers for results and errors.

use bytes::Bytes;

use crate::error::{ApiError, ApiResult};

/// The API version prefix of every `X-Amz-Target`.
pub const TARGET_PREFIX: &str = "DynamoDB_20120810.";
/// Response content type.
pub const CONTENT_TYPE: &str = "application/x-amz-json-1.0";
/// DynamoDB's request size limit.
pub const MAX_REQUEST_BYTES: usize = 16 * 1024 * 1024;

/// Operations the simulator implements.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Operation {
    /// CreateTable
    CreateTable,
    /// DescribeTable
    DescribeTable,
    /// DeleteTable
    DeleteTable,
    /// ListTables
    ListTables,
    /// UpdateTable
    UpdateTable,
    /// UpdateTimeToLive
    UpdateTimeToLive,
    /// DescribeTimeToLive
    DescribeTimeToLive,
    /// PutItem
    PutItem,
    /// GetItem
    GetItem,
    /// DeleteItem
    DeleteItem,
    /// BatchWriteItem
    BatchWriteItem,
    /// BatchGetItem
    BatchGetItem,
    /// Query
    Query,
    /// Scan
    Scan,
}

/// Real DynamoDB operations the simulator does not implement: they fail
/// with a clear ValidationException instead of UnknownOperationException.
const NOT_IMPLEMENTED: &[&str] = &[
    "UpdateItem",
    "TransactWriteItems",
    "TransactGetItems",
    "ExecuteStatement",
    "BatchExecuteStatement",
    "ExecuteTransaction",
    "DescribeLimits",
    "DescribeEndpoints",
    "TagResource",
    "UntagResource",
    "ListTagsOfResource",
    "CreateBackup",
    "DescribeContinuousBackups",
    "CreateGlobalTable",
];

impl Operation {
    /// Parse `DynamoDB_20120810.PutItem`.
    pub fn from_target(target: &str) -> ApiResult<Operation> {
        let name = target
            .strip_prefix(TARGET_PREFIX)
            .ok_or(ApiError::UnknownOperation)?;
        Ok(match name {
            "CreateTable" => Operation::CreateTable,
            "DescribeTable" => Operation::DescribeTable,
            "DeleteTable" => Operation::DeleteTable,
            "ListTables" => Operation::ListTables,
            "UpdateTable" => Operation::UpdateTable,
            "UpdateTimeToLive" => Operation::UpdateTimeToLive,
            "DescribeTimeToLive" => Operation::DescribeTimeToLive,
            "PutItem" => Operation::PutItem,
            "GetItem" => Operation::GetItem,
            "DeleteItem" => Operation::DeleteItem,
            "BatchWriteItem" => Operation::BatchWriteItem,
            "BatchGetItem" => Operation::BatchGetItem,
            "Query" => Operation::Query,
            "Scan" => Operation::Scan,
            other if NOT_IMPLEMENTED.contains(&other) => {
                return Err(ApiError::validation(format!(
                    "dynamo-sim does not implement the {other} operation"
                )))
            }
            _ => return Err(ApiError::UnknownOperation),
        })
    }

    /// Does this operation write items (and so get write faults/capacity)?
    pub fn is_data_plane(self) -> bool {
        matches!(
            self,
            Operation::PutItem
                | Operation::GetItem
                | Operation::DeleteItem
                | Operation::BatchWriteItem
                | Operation::BatchGetItem
                | Operation::Query
                | Operation::Scan
        )
    }
}

/// Serialized error body plus the short error code for `x-amzn-ErrorType`.
pub fn error_parts(err: &ApiError) -> (u16, String, Bytes) {
    let body = serde_json::to_vec(&err.body()).unwrap_or_default();
    let short = err
        .type_name()
        .rsplit('#')
        .next()
        .unwrap_or_default()
        .to_string();
    (err.status(), short, Bytes::from(body))
}
