//! API keys: the first check a request meets after its route is resolved,
//! before its body is read.
//!
//! Keys arrive as `Authorization: Bearer <key>`. The config holds only each
//! key's SHA-256: keys are long random tokens, so a fast unsalted hash is
//! enough (nobody can search a 256-bit space), and a leaked config file
//! gives no usable key. Lookup is by digest, so comparing candidates leaks
//! nothing about a valid key.
//!
//! Invariants: a missing or unknown key is 401 (with `WWW-Authenticate:
//! Bearer`), a known key on a stream it may not write is 403; a refused
//! request stores nothing.

use std::collections::HashMap;
use std::sync::Arc;

use hyper::header::AUTHORIZATION;
use hyper::HeaderMap;
use sha2::{Digest, Sha256};

use crate::config::{ApiKey, StreamGrant};

/// The configured keys, by digest.
#[derive(Debug, Default)]
pub struct ApiKeys {
    by_digest: HashMap<[u8; 32], Grant>,
}

#[derive(Debug)]
struct Grant {
    name: Arc<str>,
    streams: StreamGrant,
}

/// A request that carried a valid key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    /// The key's configured name.
    pub name: Arc<str>,
}

/// Why a request is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    /// No `Authorization: Bearer` header: 401.
    #[error("this route needs an API key: send `Authorization: Bearer <key>`")]
    Missing,
    /// A header that is not a Bearer token, or a token no key matches: 401.
    #[error("the API key is not valid")]
    Invalid,
    /// A valid key that may not write this stream: 403.
    #[error("API key `{key}` may not write stream `{stream}`")]
    Forbidden { key: Arc<str>, stream: String },
}

impl ApiKeys {
    /// Builds the lookup table from the validated config.
    pub fn new(keys: &[ApiKey]) -> Self {
        Self {
            by_digest: keys
                .iter()
                .map(|k| {
                    (
                        k.sha256,
                        Grant {
                            name: k.name.clone(),
                            streams: k.streams.clone(),
                        },
                    )
                })
                .collect(),
        }
    }

    /// The caller named by the request's key, if the key is valid (for
    /// rate-limit bucketing on open routes too).
    pub fn identify(&self, headers: &HeaderMap) -> Result<Caller, AuthError> {
        let token = bearer_token(headers)?;
        let grant = self
            .by_digest
            .get(&digest(token.as_bytes()))
            .ok_or(AuthError::Invalid)?;
        Ok(Caller {
            name: grant.name.clone(),
        })
    }

    /// Checks that the request's key may write `stream`.
    pub fn authorize(&self, headers: &HeaderMap, stream: &str) -> Result<Caller, AuthError> {
        let token = bearer_token(headers)?;
        let grant = self
            .by_digest
            .get(&digest(token.as_bytes()))
            .ok_or(AuthError::Invalid)?;
        if !grant.streams.allows(stream) {
            return Err(AuthError::Forbidden {
                key: grant.name.clone(),
                stream: stream.to_owned(),
            });
        }
        Ok(Caller {
            name: grant.name.clone(),
        })
    }
}

/// The token of `Authorization: Bearer <token>` (scheme case-insensitive, RFC 6750).
fn bearer_token(headers: &HeaderMap) -> Result<&str, AuthError> {
    let Some(value) = headers.get(AUTHORIZATION) else {
        return Err(AuthError::Missing);
    };
    let value = value.to_str().map_err(|_| AuthError::Invalid)?;
    let (scheme, token) = value.split_once(' ').ok_or(AuthError::Invalid)?;
    let token = token.trim();
    if !scheme.eq_ignore_ascii_case("bearer") || token.is_empty() {
        return Err(AuthError::Invalid);
    }
    Ok(token)
}

fn digest(bytes: &[u8]) -> [u8; 32] {
    Sha256::digest(bytes).into()
}

/// The lower-case hex SHA-256 of `key`: what `[[http.auth.keys]] sha256` holds.
pub fn hash_key(key: &str) -> String {
    hex::encode(digest(key.as_bytes()))
}

/// A new random key: `dik_` and 43 base64url characters (256 random bits
/// from rand's thread generator, a CSPRNG seeded by the OS).
pub fn generate_key() -> String {
    use base64::Engine;
    let bytes: [u8; 32] = rand::random();
    format!(
        "dik_{}",
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use hyper::header::HeaderValue;

    fn keys() -> ApiKeys {
        let key = |name: &str, secret: &str, streams| ApiKey {
            name: Arc::from(name),
            sha256: digest(secret.as_bytes()),
            streams,
        };
        ApiKeys::new(&[
            key("ops", "secret-all", StreamGrant::All),
            key(
                "fleet",
                "secret-sensor",
                StreamGrant::Only(vec![Arc::from("sensor")]),
            ),
        ])
    }

    fn headers(auth: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(AUTHORIZATION, HeaderValue::from_str(auth).expect("header"));
        h
    }

    #[test]
    fn bearer_keys_are_checked_against_their_streams() {
        let k = keys();
        assert_eq!(
            k.authorize(&HeaderMap::new(), "sensor"),
            Err(AuthError::Missing)
        );
        assert_eq!(
            k.authorize(&headers("Bearer nope"), "sensor"),
            Err(AuthError::Invalid)
        );
        assert_eq!(
            k.authorize(&headers("Basic c2VjcmV0LWFsbA=="), "sensor"),
            Err(AuthError::Invalid)
        );
        assert_eq!(
            k.authorize(&headers("Bearer "), "x"),
            Err(AuthError::Invalid)
        );
        let ok = k
            .authorize(&headers("bearer secret-all"), "cart")
            .expect("all streams");
        assert_eq!(&*ok.name, "ops");
        assert!(k
            .authorize(&headers("Bearer secret-sensor"), "sensor")
            .is_ok());
        assert_eq!(
            k.authorize(&headers("Bearer secret-sensor"), "cart"),
            Err(AuthError::Forbidden {
                key: Arc::from("fleet"),
                stream: "cart".into()
            })
        );
    }

    #[test]
    fn hash_is_sha256_hex() {
        // Known answer: SHA-256("abc").
        assert_eq!(
            hash_key("abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }

    #[test]
    fn generated_keys_are_distinct_and_long() {
        let (a, b) = (generate_key(), generate_key());
        assert_ne!(a, b);
        assert_eq!(a.len(), 4 + 43);
        assert!(a.starts_with("dik_"));
    }
}
