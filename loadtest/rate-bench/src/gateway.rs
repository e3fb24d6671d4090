//! The `gateway` writer: starts the real `dynamo-ingest` binary against the
//! in-process simulator with a config derived from config/default.toml
//! (queue large enough to absorb the excess for the run, long shutdown
//! grace, only the `sensor` stream), POSTs NDJSON batches paced to the
//! offered rate, counts acknowledged events (202 `accepted`), samples
//! `/metrics` every second, waits for the backlog to drain, reads the final
//! metrics, then SIGTERMs the gateway and waits for it to exit.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Stdio;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{anyhow, Context, Result};
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::Command;

use crate::{device_of, device_prefix, prom, Args, Ctx, Scenario, WriterOutcome, TABLE};

type HttpClient = Client<hyper_util::client::legacy::connect::HttpConnector, Full<Bytes>>;

/// Writes the gateway's config into the output dir and returns its path.
fn write_config(args: &Args, tag: &str) -> Result<std::path::PathBuf> {
    let text = std::fs::read_to_string(&args.gateway_config)
        .with_context(|| format!("reading {}", args.gateway_config.display()))?;
    let mut cfg: toml::Table = text.parse().context("parsing gateway config")?;
    cfg.insert("shutdown_grace".into(), "600s".into());
    let section = |cfg: &mut toml::Table, name: &str| -> Result<toml::Table> {
        match cfg.remove(name) {
            Some(toml::Value::Table(t)) => Ok(t),
            None => Ok(toml::Table::new()),
            Some(_) => Err(anyhow!("[{name}] is not a table")),
        }
    };
    let mut pipeline = section(&mut cfg, "pipeline")?;
    pipeline.insert(
        "queue_max_items".into(),
        toml::Value::Integer(args.queue_max_items as i64),
    );
    pipeline.insert("queue_max_bytes".into(), "4GiB".into());
    cfg.insert("pipeline".into(), pipeline.into());
    let mut dl = section(&mut cfg, "dead_letter")?;
    let dl_path = std::path::absolute(args.out.join(format!("{tag}-dead-letter.ndjson")))?;
    dl.insert("path".into(), dl_path.display().to_string().into());
    cfg.insert("dead_letter".into(), dl.into());
    // Only the stream under test (the others would create their tables).
    let mut streams = section(&mut cfg, "streams")?;
    streams.retain(|name, _| name == "sensor");
    if !streams.contains_key("sensor") {
        return Err(anyhow!("the gateway config has no [streams.sensor]"));
    }
    cfg.insert("streams".into(), streams.into());
    if args.scenario == Scenario::HotPartition {
        // The per-key limit matches the scaled-down partitions of the sim.
        let mut dynamodb = section(&mut cfg, "dynamodb")?;
        let mut rate = match dynamodb.remove("rate") {
            Some(toml::Value::Table(t)) => t,
            _ => toml::Table::new(),
        };
        rate.insert(
            "partition_wcu".into(),
            toml::Value::Integer((args.wcu / 4).max(1) as i64),
        );
        dynamodb.insert("rate".into(), rate.into());
        cfg.insert("dynamodb".into(), dynamodb.into());
    }
    let path = args.out.join(format!("{tag}.toml"));
    std::fs::write(&path, toml::to_string(&cfg)?)?;
    Ok(path)
}

async fn get_text(client: &HttpClient, url: &str) -> Result<String> {
    let req = hyper::Request::get(url).body(Full::new(Bytes::new()))?;
    let resp = client.request(req).await?;
    let body = resp.into_body().collect().await?.to_bytes();
    Ok(String::from_utf8_lossy(&body).into_owned())
}

fn body_for(first: u64, n: u64, args: &Args, prefix: char, payload: &str) -> Bytes {
    let mut s = String::with_capacity((n as usize) * (payload.len() + 48));
    for i in first..first + n {
        s.push_str("{\"device_id\":\"");
        s.push(prefix);
        s.push_str(&device_of(i, args.devices, args.scenario.hot_share()).to_string());
        s.push_str("\",\"payload\":\"");
        s.push_str(payload);
        s.push_str("\"}\n");
    }
    Bytes::from(s)
}

/// Runs gateway instance `instance` of `instances`, with its share of the load.
pub async fn run(
    args: &Args,
    ctx: &Ctx,
    instance: usize,
    instances: usize,
) -> Result<WriterOutcome> {
    let tag = format!("{}-gateway{}", args.scenario.name(), instance + 1);
    let prefix = device_prefix(instance);
    let bin = &args.gateway_bin;
    if !bin.exists() {
        return Err(anyhow!(
            "{} not found: cargo build --release -p dynamo-ingest, or --gateway-bin",
            bin.display()
        ));
    }
    let config = write_config(args, &tag)?;
    let log = std::fs::File::create(args.out.join(format!("{tag}.log")))?;
    let mut child = Command::new(bin)
        .arg("--config")
        .arg(&config)
        .arg("--dynamodb-endpoint")
        .arg(&ctx.endpoint)
        .args([
            "--http-listen",
            "127.0.0.1:0",
            "--admin-listen",
            "127.0.0.1:0",
            "--mqtt-listen",
            "127.0.0.1:0",
        ])
        .env("AWS_ACCESS_KEY_ID", "test")
        .env("AWS_SECRET_ACCESS_KEY", "test")
        .env("AWS_REGION", "us-east-1")
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::from(log))
        .kill_on_drop(true)
        .spawn()
        .with_context(|| format!("starting {}", bin.display()))?;
    let pid = child.id().ok_or_else(|| anyhow!("gateway has no pid"))?;
    let stdout = child.stdout.take().ok_or_else(|| anyhow!("no stdout"))?;
    let mut lines = BufReader::new(stdout).lines();
    let ready = tokio::time::timeout(Duration::from_secs(60), async {
        while let Some(line) = lines.next_line().await? {
            if line.starts_with("dynamo-ingest ready") {
                return Ok::<_, anyhow::Error>(line);
            }
        }
        Err(anyhow!(
            "gateway exited before it was ready (see gateway.log)"
        ))
    })
    .await
    .map_err(|_| anyhow!("gateway not ready within 60 s"))??;
    tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
    let field = |k: &str| -> Result<String> {
        ready
            .split_whitespace()
            .find_map(|w| w.strip_prefix(k))
            .map(str::to_string)
            .ok_or_else(|| anyhow!("no {k} in {ready:?}"))
    };
    let http = field("http=")?;
    let admin = field("admin=")?;
    let ingest_url = format!("http://{http}/v1/streams/sensor/events");
    let metrics_url = format!("http://{admin}/metrics");

    let client: HttpClient = Client::builder(TokioExecutor::new()).build_http();

    // Metrics sampler: rate limit by absolute sim second.
    let sampler = {
        let (client, url, sim) = (client.clone(), metrics_url.clone(), ctx.sim.clone());
        tokio::spawn(async move {
            let mut out = BTreeMap::new();
            let mut tick = tokio::time::interval(Duration::from_secs(1));
            loop {
                tick.tick().await;
                let Ok(text) = get_text(&client, &url).await else {
                    break;
                };
                let sec = sim.now().floor() as i64;
                out.insert(sec, prom::sum(&text, "dynamo_ingest_rate_limit_wcu", &[]));
            }
            out
        })
    };

    // Offered load: one request of `events_per_request` every interval.
    let acked = Arc::new(AtomicU64::new(0));
    let rejected = Arc::new(AtomicU64::new(0));
    let n = args.events_per_request.max(1);
    let rate = args.wcu as f64 * args.offer / instances.max(1) as f64;
    let period = Duration::from_secs_f64(n as f64 / rate);
    let end = Instant::now() + Duration::from_secs(args.seconds);
    let mut tick = tokio::time::interval(period);
    let mut inflight = tokio::task::JoinSet::new();
    let mut first = 0u64;
    let payload: Arc<str> = Arc::from(ctx.payload.as_str());
    while Instant::now() < end {
        tick.tick().await;
        let body = body_for(first, n, args, prefix, &payload);
        first += n;
        let (client, url, acked, rejected) = (
            client.clone(),
            ingest_url.clone(),
            acked.clone(),
            rejected.clone(),
        );
        inflight.spawn(async move {
            let req = hyper::Request::post(&url)
                .header("content-type", "application/x-ndjson")
                .body(Full::new(body));
            let Ok(req) = req else { return };
            match client.request(req).await {
                Ok(resp) if resp.status().as_u16() == 202 => {
                    let body = resp.into_body().collect().await.map(|b| b.to_bytes());
                    let got = body
                        .ok()
                        .and_then(|b| serde_json::from_slice::<serde_json::Value>(&b).ok())
                        .and_then(|v| v["accepted"].as_u64())
                        .unwrap_or(n);
                    acked.fetch_add(got, Ordering::Relaxed);
                    rejected.fetch_add(n - got.min(n), Ordering::Relaxed);
                }
                _ => {
                    rejected.fetch_add(n, Ordering::Relaxed);
                }
            }
        });
        while inflight.try_join_next().is_some() {}
    }
    while inflight.join_next().await.is_some() {}
    let acked = acked.load(Ordering::Relaxed);
    let mut notes = vec![format!("offered {first} events")];

    // Drain: wait until the table holds every acked event (or no progress).
    let drain_start = Instant::now();
    let mut last = (0.0, Instant::now());
    loop {
        let stored = ctx.sim.stats()["tables"][TABLE]["items_stored"]
            .as_f64()
            .unwrap_or(0.0);
        if stored >= acked as f64 {
            break;
        }
        if stored > last.0 {
            last = (stored, Instant::now());
        }
        if last.1.elapsed() > Duration::from_secs(30)
            || drain_start.elapsed() > Duration::from_secs(args.drain_timeout)
        {
            notes.push(format!("drain stopped at {stored} of {acked} stored"));
            break;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    notes.push(format!(
        "backlog drained {:.0} s after the load ended",
        drain_start.elapsed().as_secs_f64()
    ));
    let text = get_text(&client, &metrics_url).await.unwrap_or_default();
    std::fs::write(args.out.join(format!("{tag}-metrics.txt")), &text)?;

    // SIGTERM and wait for exit (it flushes whatever is left).
    let _ = std::process::Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status();
    match tokio::time::timeout(Duration::from_secs(120), child.wait()).await {
        Ok(Ok(status)) => notes.push(format!("gateway exit: {status}")),
        _ => {
            notes.push("gateway did not exit within 120 s of SIGTERM: killed".into());
            let _ = child.kill().await;
        }
    }
    let rate_limit = sampler.await.unwrap_or_default();

    let latency = "dynamo_ingest_end_to_end_latency_seconds";
    if !prom::has(&text, &format!("{latency}_bucket")) {
        notes.push("no end-to-end latency histogram in /metrics".into());
    }
    let (p50, p99) = (
        prom::histogram_quantile(&text, latency, 0.5),
        prom::histogram_quantile(&text, latency, 0.99),
    );
    if let Some(top) = prom::highest_finite_bound(&text, latency) {
        if p50.into_iter().chain(p99).any(|p| p >= top) {
            notes.push(format!(
                "e2e latency reached the histogram's highest finite bucket ({top} s): the value shown is a lower bound"
            ));
        }
    }
    let batches = |outcome: &str| {
        prom::sum(
            &text,
            "dynamo_ingest_batches_total",
            &[&format!("outcome=\"{outcome}\"")],
        ) as u64
    };
    let total = prom::sum(&text, "dynamo_ingest_batches_total", &[]) as u64;
    notes.push(format!(
        "batches_total ok {} partial {} throttled {} retriable {}; throttled_requests_total {}",
        batches("ok"),
        batches("partial"),
        batches("throttled"),
        batches("retriable"),
        prom::sum(&text, "dynamo_ingest_throttled_requests_total", &[])
    ));
    let dl = Path::new(&args.out).join(format!("{tag}-dead-letter.ndjson"));
    if let Ok(m) = std::fs::metadata(&dl) {
        if m.len() > 0 {
            notes.push(format!("dead-letter file has {} bytes", m.len()));
        }
    }
    Ok(WriterOutcome {
        acked,
        rejected: rejected.load(Ordering::Relaxed),
        ok_calls: batches("ok") + batches("partial"),
        partial_calls: batches("partial"),
        total_calls: Some(total),
        p50,
        p99,
        rate_limit,
        latencies: Vec::new(),
        metrics_text: text,
        notes,
    })
}
