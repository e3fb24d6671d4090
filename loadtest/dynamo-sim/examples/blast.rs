//! Bounded throughput probe: BatchWriteItem at full speed against an
//! in-process dynamo-sim with unlimited capacity, over real HTTP/1.1 on
//! loopback. Reports items/s and the server's CPU per item, measured from
//! /proc/self/task/*/stat of the server runtime's threads only (the client
//! runs on its own runtime with differently named threads).
//!
//! `cargo run --release -p dynamo-sim --example blast -- --seconds 10`
//! Stops by itself after `--seconds`; traffic goes to 127.0.0.1 only.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use clap::Parser;

#[cfg(feature = "mimalloc")]
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;
use dynamo_sim::{CapacityConfig, KeyType, SimConfig, Simulator, TableSpec};
use http_body_util::{BodyExt, Full};
use hyper::Request;
use hyper_util::rt::TokioIo;

#[derive(Debug, Parser)]
struct Args {
    /// How long to send, seconds.
    #[arg(long, default_value_t = 10)]
    seconds: u64,
    /// Concurrent keep-alive connections.
    #[arg(long, default_value_t = 32)]
    connections: usize,
    /// Distinct request bodies cycled (x25 distinct items kept in memory).
    #[arg(long, default_value_t = 2000)]
    bodies: usize,
    /// Server runtime worker threads.
    #[arg(long, default_value_t = 2)]
    server_threads: usize,
    /// Client runtime worker threads.
    #[arg(long, default_value_t = 1)]
    client_threads: usize,
    /// Count writes without storing them (`storage.retain = false`).
    #[arg(long)]
    no_retain: bool,
}

const SERVER_THREAD: &str = "sim-server";
const CLIENT_THREAD: &str = "blast-client";

fn clock_ticks() -> f64 {
    std::process::Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(100.0)
}

/// CPU seconds (user + system) of this process's threads named `prefix*`.
fn thread_cpu(prefix: &str, ticks: f64) -> f64 {
    let Ok(dir) = std::fs::read_dir("/proc/self/task") else {
        return 0.0;
    };
    let mut total = 0.0;
    for entry in dir.flatten() {
        let path = entry.path();
        let comm = std::fs::read_to_string(path.join("comm")).unwrap_or_default();
        if !comm.trim().starts_with(&prefix[..prefix.len().min(15)]) {
            continue;
        }
        let stat = std::fs::read_to_string(path.join("stat")).unwrap_or_default();
        let Some(rest) = stat.rsplit_once(')').map(|(_, r)| r) else {
            continue;
        };
        let fields: Vec<&str> = rest.split_whitespace().collect();
        let utime: f64 = fields.get(11).and_then(|v| v.parse().ok()).unwrap_or(0.0);
        let stime: f64 = fields.get(12).and_then(|v| v.parse().ok()).unwrap_or(0.0);
        total += (utime + stime) / ticks;
    }
    total
}

fn body(i: usize) -> Bytes {
    let writes: Vec<String> = (0..25)
        .map(|j| {
            format!(
                r#"{{"PutRequest":{{"Item":{{"device_id":{{"S":"device-{:05}"}},"timestamp":{{"N":"{}"}},"temperature":{{"N":"21.{}"}},"humidity":{{"N":"0.{}"}},"status":{{"S":"ok"}},"payload":{{"S":"{}"}}}}}}}}"#,
                (i * 25 + j) % 10_000,
                1_700_000_000_000u64 + (i * 25 + j) as u64,
                j,
                i % 100,
                "p".repeat(48)
            )
        })
        .collect();
    Bytes::from(format!(
        r#"{{"RequestItems":{{"IoTSensorData":[{}]}}}}"#,
        writes.join(",")
    ))
}

async fn connection_loop(
    addr: std::net::SocketAddr,
    bodies: Arc<Vec<Bytes>>,
    offset: usize,
    stop: Arc<AtomicBool>,
    items: Arc<AtomicU64>,
    errors: Arc<AtomicU64>,
) {
    let Ok(stream) = tokio::net::TcpStream::connect(addr).await else {
        errors.fetch_add(1, Ordering::Relaxed);
        return;
    };
    let _ = stream.set_nodelay(true);
    let Ok((mut send, conn)) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await
    else {
        errors.fetch_add(1, Ordering::Relaxed);
        return;
    };
    tokio::spawn(conn);
    let mut i = offset;
    while !stop.load(Ordering::Relaxed) {
        let b = bodies[i % bodies.len()].clone();
        i += 1;
        let req = Request::post("/")
            .header("host", "127.0.0.1")
            .header("content-type", "application/x-amz-json-1.0")
            .header("x-amz-target", "DynamoDB_20120810.BatchWriteItem")
            .body(Full::new(b));
        let Ok(req) = req else { return };
        match send.send_request(req).await {
            Ok(resp) => {
                let ok = resp.status().is_success();
                let bytes = resp.into_body().collect().await.map(|b| b.to_bytes());
                match bytes {
                    Ok(b) if ok && b.as_ref() == br#"{"UnprocessedItems":{}}"# => {
                        items.fetch_add(25, Ordering::Relaxed);
                    }
                    _ => {
                        errors.fetch_add(1, Ordering::Relaxed);
                    }
                }
            }
            Err(_) => {
                errors.fetch_add(1, Ordering::Relaxed);
                return;
            }
        }
    }
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args = Args::parse();
    let ticks = clock_ticks();
    let server_rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(args.server_threads)
        .thread_name(SERVER_THREAD)
        .enable_all()
        .build()?;
    let client_rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(args.client_threads)
        .thread_name(CLIENT_THREAD)
        .enable_all()
        .build()?;

    let mut cfg = SimConfig {
        capacity: CapacityConfig {
            unlimited: true,
            ..CapacityConfig::default()
        },
        ..SimConfig::default()
    };
    cfg.storage.retain = !args.no_retain;
    let sim = Arc::new(Simulator::new(cfg)?);
    sim.create_table(TableSpec::on_demand(
        "IoTSensorData",
        ("device_id", KeyType::S),
        Some(("timestamp", KeyType::N)),
    ))
    .map_err(|e| e.to_string())?;
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let addr = server_rt.block_on(async {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        tokio::spawn(dynamo_sim::serve(listener, sim.clone(), async {
            let _ = stop_rx.await;
        }));
        Ok::<_, std::io::Error>(addr)
    })?;

    let bodies: Arc<Vec<Bytes>> = Arc::new((0..args.bodies).map(body).collect());
    let stop = Arc::new(AtomicBool::new(false));
    let items = Arc::new(AtomicU64::new(0));
    let errors = Arc::new(AtomicU64::new(0));

    let cpu_server_0 = thread_cpu(SERVER_THREAD, ticks);
    let cpu_client_0 = thread_cpu(CLIENT_THREAD, ticks);
    let started = Instant::now();
    client_rt.block_on(async {
        let mut tasks = Vec::new();
        for c in 0..args.connections {
            tasks.push(tokio::spawn(connection_loop(
                addr,
                bodies.clone(),
                c * 7919,
                stop.clone(),
                items.clone(),
                errors.clone(),
            )));
        }
        tokio::time::sleep(Duration::from_secs(args.seconds)).await;
        stop.store(true, Ordering::Relaxed);
        for t in tasks {
            let _ = t.await;
        }
    });
    let elapsed = started.elapsed().as_secs_f64();
    let cpu_server = thread_cpu(SERVER_THREAD, ticks) - cpu_server_0;
    let cpu_client = thread_cpu(CLIENT_THREAD, ticks) - cpu_client_0;
    let _ = stop_tx.send(());

    let n = items.load(Ordering::Relaxed) as f64;
    let stats = sim.stats();
    println!("duration_s        {elapsed:.2}");
    println!("items_written     {n}");
    println!("items_per_s       {:.0}", n / elapsed);
    println!("requests_per_s    {:.0}", n / 25.0 / elapsed);
    println!("errors            {}", errors.load(Ordering::Relaxed));
    println!(
        "server_cpu_s      {cpu_server:.2}  ({:.2} us/item)",
        cpu_server / n.max(1.0) * 1e6
    );
    println!(
        "client_cpu_s      {cpu_client:.2}  ({:.2} us/item)",
        cpu_client / n.max(1.0) * 1e6
    );
    println!(
        "items_stored      {}",
        stats["tables"]["IoTSensorData"]["items_stored"]
    );
    drop(client_rt);
    drop(server_rt);
    Ok(())
}
