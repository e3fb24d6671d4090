//! The report directory of a scenario run: `summary.md` (what ran, the
//! loadgen table, pass/fail checks, gateway CPU and memory, links to the
//! charts), `summary.json` (the same, machine-readable), `samples.csv`
//! (one row per second) and SVG charts. People would rather look at the
//! charts than read the numbers; the numbers are there for diffing.

use std::fmt::Write as _;
use std::path::Path;

use serde::Serialize;

use crate::charts::{line_chart, Series};
use crate::sampler::Sample;
use crate::scenario::Scenario;
use crate::summary::Summary;

/// One pass/fail condition.
#[derive(Debug, Clone, Serialize)]
pub struct Check {
    /// The condition.
    pub what: String,
    /// What was measured.
    pub measured: String,
    /// Whether it held.
    pub pass: bool,
}

impl Check {
    /// A check result.
    pub fn new(what: String, measured: String, pass: bool) -> Self {
        Self {
            what,
            measured,
            pass,
        }
    }
}

/// Gateway process figures over the run.
#[derive(Debug, Clone, Serialize)]
pub struct GatewayStats {
    /// CPU seconds (user + system) from the start of the load to the end of verification.
    pub cpu_seconds: f64,
    /// Highest RSS sampled, MiB.
    pub peak_rss_mib: f64,
    /// Exit code after SIGTERM (None: killed or by signal).
    pub exit_code: Option<i32>,
    /// Lines in its dead-letter file.
    pub dead_letters: u64,
}

/// Everything a scenario run produced.
#[derive(Debug, Clone, Serialize)]
pub struct Outcome {
    /// The scenario as run.
    pub scenario: Scenario,
    /// loadgen's summary (with verification).
    pub summary: Summary,
    /// Gateway process figures.
    pub gateway: GatewayStats,
    /// Conditions and whether they held.
    pub checks: Vec<Check>,
}

impl Outcome {
    /// Whether every check passed.
    pub fn passed(&self) -> bool {
        self.checks.iter().all(|c| c.pass)
    }

    /// Gateway CPU per acknowledged event, µs.
    pub fn cpu_us_per_event(&self) -> Option<f64> {
        (self.summary.acked > 0).then(|| self.gateway.cpu_seconds / self.summary.acked as f64 * 1e6)
    }
}

/// The charts written, as (file, title).
pub const CHARTS: [(&str, &str); 8] = [
    ("ingest_rate.svg", "Ingest rate"),
    ("written_items.svg", "Items written"),
    ("wcu.svg", "WCU used vs available"),
    ("throttles.svg", "Throttling"),
    ("adaptive_rate.svg", "Adaptive rate limit"),
    ("queue_depth.svg", "Queue depth"),
    ("latency.svg", "Latency (loadgen, per second)"),
    ("memory_cpu.svg", "Gateway memory and CPU"),
];

/// Writes the report into `dir`.
pub fn write(dir: &Path, o: &Outcome, samples: &[Sample]) -> anyhow::Result<()> {
    std::fs::write(
        dir.join("summary.json"),
        serde_json::to_string_pretty(&ReportJson {
            outcome: o,
            samples,
        })?,
    )?;
    std::fs::write(dir.join("samples.csv"), csv(samples))?;
    charts(dir, samples)?;
    std::fs::write(dir.join("summary.md"), markdown(o, samples))?;
    Ok(())
}

#[derive(Serialize)]
struct ReportJson<'a> {
    #[serde(flatten)]
    outcome: &'a Outcome,
    samples: &'a [Sample],
}

/// Per-second rate of a cumulative series.
fn rate(samples: &[Sample], f: impl Fn(&Sample) -> f64) -> Vec<(f64, f64)> {
    samples
        .windows(2)
        .map(|w| {
            let dt = (w[1].t - w[0].t).max(1e-3);
            (w[1].t, ((f(&w[1]) - f(&w[0])) / dt).max(0.0))
        })
        .collect()
}

fn level(samples: &[Sample], f: impl Fn(&Sample) -> Option<f64>) -> Vec<(f64, f64)> {
    samples
        .iter()
        .filter_map(|s| f(s).map(|v| (s.t, v)))
        .collect()
}

fn charts(dir: &Path, s: &[Sample]) -> anyhow::Result<()> {
    let c = |file: &str, title: &str, y: &str, series: Vec<Series>| {
        line_chart(&dir.join(file), title, y, &series)
    };
    c(
        CHARTS[0].0,
        CHARTS[0].1,
        "events/s",
        vec![
            Series::new("loadgen acked/s", rate(s, |x| x.lg_acked as f64)),
            Series::new("loadgen failed/s", rate(s, |x| x.lg_errors as f64)),
            Series::new("gateway received/s", rate(s, |x| x.gw_received)),
            Series::new("gateway rejected/s", rate(s, |x| x.gw_rejected)),
        ],
    )?;
    c(
        CHARTS[1].0,
        CHARTS[1].1,
        "items/s",
        vec![Series::new("items written/s", rate(s, |x| x.gw_written))],
    )?;
    c(
        CHARTS[2].0,
        CHARTS[2].1,
        "WCU/s",
        vec![
            Series::new(
                "used (sim, last whole second)",
                level(s, |x| Some(x.sim_wcu_last_second)),
            ),
            Series::new("available (sim capacity)", level(s, |x| x.sim_capacity)),
            Series::new("gateway rate limit", level(s, |x| Some(x.gw_rate_limit))),
        ],
    )?;
    c(
        CHARTS[3].0,
        CHARTS[3].1,
        "per second",
        vec![
            Series::new("throttled calls (sim)", rate(s, |x| x.sim_throttled_calls)),
            Series::new("throttled requests (gateway)", rate(s, |x| x.gw_throttled)),
            Series::new("unprocessed items (gateway)", rate(s, |x| x.gw_unprocessed)),
        ],
    )?;
    c(
        CHARTS[4].0,
        CHARTS[4].1,
        "WCU/s",
        vec![Series::new(
            "dynamo_ingest_rate_limit_wcu",
            level(s, |x| Some(x.gw_rate_limit)),
        )],
    )?;
    c(
        CHARTS[5].0,
        CHARTS[5].1,
        "items",
        vec![Series::new("queue depth", level(s, |x| Some(x.gw_queue)))],
    )?;
    c(
        CHARTS[6].0,
        CHARTS[6].1,
        "ms",
        vec![
            Series::new("p50", level(s, |x| x.lg_p50_us.map(|v| v as f64 / 1e3))),
            Series::new("p99", level(s, |x| x.lg_p99_us.map(|v| v as f64 / 1e3))),
        ],
    )?;
    c(
        CHARTS[7].0,
        CHARTS[7].1,
        "MiB / % of one core",
        vec![
            Series::new("RSS MiB", level(s, |x| Some(x.gw_rss_mib))),
            Series::new("CPU % of one core", rate(s, |x| x.gw_cpu_s * 100.0)),
        ],
    )?;
    Ok(())
}

fn csv(samples: &[Sample]) -> String {
    let mut out = String::from(
        "t,lg_sent,lg_acked,lg_errors,lg_p50_us,lg_p99_us,gw_received,gw_rejected,gw_written,gw_wcu,gw_throttled,gw_unprocessed,gw_rate_limit,gw_queue,gw_rss_mib,gw_cpu_s,sim_wcu_last_second,sim_capacity,sim_throttled_calls,sim_items\n",
    );
    let opt = |v: Option<u64>| v.map(|x| x.to_string()).unwrap_or_default();
    for s in samples {
        let _ = writeln!(
            out,
            "{:.2},{},{},{},{},{},{},{},{},{},{},{},{},{},{:.1},{:.2},{},{},{},{}",
            s.t,
            s.lg_sent,
            s.lg_acked,
            s.lg_errors,
            opt(s.lg_p50_us),
            opt(s.lg_p99_us),
            s.gw_received,
            s.gw_rejected,
            s.gw_written,
            s.gw_wcu,
            s.gw_throttled,
            s.gw_unprocessed,
            s.gw_rate_limit,
            s.gw_queue + 0.0, // no "-0" from a gauge summed to zero
            s.gw_rss_mib,
            s.gw_cpu_s,
            s.sim_wcu_last_second,
            s.sim_capacity.map(|c| c.to_string()).unwrap_or_default(),
            s.sim_throttled_calls,
            s.sim_items
        );
    }
    out
}

fn markdown(o: &Outcome, samples: &[Sample]) -> String {
    let mut m = String::new();
    let sc = &o.scenario;
    let verdict = if o.passed() { "PASS" } else { "FAIL" };
    let _ = writeln!(m, "# Scenario `{}`: {verdict}\n", sc.name);
    if !sc.description.is_empty() {
        let _ = writeln!(m, "{}\n", sc.description.trim());
    }
    let _ = writeln!(
        m,
        "dynamo-sim flags: `{}`; gateway config: [gateway.toml](gateway.toml); run id `{}`.\n",
        sc.sim_args().join(" "),
        o.summary.run_id
    );
    let _ = writeln!(m, "## Checks\n\n| condition | measured | |\n|---|---|---|");
    for c in &o.checks {
        let _ = writeln!(
            m,
            "| {} | {} | {} |",
            c.what,
            c.measured,
            if c.pass { "pass" } else { "**FAIL**" }
        );
    }
    let _ = writeln!(m, "\n## Load (loadgen)\n\n```\n{}```\n", o.summary.table());
    let _ = writeln!(m, "## Gateway\n\n| figure | value |\n|---|---|");
    let _ = writeln!(m, "| CPU (load + drain) | {:.2} s |", o.gateway.cpu_seconds);
    if let Some(us) = o.cpu_us_per_event() {
        let _ = writeln!(m, "| CPU per acknowledged event | {us:.2} µs |");
    }
    let _ = writeln!(m, "| peak RSS | {:.1} MiB |", o.gateway.peak_rss_mib);
    if let (Some(first), Some(last)) = (samples.first(), samples.last()) {
        let _ = writeln!(
            m,
            "| RSS first / last sample | {:.1} / {:.1} MiB |",
            first.gw_rss_mib, last.gw_rss_mib
        );
        let _ = writeln!(
            m,
            "| items written (gateway metric) | {} |",
            last.gw_written
        );
        let _ = writeln!(
            m,
            "| throttled calls (sim) | {} |",
            last.sim_throttled_calls
        );
    }
    let _ = writeln!(m, "| dead-lettered | {} |", o.gateway.dead_letters);
    let _ = writeln!(m, "| exit code after SIGTERM | {:?} |", o.gateway.exit_code);
    let _ = writeln!(m, "\n## Charts\n");
    for (file, title) in CHARTS {
        let _ = writeln!(m, "![{title}]({file})\n");
    }
    let _ = writeln!(
        m,
        "Samples (one per second): [samples.csv](samples.csv); everything: [summary.json](summary.json)."
    );
    m
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::recorder::{Live, Recorder};
    use crate::spec::LoadSpec;
    use std::time::Duration;

    fn outcome(lost_ok: bool) -> Outcome {
        let mut rec = Recorder::new(&Live::default());
        rec.sent(10);
        rec.acked(10, Some(Duration::from_millis(2)));
        let scenario: Scenario =
            toml::from_str("name = \"t\"\n[load]\nrate = 10.0\n").expect("scenario");
        Outcome {
            scenario,
            summary: Summary::new(&LoadSpec::default(), "r", rec, Duration::from_secs(1)),
            gateway: GatewayStats {
                cpu_seconds: 0.001,
                peak_rss_mib: 20.0,
                exit_code: Some(0),
                dead_letters: 0,
            },
            checks: vec![Check::new("lost ≤ 0".into(), "0".into(), lost_ok)],
        }
    }

    #[test]
    fn report_directory_has_summary_csv_and_charts() {
        let dir = tempfile::tempdir().expect("tmp");
        let samples: Vec<Sample> = (0..5)
            .map(|i| Sample {
                t: i as f64,
                lg_acked: i * 100,
                gw_written: (i * 90) as f64,
                gw_rss_mib: 20.0,
                ..Sample::default()
            })
            .collect();
        let o = outcome(true);
        write(dir.path(), &o, &samples).expect("write");
        let md = std::fs::read_to_string(dir.path().join("summary.md")).expect("md");
        assert!(md.starts_with("# Scenario `t`: PASS"), "{md}");
        assert!(
            md.contains("| CPU per acknowledged event | 100.00 µs |"),
            "{md}"
        );
        for (file, _) in CHARTS {
            assert!(md.contains(file));
            let svg = std::fs::read_to_string(dir.path().join(file)).expect(file);
            assert!(svg.contains("<svg"), "{file}");
        }
        let csv = std::fs::read_to_string(dir.path().join("samples.csv")).expect("csv");
        assert_eq!(csv.lines().count(), 6);
        let json: serde_json::Value =
            serde_json::from_slice(&std::fs::read(dir.path().join("summary.json")).expect("json"))
                .expect("parse");
        assert_eq!(json["summary"]["acked"], 10);
        assert_eq!(json["samples"].as_array().map(Vec::len), Some(5));
    }

    #[test]
    fn a_failed_check_fails_the_report() {
        let o = outcome(false);
        assert!(!o.passed());
        assert!(markdown(&o, &[]).starts_with("# Scenario `t`: FAIL"));
    }

    #[test]
    fn rates_come_from_cumulative_counters() {
        let s: Vec<Sample> = (0..3)
            .map(|i| Sample {
                t: i as f64 * 2.0,
                gw_written: (i * 1000) as f64,
                ..Sample::default()
            })
            .collect();
        assert_eq!(rate(&s, |x| x.gw_written), vec![(2.0, 500.0), (4.0, 500.0)]);
    }
}
