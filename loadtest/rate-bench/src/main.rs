//! `rate-bench`: how well does a writer use a throttling DynamoDB table?
//!
//! Per writer under test (`--writers`), a fresh dynamo-sim runs in-process on
//! 127.0.0.1:0 with a provisioned table `IoTSensorData` (hash `device_id` S,
//! range `timestamp` N) and a tiny initial burst, and an offered load of
//! `--offer` × `--wcu` items/s of exactly 1 WCU each is pushed at the writer
//! for `--seconds`:
//!
//! - `gateway`: the real `dynamo-ingest` binary, fed NDJSON over HTTP;
//! - `sdk-standard` / `sdk-adaptive`: aws-sdk-dynamodb BatchWriteItem of 25
//!   with `RetryConfig::standard()` / `adaptive()`, UnprocessedItems re-sent
//!   at once in a loop (boto3 `batch_writer` style), fed from a bounded
//!   in-process queue.
//!
//! The simulator's stats are sampled every second. The report: utilization
//! (admitted / available WCU over the steady window), share of throttled
//! calls, end-to-end latency p50/p99, items lost (acked − stored). A
//! markdown table goes to stdout, per-second CSVs to `--out`.
//!
//! `cargo run --release -p rate-bench -- --scenario steady --seconds 60`

mod gateway;
mod prom;
mod sdk;

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{anyhow, Context, Result};
use clap::{Parser, ValueEnum};
use dynamo_sim::{CapacityConfig, CapacitySchedule, KeyType, SimConfig, Simulator, TableSpec};
use serde_json::Value;

/// Table every writer writes to.
pub const TABLE: &str = "IoTSensorData";

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Scenario {
    /// `--wcu` for the whole run.
    Steady,
    /// 2×wcu, then wcu/2 at 20 s, then 2×wcu at 40 s (from table creation).
    Step,
    /// `--wcu` over 4 partitions of wcu/4 each (DynamoDB's 1,000-WCU
    /// partition scaled down with the table), 20 % of events on one key.
    HotPartition,
    /// PAY_PER_REQUEST at its warm throughput `--wcu`, which is also the
    /// account's per-table quota; DescribeTable shows no limit, so writers
    /// adapt alone.
    OnDemand,
    /// PAY_PER_REQUEST with a configured maximum (MaxWriteRequestUnits) of
    /// `--wcu`, which DescribeTable reports as `OnDemandThroughput`.
    OnDemandMax,
    /// `--wcu`, each writer run as two instances with half the load each.
    TwoInstances,
}

impl Scenario {
    /// The name used in commands and file names.
    pub fn name(self) -> &'static str {
        match self {
            Scenario::Steady => "steady",
            Scenario::Step => "step",
            Scenario::HotPartition => "hot-partition",
            Scenario::OnDemand => "on-demand",
            Scenario::OnDemandMax => "on-demand-max",
            Scenario::TwoInstances => "two-instances",
        }
    }

    /// Share of the events on the hot key.
    pub fn hot_share(self) -> f64 {
        if self == Scenario::HotPartition {
            0.2
        } else {
            0.0
        }
    }

    /// Writer instances sharing the table.
    fn instances(self) -> usize {
        if self == Scenario::TwoInstances {
            2
        } else {
            1
        }
    }
}

/// Device number of the `i`-th event: one in `1/hot_share` events goes to
/// device 0 (the hot key), the rest spread over the others.
pub fn device_of(i: u64, devices: u64, hot_share: f64) -> u64 {
    if hot_share > 0.0 {
        let every = (1.0 / hot_share).round().max(1.0) as u64;
        if i.is_multiple_of(every) {
            return 0;
        }
        1 + i % devices.saturating_sub(1).max(1)
    } else {
        i % devices.max(1)
    }
}

/// Device id prefix of writer instance `n` (instances write disjoint keys:
/// two gateways each make sort keys unique only among their own events).
pub fn device_prefix(instance: usize) -> char {
    (b'D' + instance as u8) as char
}

#[derive(Debug, Parser)]
#[command(about = "How well writers use a throttling DynamoDB table (against dynamo-sim)")]
pub struct Args {
    /// Capacity scenario.
    #[arg(long, value_enum, default_value_t = Scenario::Steady)]
    pub scenario: Scenario,
    /// Writers under test, comma-separated: gateway, sdk-standard, sdk-adaptive.
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "gateway,sdk-standard,sdk-adaptive"
    )]
    writers: Vec<String>,
    /// Load duration per writer, seconds.
    #[arg(long, default_value_t = 60)]
    pub seconds: u64,
    /// Provisioned WCU of the table (the step scenario scales from it).
    #[arg(long, default_value_t = 1000)]
    pub wcu: u64,
    /// Offered load as a multiple of `--wcu` (items/s, 1 WCU each).
    #[arg(long, default_value_t = 3.0)]
    pub offer: f64,
    /// Seconds at the start of the load left out of utilization.
    #[arg(long, default_value_t = 5)]
    skip: u64,
    /// Simulator `capacity.initial_burst_seconds`.
    #[arg(long, default_value_t = 0.5)]
    initial_burst_seconds: f64,
    /// Distinct device ids (partition keys).
    #[arg(long, default_value_t = 10_000)]
    pub devices: u64,
    /// Payload string length (the item must stay ≤ 1024 bytes = 1 WCU).
    #[arg(long, default_value_t = 900)]
    pub payload_bytes: usize,
    /// Output directory for CSVs, the gateway's config, logs and summary.
    #[arg(long, default_value = "target/rate-bench")]
    pub out: PathBuf,
    /// Gateway binary (build: `cargo build --release -p dynamo-ingest`).
    #[arg(long, default_value = "target/release/dynamo-ingest")]
    pub gateway_bin: PathBuf,
    /// Gateway config to start from (queue bounds and grace are overridden).
    #[arg(long, default_value = "config/default.toml")]
    pub gateway_config: PathBuf,
    /// Events per HTTP request to the gateway.
    #[arg(long, default_value_t = 100)]
    pub events_per_request: u64,
    /// Gateway `pipeline.queue_max_items` (and the SDK writers' queue bound):
    /// 20 s of the table's capacity, so the backlog drains in about 20 s and
    /// the excess load is refused (503) rather than queued for minutes.
    #[arg(long, default_value_t = 20_000)]
    pub queue_max_items: u64,
    /// Concurrent writer tasks of the SDK writers.
    #[arg(long, default_value_t = 8)]
    pub sdk_tasks: usize,
    /// Longest wait, after the load, for a writer to drain its backlog, seconds.
    #[arg(long, default_value_t = 400)]
    pub drain_timeout: u64,
}

/// What one writer run measured, besides the simulator's per-second data.
#[derive(Debug, Default)]
pub struct WriterOutcome {
    /// Items the writer acknowledged (gateway: 202 `accepted`; SDK: written).
    pub acked: u64,
    /// Items offered but refused before acknowledgement (503, full queue).
    pub rejected: u64,
    /// BatchWriteItem calls answered with 200 (including partial ones).
    pub ok_calls: u64,
    /// Calls answered 200 with UnprocessedItems.
    pub partial_calls: u64,
    /// Total calls, when the writer counts them itself (gateway's
    /// `batches_total`); otherwise ok_calls + sim's throttled_calls.
    pub total_calls: Option<u64>,
    /// End-to-end latency p50/p99, seconds.
    pub p50: Option<f64>,
    pub p99: Option<f64>,
    /// Gateway's `dynamo_ingest_rate_limit_wcu` by absolute sim second.
    pub rate_limit: BTreeMap<i64, f64>,
    /// Per-item end-to-end latencies (seconds), when measured per item.
    pub latencies: Vec<f64>,
    /// The gateway's final `/metrics` text.
    pub metrics_text: String,
    /// Free text (errors, drain notes).
    pub notes: Vec<String>,
}

/// One second of the run.
#[derive(Debug, Default, Clone)]
struct Sample {
    capacity: f64,
    throttled_calls: f64,
    unprocessed_items: f64,
    items_stored: f64,
}

/// Shared handles a writer needs.
pub struct Ctx {
    pub sim: Arc<Simulator>,
    pub endpoint: String,
    pub payload: String,
}

/// A payload of `n` characters.
fn payload(n: usize) -> String {
    "x".repeat(n)
}

/// Checks with the simulator's size rules that the biggest item a writer
/// sends costs exactly 1 WCU.
fn check_item_size(payload: &str, devices: u64) -> Result<usize> {
    use dynamo_sim::attr::AttrMap;
    use dynamo_sim::size::{item_size, write_units};
    let item = serde_json::json!({
        "device_id": {"S": format!("D{}", devices.saturating_sub(1))},
        // epoch milliseconds: the gateway's server-time sort key
        "timestamp": {"N": "1790000000000"},
        "payload": {"S": payload},
    });
    let item = AttrMap::from_json(item).map_err(|e| anyhow!("{e:?}"))?;
    let size = item_size(&item).map_err(|e| anyhow!("{e:?}"))?;
    if write_units(size) != 1 {
        return Err(anyhow!(
            "item of {size} bytes costs {} WCU, not 1",
            write_units(size)
        ));
    }
    Ok(size)
}

fn schedule_for(args: &Args) -> Option<String> {
    match args.scenario {
        Scenario::Steady
        | Scenario::HotPartition
        | Scenario::OnDemand
        | Scenario::OnDemandMax
        | Scenario::TwoInstances => None,
        Scenario::Step => Some(format!(
            "{}, 20s:{}, 40s:{}",
            args.wcu * 2,
            args.wcu / 2,
            args.wcu * 2
        )),
    }
}

/// Merges the stats' per-second ring into `buckets` (absolute sim second).
fn merge_ring(doc: &Value, buckets: &mut BTreeMap<i64, f64>) {
    let head = doc["uptime_seconds"].as_f64().unwrap_or(0.0).floor() as i64;
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

fn table_num(doc: &Value, key: &str) -> f64 {
    doc["tables"][TABLE][key].as_f64().unwrap_or(0.0)
}

/// Result row of one writer.
struct Row {
    writer: String,
    non_hot_share: Option<f64>,
    utilization: f64,
    mean_wcu: f64,
    calls: u64,
    throttled: u64,
    throttled_share: f64,
    p50: Option<f64>,
    p99: Option<f64>,
    acked: u64,
    stored: u64,
    rejected: u64,
    convergence: Vec<(f64, f64, Option<f64>)>,
    notes: Vec<String>,
}

async fn run_writer(args: &Args, writer: &str, payload_text: &str) -> Result<Row> {
    let mut capacity = CapacityConfig {
        initial_burst_seconds: args.initial_burst_seconds,
        ..CapacityConfig::default()
    };
    match args.scenario {
        Scenario::HotPartition => {
            capacity.partitions = Some(HOT_PARTITIONS);
            capacity.partition_wcu = args.wcu as f64 / f64::from(HOT_PARTITIONS);
        }
        Scenario::OnDemand => {
            capacity.on_demand_warm_wcu = args.wcu as f64;
            capacity.on_demand_account_wcu = Some(args.wcu as f64);
        }
        Scenario::OnDemandMax => {
            capacity.on_demand_warm_wcu = args.wcu as f64;
            capacity.on_demand_max_wcu = Some(args.wcu as f64);
        }
        _ => {}
    }
    let schedule: Option<CapacitySchedule> = match schedule_for(args) {
        Some(s) => Some(s.parse().map_err(|e| anyhow!("schedule {s:?}: {e:?}"))?),
        None => None,
    };
    capacity.schedule = schedule.clone();
    let sim = Arc::new(
        Simulator::new(SimConfig {
            capacity,
            ..SimConfig::default()
        })
        .map_err(|e| anyhow!("simulator: {e:?}"))?,
    );
    let wcu0 = schedule.as_ref().map_or(args.wcu as f64, |s| s.wcu_at(0.0));
    let spec = TableSpec::on_demand(
        TABLE,
        ("device_id", KeyType::S),
        Some(("timestamp", KeyType::N)),
    );
    let spec = if matches!(args.scenario, Scenario::OnDemand | Scenario::OnDemandMax) {
        spec
    } else {
        spec.provisioned(wcu0 as u64)
    };
    sim.create_table(spec)
        .map_err(|e| anyhow!("create_table: {e:?}"))?;
    let t_create = sim.now();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(dynamo_sim::serve(listener, sim.clone(), async {
        let _ = stop_rx.await;
    }));
    let ctx = Ctx {
        sim: sim.clone(),
        endpoint: format!("http://{addr}"),
        payload: payload_text.to_string(),
    };

    // Sampler: one stats document per second.
    let (sampler_stop_tx, mut sampler_stop_rx) = tokio::sync::watch::channel(false);
    let sampler_sim = sim.clone();
    let sampler = tokio::spawn(async move {
        let mut buckets = BTreeMap::new();
        let mut samples: BTreeMap<i64, Sample> = BTreeMap::new();
        let mut tick = tokio::time::interval(Duration::from_secs(1));
        loop {
            tokio::select! {
                _ = tick.tick() => {}
                _ = sampler_stop_rx.changed() => break,
            }
            let doc = sampler_sim.stats();
            merge_ring(&doc, &mut buckets);
            let sec = doc["uptime_seconds"].as_f64().unwrap_or(0.0).floor() as i64;
            samples.insert(
                sec,
                Sample {
                    capacity: table_num(&doc, "capacity_wcu_now"),
                    throttled_calls: table_num(&doc, "throttled_calls"),
                    unprocessed_items: table_num(&doc, "unprocessed_items"),
                    items_stored: table_num(&doc, "items_stored"),
                },
            );
        }
        let doc = sampler_sim.stats();
        merge_ring(&doc, &mut buckets);
        (buckets, samples)
    });

    let t_start = sim.now();
    // Hot-key items stored at the start and the end of the window.
    let hot_counter = (args.scenario.hot_share() > 0.0).then(|| {
        let sim = sim.clone();
        // The same whole sim seconds as the utilization window below.
        let from = (t_start.ceil() as i64 + args.skip as i64) as f64;
        let to = (t_start + args.seconds as f64).floor();
        tokio::spawn(async move {
            let mut counts = Vec::new();
            for at in [from, to] {
                let wait = (at - sim.now()).max(0.0);
                tokio::time::sleep(Duration::from_secs_f64(wait)).await;
                counts.push(count_key(&sim, &format!("{}0", device_prefix(0))));
            }
            counts
        })
    });
    let outcome = run_instances(args, &ctx, writer).await;
    let _ = sampler_stop_tx.send(true);
    let (buckets, samples) = sampler.await?;
    let final_doc = sim.stats();
    let _ = stop_tx.send(());
    let _ = tokio::time::timeout(Duration::from_secs(10), server).await;
    let outcome = outcome.with_context(|| format!("writer {writer}"))?;

    // Per-second CSV, load seconds and drain.
    let cap_at = |sec: i64| -> f64 {
        let t = sec as f64 + 0.5 - t_create;
        schedule.as_ref().map_or(args.wcu as f64, |s| s.wcu_at(t))
    };
    let first = t_start.floor() as i64;
    let last = buckets.keys().last().copied().unwrap_or(first);
    let mut csv = String::from(
        "second,t_from_load_start,capacity_wcu,admitted_wcu,sim_capacity_wcu_now,throttled_calls_total,unprocessed_items_total,items_stored,gateway_rate_limit_wcu\n",
    );
    let mut prev = Sample::default();
    for sec in first..=last {
        let s = samples.get(&sec).cloned().unwrap_or_else(|| prev.clone());
        let rl = outcome
            .rate_limit
            .get(&sec)
            .map_or(String::new(), |v| format!("{v:.0}"));
        let _ = writeln!(
            csv,
            "{sec},{},{:.0},{:.0},{:.0},{:.0},{:.0},{:.0},{rl}",
            (sec as f64 - t_start).round() as i64,
            cap_at(sec),
            buckets.get(&sec).copied().unwrap_or(0.0),
            s.capacity,
            s.throttled_calls,
            s.unprocessed_items,
            s.items_stored
        );
        prev = s;
    }
    let scen = args.scenario.name();
    std::fs::write(args.out.join(format!("{scen}-{writer}.csv")), csv)?;

    // Steady window: whole seconds within the load, after `skip`.
    let w_start = t_start.ceil() as i64 + args.skip as i64;
    let w_end = (t_start + args.seconds as f64).floor() as i64 - 1;
    let (mut admitted, mut available) = (0.0, 0.0);
    for sec in w_start..=w_end {
        admitted += buckets.get(&sec).copied().unwrap_or(0.0);
        available += cap_at(sec);
    }
    let n = (w_end - w_start + 1).max(1) as f64;
    // Non-hot keys' WCU in the window over their share of it (their share
    // of the offered events × the WCU available).
    let non_hot_share = match hot_counter {
        Some(task) => {
            let counts = task.await?;
            let (a, b) = (
                counts.first().copied().flatten(),
                counts.get(1).copied().flatten(),
            );
            // The window for hot counts is [skip, seconds) of the load; the
            // admitted sum above covers the same whole seconds.
            match (a, b) {
                (Some(a), Some(b)) => {
                    let hot = b.saturating_sub(a) as f64;
                    let share = 1.0 - args.scenario.hot_share();
                    Some((admitted - hot) / (share * available.max(1.0)))
                }
                _ => None,
            }
        }
        None => None,
    };

    // Time to come within 5 % of each new capacity after a step.
    let mut convergence = Vec::new();
    if let Some(s) = &schedule {
        for at in [20.0, 40.0] {
            if at >= args.seconds as f64 {
                continue;
            }
            let target = s.wcu_at(at);
            let step_abs = t_create + at;
            let mut found = None;
            let mut sec = step_abs.ceil() as i64;
            while (sec as f64) < t_start + args.seconds as f64 - 1.0 {
                let v = buckets.get(&sec).copied().unwrap_or(0.0);
                if ((v - target) / target).abs() <= 0.05 {
                    found = Some(sec as f64 + 1.0 - step_abs);
                    break;
                }
                sec += 1;
            }
            convergence.push((at, target, found));
        }
    }

    let sim_throttled = table_num(&final_doc, "throttled_calls") as u64;
    let calls = outcome
        .total_calls
        .unwrap_or(outcome.ok_calls + sim_throttled);
    let throttled = sim_throttled + outcome.partial_calls;
    let stored = table_num(&final_doc, "items_stored") as u64;
    let mut notes = outcome.notes;
    let total_wcu = table_num(&final_doc, "total_wcu");
    let admitted_items = table_num(&final_doc, "admitted_items");
    if (total_wcu - admitted_items).abs() > 0.5 {
        notes.push(format!(
            "items not 1 WCU each: total_wcu {total_wcu} vs admitted_items {admitted_items}"
        ));
    }
    let mut lat = outcome.latencies;
    let (p50, p99) = if lat.is_empty() {
        (outcome.p50, outcome.p99)
    } else {
        lat.sort_by(f64::total_cmp);
        (quantile(&lat, 0.5), quantile(&lat, 0.99))
    };
    Ok(Row {
        writer: writer.to_string(),
        non_hot_share,
        utilization: admitted / available.max(1.0),
        mean_wcu: admitted / n,
        calls,
        throttled,
        throttled_share: throttled as f64 / calls.max(1) as f64,
        p50,
        p99,
        acked: outcome.acked,
        stored,
        rejected: outcome.rejected,
        convergence,
        notes,
    })
}

/// Partitions of the hot-partition scenario's table.
const HOT_PARTITIONS: u32 = 4;

/// Quantile `q` of sorted values (nearest rank).
pub fn quantile(sorted: &[f64], q: f64) -> Option<f64> {
    if sorted.is_empty() {
        return None;
    }
    let i = ((sorted.len() as f64 - 1.0) * q).round() as usize;
    sorted.get(i).copied()
}

/// Items stored under partition key `device` (Query, Select COUNT, all pages).
fn count_key(sim: &Simulator, device: &str) -> Option<u64> {
    let mut total = 0;
    let mut start: Option<Value> = None;
    loop {
        let mut req = serde_json::json!({
            "TableName": TABLE,
            "KeyConditionExpression": "device_id = :d",
            "ExpressionAttributeValues": {":d": {"S": device}},
            "Select": "COUNT",
        });
        if let Some(k) = start.take() {
            req["ExclusiveStartKey"] = k;
        }
        let out = sim.handle_value("DynamoDB_20120810.Query", req).ok()?;
        total += out["Count"].as_u64()?;
        match out.get("LastEvaluatedKey") {
            Some(k) if !k.is_null() => start = Some(k.clone()),
            _ => return Some(total),
        }
    }
}

/// Runs `writer` as the scenario's number of instances at once, each with
/// its share of the load, and adds up what they measured.
async fn run_instances(args: &Args, ctx: &Ctx, writer: &str) -> Result<WriterOutcome> {
    let n = args.scenario.instances();
    let one = |i: usize| async move {
        match writer {
            "gateway" => gateway::run(args, ctx, i, n).await,
            "sdk-standard" => sdk::run(args, ctx, false, i, n).await,
            "sdk-adaptive" => sdk::run(args, ctx, true, i, n).await,
            other => Err(anyhow!("unknown writer {other:?}")),
        }
    };
    if n == 1 {
        return one(0).await;
    }
    let (a, b) = tokio::join!(one(0), one(1));
    let (a, b) = (a?, b?);
    let mut rate_limit = a.rate_limit.clone();
    for (sec, v) in &b.rate_limit {
        *rate_limit.entry(*sec).or_insert(0.0) += v;
    }
    // The gateways' end-to-end histograms, merged: their texts concatenated
    // (the quantile sums buckets over every series).
    let metrics_text = format!("{}\n{}", a.metrics_text, b.metrics_text);
    let latency = "dynamo_ingest_end_to_end_latency_seconds";
    let (p50, p99) = if writer == "gateway" {
        (
            prom::histogram_quantile(&metrics_text, latency, 0.5),
            prom::histogram_quantile(&metrics_text, latency, 0.99),
        )
    } else {
        (None, None)
    };
    let notes = a
        .notes
        .iter()
        .map(|x| format!("instance 1: {x}"))
        .chain(b.notes.iter().map(|x| format!("instance 2: {x}")))
        .collect();
    Ok(WriterOutcome {
        acked: a.acked + b.acked,
        rejected: a.rejected + b.rejected,
        ok_calls: a.ok_calls + b.ok_calls,
        partial_calls: a.partial_calls + b.partial_calls,
        total_calls: a.total_calls.zip(b.total_calls).map(|(x, y)| x + y),
        p50,
        p99,
        rate_limit,
        latencies: a.latencies.into_iter().chain(b.latencies).collect(),
        metrics_text,
        notes,
    })
}

fn fmt_secs(v: Option<f64>) -> String {
    match v {
        Some(s) if s < 1.0 => format!("{:.0} ms", s * 1000.0),
        Some(s) => format!("{s:.1} s"),
        None => "–".to_string(),
    }
}

fn render(args: &Args, rows: &[Row]) -> String {
    let mut md = String::new();
    let _ = writeln!(
        md,
        "scenario `{:?}`, {} s load, table {} WCU{}, offered {:.0} items/s (1 WCU each), utilization over seconds {}..{} of the load\n",
        args.scenario,
        args.seconds,
        args.wcu,
        schedule_for(args).map_or(String::new(), |s| format!(" (schedule \"{s}\")")),
        args.wcu as f64 * args.offer,
        args.skip,
        args.seconds
    );
    let step = args.scenario == Scenario::Step;
    let hot = args.scenario.hot_share() > 0.0;
    md.push_str("| writer | utilization | admitted WCU/s | calls | throttled calls | throttled share | e2e p50 | e2e p99 | acked | stored | lost | rejected |");
    if step {
        md.push_str(" within 5% after step |");
    }
    if hot {
        md.push_str(" non-hot keys' share |");
    }
    md.push('\n');
    md.push_str("|---|---|---|---|---|---|---|---|---|---|---|---|");
    if step {
        md.push_str("---|");
    }
    if hot {
        md.push_str("---|");
    }
    md.push('\n');
    for r in rows {
        let lost = r.acked as i64 - r.stored as i64;
        let _ = write!(
            md,
            "| {} | {:.1} % | {:.0} | {} | {} | {:.1} % | {} | {} | {} | {} | {} | {} |",
            r.writer,
            r.utilization * 100.0,
            r.mean_wcu,
            r.calls,
            r.throttled,
            r.throttled_share * 100.0,
            fmt_secs(r.p50),
            fmt_secs(r.p99),
            r.acked,
            r.stored,
            lost,
            r.rejected
        );
        if step {
            let parts: Vec<String> = r
                .convergence
                .iter()
                .map(|(at, target, t)| {
                    format!(
                        "{at:.0}s→{target:.0}: {}",
                        t.map_or("never".to_string(), |t| format!("{t:.0} s"))
                    )
                })
                .collect();
            let _ = write!(md, " {} |", parts.join(", "));
        }
        if hot {
            let _ = write!(
                md,
                " {} |",
                r.non_hot_share
                    .map_or("–".to_string(), |v| format!("{:.1} %", v * 100.0))
            );
        }
        md.push('\n');
    }
    for r in rows {
        for n in &r.notes {
            let _ = writeln!(md, "\n- {}: {n}", r.writer);
        }
    }
    md
}

fn main() -> Result<()> {
    let args = Args::parse();
    std::fs::create_dir_all(&args.out)?;
    let payload_text = payload(args.payload_bytes);
    let size = check_item_size(&payload_text, args.devices)?;
    eprintln!("rate-bench: items of {size} bytes = 1 WCU");
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    let mut rows = Vec::new();
    for writer in &args.writers {
        eprintln!(
            "rate-bench: running {writer} ({:?}, {} s)",
            args.scenario, args.seconds
        );
        match rt.block_on(run_writer(&args, writer, &payload_text)) {
            Ok(row) => rows.push(row),
            Err(e) => {
                eprintln!("rate-bench: {writer} failed: {e:#}");
                rows.push(Row {
                    writer: writer.clone(),
                    non_hot_share: None,
                    utilization: f64::NAN,
                    mean_wcu: f64::NAN,
                    calls: 0,
                    throttled: 0,
                    throttled_share: f64::NAN,
                    p50: None,
                    p99: None,
                    acked: 0,
                    stored: 0,
                    rejected: 0,
                    convergence: Vec::new(),
                    notes: vec![format!("FAILED: {e:#}")],
                });
            }
        }
    }
    let md = render(&args, &rows);
    let scen = args.scenario.name();
    std::fs::write(args.out.join(format!("{scen}-summary.md")), &md)?;
    println!("{md}");
    Ok(())
}
