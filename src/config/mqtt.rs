//! `[mqtt]`: the MQTT source as written in the TOML file.
//!
//! Two modes feed the same stream router: `embedded` runs rumqttd inside the
//! gateway behind the gateway's own TCP front (connection limits, device
//! credentials, topic ACL, QoS accounting); `external` consumes a shared
//! subscription on another broker (scale-out). Cross-field checks live in
//! [`super::validate`].

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::num::NonZeroUsize;
use std::time::Duration;

use bytesize::ByteSize;
use serde::{Deserialize, Serialize};

/// Where MQTT messages come from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum MqttMode {
    /// The gateway's own broker (rumqttd) on `mqtt.listen`.
    #[default]
    Embedded,
    /// A shared subscription on an external broker (`[mqtt.external]`).
    External,
    /// No MQTT source.
    Off,
}

/// `[mqtt]`.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct MqttSection {
    #[serde(default)]
    pub mode: MqttMode,
    /// MQTT 3.1.1 and 5 listener of the embedded broker.
    #[serde(default = "defaults::listen")]
    pub listen: SocketAddr,
    /// Device connections served at once; more are closed right after accept.
    #[serde(default = "defaults::max_connections")]
    pub max_connections: NonZeroUsize,
    /// Largest PUBLISH payload; a bigger one is counted, dead-lettered and
    /// the connection closed (MQTT 3.1.1 has no error reply to a PUBLISH).
    #[serde(default = "defaults::max_payload_bytes")]
    pub max_payload_bytes: ByteSize,
    /// Time a new connection has to send its CONNECT packet.
    #[serde(with = "humantime_serde", default = "defaults::connect_timeout")]
    pub connect_timeout: Duration,
    /// Unacknowledged QoS 1 messages the broker keeps per connection.
    #[serde(default = "defaults::max_inflight")]
    pub max_inflight: NonZeroUsize,
    /// rumqttd router log: bytes per segment and segments kept per topic.
    #[serde(default = "defaults::segment_bytes")]
    pub segment_bytes: ByteSize,
    #[serde(default = "defaults::segment_count")]
    pub segment_count: NonZeroUsize,
    /// Messages the broker acknowledged but the pipeline has not taken yet,
    /// in bytes. Above it the gateway stops reading from device sockets
    /// (TCP backpressure) until the pipeline catches up.
    #[serde(default = "defaults::overflow_max_bytes")]
    pub overflow_max_bytes: ByteSize,
    /// Device credentials: username → `sha256:<hex digest of the password>`.
    /// Empty: anonymous devices are accepted.
    #[serde(default)]
    pub users: BTreeMap<String, String>,
    /// Topic filters a device may publish to; `{username}` stands for the
    /// connection's username (e.g. `sensors/{username}/#`). Empty: no ACL.
    #[serde(default)]
    pub acl: Vec<String>,
    /// TLS for the embedded broker's listener (PEM files, re-read on SIGHUP).
    #[serde(default)]
    pub tls: Option<super::file::TlsSection>,
    /// `mode = "external"`: the broker to consume from.
    #[serde(default)]
    pub external: Option<ExternalSection>,
}

/// `[mqtt.external]`: consume a shared subscription on another broker.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ExternalSection {
    /// Broker host.
    pub host: String,
    #[serde(default = "defaults::external_port")]
    pub port: u16,
    /// Client id; each gateway replica needs its own (persistent session).
    pub client_id: String,
    /// Shared subscription group: replicas with the same group share the
    /// messages (`$share/GROUP/FILTER`).
    #[serde(default = "defaults::group")]
    pub group: String,
    /// Topic filters to subscribe to; default: one per stream's `mqtt_topic`.
    #[serde(default)]
    pub topics: Vec<String>,
    #[serde(default)]
    pub username: Option<String>,
    #[serde(default)]
    pub password: Option<String>,
    #[serde(with = "humantime_serde", default = "defaults::keep_alive")]
    pub keep_alive: Duration,
    /// Longest wait between reconnect attempts (exponential backoff).
    #[serde(with = "humantime_serde", default = "defaults::reconnect_max")]
    pub reconnect_max: Duration,
    /// Messages received but not yet acknowledged to the broker.
    #[serde(default = "defaults::external_inflight")]
    pub inflight: NonZeroUsize,
}

impl Default for MqttSection {
    fn default() -> Self {
        Self {
            mode: MqttMode::default(),
            listen: defaults::listen(),
            max_connections: defaults::max_connections(),
            max_payload_bytes: defaults::max_payload_bytes(),
            connect_timeout: defaults::connect_timeout(),
            max_inflight: defaults::max_inflight(),
            segment_bytes: defaults::segment_bytes(),
            segment_count: defaults::segment_count(),
            overflow_max_bytes: defaults::overflow_max_bytes(),
            users: BTreeMap::new(),
            acl: Vec::new(),
            tls: None,
            external: None,
        }
    }
}

mod defaults {
    use super::*;

    pub fn listen() -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], 1883))
    }
    pub fn max_connections() -> NonZeroUsize {
        NonZeroUsize::new(10_000).unwrap_or(NonZeroUsize::MIN)
    }
    pub fn max_payload_bytes() -> ByteSize {
        ByteSize::mib(1)
    }
    pub fn connect_timeout() -> Duration {
        Duration::from_secs(5)
    }
    pub fn max_inflight() -> NonZeroUsize {
        NonZeroUsize::new(100).unwrap_or(NonZeroUsize::MIN)
    }
    pub fn segment_bytes() -> ByteSize {
        ByteSize::mib(100)
    }
    pub fn segment_count() -> NonZeroUsize {
        NonZeroUsize::new(10).unwrap_or(NonZeroUsize::MIN)
    }
    pub fn overflow_max_bytes() -> ByteSize {
        ByteSize::mib(64)
    }
    pub fn external_port() -> u16 {
        1883
    }
    pub fn group() -> String {
        "dynamo-ingest".to_owned()
    }
    pub fn keep_alive() -> Duration {
        Duration::from_secs(30)
    }
    pub fn reconnect_max() -> Duration {
        Duration::from_secs(30)
    }
    pub fn external_inflight() -> NonZeroUsize {
        NonZeroUsize::new(1000).unwrap_or(NonZeroUsize::MIN)
    }
}
