//! The AWS SDK configuration the gateway uses (for the SDK client and the
//! direct request path's credentials): SDK retries
//! disabled (only our writer retries), per-attempt timeouts, and
//! credentials: with no endpoint, the standard AWS chain (env, profile,
//! web identity, ECS/EC2 roles); with a loopback endpoint (dynamo-sim,
//! dynalite, DynamoDB Local) static dummy credentials; with any other
//! endpoint, the standard chain again.

use std::time::Duration;

use aws_config::retry::RetryConfig;
use aws_config::timeout::TimeoutConfig;
use aws_config::{BehaviorVersion, Region, SdkConfig};
use aws_credential_types::Credentials;

use crate::config::ValidatedConfig;

/// The SDK configuration for `config.dynamodb` (region, endpoint,
/// credentials, timeouts): the SDK client's and the direct path's.
pub async fn load(config: &ValidatedConfig) -> SdkConfig {
    let d = &config.file.dynamodb;
    let mut loader = aws_config::defaults(BehaviorVersion::latest())
        .region(Region::new(d.region.clone()))
        .retry_config(RetryConfig::disabled())
        .timeout_config(
            TimeoutConfig::builder()
                .connect_timeout(Duration::from_secs(3).min(d.request_timeout))
                .operation_attempt_timeout(d.request_timeout)
                .operation_timeout(d.request_timeout)
                .build(),
        );
    if let Some(endpoint) = &d.endpoint {
        loader = loader.endpoint_url(endpoint.clone());
        if is_loopback(endpoint) {
            loader = loader.credentials_provider(Credentials::new(
                "local",
                "local",
                None,
                None,
                "dynamo-ingest-local",
            ));
        }
    }
    loader.load().await
}

/// True for `http(s)://localhost`, `127.x.x.x` and `[::1]` endpoints.
pub fn is_loopback(endpoint: &str) -> bool {
    endpoint
        .parse::<hyper::Uri>()
        .ok()
        .and_then(|u| u.host().map(str::to_owned))
        .is_some_and(|h| {
            h == "localhost"
                || h == "[::1]"
                || h.parse::<std::net::Ipv4Addr>()
                    .is_ok_and(|ip| ip.is_loopback())
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_endpoints_are_recognised() {
        assert!(is_loopback("http://127.0.0.1:8000"));
        assert!(is_loopback("http://localhost:4567"));
        assert!(is_loopback("http://[::1]:8000"));
        assert!(!is_loopback("https://dynamodb.us-east-1.amazonaws.com"));
        assert!(!is_loopback("http://10.0.0.5:8000"));
    }
}
