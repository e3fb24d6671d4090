//! SigV4 signing for the direct request path: the credentials come from
//! the same provider the SDK client uses (the standard AWS chain, or the
//! static local ones for a loopback endpoint), cached here until five
//! minutes before they expire. The signing time is DynamoDB's clock as
//! its responses tell it ([`super::clock`]), not this host's.
//!
//! The gateway's BatchWriteItem requests all have one shape (`POST /` with
//! content-type, host and x-amz-target), so they are signed here with the
//! signing key derived once per day; `aws-sigv4` signs anything else (an
//! endpoint with a path) and checks this code in the tests: same inputs,
//! same Authorization header. `aws-sigv4` builds the canonical request
//! through several allocating layers and derives the key on every call,
//! which cost about 7 % of the gateway's CPU under NDJSON load.

use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use aws_credential_types::provider::{ProvideCredentials, SharedCredentialsProvider};
use aws_credential_types::Credentials;
use aws_sigv4::http_request::{sign, SignableBody, SignableRequest, SigningSettings};
use aws_smithy_runtime_api::client::identity::Identity;
use hmac::{Hmac, KeyInit, Mac};
use sha2::{Digest, Sha256};

use super::clock::ServerClock;
use crate::sink::dynamodb::retry::WriteError;

/// Credentials this close to their expiry are fetched again.
const REFRESH_BEFORE: Duration = Duration::from_secs(300);

/// Signs DynamoDB requests for one region.
#[derive(Clone)]
pub struct Signer {
    provider: Option<SharedCredentialsProvider>,
    cached: Arc<Mutex<Option<Credentials>>>,
    region: Arc<str>,
    day_key: Arc<Mutex<Option<DayKey>>>,
    clock: Arc<ServerClock>,
}

/// The signing key of one day and secret.
struct DayKey {
    /// `YYYYMMDD`
    day: String,
    secret: String,
    key: [u8; 32],
}

type HmacSha256 = Hmac<Sha256>;

fn hmac(key: &[u8], data: &[u8]) -> [u8; 32] {
    // HMAC takes keys of any length.
    let mut mac = <HmacSha256 as KeyInit>::new_from_slice(key)
        .unwrap_or_else(|_| <HmacSha256 as KeyInit>::new(&Default::default()));
    mac.update(data);
    mac.finalize().into_bytes().into()
}

/// Appends a digest as lower-case hex (`hex::encode` collects a `String`
/// through a `char` iterator: about 2,000 instructions per digest, three
/// digests per request).
fn push_hex(out: &mut String, digest: &[u8; 32]) {
    let mut hex = [0u8; 64];
    // 32 bytes always fit 64 digits, which are ASCII.
    let _ = hex::encode_to_slice(digest, &mut hex);
    out.push_str(std::str::from_utf8(&hex).unwrap_or_default());
}

/// Appends `value` in decimal, zero-padded to `width` digits.
fn push_padded(out: &mut String, value: u64, width: usize) {
    let mut digits = itoa::Buffer::new();
    let text = digits.format(value);
    for _ in text.len()..width {
        out.push('0');
    }
    out.push_str(text);
}

/// `YYYYMMDDTHHMMSSZ` of `secs` since the epoch (written without
/// `core::fmt`, whose padded integers cost ≈ 2,000 instructions here).
fn amz_date(secs: u64) -> String {
    let days = secs / 86_400;
    let rem = secs % 86_400;
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    // From the epoch on, every field is positive.
    let field = |v: i64| u64::try_from(v).unwrap_or_default();
    let mut out = String::with_capacity(16);
    push_padded(&mut out, field(year), 4);
    push_padded(&mut out, field(month), 2);
    push_padded(&mut out, field(day), 2);
    out.push('T');
    push_padded(&mut out, rem / 3_600, 2);
    push_padded(&mut out, rem % 3_600 / 60, 2);
    push_padded(&mut out, rem % 60, 2);
    out.push('Z');
    out
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
            day_key: Arc::new(Mutex::new(None)),
            clock: Arc::default(),
        }
    }

    /// DynamoDB's clock as its responses tell it; requests are signed
    /// with its time.
    pub fn clock(&self) -> &ServerClock {
        &self.clock
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
        let creds = self.credentials().await?;
        let now = self.clock.now();
        if !self.sign_batch_write(&creds, request, body, now) {
            self.sign_general(creds, request, body, now)?;
        }
        Ok(())
    }

    /// Signs with `aws-sigv4`.
    fn sign_general(
        &self,
        creds: Credentials,
        request: &mut hyper::Request<()>,
        body: &[u8],
        now: SystemTime,
    ) -> Result<(), WriteError> {
        let identity: Identity = creds.into();
        let fatal = |e: &dyn std::fmt::Display| WriteError::Fatal {
            message: format!("cannot sign the request: {e}"),
        };
        let params = aws_sigv4::sign::v4::SigningParams::builder()
            .identity(&identity)
            .region(&self.region)
            .name("dynamodb")
            .time(now)
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

    /// Signs a request of the gateway's one shape (`POST /`, exactly the
    /// headers content-type, host and x-amz-target); false, untouched, for
    /// any other.
    fn sign_batch_write(
        &self,
        creds: &Credentials,
        request: &mut hyper::Request<()>,
        body: &[u8],
        now: SystemTime,
    ) -> bool {
        let headers = request.headers();
        let text = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
        let (Some(content_type), Some(host), Some(target)) =
            (text("content-type"), text("host"), text("x-amz-target"))
        else {
            return false;
        };
        let plain = |v: &str| {
            !v.is_empty() && !v.starts_with(' ') && !v.ends_with(' ') && !v.contains("  ")
        };
        if headers.len() != 3
            || request.method() != hyper::Method::POST
            || request.uri().path() != "/"
            || request.uri().query().is_some()
            || ![content_type, host, target].into_iter().all(plain)
        {
            return false;
        }
        let secs = now.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
        let date_time = amz_date(secs);
        let day = &date_time[..8];
        let token = creds.session_token();
        let signed = if token.is_some() {
            "content-type;host;x-amz-date;x-amz-security-token;x-amz-target"
        } else {
            "content-type;host;x-amz-date;x-amz-target"
        };
        // Built with `push_str` (`core::fmt` costs ≈ 1,000 instructions per
        // `format!` of a few pieces, five per request).
        let mut canonical = String::with_capacity(320 + token.map_or(0, str::len));
        for part in [
            "POST\n/\n\ncontent-type:",
            content_type,
            "\nhost:",
            host,
            "\nx-amz-date:",
            &date_time,
            "\n",
        ] {
            canonical.push_str(part);
        }
        if let Some(token) = token {
            canonical.push_str("x-amz-security-token:");
            canonical.push_str(token);
            canonical.push('\n');
        }
        for part in ["x-amz-target:", target, "\n\n", signed, "\n"] {
            canonical.push_str(part);
        }
        push_hex(&mut canonical, &Sha256::digest(body).into());
        let mut scope = String::with_capacity(48 + self.region.len());
        for part in [day, "/", &self.region, "/dynamodb/aws4_request"] {
            scope.push_str(part);
        }
        let mut to_sign = String::with_capacity(160);
        for part in ["AWS4-HMAC-SHA256\n", &date_time, "\n", &scope, "\n"] {
            to_sign.push_str(part);
        }
        push_hex(&mut to_sign, &Sha256::digest(canonical.as_bytes()).into());
        let key = self.day_key(day, creds.secret_access_key());
        let mut authorization = String::with_capacity(256);
        for part in [
            "AWS4-HMAC-SHA256 Credential=",
            creds.access_key_id(),
            "/",
            &scope,
            ", SignedHeaders=",
            signed,
            ", Signature=",
        ] {
            authorization.push_str(part);
        }
        push_hex(&mut authorization, &hmac(&key, to_sign.as_bytes()));
        let headers = request.headers_mut();
        let value = |v: &str| hyper::header::HeaderValue::from_str(v).ok();
        let (Some(date_value), Some(auth_value)) = (value(&date_time), value(&authorization))
        else {
            return false;
        };
        let token_value = match token {
            Some(t) => match value(t) {
                Some(v) => Some(v),
                None => return false,
            },
            None => None,
        };
        headers.insert("x-amz-date", date_value);
        if let Some(v) = token_value {
            headers.insert("x-amz-security-token", v);
        }
        headers.insert(hyper::header::AUTHORIZATION, auth_value);
        true
    }

    /// The signing key for `day` and `secret`, derived once per day.
    fn day_key(&self, day: &str, secret: &str) -> [u8; 32] {
        let mut cached = self
            .day_key
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(k) = cached.as_ref() {
            if k.day == day && k.secret == secret {
                return k.key;
            }
        }
        let k_date = hmac(format!("AWS4{secret}").as_bytes(), day.as_bytes());
        let k_region = hmac(&k_date, self.region.as_bytes());
        let k_service = hmac(&k_region, b"dynamodb");
        let key = hmac(&k_service, b"aws4_request");
        *cached = Some(DayKey {
            day: day.to_owned(),
            secret: secret.to_owned(),
            key,
        });
        key
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

    fn batch_write_request() -> hyper::Request<()> {
        hyper::Request::post("http://127.0.0.1:8000/")
            .header("host", "127.0.0.1:8000")
            .header("content-type", "application/x-amz-json-1.0")
            .header("x-amz-target", "DynamoDB_20120810.BatchWriteItem")
            .body(())
            .expect("request")
    }

    #[test]
    fn the_batch_write_signature_is_the_one_aws_sigv4_computes() {
        let body = br#"{"RequestItems":{"T":[{"PutRequest":{"Item":{"k":{"S":"v"}}}}]}}"#;
        for token in [None, Some("session-token")] {
            for (secs, region) in [
                (1_764_326_400, "eu-west-1"),
                (951_782_400, "us-east-1"),
                (4_107_542_399, "ap-south-2"),
            ] {
                let creds = Credentials::new(
                    "AKIDEXAMPLE",
                    "wJalrXUtnFEMI/K7MDENG",
                    token.map(str::to_owned),
                    None,
                    "t",
                );
                let signer = Signer::new(None, region);
                let now = UNIX_EPOCH + Duration::from_secs(secs);
                let mut ours = batch_write_request();
                assert!(signer.sign_batch_write(&creds, &mut ours, body, now));
                let mut theirs = batch_write_request();
                signer
                    .sign_general(creds.clone(), &mut theirs, body, now)
                    .expect("aws-sigv4 signs");
                for header in ["authorization", "x-amz-date", "x-amz-security-token"] {
                    assert_eq!(
                        ours.headers().get(header),
                        theirs.headers().get(header),
                        "{header} at {secs} in {region} with token {token:?}"
                    );
                }
                // The cached day key serves the next request of the day.
                let mut again = batch_write_request();
                assert!(signer.sign_batch_write(&creds, &mut again, body, now));
                assert_eq!(
                    again.headers().get("authorization"),
                    theirs.headers().get("authorization")
                );
            }
        }
    }

    #[test]
    fn other_request_shapes_are_left_to_aws_sigv4() {
        let creds = Credentials::new("AKID", "secret", None, None, "t");
        let signer = Signer::new(None, "us-east-1");
        let mut with_path = hyper::Request::post("http://127.0.0.1:8000/prefix")
            .header("host", "127.0.0.1:8000")
            .header("content-type", "application/x-amz-json-1.0")
            .header("x-amz-target", "DynamoDB_20120810.BatchWriteItem")
            .body(())
            .expect("request");
        assert!(!signer.sign_batch_write(&creds, &mut with_path, b"{}", SystemTime::now()));
        assert!(!with_path.headers().contains_key("authorization"));
        let mut extra = batch_write_request();
        extra
            .headers_mut()
            .insert("x-extra", hyper::header::HeaderValue::from_static("1"));
        assert!(!signer.sign_batch_write(&creds, &mut extra, b"{}", SystemTime::now()));
    }

    #[test]
    fn amz_dates_are_civil_utc() {
        assert_eq!(amz_date(0), "19700101T000000Z");
        assert_eq!(amz_date(951_782_400), "20000229T000000Z");
        assert_eq!(amz_date(1_764_288_000 + 3_723), "20251128T010203Z");
        assert_eq!(amz_date(4_107_542_399), "21000228T235959Z");
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
