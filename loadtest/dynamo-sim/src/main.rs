//! `dynamo-sim` binary: parse flags over an optional TOML config, start the
//! simulator, print `dynamo-sim listening on http://ADDR` once bound, serve
//! until SIGINT/SIGTERM, then drain (and write the snapshot if configured).

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use clap::Parser;

#[cfg(feature = "mimalloc")]
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;
use dynamo_sim::{CapacitySchedule, KeyType, SimConfig, Simulator, TableConfig};

/// DynamoDB-compatible capacity simulator for development and load tests.
#[derive(Debug, Parser)]
#[command(name = "dynamo-sim", version)]
struct Cli {
    /// Address to listen on (port 0 picks a free port; the real one is printed).
    #[arg(long, default_value = "127.0.0.1:8000")]
    listen: String,
    /// TOML configuration file; flags below override it.
    #[arg(long)]
    config: Option<PathBuf>,
    /// Never throttle (throughput tests).
    #[arg(long)]
    unlimited: bool,
    /// Unused provisioned capacity kept for bursts, seconds (default 300).
    #[arg(long)]
    burst_seconds: Option<f64>,
    /// Write limit per partition, WCU/s (default 1000).
    #[arg(long)]
    partition_wcu: Option<f64>,
    /// Partition count for every table (default ceil(WCU/1000)).
    #[arg(long)]
    partitions: Option<u32>,
    /// On-demand warm throughput, WCU/s (default 4000).
    #[arg(long)]
    on_demand_warm_wcu: Option<f64>,
    /// Cap for on-demand tables, WCU/s (MaxWriteRequestUnits: DescribeTable
    /// reports it).
    #[arg(long)]
    on_demand_max_wcu: Option<f64>,
    /// Per-table account quota for on-demand tables, WCU/s (not reported;
    /// default 40000, AWS's default quota).
    #[arg(long)]
    on_demand_account_wcu: Option<f64>,
    /// Capacity schedule for all tables, e.g. "2000, 30s:500, 60s:2000".
    #[arg(long)]
    schedule: Option<CapacitySchedule>,
    /// Table to create: NAME:PK:TYPE[:SK:TYPE][@WCU] (no @WCU = on-demand).
    #[arg(long = "table", value_name = "SPEC")]
    tables: Vec<String>,
    /// Fixed latency added to data-plane requests, ms.
    #[arg(long)]
    latency_ms: Option<u64>,
    /// Uniform extra latency up to this many ms.
    #[arg(long)]
    jitter_ms: Option<u64>,
    /// Share of data-plane requests answered 500 (0..1).
    #[arg(long)]
    error_500_rate: Option<f64>,
    /// Share of data-plane requests answered 503 (0..1).
    #[arg(long)]
    error_503_rate: Option<f64>,
    /// Share of data-plane requests whose connection is dropped (0..1).
    #[arg(long)]
    drop_rate: Option<f64>,
    /// Seconds the simulator's clock runs ahead of the host's (negative:
    /// behind); requests signed more than 5 minutes off it are refused.
    #[arg(long, allow_hyphen_values = true)]
    clock_offset_s: Option<i64>,
    /// Most items kept over all tables.
    #[arg(long)]
    max_items: Option<u64>,
    /// Most item bytes kept over all tables.
    #[arg(long)]
    max_bytes: Option<u64>,
    /// Count and charge writes but store nothing.
    #[arg(long)]
    no_retain: bool,
    /// JSON snapshot loaded at start (if present) and written at shutdown.
    #[arg(long)]
    snapshot: Option<PathBuf>,
}

fn parse_table(spec: &str) -> Result<TableConfig, String> {
    let (keys, wcu) = match spec.split_once('@') {
        Some((k, w)) => (
            k,
            Some(
                w.parse::<u64>()
                    .map_err(|_| format!("bad WCU in {spec:?}"))?,
            ),
        ),
        None => (spec, None),
    };
    let parts: Vec<&str> = keys.split(':').collect();
    let ty = |s: &str| KeyType::parse(s).ok_or_else(|| format!("bad key type {s:?} in {spec:?}"));
    let (name, pk, pkt, sk) = match parts.as_slice() {
        [n, pk, t] => (*n, *pk, ty(t)?, None),
        [n, pk, t, sk, st] => (*n, *pk, ty(t)?, Some((sk.to_string(), ty(st)?))),
        _ => {
            return Err(format!(
                "table spec {spec:?} is not NAME:PK:TYPE[:SK:TYPE][@WCU]"
            ))
        }
    };
    Ok(TableConfig {
        name: name.to_string(),
        partition_key: pk.to_string(),
        partition_key_type: pkt,
        sort_key: sk.as_ref().map(|s| s.0.clone()),
        sort_key_type: sk.map(|s| s.1).unwrap_or(KeyType::S),
        wcu,
        rcu: wcu,
        partitions: None,
        schedule: None,
        create: true,
    })
}

fn build_config(cli: &Cli) -> Result<SimConfig, String> {
    let mut cfg = match &cli.config {
        Some(p) => SimConfig::from_toml_file(p).map_err(|e| e.to_string())?,
        None => SimConfig::default(),
    };
    let c = &mut cfg.capacity;
    c.unlimited |= cli.unlimited;
    if let Some(v) = cli.burst_seconds {
        c.burst_seconds = v;
    }
    if let Some(v) = cli.partition_wcu {
        c.partition_wcu = v;
    }
    if cli.partitions.is_some() {
        c.partitions = cli.partitions;
    }
    if let Some(v) = cli.on_demand_warm_wcu {
        c.on_demand_warm_wcu = v;
    }
    if cli.on_demand_max_wcu.is_some() {
        c.on_demand_max_wcu = cli.on_demand_max_wcu;
    }
    if cli.on_demand_account_wcu.is_some() {
        c.on_demand_account_wcu = cli.on_demand_account_wcu;
    }
    if cli.schedule.is_some() {
        c.schedule = cli.schedule.clone();
    }
    let f = &mut cfg.faults;
    if let Some(v) = cli.latency_ms {
        f.latency_ms = v;
    }
    if let Some(v) = cli.jitter_ms {
        f.jitter_ms = v;
    }
    if let Some(v) = cli.error_500_rate {
        f.error_500_rate = v;
    }
    if let Some(v) = cli.error_503_rate {
        f.error_503_rate = v;
    }
    if let Some(v) = cli.drop_rate {
        f.drop_rate = v;
    }
    if let Some(v) = cli.clock_offset_s {
        f.clock_offset_s = v;
    }
    let s = &mut cfg.storage;
    if let Some(v) = cli.max_items {
        s.max_items = v;
    }
    if let Some(v) = cli.max_bytes {
        s.max_bytes = v;
    }
    if cli.no_retain {
        s.retain = false;
    }
    if cli.snapshot.is_some() {
        s.snapshot = cli.snapshot.clone();
    }
    for spec in &cli.tables {
        cfg.tables.push(parse_table(spec)?);
    }
    cfg.validate().map_err(|e| e.to_string())?;
    Ok(cfg)
}

/// Register SIGINT and SIGTERM handlers now (before the readiness line is
/// printed, so an early signal is never fatal) and resolve on either.
fn shutdown_signal() -> std::io::Result<impl std::future::Future<Output = ()>> {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    Ok(async move {
        tokio::select! {
            _ = term.recv() => {}
            _ = int.recv() => {}
        }
    })
}

#[tokio::main]
async fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .init();
    let cli = Cli::parse();
    let cfg = match build_config(&cli) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("dynamo-sim: {e}");
            return ExitCode::from(64);
        }
    };
    let sim = match Simulator::new(cfg) {
        Ok(s) => Arc::new(s),
        Err(e) => {
            eprintln!("dynamo-sim: {e}");
            return ExitCode::from(64);
        }
    };
    let listener = match tokio::net::TcpListener::bind(&cli.listen).await {
        Ok(l) => l,
        Err(e) => {
            eprintln!("dynamo-sim: cannot listen on {}: {e}", cli.listen);
            return ExitCode::from(1);
        }
    };
    let addr = match listener.local_addr() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("dynamo-sim: {e}");
            return ExitCode::from(1);
        }
    };
    let shutdown = match shutdown_signal() {
        Ok(s) => s,
        Err(e) => {
            eprintln!("dynamo-sim: cannot install signal handlers: {e}");
            return ExitCode::from(1);
        }
    };
    let mut out = std::io::stdout();
    let _ = writeln!(out, "dynamo-sim listening on http://{addr}");
    let _ = out.flush();
    dynamo_sim::serve(listener, sim, shutdown).await;
    ExitCode::SUCCESS
}
