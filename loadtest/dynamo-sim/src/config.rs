//! Simulator configuration: typed, defaulted, `deny_unknown_fields`.
//!
//! Loaded from TOML by the binary (`--config`) or built in code by an
//! embedding program. Units are in the key names (`_ms`, `_bytes`, `_wcu`).
//! A capacity schedule is parsed once into steps, so a bad schedule fails at
//! startup rather than mid-test.

use std::path::PathBuf;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::key::KeyType;

/// Top-level configuration.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SimConfig {
    /// Capacity model for all tables.
    pub capacity: CapacityConfig,
    /// Injected faults.
    pub faults: FaultConfig,
    /// In-memory storage bounds and snapshot.
    pub storage: StorageConfig,
    /// Tables created at start, and per-table capacity overrides.
    pub tables: Vec<TableConfig>,
}

/// DynamoDB's default per-table quota for an on-demand table's writes, in
/// write request units per second ("Service, account, and table quotas").
pub const DEFAULT_ACCOUNT_WCU: f64 = 40_000.0;

/// Capacity model knobs.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CapacityConfig {
    /// Admit every write: no throttling at all (throughput tests).
    pub unlimited: bool,
    /// Unused provisioned capacity kept for bursts, in seconds (DynamoDB: 300).
    pub burst_seconds: f64,
    /// Seconds of capacity a new table starts with in its bucket.
    pub initial_burst_seconds: f64,
    /// Hard write limit of one partition (DynamoDB: 1000 WCU/s).
    pub partition_wcu: f64,
    /// Partition count for every table; default `max(1, ceil(WCU / partition_wcu))`.
    pub partitions: Option<u32>,
    /// On-demand warm throughput a new table can take at once (DynamoDB: 4000).
    pub on_demand_warm_wcu: f64,
    /// Optional cap for on-demand tables (DynamoDB's MaxWriteRequestUnits):
    /// configured on the table, so DescribeTable reports it
    /// (`OnDemandThroughput.MaxWriteRequestUnits`); refusals say
    /// `TableWriteMaxOnDemandThroughputExceeded`.
    pub on_demand_max_wcu: Option<f64>,
    /// Per-table account quota for on-demand tables (DynamoDB's Service
    /// Quotas: [`DEFAULT_ACCOUNT_WCU`] write request units unless raised):
    /// not part of the table's description, so DescribeTable does not show
    /// it; refusals say `TableWriteAccountLimitExceeded`. None: no quota.
    pub on_demand_account_wcu: Option<f64>,
    /// Write-capacity schedule applied to every table without its own.
    pub schedule: Option<CapacitySchedule>,
}

impl Default for CapacityConfig {
    fn default() -> Self {
        CapacityConfig {
            unlimited: false,
            burst_seconds: 300.0,
            initial_burst_seconds: 1.0,
            partition_wcu: 1000.0,
            partitions: None,
            on_demand_warm_wcu: 4000.0,
            on_demand_max_wcu: None,
            on_demand_account_wcu: Some(DEFAULT_ACCOUNT_WCU),
            schedule: None,
        }
    }
}

/// Injected faults, applied to every data-plane request before it runs.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct FaultConfig {
    /// Fixed latency added to every response.
    pub latency_ms: u64,
    /// Uniform random extra latency in `[0, jitter_ms]`.
    pub jitter_ms: u64,
    /// Share (0..=1) of requests answered 500 InternalServerError.
    pub error_500_rate: f64,
    /// Share (0..=1) of requests answered 503 ServiceUnavailable.
    pub error_503_rate: f64,
    /// Share (0..=1) of requests whose connection is dropped without answer.
    pub drop_rate: f64,
    /// Seconds the simulator's clock runs ahead of the host's (negative:
    /// behind). It shows in the `Date` header and in the five-minute check
    /// of each request's `X-Amz-Date`.
    pub clock_offset_s: i64,
}

/// Storage bounds.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct StorageConfig {
    /// Maximum items over all tables; writes of new items beyond fail.
    pub max_items: u64,
    /// Maximum item bytes (DynamoDB size rules) over all tables.
    pub max_bytes: u64,
    /// Keep written items (false: count and charge them, store nothing).
    pub retain: bool,
    /// JSON snapshot loaded at start (if present) and written at shutdown.
    pub snapshot: Option<PathBuf>,
}

impl Default for StorageConfig {
    fn default() -> Self {
        StorageConfig {
            max_items: 5_000_000,
            max_bytes: 2 * 1024 * 1024 * 1024,
            retain: true,
            snapshot: None,
        }
    }
}

/// A table to create at start and/or capacity overrides for a table name.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TableConfig {
    /// Table name.
    pub name: String,
    /// Partition key attribute name.
    pub partition_key: String,
    /// Partition key type.
    #[serde(default = "default_key_type")]
    pub partition_key_type: KeyType,
    /// Sort key attribute name, if any.
    #[serde(default)]
    pub sort_key: Option<String>,
    /// Sort key type.
    #[serde(default = "default_key_type")]
    pub sort_key_type: KeyType,
    /// Provisioned WCU; absent means PAY_PER_REQUEST.
    #[serde(default)]
    pub wcu: Option<u64>,
    /// Provisioned RCU (reported only; reads are not throttled).
    #[serde(default)]
    pub rcu: Option<u64>,
    /// Explicit partition count for this table.
    #[serde(default)]
    pub partitions: Option<u32>,
    /// Capacity schedule for this table.
    #[serde(default)]
    pub schedule: Option<CapacitySchedule>,
    /// Create at start (false: overrides only, for tables clients create).
    #[serde(default = "default_true")]
    pub create: bool,
}

fn default_key_type() -> KeyType {
    KeyType::S
}

fn default_true() -> bool {
    true
}

/// A step function of write capacity over time since the table was created:
/// `"2000, 30s:500, 60s:2000"` = 2000 WCU, 500 from t=30 s, 2000 from t=60 s.
#[derive(Debug, Clone, PartialEq)]
pub struct CapacitySchedule {
    steps: Vec<(f64, f64)>,
}

/// Error parsing a capacity schedule.
#[derive(Debug, thiserror::Error)]
#[error("invalid capacity schedule {input:?}: {reason}")]
pub struct ScheduleError {
    input: String,
    reason: String,
}

impl CapacitySchedule {
    /// Write capacity (WCU/s) in force `t` seconds after table creation.
    pub fn wcu_at(&self, t: f64) -> f64 {
        let mut current = self.steps.first().map(|s| s.1).unwrap_or(0.0);
        for (at, wcu) in &self.steps {
            if t >= *at {
                current = *wcu;
            }
        }
        current
    }

    /// Highest capacity the schedule ever sets (sizes partitions).
    pub fn max_wcu(&self) -> f64 {
        self.steps.iter().map(|s| s.1).fold(0.0, f64::max)
    }
}

fn parse_seconds(text: &str) -> Option<f64> {
    let t = text.trim();
    let (num, mult) = if let Some(n) = t.strip_suffix("ms") {
        (n, 0.001)
    } else if let Some(n) = t.strip_suffix('s') {
        (n, 1.0)
    } else if let Some(n) = t.strip_suffix('m') {
        (n, 60.0)
    } else if let Some(n) = t.strip_suffix('h') {
        (n, 3600.0)
    } else {
        (t, 1.0)
    };
    num.trim()
        .parse::<f64>()
        .ok()
        .filter(|v| v.is_finite() && *v >= 0.0)
        .map(|v| v * mult)
}

impl FromStr for CapacitySchedule {
    type Err = ScheduleError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let err = |reason: &str| ScheduleError {
            input: s.to_string(),
            reason: reason.to_string(),
        };
        let mut steps = Vec::new();
        for (i, part) in s.split(',').enumerate() {
            let part = part.trim();
            let (at, wcu) = match part.split_once(':') {
                Some((at, wcu)) => (
                    parse_seconds(at).ok_or_else(|| err("bad time (use 30s, 2m, 500ms)"))?,
                    wcu,
                ),
                None if i == 0 => (0.0, part),
                None => return Err(err("every step after the first needs TIME:WCU")),
            };
            let wcu: f64 = wcu
                .trim()
                .parse()
                .ok()
                .filter(|v: &f64| v.is_finite() && *v >= 0.0)
                .ok_or_else(|| err("bad WCU value"))?;
            if let Some((prev, _)) = steps.last() {
                if at < *prev {
                    return Err(err("times must not decrease"));
                }
            }
            steps.push((at, wcu));
        }
        if steps.is_empty() {
            return Err(err("empty"));
        }
        Ok(CapacitySchedule { steps })
    }
}

impl Serialize for CapacitySchedule {
    fn serialize<S: serde::Serializer>(&self, ser: S) -> Result<S::Ok, S::Error> {
        let text: Vec<String> = self
            .steps
            .iter()
            .map(|(at, wcu)| format!("{at}s:{wcu}"))
            .collect();
        ser.serialize_str(&text.join(", "))
    }
}

impl<'de> Deserialize<'de> for CapacitySchedule {
    fn deserialize<D: serde::Deserializer<'de>>(de: D) -> Result<Self, D::Error> {
        let text = String::deserialize(de)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

/// Error loading a configuration file.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read config {path}: {source}")]
    Read {
        /// File path.
        path: PathBuf,
        /// Cause.
        source: std::io::Error,
    },
    /// The TOML is invalid or has unknown keys.
    #[error("invalid config {path}: {source}")]
    Parse {
        /// File path.
        path: PathBuf,
        /// Cause.
        source: toml::de::Error,
    },
    /// A value is out of range.
    #[error("invalid config: {0}")]
    Invalid(String),
}

impl SimConfig {
    /// Read and validate a TOML file.
    pub fn from_toml_file(path: &std::path::Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        let cfg: SimConfig = toml::from_str(&text).map_err(|source| ConfigError::Parse {
            path: path.to_path_buf(),
            source,
        })?;
        cfg.validate()?;
        Ok(cfg)
    }

    /// Check ranges that serde cannot express.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let f = &self.faults;
        for (name, rate) in [
            ("faults.error_500_rate", f.error_500_rate),
            ("faults.error_503_rate", f.error_503_rate),
            ("faults.drop_rate", f.drop_rate),
        ] {
            if !(0.0..=1.0).contains(&rate) {
                return Err(ConfigError::Invalid(format!("{name} must be within 0..=1")));
            }
        }
        if f.error_500_rate + f.error_503_rate + f.drop_rate > 1.0 {
            return Err(ConfigError::Invalid(
                "faults: the error and drop rates add up to more than 1".into(),
            ));
        }
        let c = &self.capacity;
        if c.partition_wcu <= 0.0 || c.on_demand_warm_wcu <= 0.0 || c.burst_seconds < 0.0 {
            return Err(ConfigError::Invalid(
                "capacity: partition_wcu and on_demand_warm_wcu must be > 0, burst_seconds >= 0"
                    .into(),
            ));
        }
        // Request units, as DynamoDB takes them: whole, at least 1 (the
        // maximum is reported as an integer in DescribeTable).
        for (name, limit) in [
            ("capacity.on_demand_max_wcu", c.on_demand_max_wcu),
            ("capacity.on_demand_account_wcu", c.on_demand_account_wcu),
        ] {
            if let Some(v) = limit.filter(|v| !(*v >= 1.0 && v.fract() == 0.0)) {
                return Err(ConfigError::Invalid(format!(
                    "{name} must be a whole number of write units >= 1, got {v}"
                )));
            }
        }
        if c.partitions == Some(0) || self.tables.iter().any(|t| t.partitions == Some(0)) {
            return Err(ConfigError::Invalid("partitions must be >= 1".into()));
        }
        Ok(())
    }

    /// The per-table override for `name`, if configured.
    pub fn table(&self, name: &str) -> Option<&TableConfig> {
        self.tables.iter().find(|t| t.name == name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schedule_parses_steps() {
        let s: CapacitySchedule = "2000, 30s:500, 60s:2000".parse().expect("valid");
        assert_eq!(s.wcu_at(0.0), 2000.0);
        assert_eq!(s.wcu_at(29.9), 2000.0);
        assert_eq!(s.wcu_at(30.0), 500.0);
        assert_eq!(s.wcu_at(61.0), 2000.0);
        assert_eq!(s.max_wcu(), 2000.0);
        assert!("2000, 500".parse::<CapacitySchedule>().is_err());
        assert!("10, 30s:x".parse::<CapacitySchedule>().is_err());
        assert!("10, 30s:1, 20s:2".parse::<CapacitySchedule>().is_err());
    }

    #[test]
    fn toml_config_roundtrip_and_unknown_keys() {
        let cfg: SimConfig = toml::from_str(
            r#"
            [capacity]
            schedule = "100, 1m:50"
            [faults]
            error_500_rate = 0.1
            [[tables]]
            name = "T"
            partition_key = "pk"
            sort_key = "sk"
            sort_key_type = "N"
            wcu = 100
            "#,
        )
        .expect("valid toml");
        cfg.validate().expect("valid ranges");
        assert_eq!(cfg.tables[0].sort_key_type, KeyType::N);
        assert!(toml::from_str::<SimConfig>("[capacity]\nbogus = 1").is_err());
    }

    #[test]
    fn on_demand_limits_are_whole_write_units() {
        let with = |max: Option<f64>, account: Option<f64>| SimConfig {
            capacity: CapacityConfig {
                on_demand_max_wcu: max,
                on_demand_account_wcu: account,
                ..CapacityConfig::default()
            },
            ..SimConfig::default()
        };
        with(Some(3000.0), Some(40_000.0))
            .validate()
            .expect("whole units");
        for (cfg, field) in [
            (with(Some(2.5), None), "capacity.on_demand_max_wcu"),
            (with(None, Some(0.0)), "capacity.on_demand_account_wcu"),
            (with(Some(f64::NAN), None), "capacity.on_demand_max_wcu"),
        ] {
            match cfg.validate() {
                Err(ConfigError::Invalid(m)) => assert!(m.contains(field), "{m}"),
                other => panic!("{field}: {other:?}"),
            }
        }
    }
}
