//! Device security at the MQTT front, before rumqttd sees a packet:
//! username/password checked against SHA-256 digests from `[mqtt.users]`,
//! and a per-username topic ACL (`sensors/{username}/#`) checked on every
//! PUBLISH.
//!
//! Digests, not passwords, live in the config: device secrets are meant to
//! be generated high-entropy tokens (as API keys are), for which one
//! SHA-256 is the usual storage; a slow KDF would buy nothing there and
//! cost every reconnect storm. Comparison is constant-time.

use std::collections::HashMap;

use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::config::file::MqttSection;
use crate::config::SHA256_PREFIX;

/// `sha256:<hex>` of `password`, the form `[mqtt.users]` stores.
pub fn digest(password: &str) -> String {
    format!(
        "{SHA256_PREFIX}{}",
        hex::encode(Sha256::digest(password.as_bytes()))
    )
}

/// Why a CONNECT is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    /// No or unknown username, or a wrong password (CONNACK code 4).
    #[error("bad username or password")]
    BadCredentials,
}

/// Credentials and ACL, built once from the validated config.
#[derive(Debug, Default)]
pub struct DeviceAuth {
    users: HashMap<String, [u8; 32]>,
    acl: Vec<Vec<String>>,
}

impl DeviceAuth {
    pub fn new(m: &MqttSection) -> Self {
        let users = m
            .users
            .iter()
            .filter_map(|(user, hash)| {
                let hex_digest = hash.strip_prefix(SHA256_PREFIX)?;
                let mut bytes = [0u8; 32];
                hex::decode_to_slice(hex_digest, &mut bytes).ok()?;
                Some((user.clone(), bytes))
            })
            .collect();
        let acl = m
            .acl
            .iter()
            .map(|f| f.split('/').map(str::to_owned).collect())
            .collect();
        Self { users, acl }
    }

    /// True when devices must log in.
    pub fn required(&self) -> bool {
        !self.users.is_empty()
    }

    /// Checks a CONNECT's credentials; anonymous devices pass when no users are configured.
    pub fn check(&self, username: Option<&str>, password: Option<&[u8]>) -> Result<(), AuthError> {
        if !self.required() {
            return Ok(());
        }
        let (Some(user), Some(pass)) = (username, password) else {
            return Err(AuthError::BadCredentials);
        };
        let Some(expected) = self.users.get(user) else {
            return Err(AuthError::BadCredentials);
        };
        let actual = Sha256::digest(pass);
        if bool::from(actual.as_slice().ct_eq(expected)) {
            Ok(())
        } else {
            Err(AuthError::BadCredentials)
        }
    }

    /// True when `username` may publish to `topic` (always, without an ACL).
    pub fn may_publish(&self, username: Option<&str>, topic: &str) -> bool {
        if self.acl.is_empty() {
            return true;
        }
        let Some(user) = username else {
            return false;
        };
        self.acl
            .iter()
            .any(|filter| filter_matches(filter, user, topic))
    }
}

/// MQTT filter matching with `{username}` standing for one whole level.
fn filter_matches(filter: &[String], user: &str, topic: &str) -> bool {
    let mut levels = topic.split('/');
    for (i, f) in filter.iter().enumerate() {
        if f == "#" && i + 1 == filter.len() {
            return true;
        }
        let Some(level) = levels.next() else {
            return false;
        };
        let ok = match f.as_str() {
            "+" => true,
            "{username}" => level == user,
            literal => level == literal,
        };
        if !ok {
            return false;
        }
    }
    levels.next().is_none()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn auth(users: &[(&str, &str)], acl: &[&str]) -> DeviceAuth {
        let mut m = MqttSection::default();
        for (u, p) in users {
            m.users.insert((*u).to_owned(), digest(p));
        }
        m.acl = acl.iter().map(|s| (*s).to_owned()).collect();
        DeviceAuth::new(&m)
    }

    #[test]
    fn digest_is_sha256_hex() {
        assert_eq!(
            digest("abc"),
            "sha256:ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }

    #[test]
    fn credentials() {
        let open = auth(&[], &[]);
        assert_eq!(open.check(None, None), Ok(()));
        let a = auth(&[("dev1", "s3cret")], &[]);
        assert_eq!(a.check(Some("dev1"), Some(b"s3cret")), Ok(()));
        assert_eq!(
            a.check(Some("dev1"), Some(b"wrong")),
            Err(AuthError::BadCredentials)
        );
        assert_eq!(
            a.check(Some("dev2"), Some(b"s3cret")),
            Err(AuthError::BadCredentials)
        );
        assert_eq!(a.check(None, None), Err(AuthError::BadCredentials));
        assert_eq!(a.check(Some("dev1"), None), Err(AuthError::BadCredentials));
    }

    #[test]
    fn acl_binds_topics_to_the_username() {
        let a = auth(
            &[("dev1", "x")],
            &["sensors/{username}/#", "carts/{username}"],
        );
        assert!(a.may_publish(Some("dev1"), "sensors/dev1/telemetry"));
        assert!(a.may_publish(Some("dev1"), "sensors/dev1"));
        assert!(a.may_publish(Some("dev1"), "carts/dev1"));
        assert!(!a.may_publish(Some("dev1"), "sensors/dev2/telemetry"));
        assert!(!a.may_publish(Some("dev1"), "carts/dev1/x"));
        assert!(!a.may_publish(Some("dev1"), "activity/dev1"));
        assert!(!a.may_publish(None, "sensors/dev1/telemetry"));
        assert!(auth(&[], &[]).may_publish(None, "anything/at/all"));
    }
}
