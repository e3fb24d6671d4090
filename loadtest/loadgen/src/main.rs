//! loadgen command line: `http` and `mqtt` run one load against a running
//! endpoint; `run SCENARIO.toml` starts dynamo-sim and the gateway itself and
//! writes a report directory. Exit codes: 0 ok, 1 events lost (`--verify`)
//! or a scenario check failed, 2 the run could not be done.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use loadgen::scenario::{RunOptions, Scenario};
use loadgen::spec::{LoadSpec, Mode};
use loadgen::Live;

#[derive(Parser)]
#[command(
    name = "loadgen",
    version,
    about = "Load generator and scenario runner for dynamo-ingest"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// HTTP load against a running gateway (or any server with its routes).
    Http(LoadSpec),
    /// MQTT load against a running broker (the gateway's, or mosquitto).
    Mqtt(LoadSpec),
    /// Run a scenario file: start dynamo-sim and the gateway, load, sample, report.
    Run(RunArgs),
}

#[derive(clap::Args)]
struct RunArgs {
    /// Scenario file (loadtest/scenarios/*.toml).
    scenario: PathBuf,
    /// Report directory; default loadtest/reports/NAME-UNIXTIME.
    #[arg(long)]
    out: Option<PathBuf>,
    /// dynamo-ingest binary.
    #[arg(long, default_value = concat!(env!("CARGO_MANIFEST_DIR"), "/../../target/release/dynamo-ingest"))]
    gateway_bin: PathBuf,
    /// dynamo-sim binary.
    #[arg(long, default_value = concat!(env!("CARGO_MANIFEST_DIR"), "/../../target/release/dynamo-sim"))]
    sim_bin: PathBuf,
    /// Base gateway config the scenario's [gateway] table is merged over.
    #[arg(long, default_value = concat!(env!("CARGO_MANIFEST_DIR"), "/../../config/default.toml"))]
    base_config: PathBuf,
    /// Override the scenario's load duration (e.g. "20s").
    #[arg(long, value_parser = humantime::parse_duration)]
    duration: Option<std::time::Duration>,
    /// No progress bar.
    #[arg(long)]
    quiet: bool,
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Http(spec) => load(spec, Mode::Http).await,
        Command::Mqtt(spec) => load(spec, Mode::Mqtt).await,
        Command::Run(args) => scenario(args).await,
    };
    match result {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::from(1),
        Err(e) => {
            eprintln!("loadgen: {e:#}");
            ExitCode::from(2)
        }
    }
}

async fn load(mut spec: LoadSpec, mode: Mode) -> anyhow::Result<bool> {
    spec.mode = mode;
    spec.validate()?;
    spec.resolve_run_id();
    let live = Live::default();
    let bar = loadgen::progress_bar(&spec, &live);
    let summary = loadgen::run_load(&spec, &live).await;
    if let Some(b) = bar {
        b.finish_and_clear();
    }
    let summary = summary?;
    print!("{}", summary.table());
    if let Some(path) = &spec.summary_json {
        summary.write_json(path)?;
    }
    Ok(summary.lost().unwrap_or(0) == 0)
}

async fn scenario(args: RunArgs) -> anyhow::Result<bool> {
    let scenario = Scenario::load(&args.scenario)?;
    let out = args.out.unwrap_or_else(|| {
        let secs = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../reports"))
            .join(format!("{}-{secs}", scenario.name))
    });
    let opts = RunOptions {
        gateway_bin: args.gateway_bin,
        sim_bin: args.sim_bin,
        base_config: args.base_config,
        out: out.clone(),
        duration: args.duration,
        quiet: args.quiet,
    };
    let outcome = loadgen::scenario::run(&scenario, &opts).await?;
    print!("{}", outcome.summary.table());
    for c in &outcome.checks {
        println!(
            "{} {}: {}",
            if c.pass { "pass" } else { "FAIL" },
            c.what,
            c.measured
        );
    }
    if let Some(us) = outcome.cpu_us_per_event() {
        println!(
            "gateway CPU {us:.2} µs/event, peak RSS {:.1} MiB",
            outcome.gateway.peak_rss_mib
        );
    }
    println!(
        "report: {}",
        out.display().to_string().replace("/loadgen/../", "/")
    );
    Ok(outcome.passed())
}
