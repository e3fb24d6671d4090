//! SigV4 signing for the direct request path: the credentials come from
//! the same provider the SDK client uses (the standard AWS chain, or the
//! static local ones for a loopback endpoint), cached here until five
//! minutes before they expire; each request is signed with `aws-sigv4`.

use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use aws_credential_types::provider::{ProvideCredentials, SharedCredentialsProvider};
use aws_credential_types::Credentials;
use aws_sigv4::http_request::{sign, SignableBody, SignableRequest, SigningSettings};
use aws_smithy_runtime_api::client::identity::Identity;

use crate::sink::dynamodb::retry::WriteError;

/// Credentials this close to their expiry are fetched again.
const REFRESH_BEFORE: Duration = Duration::from_secs(300);

/// Signs DynamoDB requests for one region.
#[derive(Clone)]
pub struct Signer {
    provider: Option<SharedCredentialsProvider>,
    cached: Arc<Mutex<Option<Credentials>>>,
    region: Arc<str>,
}

impl std::fmt::Debug for Signer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Signer")
            .field("region", &self.region)
            .finish_non_exhaustive()
    }
}

impl Signer {
    pub fn new(provider: Option<SharedCredentialsProvider>, region: &str) -> Self {
        Self {
            provider,
            cached: Arc::new(Mutex::new(None)),
            region: region.into(),
        }
    }

    async fn credentials(&self) -> Result<Credentials, WriteError> {
        let now = SystemTime::now();
        let fresh = |c: &Credentials| c.expiry().is_none_or(|t| t > now + REFRESH_BEFORE);
        if let Some(c) = self
            .cached
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .as_ref()
            .filter(|c| fresh(c))
        {
            return Ok(c.clone());
        }
        let Some(provider) = &self.provider else {
            return Err(WriteError::Fatal {
                message: "no AWS credentials provider is configured".to_owned(),
            });
        };
        // Concurrent callers may fetch at once after expiry: harmless.
        let creds = provider
            .provide_credentials()
            .await
            .map_err(|e| WriteError::Fatal {
                message: format!("no AWS credentials: {e}"),
            })?;
        *self
            .cached
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = Some(creds.clone());
        Ok(creds)
    }

    /// Adds `x-amz-date`, `authorization` (and `x-amz-security-token` for
    /// session credentials) to `request`, whose headers and URI are final.
    pub async fn sign(
        &self,
        request: &mut hyper::Request<()>,
        body: &[u8],
    ) -> Result<(), WriteError> {
        let identity: Identity = self.credentials().await?.into();
        let fatal = |e: &dyn std::fmt::Display| WriteError::Fatal {
            message: format!("cannot sign the request: {e}"),
        };
        let params = aws_sigv4::sign::v4::SigningParams::builder()
            .identity(&identity)
            .region(&self.region)
            .name("dynamodb")
            .time(SystemTime::now())
            .settings(SigningSettings::default())
            .build()
            .map_err(|e| fatal(&e))?
            .into();
        let uri = request.uri().to_string();
        let headers = request
            .headers()
            .iter()
            .filter_map(|(k, v)| Some((k.as_str(), v.to_str().ok()?)));
        let signable = SignableRequest::new("POST", uri, headers, SignableBody::Bytes(body))
            .map_err(|e| fatal(&e))?;
        let (instructions, _signature) =
            sign(signable, &params).map_err(|e| fatal(&e))?.into_parts();
        instructions.apply_to_request_http1x(request);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_signed_request_carries_the_v4_authorization_for_its_region_and_service() {
        let creds = Credentials::new("AKIDEXAMPLE", "secret", Some("tok".into()), None, "test");
        let signer = Signer::new(Some(SharedCredentialsProvider::new(creds)), "eu-west-1");
        let mut request = hyper::Request::post("http://127.0.0.1:8000/")
            .header("host", "127.0.0.1:8000")
            .header("x-amz-target", "DynamoDB_20120810.BatchWriteItem")
            .body(())
            .expect("request");
        signer.sign(&mut request, b"{}").await.expect("signed");
        let auth = request.headers()["authorization"].to_str().expect("ascii");
        assert!(
            auth.starts_with("AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/"),
            "{auth}"
        );
        assert!(auth.contains("/eu-west-1/dynamodb/aws4_request"), "{auth}");
        assert!(
            auth.contains("SignedHeaders=host;x-amz-date;x-amz-security-token;x-amz-target"),
            "{auth}"
        );
        assert!(request.headers().contains_key("x-amz-date"));
        assert_eq!(request.headers()["x-amz-security-token"], "tok");
    }

    #[tokio::test]
    async fn without_a_provider_signing_fails_as_fatal() {
        let signer = Signer::new(None, "us-east-1");
        let mut request = hyper::Request::post("http://127.0.0.1:8000/")
            .body(())
            .expect("request");
        assert!(matches!(
            signer.sign(&mut request, b"").await,
            Err(WriteError::Fatal { .. })
        ));
    }
}
