//! Typed errors of the simulator and their DynamoDB wire form.
//!
//! Every operation returns `Result<Value, ApiError>`; the server turns an
//! `ApiError` into the exact JSON 1.0 error shape real DynamoDB (and dynalite)
//! send, so SDKs parse a typed error kind. Variants name what the *client*
//! should do: retry later (`Throttled`, `Internal`, `Unavailable`) or fix the
//! request (`Validation`, `ResourceNotFound`, ...).

use serde_json::{json, Value};

/// One entry of DynamoDB's `ThrottlingReasons` list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ThrottlingReason {
    /// e.g. `TableWriteProvisionedThroughputExceeded`, `KeyRangeThroughputExceeded`.
    pub reason: String,
    /// ARN of the throttled table.
    pub resource: String,
}

/// Which throttling exception a table raises when it admits nothing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ThrottleKind {
    /// Provisioned tables: `ProvisionedThroughputExceededException`.
    Provisioned,
    /// On-demand tables: `ThrottlingException`.
    OnDemand,
}

/// An error answered to the client with a DynamoDB error type.
#[derive(Debug, Clone, thiserror::Error)]
pub enum ApiError {
    /// The request is malformed; the client must change it.
    #[error("ValidationException: {0}")]
    Validation(String),
    /// The table does not exist.
    #[error("ResourceNotFoundException: {0}")]
    ResourceNotFound(String),
    /// The table already exists (CreateTable).
    #[error("ResourceInUseException: {0}")]
    ResourceInUse(String),
    /// Capacity exhausted; retry with backoff.
    #[error("throttled: {message}")]
    Throttled {
        /// Provisioned or on-demand exception type.
        kind: ThrottleKind,
        /// DynamoDB's message text.
        message: String,
        /// Why, per resource.
        reasons: Vec<ThrottlingReason>,
    },
    /// Injected or genuine server failure; retriable.
    #[error("InternalServerError: {0}")]
    Internal(String),
    /// Injected 503; retriable.
    #[error("ServiceUnavailable: {0}")]
    Unavailable(String),
    /// `X-Amz-Target` names no known operation.
    #[error("UnknownOperationException")]
    UnknownOperation,
    /// The body is not JSON.
    #[error("SerializationException: {0}")]
    Serialization(String),
    /// The body exceeds DynamoDB's 16 MB request limit.
    #[error("request body too large")]
    RequestTooLarge,
    /// The request was signed more than five minutes off the server's
    /// clock.
    #[error("InvalidSignatureException: {0}")]
    InvalidSignature(String),
}

impl ApiError {
    /// Shorthand for a validation error.
    pub fn validation(msg: impl Into<String>) -> Self {
        ApiError::Validation(msg.into())
    }

    /// The `__type` value, namespaced as DynamoDB does.
    pub fn type_name(&self) -> &'static str {
        match self {
            ApiError::Validation(_) => "com.amazon.coral.validate#ValidationException",
            ApiError::ResourceNotFound(_) => {
                "com.amazonaws.dynamodb.v20120810#ResourceNotFoundException"
            }
            ApiError::ResourceInUse(_) => "com.amazonaws.dynamodb.v20120810#ResourceInUseException",
            ApiError::Throttled {
                kind: ThrottleKind::Provisioned,
                ..
            } => "com.amazonaws.dynamodb.v20120810#ProvisionedThroughputExceededException",
            ApiError::Throttled {
                kind: ThrottleKind::OnDemand,
                ..
            } => "com.amazonaws.dynamodb.v20120810#ThrottlingException",
            ApiError::Internal(_) => "com.amazonaws.dynamodb.v20120810#InternalServerError",
            ApiError::Unavailable(_) => "com.amazon.coral.availability#ServiceUnavailableException",
            ApiError::UnknownOperation => "com.amazon.coral.service#UnknownOperationException",
            ApiError::Serialization(_) => "com.amazon.coral.service#SerializationException",
            ApiError::RequestTooLarge => "com.amazon.coral.service#RequestEntityTooLargeException",
            ApiError::InvalidSignature(_) => "com.amazon.coral.service#InvalidSignatureException",
        }
    }

    /// HTTP status code of the response.
    pub fn status(&self) -> u16 {
        match self {
            ApiError::Internal(_) => 500,
            ApiError::Unavailable(_) => 503,
            ApiError::RequestTooLarge => 413,
            _ => 400,
        }
    }

    /// The JSON body DynamoDB sends for this error.
    pub fn body(&self) -> Value {
        let ty = self.type_name();
        match self {
            ApiError::Validation(m)
            | ApiError::ResourceNotFound(m)
            | ApiError::ResourceInUse(m)
            | ApiError::Internal(m)
            | ApiError::Unavailable(m)
            | ApiError::Serialization(m)
            | ApiError::InvalidSignature(m) => json!({"__type": ty, "message": m}),
            ApiError::Throttled {
                kind,
                message,
                reasons,
            } => {
                let list: Vec<Value> = reasons
                    .iter()
                    .map(|r| json!({"reason": r.reason, "resource": r.resource}))
                    .collect();
                // The service model names the member differently per shape:
                // ProvisionedThroughputExceededException.ThrottlingReasons,
                // ThrottlingException.throttlingReasons.
                let field = match kind {
                    ThrottleKind::Provisioned => "ThrottlingReasons",
                    ThrottleKind::OnDemand => "throttlingReasons",
                };
                json!({"__type": ty, "message": message, field: list})
            }
            ApiError::UnknownOperation => json!({"__type": ty}),
            ApiError::RequestTooLarge => json!({
                "__type": ty,
                "message": "Request size exceeded 16777216 bytes"
            }),
        }
    }

    /// Is this a capacity throttle (counted in stats)?
    pub fn is_throttle(&self) -> bool {
        matches!(self, ApiError::Throttled { .. })
    }
}

/// Result of an API operation.
pub type ApiResult<T> = Result<T, ApiError>;

/// The "table not found" error item operations return.
pub fn table_not_found() -> ApiError {
    ApiError::ResourceNotFound("Requested resource not found".to_string())
}
