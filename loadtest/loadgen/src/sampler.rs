//! Once a second during a scenario: the gateway's `/metrics`, the sim's
//! `/__sim/stats`, the gateway process's RSS and CPU time from /proc, and
//! loadgen's own counters and latency window. Cumulative counters are kept
//! as totals; the report turns them into per-second rates.
//!
//! Invariant: sampling never stops the run; a failed fetch leaves that
//! sample's fields at their previous values (`fetch_errors` counts them).

use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use serde::Serialize;
use tokio::sync::watch;

use crate::prom;
use crate::recorder::Live;

/// One second's observations.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Sample {
    /// Seconds since the sampler started.
    pub t: f64,
    /// loadgen: events sent, acknowledged, failed (totals).
    pub lg_sent: u64,
    /// loadgen acknowledged total.
    pub lg_acked: u64,
    /// loadgen failed total.
    pub lg_errors: u64,
    /// loadgen latency p50 / p99 over the last second (µs).
    pub lg_p50_us: Option<u64>,
    /// See `lg_p50_us`.
    pub lg_p99_us: Option<u64>,
    /// Gateway: events received / rejected (totals).
    pub gw_received: f64,
    /// Rejected total.
    pub gw_rejected: f64,
    /// Items written to the table (total).
    pub gw_written: f64,
    /// WCU consumed (total).
    pub gw_wcu: f64,
    /// Throttled requests (total).
    pub gw_throttled: f64,
    /// UnprocessedItems (total).
    pub gw_unprocessed: f64,
    /// Adaptive rate limit (WCU/s) of the table.
    pub gw_rate_limit: f64,
    /// Queue depth (items) of the stream.
    pub gw_queue: f64,
    /// Gateway resident memory, MiB.
    pub gw_rss_mib: f64,
    /// Gateway CPU time (user + system), seconds.
    pub gw_cpu_s: f64,
    /// Sim: WCU admitted in the last whole second.
    pub sim_wcu_last_second: f64,
    /// Sim: capacity now (None = unlimited).
    pub sim_capacity: Option<f64>,
    /// Sim: throttled calls (total).
    pub sim_throttled_calls: f64,
    /// Sim: items stored.
    pub sim_items: f64,
    /// Fetches that failed so far.
    pub fetch_errors: u64,
}

/// What to sample.
#[derive(Debug, Clone)]
pub struct Targets {
    /// Gateway admin address (host:port).
    pub admin: String,
    /// Sim endpoint URL.
    pub sim: String,
    /// Gateway pid.
    pub pid: u32,
    /// The table the load writes to.
    pub table: String,
    /// The stream the load writes to.
    pub stream: String,
}

/// Samples every second until `stop` turns true, and once more then (so a
/// run shorter than a second still ends with the state after its load);
/// returns the samples.
pub async fn run(targets: Targets, live: Live, mut stop: watch::Receiver<bool>) -> Vec<Sample> {
    let client: Client<HttpConnector, Empty<Bytes>> =
        Client::builder(TokioExecutor::new()).build(HttpConnector::new());
    let start = tokio::time::Instant::now();
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut samples: Vec<Sample> = Vec::new();
    let ticks = clock_ticks();
    loop {
        let last = tokio::select! {
            _ = tick.tick() => false,
            _ = stop.changed() => true,
        };
        let mut s = samples.last().cloned().unwrap_or_default();
        s.t = start.elapsed().as_secs_f64();
        let l = live.snapshot();
        (s.lg_sent, s.lg_acked, s.lg_errors) = (l.sent, l.acked, l.errors);
        (s.lg_p50_us, s.lg_p99_us) = match live.take_window() {
            Some((a, b)) => (Some(a), Some(b)),
            None => (None, None),
        };
        match get(&client, &format!("http://{}/metrics", targets.admin)).await {
            Some(text) => {
                let table = Some(("table", targets.table.as_str()));
                let stream = Some(("stream", targets.stream.as_str()));
                s.gw_received = prom::sum(&text, "dynamo_ingest_events_received_total", stream);
                s.gw_rejected = prom::sum(&text, "dynamo_ingest_events_rejected_total", stream);
                s.gw_written = prom::sum(&text, "dynamo_ingest_items_written_total", table);
                s.gw_wcu = prom::sum(&text, "dynamo_ingest_wcu_consumed_total", table);
                s.gw_throttled = prom::sum(&text, "dynamo_ingest_throttled_requests_total", table);
                s.gw_unprocessed = prom::sum(&text, "dynamo_ingest_unprocessed_items_total", table);
                s.gw_rate_limit = prom::sum(&text, "dynamo_ingest_rate_limit_wcu", table);
                s.gw_queue = prom::sum(&text, "dynamo_ingest_queue_depth", stream);
            }
            None => s.fetch_errors += 1,
        }
        match get(&client, &format!("{}/__sim/stats", targets.sim)).await {
            Some(text) => {
                let v: serde_json::Value = serde_json::from_str(&text).unwrap_or_default();
                let t = &v["tables"][&targets.table];
                s.sim_wcu_last_second = t["wcu_last_second"].as_f64().unwrap_or(0.0);
                s.sim_capacity = t["capacity_wcu_now"].as_f64();
                s.sim_throttled_calls = t["throttled_calls"].as_f64().unwrap_or(0.0);
                s.sim_items = t["items_stored"].as_f64().unwrap_or(0.0);
            }
            None => s.fetch_errors += 1,
        }
        if let Some((rss, cpu)) = proc_usage(targets.pid, ticks) {
            (s.gw_rss_mib, s.gw_cpu_s) = (rss, cpu);
        }
        samples.push(s);
        if last {
            return samples;
        }
    }
}

async fn get(client: &Client<HttpConnector, Empty<Bytes>>, url: &str) -> Option<String> {
    let uri: hyper::Uri = url.parse().ok()?;
    let fut = async {
        let resp = client.get(uri).await.ok()?;
        let body = resp.into_body().collect().await.ok()?.to_bytes();
        String::from_utf8(body.to_vec()).ok()
    };
    tokio::time::timeout(Duration::from_secs(2), fut)
        .await
        .ok()
        .flatten()
}

/// Clock ticks per second for /proc/PID/stat (`getconf CLK_TCK`; 100 on Linux).
pub fn clock_ticks() -> f64 {
    std::process::Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(100.0)
}

/// (RSS in MiB, user+system CPU seconds) of process `pid`.
pub fn proc_usage(pid: u32, ticks: f64) -> Option<(f64, f64)> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let rss_kib: f64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))?
        .split_whitespace()
        .next()?
        .parse()
        .ok()?;
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    Some((rss_kib / 1024.0, cpu_seconds(&stat, ticks)?))
}

/// utime + stime from a /proc/PID/stat line (fields 14 and 15; the command
/// name in parentheses may contain spaces, so count from the last ')').
pub fn cpu_seconds(stat: &str, ticks: f64) -> Option<f64> {
    let rest = &stat[stat.rfind(')')? + 2..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    let utime: f64 = f.get(11)?.parse().ok()?;
    let stime: f64 = f.get(12)?.parse().ok()?;
    Some((utime + stime) / ticks)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_time_from_stat_line() {
        let stat = "4242 (dynamo ingest) S 1 4242 4242 0 -1 4194560 1000 0 0 0 250 50 0 0 20 0 8 0 100 0 0";
        assert_eq!(cpu_seconds(stat, 100.0), Some(3.0));
    }

    #[test]
    fn own_process_is_readable() {
        let (rss, cpu) = proc_usage(std::process::id(), clock_ticks()).expect("/proc/self");
        assert!(rss > 0.0 && cpu >= 0.0);
    }
}
