//! The one place that classifies DynamoDB errors (by their typed error
//! kind or code, never by message text) and the backoff between attempts.
//!
//! The SDK's own retries are off (`RetryConfig::disabled()`): every retry
//! decision is made here, so that UnprocessedItems, throttling, transient
//! failures and bad items each get the treatment they need.

use std::time::Duration;

use aws_sdk_dynamodb::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_dynamodb::operation::batch_write_item::BatchWriteItemError;
use aws_sdk_dynamodb::types::ThrottlingReason;
use rand::Rng;

/// A failed BatchWriteItem call, by what the writer does next.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WriteError {
    /// DynamoDB refused for capacity: back off, retry the same items.
    #[error("throttled ({reason}): {message}")]
    Throttled {
        reason: &'static str,
        message: String,
    },
    /// Transient (5xx, timeout, connection): back off, retry.
    #[error("transient failure ({cause}): {message}")]
    Retriable {
        cause: &'static str,
        message: String,
    },
    /// Something in the request is invalid: split the batch to find the item.
    #[error("rejected by DynamoDB: {message}")]
    Validation { message: String },
    /// Neither capacity nor transient (credentials, missing table): retried a
    /// bounded number of times, then dead-lettered.
    #[error("fatal error: {message}")]
    Fatal { message: String },
}

impl WriteError {
    /// Label for `retries_total{cause}`.
    pub fn retry_cause(&self) -> &'static str {
        match self {
            WriteError::Throttled { .. } => "throttled",
            WriteError::Retriable { cause, .. } => cause,
            WriteError::Validation { .. } | WriteError::Fatal { .. } => "fatal",
        }
    }

    /// Label for `batches_total{outcome}`.
    pub fn outcome(&self) -> &'static str {
        match self {
            WriteError::Throttled { .. } => "throttled",
            WriteError::Retriable { .. } => "retriable",
            WriteError::Validation { .. } => "validation",
            WriteError::Fatal { .. } => "fatal",
        }
    }
}

/// Classifies an SDK error of BatchWriteItem.
pub fn classify<R>(err: &SdkError<BatchWriteItemError, R>) -> WriteError
where
    R: std::fmt::Debug,
{
    match err {
        SdkError::ServiceError(se) => classify_service(se.err()),
        SdkError::TimeoutError(_) => WriteError::Retriable {
            cause: "timeout",
            message: "request timed out".to_owned(),
        },
        SdkError::DispatchFailure(d) => {
            let cause = if d.is_timeout() {
                "timeout"
            } else {
                "connection"
            };
            WriteError::Retriable {
                cause,
                message: format!("{:?}", d.as_connector_error()),
            }
        }
        SdkError::ResponseError(r) => WriteError::Retriable {
            cause: "server_error",
            message: format!("unparseable response: {r:?}"),
        },
        SdkError::ConstructionFailure(c) => WriteError::Fatal {
            message: format!("cannot build request: {c:?}"),
        },
        other => WriteError::Retriable {
            cause: "connection",
            message: format!("{other:?}"),
        },
    }
}

fn classify_service(e: &BatchWriteItemError) -> WriteError {
    let message = e
        .message()
        .filter(|m| !m.is_empty())
        .map(str::to_owned)
        .unwrap_or_else(|| e.to_string());
    let reasons: Vec<&str> = match e {
        BatchWriteItemError::ProvisionedThroughputExceededException(x) => {
            reasons(x.throttling_reasons())
        }
        BatchWriteItemError::ThrottlingException(x) => reasons(x.throttling_reasons()),
        BatchWriteItemError::RequestLimitExceeded(x) => reasons(x.throttling_reasons()),
        _ => Vec::new(),
    };
    // The typed variants name their code even when the metadata does not.
    let code = match e {
        BatchWriteItemError::ProvisionedThroughputExceededException(_) => {
            "ProvisionedThroughputExceededException"
        }
        BatchWriteItemError::ThrottlingException(_) => "ThrottlingException",
        BatchWriteItemError::RequestLimitExceeded(_) => "RequestLimitExceeded",
        BatchWriteItemError::InternalServerError(_) => "InternalServerError",
        BatchWriteItemError::ReplicatedWriteConflictException(_) => {
            "ReplicatedWriteConflictException"
        }
        BatchWriteItemError::ItemCollectionSizeLimitExceededException(_) => {
            "ItemCollectionSizeLimitExceededException"
        }
        BatchWriteItemError::ResourceNotFoundException(_) => "ResourceNotFoundException",
        BatchWriteItemError::InvalidEndpointException(_) => "InvalidEndpointException",
        _ => e.code().unwrap_or_default(),
    };
    classify_code(code, message, &reasons)
}

fn reasons(list: &[ThrottlingReason]) -> Vec<&str> {
    list.iter().filter_map(ThrottlingReason::reason).collect()
}

/// Classifies an error by its DynamoDB error code (the part of `__type`
/// after `#`) and the `reason`s of its ThrottlingReasons: the one table
/// both request paths use. When every reason names a key range (one hot
/// partition) rather than the table or account, the throttle's reason is
/// `key_range`: not a signal to slow the whole table.
pub fn classify_code(code: &str, message: String, reasons: &[&str]) -> WriteError {
    let key_range = !reasons.is_empty() && reasons.iter().all(|r| r.contains("KeyRange"));
    let throttled = |reason: &'static str, message: String| WriteError::Throttled {
        reason: if key_range { "key_range" } else { reason },
        message,
    };
    match code {
        "ProvisionedThroughputExceededException" => {
            throttled("provisioned_throughput_exceeded", message)
        }
        "ThrottlingException" | "ThrottlingError" | "TooManyRequestsException" => {
            throttled("throttling", message)
        }
        "RequestLimitExceeded" => throttled("request_limit_exceeded", message),
        "ValidationException"
        | "SerializationException"
        | "ItemCollectionSizeLimitExceededException" => WriteError::Validation { message },
        "InternalFailure"
        | "InternalServerError"
        | "ServiceUnavailable"
        | "ServiceUnavailableException"
        | "ReplicatedWriteConflictException" => WriteError::Retriable {
            cause: "server_error",
            message,
        },
        "" => WriteError::Fatal {
            message: format!("unknown error: {message}"),
        },
        code => WriteError::Fatal {
            message: format!("{code}: {message}"),
        },
    }
}

/// Exponential backoff with full jitter: uniform in `[0, min(max, base × 2^attempt)]`.
#[derive(Debug, Clone, Copy)]
pub struct Backoff {
    pub base: Duration,
    pub max: Duration,
}

impl Backoff {
    /// Upper bound of the delay before retry number `attempt` (0-based).
    pub fn ceiling(&self, attempt: u32) -> Duration {
        let factor = 1u32.checked_shl(attempt.min(20)).unwrap_or(u32::MAX);
        self.base.saturating_mul(factor).min(self.max)
    }

    /// A random delay for retry number `attempt`.
    pub fn delay(&self, attempt: u32, rng: &mut impl Rng) -> Duration {
        let ceiling = self.ceiling(attempt);
        Duration::from_nanos(rng.random_range(0..=ceiling.as_nanos() as u64))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_sdk_dynamodb::error::ErrorMetadata;
    use aws_sdk_dynamodb::types::error::{
        InternalServerError, ProvisionedThroughputExceededException, ResourceNotFoundException,
        ThrottlingException,
    };
    use aws_smithy_runtime_api::http::{Response, StatusCode};
    use aws_smithy_types::body::SdkBody;

    fn service(e: BatchWriteItemError, status: u16) -> SdkError<BatchWriteItemError, Response> {
        let status = StatusCode::try_from(status).expect("status");
        SdkError::service_error(e, Response::new(status, SdkBody::empty()))
    }

    fn generic(code: &str) -> BatchWriteItemError {
        BatchWriteItemError::generic(ErrorMetadata::builder().code(code).message("m").build())
    }

    #[test]
    fn typed_errors_are_classified() {
        let pte = BatchWriteItemError::ProvisionedThroughputExceededException(
            ProvisionedThroughputExceededException::builder()
                .message("slow down")
                .build(),
        );
        match classify(&service(pte, 400)) {
            WriteError::Throttled { reason, message } => {
                assert_eq!(reason, "provisioned_throughput_exceeded");
                assert!(message.contains("slow down"), "{message}");
            }
            other => panic!("{other:?}"),
        }
        let thr = BatchWriteItemError::ThrottlingException(
            ThrottlingException::builder().message("t").build(),
        );
        assert!(matches!(
            classify(&service(thr, 400)),
            WriteError::Throttled {
                reason: "throttling",
                ..
            }
        ));
        let ise = BatchWriteItemError::InternalServerError(
            InternalServerError::builder().message("x").build(),
        );
        assert!(matches!(
            classify(&service(ise, 500)),
            WriteError::Retriable {
                cause: "server_error",
                ..
            }
        ));
        let rnf = BatchWriteItemError::ResourceNotFoundException(
            ResourceNotFoundException::builder().message("gone").build(),
        );
        assert!(matches!(
            classify(&service(rnf, 400)),
            WriteError::Fatal { .. }
        ));
    }

    #[test]
    fn key_range_throttling_is_told_apart_from_table_throttling() {
        let reason = |r: &str| {
            ThrottlingReason::builder()
                .reason(r)
                .resource("arn:aws:dynamodb:us-east-1:1:table/T")
                .build()
        };
        let hot = BatchWriteItemError::ProvisionedThroughputExceededException(
            ProvisionedThroughputExceededException::builder()
                .message("m")
                .throttling_reasons(reason("TableWriteKeyRangeThroughputExceeded"))
                .build(),
        );
        assert!(matches!(
            classify(&service(hot, 400)),
            WriteError::Throttled {
                reason: "key_range",
                ..
            }
        ));
        let table = BatchWriteItemError::ThrottlingException(
            ThrottlingException::builder()
                .message("m")
                .throttling_reasons(reason("TableWriteKeyRangeThroughputExceeded"))
                .throttling_reasons(reason("TableWriteProvisionedThroughputExceeded"))
                .build(),
        );
        assert!(matches!(
            classify(&service(table, 400)),
            WriteError::Throttled {
                reason: "throttling",
                ..
            }
        ));
    }

    #[test]
    fn unmodeled_codes_are_classified_by_code() {
        assert_eq!(
            classify(&service(generic("ValidationException"), 400)),
            WriteError::Validation {
                message: "m".into()
            }
        );
        assert!(matches!(
            classify(&service(generic("ThrottlingException"), 400)),
            WriteError::Throttled { .. }
        ));
        assert!(matches!(
            classify(&service(generic("ServiceUnavailable"), 503)),
            WriteError::Retriable { .. }
        ));
        assert!(matches!(
            classify(&service(generic("UnrecognizedClientException"), 400)),
            WriteError::Fatal { .. }
        ));
        assert!(matches!(
            classify(&service(generic("AccessDeniedException"), 400)),
            WriteError::Fatal { .. }
        ));
    }

    #[test]
    fn timeouts_are_retriable() {
        let e: SdkError<BatchWriteItemError, Response> = SdkError::timeout_error("slow");
        assert!(matches!(
            classify(&e),
            WriteError::Retriable {
                cause: "timeout",
                ..
            }
        ));
    }

    #[test]
    fn backoff_stays_within_full_jitter_bounds() {
        let b = Backoff {
            base: Duration::from_millis(25),
            max: Duration::from_secs(5),
        };
        assert_eq!(b.ceiling(0), Duration::from_millis(25));
        assert_eq!(b.ceiling(3), Duration::from_millis(200));
        assert_eq!(b.ceiling(10), Duration::from_secs(5));
        assert_eq!(b.ceiling(u32::MAX), Duration::from_secs(5));
        let mut rng = rand::rng();
        for attempt in 0..30 {
            for _ in 0..50 {
                assert!(b.delay(attempt, &mut rng) <= b.ceiling(attempt));
            }
        }
        let spread: std::collections::HashSet<_> = (0..50).map(|_| b.delay(8, &mut rng)).collect();
        assert!(spread.len() > 10, "delays are jittered");
    }
}
