//! The end of a run: what was sent, acknowledged, failed (by kind), the
//! achieved rate and latency percentiles, and — with `--verify` — what was
//! stored and lost. Printed as a table and written as JSON.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::Path;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::recorder::Recorder;
use crate::spec::{LoadSpec, Mode};
use crate::verify::VerifyResult;

/// Latency percentiles in microseconds.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Latency {
    /// Median.
    pub p50: u64,
    /// 90th percentile.
    pub p90: u64,
    /// 99th percentile.
    pub p99: u64,
    /// 99.9th percentile.
    pub p999: u64,
    /// Largest.
    pub max: u64,
    /// Mean.
    pub mean: f64,
}

/// Result of one load run.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Summary {
    /// Prefix of every key the run wrote.
    pub run_id: String,
    /// The load as run.
    pub spec: LoadSpec,
    /// Wall time of the load phase, seconds.
    pub elapsed_seconds: f64,
    /// HTTP requests or MQTT messages.
    pub requests: u64,
    /// Events attempted.
    pub sent: u64,
    /// Events acknowledged (2xx, PUBACK).
    pub acked: u64,
    /// Failed events by kind.
    pub errors: BTreeMap<String, u64>,
    /// Acknowledged events per second.
    pub achieved_rate: f64,
    /// Latency of acknowledged requests (µs), from the scheduled send time.
    pub latency_us: Option<Latency>,
    /// MQTT `--subscribe`: messages delivered to the subscriber.
    pub delivered: Option<u64>,
    /// `--verify` result.
    pub verify: Option<VerifyResult>,
}

impl Summary {
    /// Builds the summary from the merged recorder.
    pub fn new(spec: &LoadSpec, run_id: &str, rec: Recorder, elapsed: Duration) -> Self {
        let h = &rec.latency;
        let latency_us = (!h.is_empty()).then(|| Latency {
            p50: h.value_at_quantile(0.50),
            p90: h.value_at_quantile(0.90),
            p99: h.value_at_quantile(0.99),
            p999: h.value_at_quantile(0.999),
            max: h.max(),
            mean: h.mean(),
        });
        let secs = elapsed.as_secs_f64().max(1e-9);
        Self {
            run_id: run_id.to_owned(),
            spec: spec.clone(),
            elapsed_seconds: secs,
            requests: rec.requests,
            sent: rec.sent,
            acked: rec.acked,
            errors: rec.errors,
            achieved_rate: rec.acked as f64 / secs,
            latency_us,
            delivered: None,
            verify: None,
        }
    }

    /// Records the subscriber's delivery count.
    pub fn set_delivered(&mut self, n: u64) {
        self.delivered = Some(n);
    }

    /// Events lost according to `--verify` (None without it).
    pub fn lost(&self) -> Option<u64> {
        self.verify.as_ref().map(|v| v.lost)
    }

    /// The human-readable table.
    pub fn table(&self) -> String {
        let mut t = String::new();
        let s = &self.spec;
        let what = match s.mode {
            Mode::Http => format!(
                "http {:?} route={:?} batch={} ack={:?}",
                s.shape, s.route, s.batch, s.ack
            ),
            Mode::Mqtt => format!("mqtt {:?} qos={} devices={}", s.shape, s.qos, s.concurrency),
        };
        let _ = writeln!(
            t,
            "run {}  {}  target {}",
            self.run_id,
            what.to_lowercase(),
            s.target
        );
        let offered = s
            .rate
            .map_or("closed loop".to_owned(), |r| format!("{r:.0} ev/s"));
        let _ = writeln!(t, "{:<22}{}", "offered", offered);
        let _ = writeln!(t, "{:<22}{:.1} s", "elapsed", self.elapsed_seconds);
        let _ = writeln!(t, "{:<22}{}", "requests/messages", self.requests);
        let _ = writeln!(t, "{:<22}{}", "sent (events)", self.sent);
        let _ = writeln!(t, "{:<22}{}", "acked (events)", self.acked);
        if self.errors.is_empty() {
            let _ = writeln!(t, "{:<22}0", "errors");
        }
        for (k, v) in &self.errors {
            let _ = writeln!(t, "{:<21} {v}", format!("errors {k}"));
        }
        let _ = writeln!(t, "{:<22}{:.0} ev/s", "achieved rate", self.achieved_rate);
        if let Some(l) = &self.latency_us {
            let _ = writeln!(
                t,
                "{:<22}p50 {}  p90 {}  p99 {}  p99.9 {}  max {}",
                "latency",
                fmt_us(l.p50),
                fmt_us(l.p90),
                fmt_us(l.p99),
                fmt_us(l.p999),
                fmt_us(l.max)
            );
        }
        if let Some(d) = self.delivered {
            let _ = writeln!(
                t,
                "{:<22}{d} ({:.0} msg/s)",
                "delivered (sub)",
                d as f64 / self.elapsed_seconds
            );
        }
        if let Some(v) = &self.verify {
            let _ = writeln!(
                t,
                "{:<22}stored {}  lost {}  extra {}  ({} keys in {})",
                "verify", v.stored, v.lost, v.extra, v.keys, v.table
            );
        }
        t
    }

    /// Writes the summary as pretty JSON.
    pub fn write_json(&self, path: &Path) -> std::io::Result<()> {
        let text = serde_json::to_string_pretty(self).map_err(std::io::Error::other)?;
        std::fs::write(path, text)
    }
}

/// Microseconds as a short human figure (`850µs`, `12.3ms`, `1.20s`).
pub fn fmt_us(us: u64) -> String {
    match us {
        0..1_000 => format!("{us}µs"),
        1_000..1_000_000 => format!("{:.1}ms", us as f64 / 1e3),
        _ => format!("{:.2}s", us as f64 / 1e6),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::recorder::Live;

    #[test]
    fn table_and_json_carry_the_counts() {
        let live = Live::default();
        let mut rec = Recorder::new(&live);
        rec.sent(100);
        rec.acked(90, Some(Duration::from_micros(1500)));
        rec.failed(10, "http_503_queue_full");
        let s = Summary::new(&LoadSpec::default(), "r1", rec, Duration::from_secs(2));
        let t = s.table();
        assert!(t.contains("errors http_503_queue_full 10"), "{t}");
        assert!(t.contains("achieved rate         45 ev/s"), "{t}");
        assert!(t.contains("p50 1.5ms"), "{t}");
        let dir = tempfile::tempdir().expect("tmp");
        let path = dir.path().join("s.json");
        s.write_json(&path).expect("write");
        let back: Summary =
            serde_json::from_slice(&std::fs::read(&path).expect("read")).expect("parse");
        assert_eq!((back.sent, back.acked), (100, 90));
        assert_eq!(back.errors["http_503_queue_full"], 10);
    }

    #[test]
    fn durations_print_in_human_units() {
        assert_eq!(fmt_us(850), "850µs");
        assert_eq!(fmt_us(12_340), "12.3ms");
        assert_eq!(fmt_us(1_200_000), "1.20s");
    }
}
