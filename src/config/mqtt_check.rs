//! Checks of `[mqtt]` that serde cannot express: credential hash format,
//! ACL filters, and an `[mqtt.external]` section when that mode is chosen.

use super::file::{MqttMode, MqttSection};
use super::ConfigError;

/// Prefix of a stored device password digest.
pub const SHA256_PREFIX: &str = "sha256:";

pub(super) fn check(m: &MqttSection) -> Result<(), ConfigError> {
    let err = |key: String, message: &str| ConfigError::Invalid {
        key,
        message: message.to_owned(),
    };
    for (user, hash) in &m.users {
        let hex = hash.strip_prefix(SHA256_PREFIX).unwrap_or("");
        if hex.len() != 64 || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(err(
                format!("mqtt.users.{user}"),
                "must be `sha256:` followed by the 64 hex digits of the password's SHA-256 (see `dynamo-ingest hash-password`)",
            ));
        }
    }
    for (i, filter) in m.acl.iter().enumerate() {
        let levels: Vec<&str> = filter.split('/').collect();
        let hash_ok = levels
            .iter()
            .enumerate()
            .all(|(n, l)| !l.contains('#') || (*l == "#" && n + 1 == levels.len()));
        let plus_ok = levels.iter().all(|l| !l.contains('+') || *l == "+");
        if filter.is_empty() || !hash_ok || !plus_ok {
            return Err(err(
                format!("mqtt.acl[{i}]"),
                "must be an MQTT topic filter (`+` and `#` fill whole levels, `#` only last)",
            ));
        }
    }
    if !m.acl.is_empty() && m.users.is_empty() {
        return Err(err(
            "mqtt.acl".to_owned(),
            "needs mqtt.users: the ACL is per username",
        ));
    }
    if m.max_payload_bytes.as_u64() < 1024 || m.max_payload_bytes.as_u64() > 256 * 1024 * 1024 {
        return Err(err(
            "mqtt.max_payload_bytes".to_owned(),
            "must be between 1KiB and 256MiB (MQTT's limit)",
        ));
    }
    if m.overflow_max_bytes < m.max_payload_bytes {
        return Err(err(
            "mqtt.overflow_max_bytes".to_owned(),
            "must hold at least one message of mqtt.max_payload_bytes",
        ));
    }
    if m.connect_timeout.is_zero() {
        return Err(err(
            "mqtt.connect_timeout".to_owned(),
            "must be greater than zero",
        ));
    }
    match (&m.mode, &m.external) {
        (MqttMode::External, None) => {
            return Err(err(
                "mqtt.external".to_owned(),
                "is required when mqtt.mode = \"external\"",
            ))
        }
        (MqttMode::External, Some(x)) => {
            if x.host.trim().is_empty() || x.client_id.trim().is_empty() {
                return Err(err(
                    "mqtt.external".to_owned(),
                    "host and client_id must not be empty",
                ));
            }
            if x.group.is_empty() || x.group.contains(['/', '+', '#']) {
                return Err(err(
                    "mqtt.external.group".to_owned(),
                    "must be a non-empty name without `/`, `+` or `#`",
                ));
            }
        }
        _ => {}
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use crate::config::{Overrides, ValidatedConfig, DEFAULT_TOML};

    fn load(from: &str, to: &str) -> Result<ValidatedConfig, String> {
        assert!(DEFAULT_TOML.contains(from), "{from}");
        ValidatedConfig::from_toml("t", &DEFAULT_TOML.replace(from, to), &Overrides::default())
            .map_err(|e| e.to_string())
    }

    #[test]
    fn default_topics_are_valid() {
        let c = load("", "").expect("valid");
        let topics: Vec<_> = c
            .streams
            .iter()
            .filter_map(|s| Some(s.mqtt_topic.as_ref()?.pattern().to_owned()))
            .collect();
        assert_eq!(
            topics,
            [
                "activity/{user_id}",
                "carts/{user_id}",
                "sensors/{device_id}/telemetry"
            ]
        );
    }

    #[test]
    fn bad_mqtt_settings_name_their_key() {
        let e = load(
            "# users = { \"D001\" = \"sha256:...\" }",
            "users = { \"D001\" = \"plain-password\" }",
        )
        .unwrap_err();
        assert!(e.contains("mqtt.users.D001"), "{e}");
        let e = load("# acl = [", "acl = [\"sensors/#/x\"]\n# acl = [").unwrap_err();
        assert!(e.contains("mqtt.acl[0]"), "{e}");
        let e = load("mode = \"embedded\"", "mode = \"external\"").unwrap_err();
        assert!(e.contains("mqtt.external"), "{e}");
        let e = load(
            "mqtt_topic = \"carts/{user_id}\"",
            "mqtt_topic = \"activity/{cart_user}\"",
        )
        .unwrap_err();
        assert!(
            e.contains("streams.cart.mqtt_topic") || e.contains("streams.activity.mqtt_topic"),
            "{e}"
        );
        let e = load(
            "mqtt_topic = \"carts/{user_id}\"",
            "mqtt_topic = \"carts/+\"",
        )
        .unwrap_err();
        assert!(e.contains("mqtt_topic"), "{e}");
    }
}
