//! Capacity-model accuracy probe: how many WCU per second does a saturated
//! table really admit, compared with its configured capacity?
//!
//! Starts dynamo-sim in-process (real HTTP/1.1 over loopback, as `blast`
//! does), creates one table, and drives it with a realistic writer for
//! `--seconds`: `--connections` keep-alive connections, BatchWriteItem of 25
//! items of exactly 1 WCU each (spread over `--keys` partition keys),
//! `UnprocessedItems` re-sent first in the next batch after a short jittered
//! backoff, an exponential backoff on a fully throttled call, and a global
//! pacer holding the offered write attempts at `--offer` × capacity (so the
//! client never busy-loops). It then reads `GET /__sim/stats` and prints the
//! admitted WCU of every one-second bucket, their mean, median, min/max, the
//! error of the mean against the configured rate and the share of buckets
//! within ±2 %.
//!
//! Phases (`--mode`): `provisioned` (a PROVISIONED table of `--wcu`, default
//! 1000) and `on-demand` (a PAY_PER_REQUEST table held at its warm
//! throughput, `--on-demand-wcu` = 4000, by setting `on_demand_max_wcu` to
//! the same value; without that cap the table doubles its previous peak
//! every second and simply follows the offered load). Each phase gets a
//! fresh simulator. Default: both.
//!
//! `cargo run --release -p dynamo-sim --example accuracy -- --seconds 60`
//! Stops by itself after `--seconds` per phase; traffic goes to 127.0.0.1 only.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use clap::{Parser, ValueEnum};
use dynamo_sim::attr::AttrMap;
use dynamo_sim::size::{item_size, write_units};
use dynamo_sim::{CapacityConfig, SimConfig, Simulator};
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1::SendRequest;
use hyper::Request;
use hyper_util::rt::TokioIo;
use serde_json::{json, Value};

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Mode {
    Provisioned,
    OnDemand,
    Both,
}

#[derive(Debug, Parser)]
struct Args {
    /// Saturated run length per phase, seconds.
    #[arg(long, default_value_t = 60)]
    seconds: u64,
    /// Which table(s) to measure.
    #[arg(long, value_enum, default_value_t = Mode::Both)]
    mode: Mode,
    /// Provisioned table's WCU/s.
    #[arg(long, default_value_t = 1000)]
    wcu: u64,
    /// On-demand warm throughput (and cap) in WCU/s.
    #[arg(long, default_value_t = 4000)]
    on_demand_wcu: u64,
    /// Offered write attempts (new + re-sent items) as a multiple of capacity.
    #[arg(long, default_value_t = 3.0)]
    offer: f64,
    /// Concurrent keep-alive connections (one writer each).
    #[arg(long, default_value_t = 8)]
    connections: usize,
    /// Distinct partition key values written in a cycle.
    #[arg(long, default_value_t = 50_000)]
    keys: u64,
    /// Item size by DynamoDB's rules (must cost exactly 1 WCU: ≤ 1024).
    #[arg(long, default_value_t = 900)]
    item_bytes: usize,
    /// Whole seconds after the load starts left out of the statistics (the
    /// initial burst bucket drains there); reported separately.
    #[arg(long, default_value_t = 2)]
    skip: u64,
    /// The simulator's `capacity.initial_burst_seconds`.
    #[arg(long, default_value_t = 1.0)]
    initial_burst_seconds: f64,
    /// Base backoff after a call with UnprocessedItems, ms (jittered ×0.5–1.5;
    /// doubled per consecutive fully throttled call, up to ×16).
    #[arg(long, default_value_t = 10)]
    backoff_ms: u64,
    /// Server runtime worker threads (the binary's default on 2 cores is 2).
    #[arg(long, default_value_t = 2)]
    server_threads: usize,
    /// Print every one-second bucket of the measured window.
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set)]
    buckets: bool,
}

const TABLE: &str = "AccuracyProbe";
const PK: &str = "device_id";
const SERVER_THREAD: &str = "sim-server";
const CLIENT_THREAD: &str = "accuracy-client";

/// Offered-load pacer: every send reserves `n / rate` seconds of a shared
/// timeline and waits for its slot. A writer that fell behind (backoff)
/// does not earn a catch-up burst.
struct Pacer {
    next: Mutex<Instant>,
    per_item: Duration,
}

impl Pacer {
    fn new(items_per_second: f64) -> Self {
        Pacer {
            next: Mutex::new(Instant::now()),
            per_item: Duration::from_secs_f64(1.0 / items_per_second),
        }
    }

    async fn wait(&self, items: u32) {
        let at = {
            let mut next = self.next.lock().unwrap_or_else(|e| e.into_inner());
            let at = (*next).max(Instant::now());
            *next = at + self.per_item * items;
            at
        };
        tokio::time::sleep_until(at.into()).await;
    }
}

#[derive(Default)]
struct Counters {
    calls: AtomicU64,
    items_sent: AtomicU64,
    items_admitted: AtomicU64,
    partial_calls: AtomicU64,
    throttled_calls: AtomicU64,
    other_errors: AtomicU64,
}

struct Workload {
    addr: SocketAddr,
    stop: AtomicBool,
    seq: AtomicU64,
    keys: u64,
    payload: String,
    pacer: Pacer,
    backoff: Duration,
    counters: Counters,
    first_error: Mutex<Option<String>>,
}

impl Workload {
    fn key(&self, seq: u64) -> String {
        format!("dev-{:08}", seq % self.keys)
    }

    fn put(&self, key: &str) -> Value {
        json!({"PutRequest": {"Item": {PK: {"S": key}, "payload": {"S": self.payload}}}})
    }
}

fn put_key(w: &Value) -> Option<&str> {
    w["PutRequest"]["Item"][PK]["S"].as_str()
}

async fn connect(addr: SocketAddr) -> Result<SendRequest<Full<Bytes>>, String> {
    let stream = tokio::net::TcpStream::connect(addr)
        .await
        .map_err(|e| e.to_string())?;
    let _ = stream.set_nodelay(true);
    let (send, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .map_err(|e| e.to_string())?;
    tokio::spawn(conn);
    Ok(send)
}

async fn call(
    send: &mut SendRequest<Full<Bytes>>,
    method: &str,
    target: Option<&str>,
    path: &str,
    body: Vec<u8>,
) -> Result<(u16, Bytes), String> {
    let mut req = Request::builder()
        .method(method)
        .uri(path)
        .header("host", "127.0.0.1")
        .header("content-type", "application/x-amz-json-1.0");
    if let Some(t) = target {
        req = req.header("x-amz-target", t);
    }
    let req = req
        .body(Full::new(Bytes::from(body)))
        .map_err(|e| e.to_string())?;
    let resp = send.send_request(req).await.map_err(|e| e.to_string())?;
    let status = resp.status().as_u16();
    let bytes = resp
        .into_body()
        .collect()
        .await
        .map_err(|e| e.to_string())?
        .to_bytes();
    Ok((status, bytes))
}

fn jitter(base: Duration) -> Duration {
    base.mul_f64(0.5 + fastrand::f64())
}

/// One writer: BatchWriteItem of 25, unprocessed items re-sent first.
async fn writer(w: Arc<Workload>) {
    let mut send = match connect(w.addr).await {
        Ok(s) => s,
        Err(e) => {
            w.note_error(e);
            return;
        }
    };
    let mut pending: Vec<Value> = Vec::with_capacity(25);
    let mut full_throttles: u32 = 0;
    while !w.stop.load(Ordering::Relaxed) {
        while pending.len() < 25 {
            let key = w.key(w.seq.fetch_add(1, Ordering::Relaxed));
            if pending.iter().any(|p| put_key(p) == Some(key.as_str())) {
                continue; // a batch must not hold one key twice
            }
            pending.push(w.put(&key));
        }
        let n = pending.len();
        w.pacer.wait(n as u32).await;
        if w.stop.load(Ordering::Relaxed) {
            break;
        }
        let batch = std::mem::take(&mut pending);
        let body =
            serde_json::to_vec(&json!({"RequestItems": {TABLE: &batch}})).unwrap_or_default();
        w.counters.calls.fetch_add(1, Ordering::Relaxed);
        w.counters.items_sent.fetch_add(n as u64, Ordering::Relaxed);
        let result = call(
            &mut send,
            "POST",
            Some("DynamoDB_20120810.BatchWriteItem"),
            "/",
            body,
        )
        .await;
        let (status, bytes) = match result {
            Ok(r) => r,
            Err(e) => {
                w.note_error(e);
                return;
            }
        };
        let resp: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        if status == 200 {
            let left = match resp["UnprocessedItems"][TABLE].as_array() {
                Some(items) => items.clone(),
                None => Vec::new(),
            };
            w.counters
                .items_admitted
                .fetch_add((n - left.len()) as u64, Ordering::Relaxed);
            full_throttles = 0;
            if !left.is_empty() {
                w.counters.partial_calls.fetch_add(1, Ordering::Relaxed);
                pending = left;
                tokio::time::sleep(jitter(w.backoff)).await;
            }
            continue;
        }
        let kind = resp["__type"].as_str().unwrap_or("");
        if kind.ends_with("ProvisionedThroughputExceededException")
            || kind.ends_with("ThrottlingException")
        {
            // Nothing was written: the whole batch goes again, after an
            // exponential backoff.
            w.counters.throttled_calls.fetch_add(1, Ordering::Relaxed);
            pending = batch;
            full_throttles = (full_throttles + 1).min(4);
            tokio::time::sleep(jitter(w.backoff * (1 << full_throttles))).await;
            continue;
        }
        w.note_error(format!(
            "HTTP {status}: {}",
            String::from_utf8_lossy(&bytes)
        ));
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Everything one phase measured.
struct PhaseReport {
    name: &'static str,
    configured: f64,
    window: Vec<(i64, f64)>,
    mean: f64,
    median: f64,
    err_pct: f64,
}

fn median(v: &[f64]) -> f64 {
    if v.is_empty() {
        return f64::NAN;
    }
    let mut s = v.to_vec();
    s.sort_by(f64::total_cmp);
    let m = s.len() / 2;
    if s.len() % 2 == 1 {
        s[m]
    } else {
        (s[m - 1] + s[m]) / 2.0
    }
}

/// Merge one `/__sim/stats` document's per-second ring into `buckets`,
/// keyed by absolute simulator second (the ring's last entry is the second
/// holding `uptime_seconds`).
fn merge_stats(doc: &Value, buckets: &mut BTreeMap<i64, f64>) {
    let uptime = doc["uptime_seconds"].as_f64().unwrap_or(0.0);
    let head = uptime.floor() as i64;
    if let Some(ring) = doc["tables"][TABLE]["wcu_per_second"].as_array() {
        let len = ring.len() as i64;
        for (i, v) in ring.iter().enumerate() {
            let sec = head - (len - 1) + i as i64;
            if sec >= 0 {
                buckets.insert(sec, v.as_f64().unwrap_or(0.0));
            }
        }
    }
}

async fn fetch_stats(addr: SocketAddr) -> Result<Value, String> {
    let mut send = connect(addr).await?;
    let (status, bytes) = call(&mut send, "GET", None, "/__sim/stats", Vec::new()).await?;
    if status != 200 {
        return Err(format!("stats: HTTP {status}"));
    }
    serde_json::from_slice(&bytes).map_err(|e| e.to_string())
}

fn run_phase(
    args: &Args,
    name: &'static str,
    on_demand: bool,
    payload: &str,
) -> Result<PhaseReport, Box<dyn std::error::Error>> {
    let configured = if on_demand {
        args.on_demand_wcu as f64
    } else {
        args.wcu as f64
    };
    let server_rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(args.server_threads.max(1))
        .thread_name(SERVER_THREAD)
        .enable_all()
        .build()?;
    let client_rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .thread_name(CLIENT_THREAD)
        .enable_all()
        .build()?;
    let mut capacity = CapacityConfig {
        initial_burst_seconds: args.initial_burst_seconds,
        ..CapacityConfig::default()
    };
    if on_demand {
        capacity.on_demand_warm_wcu = configured;
        capacity.on_demand_max_wcu = Some(configured);
    }
    let cfg = SimConfig {
        capacity,
        ..SimConfig::default()
    };
    let sim = Arc::new(Simulator::new(cfg)?);
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let addr = server_rt.block_on(async {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        tokio::spawn(dynamo_sim::serve(listener, sim.clone(), async {
            let _ = stop_rx.await;
        }));
        Ok::<_, std::io::Error>(addr)
    })?;

    let offered = configured * args.offer;
    let w = Arc::new(Workload {
        addr,
        stop: AtomicBool::new(false),
        seq: AtomicU64::new(0),
        keys: args.keys.max(100),
        payload: payload.to_string(),
        pacer: Pacer::new(offered),
        backoff: Duration::from_millis(args.backoff_ms.max(1)),
        counters: Counters::default(),
        first_error: Mutex::new(None),
    });

    let mut buckets: BTreeMap<i64, f64> = BTreeMap::new();
    let (t_create, t_start, t_end, final_stats) = client_rt.block_on(async {
        // The table is created over HTTP, right before the load starts.
        let mut admin = connect(addr).await?;
        let mut create = json!({
            "TableName": TABLE,
            "AttributeDefinitions": [{"AttributeName": PK, "AttributeType": "S"}],
            "KeySchema": [{"AttributeName": PK, "KeyType": "HASH"}],
        });
        if on_demand {
            create["BillingMode"] = json!("PAY_PER_REQUEST");
        } else {
            create["BillingMode"] = json!("PROVISIONED");
            create["ProvisionedThroughput"] =
                json!({"ReadCapacityUnits": args.wcu, "WriteCapacityUnits": args.wcu});
        }
        let t_create = sim.now();
        let (status, bytes) = call(
            &mut admin,
            "POST",
            Some("DynamoDB_20120810.CreateTable"),
            "/",
            serde_json::to_vec(&create)?,
        )
        .await?;
        if status != 200 {
            return Err(format!(
                "CreateTable: HTTP {status}: {}",
                String::from_utf8_lossy(&bytes)
            )
            .into());
        }
        let t_start = sim.now();
        let tasks: Vec<_> = (0..args.connections.max(1))
            .map(|_| tokio::spawn(writer(w.clone())))
            .collect();
        let deadline = tokio::time::Instant::now() + Duration::from_secs(args.seconds);
        // The stats ring keeps 120 s: poll every 30 s so long runs lose nothing.
        loop {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            if left.is_zero() {
                break;
            }
            tokio::time::sleep(left.min(Duration::from_secs(30))).await;
            merge_stats(&fetch_stats(addr).await?, &mut buckets);
        }
        let t_end = sim.now();
        w.stop.store(true, Ordering::Relaxed);
        for t in tasks {
            let _ = t.await;
        }
        let doc = fetch_stats(addr).await?;
        merge_stats(&doc, &mut buckets);
        Ok::<_, Box<dyn std::error::Error>>((t_create, t_start, t_end, doc))
    })?;
    let _ = stop_tx.send(());
    drop(client_rt);
    drop(server_rt);

    let st = &final_stats["tables"][TABLE];
    let c = &w.counters;
    let first_full = t_start.ceil() as i64;
    let window_start = first_full + args.skip as i64;
    let window_end = t_end.floor() as i64 - 1; // last complete second
    let window: Vec<(i64, f64)> = buckets
        .range(window_start..=window_end)
        .map(|(s, v)| (*s, *v))
        .collect();
    let values: Vec<f64> = window.iter().map(|(_, v)| *v).collect();
    let mean = values.iter().sum::<f64>() / values.len().max(1) as f64;
    let med = median(&values);
    let min = values.iter().copied().fold(f64::INFINITY, f64::min);
    let max = values.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    let within = values
        .iter()
        .filter(|v| ((**v - configured) / configured).abs() <= 0.02)
        .count();
    let err_pct = (mean - configured) / configured * 100.0;
    let total_wcu = st["total_wcu"].as_f64().unwrap_or(0.0);
    let initial_tokens = configured
        * args
            .initial_burst_seconds
            .min(if on_demand { 1.0 } else { 300.0 });

    println!("== phase {name} ==");
    println!(
        "table               {TABLE} ({}), partitions {}, capacity_wcu_now {}",
        st["billing_mode"].as_str().unwrap_or("?"),
        st["partitions"],
        st["capacity_wcu_now"]
    );
    println!("configured_wcu_s    {configured:.0}");
    println!(
        "offered             {offered:.0} item attempts/s ({:.1}x), {} connections, items of {} bytes = 1 WCU",
        args.offer, args.connections, args.item_bytes
    );
    println!(
        "sim clock           table created {t_create:.3} s, load {t_start:.3} .. {t_end:.3} s"
    );
    println!(
        "initial burst       bucket starts with {initial_tokens:.0} tokens (initial_burst_seconds {})",
        args.initial_burst_seconds
    );
    let burst_end = window_start.min(window_end + 1);
    let mut burst_sum = 0.0;
    for s in (t_start.floor() as i64)..burst_end {
        let v = buckets.get(&s).copied().unwrap_or(0.0);
        burst_sum += v;
        let part = if (s as f64) < t_start {
            " (partial: load began mid-second)"
        } else {
            ""
        };
        println!("  skipped second {s:>4}: {v:>8.0} WCU{part}");
    }
    let burst_span = burst_end as f64 - t_start;
    println!(
        "  skipped total {burst_sum:.0} WCU over {burst_span:.3} s = rate x span {:.0} + excess {:.0}",
        configured * burst_span,
        burst_sum - configured * burst_span
    );
    if args.buckets {
        let line: Vec<String> = values.iter().map(|v| format!("{v:.0}")).collect();
        println!("window buckets      {}", line.join(" "));
    }
    println!(
        "window              seconds {window_start}..={window_end} ({} buckets)",
        values.len()
    );
    println!("mean_wcu_s          {mean:.1}");
    println!("median_wcu_s        {med:.1}");
    println!("min / max bucket    {min:.0} / {max:.0}");
    println!("mean error          {err_pct:+.3} %");
    println!(
        "buckets within 2%   {within}/{} ({:.1} %)",
        values.len(),
        within as f64 * 100.0 / values.len().max(1) as f64
    );
    let elapsed = t_end - t_create;
    println!(
        "whole run           total {total_wcu:.0} WCU in {elapsed:.3} s = {:.1} WCU/s; above rate x time: {:+.0} WCU",
        total_wcu / elapsed,
        total_wcu - configured * elapsed
    );
    println!(
        "sim counters        admitted_items {}, throttled_calls {}, throttled_items {}, unprocessed_items {}",
        st["admitted_items"], st["throttled_calls"], st["throttled_items"], st["unprocessed_items"]
    );
    println!(
        "client counters     calls {}, items sent {}, admitted {}, partial calls {}, throttled calls {}, other errors {}",
        c.calls.load(Ordering::Relaxed),
        c.items_sent.load(Ordering::Relaxed),
        c.items_admitted.load(Ordering::Relaxed),
        c.partial_calls.load(Ordering::Relaxed),
        c.throttled_calls.load(Ordering::Relaxed),
        c.other_errors.load(Ordering::Relaxed)
    );
    if let Some(e) = w.first_error.lock().ok().and_then(|g| g.clone()) {
        println!("first error         {e}");
    }
    println!();
    Ok(PhaseReport {
        name,
        configured,
        window,
        mean,
        median: med,
        err_pct,
    })
}

impl Workload {
    fn note_error(&self, e: String) {
        self.counters.other_errors.fetch_add(1, Ordering::Relaxed);
        if let Ok(mut g) = self.first_error.lock() {
            g.get_or_insert(e);
        }
    }
}

/// A payload that makes the item exactly `bytes` by DynamoDB's size rules.
fn payload_for(bytes: usize, keys: u64) -> Result<String, Box<dyn std::error::Error>> {
    let probe = |payload: &str| -> Result<usize, Box<dyn std::error::Error>> {
        let key = format!("dev-{:08}", keys.saturating_sub(1));
        let item = AttrMap::from_json(json!({PK: {"S": key}, "payload": {"S": payload}}))
            .map_err(|e| format!("{e:?}"))?;
        Ok(item_size(&item).map_err(|e| format!("{e:?}"))?)
    };
    let base = probe("x")? - 1;
    if bytes <= base || bytes > 1024 {
        return Err(format!("--item-bytes must be in {}..=1024", base + 1).into());
    }
    let payload = "x".repeat(bytes - base);
    let size = probe(&payload)?;
    if size != bytes || write_units(size) != 1 {
        return Err(format!("item is {size} bytes, {} WCU", write_units(size)).into());
    }
    Ok(payload)
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args = Args::parse();
    let payload = payload_for(args.item_bytes, args.keys)?;
    let mut reports = Vec::new();
    if matches!(args.mode, Mode::Provisioned | Mode::Both) {
        reports.push(run_phase(&args, "provisioned", false, &payload)?);
    }
    if matches!(args.mode, Mode::OnDemand | Mode::Both) {
        reports.push(run_phase(&args, "on-demand", true, &payload)?);
    }
    for r in &reports {
        println!(
            "SUMMARY {:<11} configured {:>5.0} WCU/s  mean {:>7.1}  median {:>7.1}  error {:+.3} %  ({} buckets)",
            r.name,
            r.configured,
            r.mean,
            r.median,
            r.err_pct,
            r.window.len()
        );
    }
    Ok(())
}
