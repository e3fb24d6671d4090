//! The configuration file as written: serde structs mirroring the TOML.
//!
//! Parsing happens here (`deny_unknown_fields`, units in the types); the
//! cross-field checks live in [`super::validate`], which turns a
//! [`FileConfig`] into the one [`super::ValidatedConfig`] the rest of the
//! gateway sees.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::num::{NonZeroU32, NonZeroUsize};
use std::path::PathBuf;
use std::time::Duration;

use bytesize::ByteSize;
use serde::{Deserialize, Serialize};

pub use super::mqtt::{ExternalSection, MqttMode, MqttSection};
pub use super::spool::SpoolSection;

/// Root of the TOML file.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct FileConfig {
    #[serde(with = "humantime_serde", default = "defaults::shutdown_grace")]
    pub shutdown_grace: Duration,
    #[serde(default)]
    pub http: HttpSection,
    #[serde(default)]
    pub admin: AdminSection,
    #[serde(default)]
    pub pipeline: PipelineSection,
    #[serde(default)]
    pub dynamodb: DynamoDbSection,
    #[serde(default)]
    pub dead_letter: DeadLetterSection,
    #[serde(default)]
    pub mqtt: MqttSection,
    #[serde(default)]
    pub spool: SpoolSection,
    #[serde(default)]
    pub streams: BTreeMap<String, StreamSection>,
    /// Per-table settings, keyed by DynamoDB table name.
    #[serde(default)]
    pub tables: BTreeMap<String, TableSection>,
}

/// One `[tables.NAME]`.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct TableSection {
    /// Most WCU/s the gateway sends to this table (e.g. its provisioned
    /// capacity, or a share of it). None: purely adaptive.
    #[serde(default)]
    pub wcu_budget: Option<NonZeroU32>,
}

/// `[dynamodb.rate]`: the adaptive write-rate controller.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RateSection {
    #[serde(default = "defaults::yes")]
    pub enabled: bool,
    #[serde(default = "defaults::initial_wcu")]
    pub initial_wcu: f64,
    #[serde(default = "defaults::min_wcu")]
    pub min_wcu: f64,
    #[serde(default = "defaults::decrease_factor")]
    pub decrease_factor: f64,
    #[serde(with = "humantime_serde", default = "defaults::recovery")]
    pub recovery: Duration,
    #[serde(with = "humantime_serde", default = "defaults::plateau")]
    pub plateau: Duration,
    #[serde(with = "humantime_serde", default = "defaults::probe_doubling")]
    pub probe_doubling: Duration,
    #[serde(with = "humantime_serde", default = "defaults::hold")]
    pub hold: Duration,
    #[serde(default)]
    pub unprocessed_threshold: f64,
    #[serde(default = "defaults::partition_wcu")]
    pub partition_wcu: NonZeroU32,
    /// How often DescribeTable is polled for the table's provisioned WCU,
    /// the rate's ceiling ("0s": never, purely adaptive).
    #[serde(with = "humantime_serde", default = "defaults::capacity_poll")]
    pub capacity_poll: Duration,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct HttpSection {
    #[serde(default = "defaults::http_listen")]
    pub listen: SocketAddr,
    #[serde(default = "defaults::max_body_bytes")]
    pub max_body_bytes: ByteSize,
    #[serde(with = "humantime_serde", default = "defaults::ack_timeout")]
    pub ack_timeout: Duration,
    #[serde(default = "defaults::yes")]
    pub seed_routes: bool,
    /// From the moment a connection waits for a request (just opened, or
    /// idle after a response) until the whole request head has arrived.
    /// Cuts slowloris connections and idle keep-alive connections alike.
    #[serde(with = "humantime_serde", default = "defaults::header_read_timeout")]
    pub header_read_timeout: Duration,
    /// Longest time to receive a request body once its head has arrived.
    #[serde(with = "humantime_serde", default = "defaults::body_read_timeout")]
    pub body_read_timeout: Duration,
    /// Keep connections open between requests (HTTP/1.1 keep-alive).
    #[serde(default = "defaults::yes")]
    pub keep_alive: bool,
    /// Most connections open at once; further clients wait in the kernel's
    /// accept backlog until one closes.
    #[serde(default = "defaults::max_connections")]
    pub max_connections: NonZeroUsize,
    /// Largest request head (request line plus headers); more → 431.
    #[serde(default = "defaults::max_header_bytes")]
    pub max_header_bytes: ByteSize,
    /// Most header fields in one request; more → 431.
    #[serde(default = "defaults::max_headers")]
    pub max_headers: NonZeroUsize,
    #[serde(default)]
    pub auth: AuthSection,
    #[serde(default)]
    pub rate_limit: ClientRateSection,
    /// Serve HTTPS instead of HTTP when present.
    #[serde(default)]
    pub tls: Option<TlsSection>,
}

/// `[http.auth]`: Bearer API keys.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct AuthSection {
    /// Off by default so the seed document's apps work unchanged.
    #[serde(default)]
    pub enabled: bool,
    /// Whether the seed routes need a key when auth is enabled.
    #[serde(default)]
    pub seed_routes: SeedRouteAccess,
    #[serde(default)]
    pub keys: Vec<ApiKeySection>,
}

/// Whether the seed routes (`/log_activity/`, `/upload_data`, `/add_to_cart/`) need a key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum SeedRouteAccess {
    /// A key allowed to write the route's stream, like every other route.
    #[default]
    Key,
    /// No key needed (the seed apps send none).
    Open,
}

/// One `[[http.auth.keys]]`.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ApiKeySection {
    /// Who holds the key: logs and rate-limit buckets use it, never the key.
    pub name: String,
    /// Lower-case hex SHA-256 of the key (`dynamo-ingest hash-key`).
    pub sha256: String,
    /// Streams the key may write; `["*"]` for all.
    pub streams: Vec<String>,
}

/// `[http.rate_limit]`: per-client event rate.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ClientRateSection {
    #[serde(default)]
    pub enabled: bool,
    /// Sustained events per second per client.
    #[serde(default = "defaults::client_events_per_second")]
    pub events_per_second: NonZeroU32,
    /// Events a client may send at once; also the most events one request may hold.
    #[serde(default = "defaults::client_burst")]
    pub burst: NonZeroU32,
    /// What a client is.
    #[serde(default)]
    pub key_by: ClientKeyBy,
}

/// How clients are told apart for rate limiting.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ClientKeyBy {
    /// The API key's name when the request carries a valid key, else the IP.
    #[default]
    Auto,
    /// Always the peer IP address (IPv6: its /64).
    Ip,
}

/// `[http.tls]`: PEM files, re-read on SIGHUP.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct TlsSection {
    /// Certificate chain, leaf first.
    pub cert: PathBuf,
    /// Private key (PKCS#8, PKCS#1 or SEC1).
    pub key: PathBuf,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct AdminSection {
    #[serde(default = "defaults::admin_listen")]
    pub listen: SocketAddr,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct PipelineSection {
    #[serde(default = "defaults::queue_max_items")]
    pub queue_max_items: NonZeroUsize,
    #[serde(default = "defaults::queue_max_bytes")]
    pub queue_max_bytes: ByteSize,
    #[serde(with = "humantime_serde", default = "defaults::retry_after")]
    pub retry_after: Duration,
    #[serde(with = "humantime_serde", default = "defaults::linger")]
    pub linger: Duration,
    #[serde(default = "defaults::batch_max_bytes")]
    pub batch_max_bytes: ByteSize,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct DynamoDbSection {
    #[serde(default = "defaults::region")]
    pub region: String,
    #[serde(default)]
    pub endpoint: Option<String>,
    #[serde(default = "defaults::yes")]
    pub create_tables: bool,
    #[serde(default = "defaults::max_in_flight")]
    pub max_in_flight: NonZeroUsize,
    #[serde(default = "defaults::max_parked_items")]
    pub max_parked_items: usize,
    #[serde(default)]
    pub request_path: RequestPath,
    #[serde(with = "humantime_serde", default = "defaults::request_timeout")]
    pub request_timeout: Duration,
    #[serde(with = "humantime_serde", default = "defaults::startup_timeout")]
    pub startup_timeout: Duration,
    #[serde(default)]
    pub retry: RetrySection,
    #[serde(default)]
    pub rate: RateSection,
}

/// How BatchWriteItem calls are made.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum RequestPath {
    /// Requests built, signed and sent by the gateway (`sink::dynamodb::direct`).
    #[default]
    Direct,
    /// Through aws-sdk-dynamodb's client (retries off).
    Sdk,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RetrySection {
    #[serde(with = "humantime_serde", default = "defaults::base_delay")]
    pub base_delay: Duration,
    #[serde(with = "humantime_serde", default = "defaults::max_delay")]
    pub max_delay: Duration,
    #[serde(default = "defaults::max_fatal_attempts")]
    pub max_fatal_attempts: u32,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct DeadLetterSection {
    #[serde(default = "defaults::dead_letter_path")]
    pub path: PathBuf,
}

/// One `[streams.NAME]` table.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct StreamSection {
    pub table: String,
    pub partition_key: KeySection,
    #[serde(default)]
    pub sort_key: Option<SortKeySection>,
    #[serde(default, with = "humantime_serde")]
    pub ttl: Option<Duration>,
    #[serde(default = "defaults::ttl_attribute")]
    pub ttl_attribute: String,
    #[serde(default)]
    pub ack: AckLevel,
    /// Extra HTTP route for this stream, e.g. `/devices/{device_id}/readings`.
    #[serde(default)]
    pub http_path: Option<String>,
    /// MQTT topic template for this stream, e.g. `sensors/{device_id}/telemetry`.
    #[serde(default)]
    pub mqtt_topic: Option<String>,
    #[serde(default)]
    pub attribute_types: BTreeMap<String, ScalarType>,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct KeySection {
    pub name: String,
    #[serde(rename = "type")]
    pub kind: KeyType,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct SortKeySection {
    pub name: String,
    #[serde(rename = "type")]
    pub kind: KeyType,
    pub source: SortKeySource,
}

/// DynamoDB key attribute types the gateway can fill from JSON.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
pub enum KeyType {
    S,
    N,
}

/// Types an attribute arriving as text (query string, path, topic) is converted to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
pub enum ScalarType {
    S,
    N,
    #[serde(rename = "BOOL")]
    Bool,
}

/// Where a sort key value comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum SortKeySource {
    /// Epoch milliseconds assigned by the gateway, unique per partition key.
    ServerTime,
    /// The event's own field: a retry of the same event overwrites the same item.
    Field,
    /// The event's field when present, server time otherwise.
    Auto,
}

/// When the gateway answers a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum AckLevel {
    /// In the bounded in-memory queue.
    #[default]
    Queued,
    /// Fsynced to the disk spool (`[spool]`); survives kill -9.
    Spooled,
    /// DynamoDB confirmed every item of the request.
    Written,
}

impl Default for HttpSection {
    fn default() -> Self {
        Self {
            listen: defaults::http_listen(),
            max_body_bytes: defaults::max_body_bytes(),
            ack_timeout: defaults::ack_timeout(),
            seed_routes: true,
            header_read_timeout: defaults::header_read_timeout(),
            body_read_timeout: defaults::body_read_timeout(),
            keep_alive: true,
            max_connections: defaults::max_connections(),
            max_header_bytes: defaults::max_header_bytes(),
            max_headers: defaults::max_headers(),
            auth: AuthSection::default(),
            rate_limit: ClientRateSection::default(),
            tls: None,
        }
    }
}

impl Default for ClientRateSection {
    fn default() -> Self {
        Self {
            enabled: false,
            events_per_second: defaults::client_events_per_second(),
            burst: defaults::client_burst(),
            key_by: ClientKeyBy::Auto,
        }
    }
}

impl Default for AdminSection {
    fn default() -> Self {
        Self {
            listen: defaults::admin_listen(),
        }
    }
}

impl Default for PipelineSection {
    fn default() -> Self {
        Self {
            queue_max_items: defaults::queue_max_items(),
            queue_max_bytes: defaults::queue_max_bytes(),
            retry_after: defaults::retry_after(),
            linger: defaults::linger(),
            batch_max_bytes: defaults::batch_max_bytes(),
        }
    }
}

impl Default for DynamoDbSection {
    fn default() -> Self {
        Self {
            region: defaults::region(),
            endpoint: None,
            create_tables: true,
            max_in_flight: defaults::max_in_flight(),
            max_parked_items: defaults::max_parked_items(),
            request_path: RequestPath::default(),
            request_timeout: defaults::request_timeout(),
            startup_timeout: defaults::startup_timeout(),
            retry: RetrySection::default(),
            rate: RateSection::default(),
        }
    }
}

impl Default for RetrySection {
    fn default() -> Self {
        Self {
            base_delay: defaults::base_delay(),
            max_delay: defaults::max_delay(),
            max_fatal_attempts: defaults::max_fatal_attempts(),
        }
    }
}

impl Default for RateSection {
    fn default() -> Self {
        Self {
            enabled: true,
            initial_wcu: defaults::initial_wcu(),
            min_wcu: defaults::min_wcu(),
            decrease_factor: defaults::decrease_factor(),
            recovery: defaults::recovery(),
            plateau: defaults::plateau(),
            probe_doubling: defaults::probe_doubling(),
            hold: defaults::hold(),
            unprocessed_threshold: 0.0,
            partition_wcu: defaults::partition_wcu(),
            capacity_poll: defaults::capacity_poll(),
        }
    }
}

impl Default for DeadLetterSection {
    fn default() -> Self {
        Self {
            path: defaults::dead_letter_path(),
        }
    }
}

mod defaults {
    use super::*;

    pub fn yes() -> bool {
        true
    }
    pub fn shutdown_grace() -> Duration {
        Duration::from_secs(30)
    }
    pub fn http_listen() -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], 8080))
    }
    pub fn admin_listen() -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], 9464))
    }
    pub fn max_body_bytes() -> ByteSize {
        ByteSize::mib(16)
    }
    pub fn ack_timeout() -> Duration {
        Duration::from_secs(30)
    }
    pub fn header_read_timeout() -> Duration {
        Duration::from_secs(10)
    }
    pub fn body_read_timeout() -> Duration {
        Duration::from_secs(30)
    }
    pub fn max_connections() -> NonZeroUsize {
        NonZeroUsize::new(4096).unwrap_or(NonZeroUsize::MIN)
    }
    pub fn max_header_bytes() -> ByteSize {
        ByteSize::kib(16)
    }
    pub fn max_headers() -> NonZeroUsize {
        NonZeroUsize::new(64).unwrap_or(NonZeroUsize::MIN)
    }
    pub fn client_events_per_second() -> NonZeroU32 {
        NonZeroU32::new(1_000).unwrap_or(NonZeroU32::MIN)
    }
    pub fn client_burst() -> NonZeroU32 {
        NonZeroU32::new(10_000).unwrap_or(NonZeroU32::MIN)
    }
    pub fn queue_max_items() -> NonZeroUsize {
        NonZeroUsize::new(80_000).unwrap_or(NonZeroUsize::MIN)
    }
    pub fn queue_max_bytes() -> ByteSize {
        ByteSize::mib(256)
    }
    pub fn retry_after() -> Duration {
        Duration::from_secs(1)
    }
    pub fn linger() -> Duration {
        Duration::from_millis(20)
    }
    pub fn batch_max_bytes() -> ByteSize {
        ByteSize::mib(16)
    }
    pub fn region() -> String {
        "us-east-1".to_owned()
    }
    pub fn max_in_flight() -> NonZeroUsize {
        NonZeroUsize::new(8).unwrap_or(NonZeroUsize::MIN)
    }
    pub fn max_parked_items() -> usize {
        10_000
    }
    pub fn request_timeout() -> Duration {
        Duration::from_secs(10)
    }
    pub fn startup_timeout() -> Duration {
        Duration::from_secs(60)
    }
    pub fn base_delay() -> Duration {
        Duration::from_millis(25)
    }
    pub fn max_delay() -> Duration {
        Duration::from_secs(5)
    }
    pub fn max_fatal_attempts() -> u32 {
        5
    }
    pub fn dead_letter_path() -> PathBuf {
        PathBuf::from("dead-letter.ndjson")
    }
    pub fn partition_wcu() -> NonZeroU32 {
        NonZeroU32::new(1000).unwrap_or(NonZeroU32::MIN)
    }
    pub fn initial_wcu() -> f64 {
        4000.0
    }
    pub fn min_wcu() -> f64 {
        1.0
    }
    pub fn decrease_factor() -> f64 {
        0.9
    }
    pub fn recovery() -> Duration {
        Duration::from_secs(2)
    }
    pub fn plateau() -> Duration {
        Duration::from_secs(5)
    }
    pub fn capacity_poll() -> Duration {
        Duration::from_secs(1)
    }
    pub fn probe_doubling() -> Duration {
        Duration::from_secs(1)
    }
    pub fn hold() -> Duration {
        Duration::from_millis(500)
    }
    pub fn ttl_attribute() -> String {
        "expires_at".to_owned()
    }
}
