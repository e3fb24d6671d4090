//! The `dynamo-ingest` binary: parse the command line, load and validate the
//! config (exit 64 when it is bad, before any port is bound), set up logs,
//! and run the gateway.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use mimalloc::MiMalloc;

/// mimalloc instead of glibc's malloc: items are many small allocations
/// freed on other threads, which glibc serves with `malloc_consolidate`
/// and free-list walks (about a third of the writer's CPU in profiles).
#[global_allocator]
static GLOBAL: MiMalloc = MiMalloc;
use dynamo_ingest::config::{Overrides, ValidatedConfig};

/// Exit code for a configuration error (EX_USAGE).
const EXIT_CONFIG: u8 = 64;

#[derive(Debug, Parser)]
#[command(
    name = "dynamo-ingest",
    version,
    about = "HTTP and MQTT ingestion into Amazon DynamoDB, within the table's write capacity"
)]
struct Cli {
    /// Config file (TOML). Default: the shipped config/default.toml, embedded in the binary.
    #[arg(long, global = true)]
    config: Option<PathBuf>,
    /// DynamoDB endpoint URL (e.g. http://127.0.0.1:8000); default: real AWS.
    #[arg(long, global = true)]
    dynamodb_endpoint: Option<String>,
    /// AWS region.
    #[arg(long, global = true)]
    region: Option<String>,
    /// HTTP listener address.
    #[arg(long, global = true)]
    http_listen: Option<SocketAddr>,
    /// Admin listener address (/metrics, /healthz, /readyz).
    #[arg(long, global = true)]
    admin_listen: Option<SocketAddr>,
    /// Embedded MQTT broker's listener address.
    #[arg(long, global = true)]
    mqtt_listen: Option<SocketAddr>,
    /// Start the embedded DynamoDB simulator (dynamo-sim) and write to it:
    /// for development and load tests, not storage.
    #[arg(long, conflicts_with = "dynamodb_endpoint")]
    local: bool,
    /// Where the embedded simulator listens with --local.
    #[arg(long, default_value = "127.0.0.1:8000", requires = "local")]
    local_listen: SocketAddr,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Validate the configuration and print the effective config.
    CheckConfig,
    /// Read a device password from stdin, print its `sha256:` digest for `[mqtt.users]`.
    HashPassword,
    /// Print the SHA-256 of an API key read from stdin, for `[[http.auth.keys]] sha256`.
    HashKey {
        /// Generate a new random key instead: prints the key, then its hash.
        #[arg(long)]
        generate: bool,
    },
}

/// Shortest key `hash-key` accepts: a SHA-256 digest protects only a key
/// too long to guess.
const MIN_KEY_CHARS: usize = 24;

/// `hash-key`: reads one key (the first line of stdin) and prints its digest.
fn hash_key(generate: bool) -> ExitCode {
    use dynamo_ingest::sources::http::auth;
    if generate {
        let key = auth::generate_key();
        println!("key:    {key}");
        println!("sha256: {}", auth::hash_key(&key));
        return ExitCode::SUCCESS;
    }
    let mut line = String::new();
    if let Err(e) = std::io::stdin().read_line(&mut line) {
        eprintln!("dynamo-ingest hash-key: cannot read stdin: {e}");
        return ExitCode::FAILURE;
    }
    let key = line.trim_end_matches(['\r', '\n']);
    if key.chars().count() < MIN_KEY_CHARS || key.trim() != key {
        eprintln!(
            "dynamo-ingest hash-key: a key must be at least {MIN_KEY_CHARS} characters with no surrounding spaces; `hash-key --generate` makes one"
        );
        return ExitCode::from(EXIT_CONFIG);
    }
    println!("{}", auth::hash_key(key));
    ExitCode::SUCCESS
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    if let Some(Command::HashKey { generate }) = cli.command {
        return hash_key(generate);
    }
    let overrides = Overrides {
        dynamodb_endpoint: cli.dynamodb_endpoint.clone(),
        region: cli.region.clone(),
        http_listen: cli.http_listen,
        admin_listen: cli.admin_listen,
        mqtt_listen: cli.mqtt_listen,
    };
    if let Some(Command::HashPassword) = cli.command {
        return hash_password();
    }
    let config = match ValidatedConfig::load(cli.config.as_deref(), &overrides) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("dynamo-ingest: {e}");
            return ExitCode::from(EXIT_CONFIG);
        }
    };
    if let Some(Command::CheckConfig) = cli.command {
        if let Err(e) = dynamo_ingest::sources::http::tls::check_files(&config) {
            eprintln!("dynamo-ingest: {e}");
            return ExitCode::from(EXIT_CONFIG);
        }
        print!("{}", config.to_toml());
        return ExitCode::SUCCESS;
    }
    dynamo_ingest::telemetry::logging::init();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("dynamo-ingest: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let local_listen = cli.local.then_some(cli.local_listen);
    match runtime.block_on(run(config, local_listen)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!(error = %e, "dynamo-ingest stopped");
            eprintln!("dynamo-ingest: {e}");
            ExitCode::from(e.exit_code() as u8)
        }
    }
}

/// `hash-password`: the first line of stdin (without its line ending) → its digest.
fn hash_password() -> ExitCode {
    let mut line = String::new();
    if let Err(e) = std::io::stdin().read_line(&mut line) {
        eprintln!("dynamo-ingest: cannot read stdin: {e}");
        return ExitCode::FAILURE;
    }
    let password = line.trim_end_matches(['\n', '\r']);
    if password.is_empty() {
        eprintln!("dynamo-ingest: empty password on stdin");
        return ExitCode::from(EXIT_CONFIG);
    }
    println!("{}", dynamo_ingest::sources::mqtt::auth::digest(password));
    ExitCode::SUCCESS
}

/// Runs the gateway, with the embedded simulator around it for `--local`.
async fn run(
    mut config: ValidatedConfig,
    local: Option<SocketAddr>,
) -> Result<(), dynamo_ingest::app::AppError> {
    let Some(listen) = local else {
        return dynamo_ingest::app::run(config, None).await;
    };
    let sim = dynamo_ingest::local::LocalSim::start(listen).await?;
    config.use_local_endpoint(sim.endpoint());
    let result = dynamo_ingest::app::run(config, None).await;
    // The simulator stops only after the gateway flushed into it.
    sim.stop().await;
    result
}
