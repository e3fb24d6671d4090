//! What one load run does. The same struct is filled from command-line flags
//! (`loadgen http|mqtt ...`) and from a scenario file's `[load]` table, so a
//! scenario can say anything the CLI can, with the same defaults.

use std::num::NonZeroU64;
use std::path::PathBuf;
use std::time::Duration;

use clap::Parser;
use serde::{Deserialize, Serialize};

use crate::keys::Distribution;

/// Which protocol the load uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum, Default)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// HTTP POSTs to the gateway.
    #[default]
    Http,
    /// MQTT publishes, one connection per simulated device.
    Mqtt,
}

/// Event shape, after the seed document's three apps.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Shape {
    /// IoT sensor reading: table IoTSensorData, key device_id.
    Sensor,
    /// User activity: table UserActivity, key user_id.
    Activity,
    /// Shopping cart line (a unique item_id per event): table ShoppingCart, key user_id.
    Cart,
}

/// Which HTTP route carries the events.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Route {
    /// The seed's own routes (`/upload_data`, `/log_activity/`, `/add_to_cart/`): one event per request.
    Seed,
    /// `POST /v1/streams/{stream}/events`: a JSON object, or NDJSON when `--batch` > 1.
    Stream,
}

/// Acknowledgement level asked of the gateway (`?ack=`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Ack {
    /// Answered once queued in memory.
    Queued,
    /// Answered once DynamoDB confirmed the write.
    Written,
    /// Answered once fsynced to the gateway's disk spool (needs `[spool] enabled`).
    Spooled,
}

/// One load run. Every field has a flag; scenario files use the same names
/// in snake_case.
#[derive(Debug, Clone, clap::Args, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LoadSpec {
    /// Protocol (set by the subcommand on the command line).
    #[arg(skip)]
    pub mode: Mode,
    /// Gateway HTTP address (http) or MQTT broker address (mqtt), host:port.
    #[arg(long, default_value = "127.0.0.1:8080")]
    pub target: String,
    /// Event shape.
    #[arg(long, value_enum, default_value_t = Shape::Sensor)]
    pub shape: Shape,
    /// HTTP route.
    #[arg(long, value_enum, default_value_t = Route::Seed)]
    pub route: Route,
    /// Events per HTTP request (NDJSON when > 1; needs `--route stream`).
    #[arg(long, default_value_t = NonZeroU64::MIN)]
    pub batch: NonZeroU64,
    /// Target rate in events/s (open loop). Without it: closed loop, as fast as acknowledged.
    #[arg(long)]
    pub rate: Option<f64>,
    /// HTTP connections (one request in flight each) or MQTT devices (one connection each).
    #[arg(long, default_value_t = NonZeroU64::new(32).unwrap_or(NonZeroU64::MIN))]
    pub concurrency: NonZeroU64,
    /// Stop after this long (e.g. "30s", "10m").
    #[arg(long, default_value = "10s", value_parser = humantime::parse_duration)]
    #[serde(with = "humantime_serde")]
    pub duration: Duration,
    /// Stop after this many events (whichever of duration and count comes first).
    #[arg(long)]
    pub count: Option<u64>,
    /// Distinct partition keys (devices or users).
    #[arg(long, default_value_t = NonZeroU64::new(1000).unwrap_or(NonZeroU64::MIN))]
    pub keys: NonZeroU64,
    /// How events spread over the keys.
    #[arg(long, value_enum, default_value_t = Distribution::Uniform)]
    pub distribution: Distribution,
    /// Zipf exponent (distribution zipf).
    #[arg(long, default_value_t = 1.1)]
    pub zipf_exponent: f64,
    /// Share of events on key 0 (distribution hot).
    #[arg(long, default_value_t = 0.5)]
    pub hot_share: f64,
    /// Extra bytes per event (a `pad` attribute), to model bigger items.
    #[arg(long, default_value_t = 0)]
    pub pad_bytes: u32,
    /// Acknowledgement level asked of the gateway (http).
    #[arg(long, value_enum, default_value_t = Ack::Queued)]
    pub ack: Ack,
    /// MQTT QoS, 0 or 1 (mqtt).
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u8).range(0..=1))]
    pub qos: u8,
    /// MQTT: topics (partition keys) each device publishes to, in turn. 1: a
    /// device is one key, held by the gateway to DynamoDB's 1,000 WCU/s per
    /// partition key; more: a device stands for a bridge or a gateway of many.
    #[arg(long, default_value_t = NonZeroU64::MIN)]
    pub topics_per_device: NonZeroU64,
    /// MQTT: also count deliveries on one subscriber of the shape's topic filter
    /// (a broker's publish→subscribe rate; the bare-broker baseline).
    #[arg(long)]
    #[serde(default)]
    pub subscribe: bool,
    /// Per-request timeout (http), and how long to wait for outstanding MQTT acks at the end.
    #[arg(long, default_value = "10s", value_parser = humantime::parse_duration)]
    #[serde(with = "humantime_serde")]
    pub request_timeout: Duration,
    /// Prefix of every partition key; default: a fresh random id.
    #[arg(long)]
    pub run_id: Option<String>,
    /// After the load, count the run's items in DynamoDB and report lost = acked − stored.
    #[arg(long)]
    pub verify: bool,
    /// DynamoDB endpoint for --verify (dynamo-sim, dynalite, ...).
    #[arg(long)]
    pub dynamodb_endpoint: Option<String>,
    /// How long --verify waits for the gateway to finish writing.
    #[arg(long, default_value = "60s", value_parser = humantime::parse_duration)]
    #[serde(with = "humantime_serde")]
    pub verify_timeout: Duration,
    /// Write the summary as JSON to this file.
    #[arg(long)]
    pub summary_json: Option<PathBuf>,
    /// No progress bar (for logs and CI).
    #[arg(long)]
    pub quiet: bool,
}

#[derive(Parser)]
struct DefaultsOnly {
    #[command(flatten)]
    spec: LoadSpec,
}

impl Default for LoadSpec {
    /// The command line's defaults, so scenario files and flags agree.
    fn default() -> Self {
        DefaultsOnly::parse_from(["loadgen"]).spec
    }
}

/// A load spec that cannot run.
#[derive(Debug, thiserror::Error)]
pub enum SpecError {
    /// `--batch` > 1 on a seed route (they take one event per request).
    #[error("--batch {0} needs --route stream (the seed routes take one event per request)")]
    BatchOnSeedRoute(u64),
    /// The rate is not a positive number.
    #[error("--rate must be a positive number of events/s, got {0}")]
    Rate(f64),
}

impl LoadSpec {
    /// Checks combinations clap cannot express.
    pub fn validate(&self) -> Result<(), SpecError> {
        if self.mode == Mode::Http && self.route == Route::Seed && self.batch.get() > 1 {
            return Err(SpecError::BatchOnSeedRoute(self.batch.get()));
        }
        if let Some(r) = self.rate {
            if !(r.is_finite() && r > 0.0) {
                return Err(SpecError::Rate(r));
            }
        }
        Ok(())
    }

    /// The run id: the given one or a fresh one (`lg` + 8 hex digits).
    pub fn resolve_run_id(&mut self) -> String {
        self.run_id
            .get_or_insert_with(|| format!("lg{:08x}", rand::random::<u32>()))
            .clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scenario_defaults_match_the_cli() {
        let from_toml: LoadSpec = toml::from_str("rate = 100.0\nduration = \"2s\"").expect("parse");
        let cli = LoadSpec::default();
        assert_eq!(from_toml.concurrency, cli.concurrency);
        assert_eq!(from_toml.duration, Duration::from_secs(2));
        assert_eq!(from_toml.rate, Some(100.0));
        assert_eq!(cli.keys.get(), 1000);
    }

    #[test]
    fn unknown_scenario_keys_are_refused() {
        let err = toml::from_str::<LoadSpec>("rat = 1.0").expect_err("typo");
        assert!(err.to_string().contains("rat"), "{err}");
    }

    #[test]
    fn batches_need_the_stream_route() {
        let spec = LoadSpec {
            batch: NonZeroU64::new(10).expect("nz"),
            ..LoadSpec::default()
        };
        assert!(matches!(
            spec.validate(),
            Err(SpecError::BatchOnSeedRoute(10))
        ));
    }
}
