//! `loadgen run SCENARIO.toml`: a scenario file names the simulator's tables
//! and capacity, the gateway's config overrides, the load, and what must
//! hold afterwards. The run starts dynamo-sim and the gateway, drives the
//! load with `--verify`, samples both every second, stops the gateway with
//! SIGTERM (it drains), and writes the report directory.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use tokio::sync::watch;

use crate::harness;
use crate::recorder::Live;
use crate::report::{self, Check, Outcome};
use crate::sampler::{self, Targets};
use crate::spec::{LoadSpec, Mode};

/// A scenario file.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Scenario {
    /// Short name (report directory prefix).
    pub name: String,
    /// What it shows, one paragraph (copied into the report).
    #[serde(default)]
    pub description: String,
    /// dynamo-sim settings.
    #[serde(default)]
    pub sim: SimSection,
    /// Merged over `config/default.toml` for the gateway (same keys).
    #[serde(default)]
    pub gateway: toml::Table,
    /// The load (same fields as `loadgen http|mqtt` flags).
    pub load: LoadSpec,
    /// What must hold afterwards.
    #[serde(default)]
    pub expect: Expect,
}

/// dynamo-sim settings of a scenario.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct SimSection {
    /// `--table NAME:PK:TYPE[:SK:TYPE][@WCU]` values; tables not listed are
    /// created on demand by the gateway.
    #[serde(default)]
    pub tables: Vec<String>,
    /// `--unlimited`: no capacity model (the gateway's own ceiling).
    #[serde(default)]
    pub unlimited: bool,
    /// More dynamo-sim flags, verbatim.
    #[serde(default)]
    pub args: Vec<String>,
}

/// Conditions checked after the run; each becomes a pass/fail line.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct Expect {
    /// Most events acknowledged but not stored.
    pub max_lost: u64,
    /// Fewest events refused with 503 (overload scenarios).
    pub min_refused_503: Option<u64>,
    /// Most failed events of any kind other than 503.
    pub max_other_errors: Option<u64>,
    /// Highest gateway RSS, MiB.
    pub max_rss_mib: Option<f64>,
    /// Most RSS growth from the end of the first minute to the end, MiB (soak).
    pub max_rss_growth_mib: Option<f64>,
    /// Lowest acknowledged events/s.
    pub min_rate: Option<f64>,
}

impl Default for Expect {
    fn default() -> Self {
        Self {
            max_lost: 0,
            min_refused_503: None,
            max_other_errors: Some(0),
            max_rss_mib: None,
            max_rss_growth_mib: None,
            min_rate: None,
        }
    }
}

/// Error reading a scenario file.
#[derive(Debug, thiserror::Error)]
pub enum ScenarioError {
    /// Unreadable file.
    #[error("{path}: {source}")]
    Read {
        /// File.
        path: String,
        /// Cause.
        source: std::io::Error,
    },
    /// Not a valid scenario (unknown key, wrong type...).
    #[error("{path}: {message}")]
    Parse {
        /// File.
        path: String,
        /// toml's message, naming the key.
        message: String,
    },
}

impl Scenario {
    /// Reads and parses a scenario file.
    pub fn load(path: &Path) -> Result<Self, ScenarioError> {
        let text = std::fs::read_to_string(path).map_err(|source| ScenarioError::Read {
            path: path.display().to_string(),
            source,
        })?;
        let s: Scenario = toml::from_str(&text).map_err(|e| ScenarioError::Parse {
            path: path.display().to_string(),
            message: e.to_string(),
        })?;
        s.load.validate().map_err(|e| ScenarioError::Parse {
            path: path.display().to_string(),
            message: e.to_string(),
        })?;
        Ok(s)
    }

    /// The dynamo-sim arguments.
    pub fn sim_args(&self) -> Vec<String> {
        let mut a = Vec::new();
        if self.sim.unlimited {
            a.push("--unlimited".to_owned());
        }
        for t in &self.sim.tables {
            a.push("--table".to_owned());
            a.push(t.clone());
        }
        a.extend(self.sim.args.iter().cloned());
        a
    }
}

/// Where the binaries and outputs are.
#[derive(Debug, Clone)]
pub struct RunOptions {
    /// dynamo-ingest binary.
    pub gateway_bin: PathBuf,
    /// dynamo-sim binary.
    pub sim_bin: PathBuf,
    /// Base gateway config (`config/default.toml`).
    pub base_config: PathBuf,
    /// Report directory (created).
    pub out: PathBuf,
    /// Override of the load's duration.
    pub duration: Option<std::time::Duration>,
    /// No progress bar.
    pub quiet: bool,
}

/// Runs `scenario`; returns the outcome (report written to `opts.out`).
pub async fn run(scenario: &Scenario, opts: &RunOptions) -> anyhow::Result<Outcome> {
    std::fs::create_dir_all(&opts.out)?;
    let out = opts.out.canonicalize()?;
    let (mut sim, endpoint) = harness::start_sim(&opts.sim_bin, &scenario.sim_args(), &out).await?;
    let config = harness::gateway_config(&opts.base_config, &scenario.gateway, &endpoint, &out)?;
    // Always an ephemeral MQTT port: runs (and tests) never collide on 1883;
    // the gateway's ready line says which port it got.
    let mut gateway =
        match harness::start_gateway(&opts.gateway_bin, &config, Some("127.0.0.1:0"), &out).await {
            Ok(g) => g,
            Err(e) => {
                let _ = sim.stop().await;
                let log = std::fs::read_to_string(out.join("gateway.log")).unwrap_or_default();
                let tail: Vec<&str> = log.lines().rev().take(5).collect();
                anyhow::bail!(
                    "{e}\ngateway log tail:\n{}",
                    tail.into_iter().rev().collect::<Vec<_>>().join("\n")
                );
            }
        };
    let admin = gateway.field("dynamo-ingest", "admin")?;
    let mut spec = scenario.load.clone();
    spec.target = match scenario.load.mode {
        Mode::Http => gateway.field("dynamo-ingest", "http")?,
        Mode::Mqtt => gateway.field("dynamo-ingest", "mqtt")?,
    };
    spec.verify = true;
    spec.dynamodb_endpoint = Some(endpoint.clone());
    spec.quiet = opts.quiet;
    if let Some(d) = opts.duration {
        spec.duration = d;
    }
    spec.resolve_run_id();
    let pid = gateway.pid().unwrap_or(0);

    let live = Live::default();
    let (stop_tx, stop_rx) = watch::channel(false);
    let targets = Targets {
        admin,
        sim: endpoint.clone(),
        pid,
        table: spec.shape.table().to_owned(),
        stream: spec.shape.stream().to_owned(),
    };
    let sampling = tokio::spawn(sampler::run(targets, live.clone(), stop_rx));
    let cpu_before = sampler::proc_usage(pid, sampler::clock_ticks())
        .map(|u| u.1)
        .unwrap_or(0.0);
    let progress = crate::progress_bar(&spec, &live);
    let result = crate::run_load(&spec, &live).await;
    if let Some(p) = progress {
        p.finish();
    }
    // The CPU the gateway spent on this run, including writing what was queued (verify waited for it).
    let usage_after = sampler::proc_usage(pid, sampler::clock_ticks());
    let _ = stop_tx.send(true);
    let samples = sampling.await?;
    let exit = gateway.stop().await?;
    let _ = sim.stop().await;
    let summary = result?;

    let dead_letters = std::fs::read_to_string(out.join("dead-letter.ndjson"))
        .map(|t| t.lines().count() as u64)
        .unwrap_or(0);
    let gateway_stats = report::GatewayStats {
        cpu_seconds: usage_after.map(|u| u.1 - cpu_before).unwrap_or(0.0),
        peak_rss_mib: samples.iter().map(|s| s.gw_rss_mib).fold(0.0, f64::max),
        exit_code: exit,
        dead_letters,
    };
    let checks = checks(&scenario.expect, &summary, &samples, &gateway_stats);
    let outcome = Outcome {
        scenario: scenario.clone(),
        summary,
        gateway: gateway_stats,
        checks,
    };
    report::write(&out, &outcome, &samples)?;
    Ok(outcome)
}

fn checks(
    e: &Expect,
    s: &crate::summary::Summary,
    samples: &[sampler::Sample],
    g: &report::GatewayStats,
) -> Vec<Check> {
    let mut c = Vec::new();
    let lost = s.lost().unwrap_or(u64::MAX);
    c.push(Check::new(
        format!("lost ≤ {}", e.max_lost),
        format!("{lost}"),
        lost <= e.max_lost,
    ));
    let refused: u64 = s
        .errors
        .iter()
        .filter(|(k, _)| k.starts_with("http_503"))
        .map(|(_, v)| v)
        .sum();
    let other: u64 = s.errors.values().sum::<u64>() - refused;
    if let Some(m) = e.min_refused_503 {
        c.push(Check::new(
            format!("refused with 503 ≥ {m}"),
            refused.to_string(),
            refused >= m,
        ));
    }
    if let Some(m) = e.max_other_errors {
        let kinds: BTreeMap<_, _> = s
            .errors
            .iter()
            .filter(|(k, _)| !k.starts_with("http_503"))
            .collect();
        c.push(Check::new(
            format!("other errors ≤ {m}"),
            format!("{other} {kinds:?}"),
            other <= m,
        ));
    }
    c.push(Check::new(
        "dead-lettered = 0".into(),
        g.dead_letters.to_string(),
        g.dead_letters == 0,
    ));
    if let Some(m) = e.max_rss_mib {
        c.push(Check::new(
            format!("peak RSS ≤ {m} MiB"),
            format!("{:.1} MiB", g.peak_rss_mib),
            g.peak_rss_mib <= m,
        ));
    }
    if let Some(m) = e.max_rss_growth_mib {
        let at_60 = samples.iter().find(|x| x.t >= 60.0).map(|x| x.gw_rss_mib);
        let last = samples.last().map(|x| x.gw_rss_mib);
        let (shown, ok) = match (at_60, last) {
            (Some(a), Some(b)) => (format!("{a:.1} → {b:.1} MiB ({:+.1})", b - a), b - a <= m),
            _ => ("run shorter than 60 s".to_owned(), false),
        };
        c.push(Check::new(
            format!("RSS growth after 60 s ≤ {m} MiB"),
            shown,
            ok,
        ));
    }
    if let Some(m) = e.min_rate {
        c.push(Check::new(
            format!("acked rate ≥ {m:.0} ev/s"),
            format!("{:.0}", s.achieved_rate),
            s.achieved_rate >= m,
        ));
    }
    c
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shipped_scenarios_parse() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../scenarios");
        let mut n = 0;
        for entry in std::fs::read_dir(&dir).expect("scenarios dir") {
            let path = entry.expect("entry").path();
            if path.extension().is_some_and(|e| e == "toml") {
                let s = Scenario::load(&path).unwrap_or_else(|e| panic!("{e}"));
                assert_eq!(
                    Some(s.name.as_str()),
                    path.file_stem().and_then(|x| x.to_str())
                );
                n += 1;
            }
        }
        assert!(n >= 5, "only {n} scenarios");
    }

    #[test]
    fn unknown_keys_name_the_key() {
        let dir = tempfile::tempdir().expect("tmp");
        let p = dir.path().join("x.toml");
        std::fs::write(
            &p,
            "name = \"x\"\n[load]\nrate = 1.0\n[expect]\nmax_lots = 1\n",
        )
        .expect("write");
        let err = Scenario::load(&p).expect_err("typo").to_string();
        assert!(err.contains("max_lots"), "{err}");
    }
}
