//! The processes of a scenario run: dynamo-sim and the gateway, both real
//! binaries on ephemeral loopback ports, each announcing readiness with a
//! stdout line (never waited for by sleeping). The gateway gets a generated
//! config: the shipped `config/default.toml` with the scenario's
//! `[gateway]` table merged over it, listeners on 127.0.0.1:0, the sim as
//! endpoint and its dead-letter file in the report directory.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

/// How long a process may take to print its ready line.
const READY_TIMEOUT: Duration = Duration::from_secs(60);
/// How long the gateway may take to drain and exit after SIGTERM.
const STOP_TIMEOUT: Duration = Duration::from_secs(60);

/// A process that failed to start or stop.
#[derive(Debug, thiserror::Error)]
pub enum HarnessError {
    /// The binary could not be spawned.
    #[error("cannot start {bin}: {source} (build it with `cargo build --release -p dynamo-ingest -p dynamo-sim`, or pass its path)")]
    Spawn {
        /// Binary path.
        bin: String,
        /// Cause.
        source: std::io::Error,
    },
    /// The ready line never came.
    #[error("{what} did not print its ready line within {READY_TIMEOUT:?} (log: {log})")]
    NotReady {
        /// Which process.
        what: &'static str,
        /// Where its stderr went.
        log: String,
    },
    /// The ready line lacked a field.
    #[error("{what}: ready line {line:?} has no {field}")]
    BadReadyLine {
        /// Which process.
        what: &'static str,
        /// The line.
        line: String,
        /// Missing field.
        field: &'static str,
    },
    /// Config generation or file I/O failed.
    #[error("{0}")]
    Io(#[from] std::io::Error),
    /// The base config or the scenario's `[gateway]` table is not valid TOML.
    #[error("gateway config: {0}")]
    Config(String),
}

/// A running child with its ready line.
#[derive(Debug)]
pub struct Running {
    /// The process.
    pub child: Child,
    /// Its ready line.
    pub ready: String,
}

impl Running {
    /// Its process id.
    pub fn pid(&self) -> Option<u32> {
        self.child.id()
    }

    /// `name=value` from the ready line.
    pub fn field(&self, what: &'static str, name: &'static str) -> Result<String, HarnessError> {
        let prefix = format!("{name}=");
        self.ready
            .split_whitespace()
            .find_map(|w| w.strip_prefix(prefix.as_str()))
            .map(str::to_owned)
            .ok_or_else(|| HarnessError::BadReadyLine {
                what,
                line: self.ready.clone(),
                field: name,
            })
    }

    /// SIGTERM, then waits (bounded) for the exit; kills it past the deadline.
    pub async fn stop(&mut self) -> Result<Option<i32>, HarnessError> {
        if let Some(pid) = self.pid() {
            // The child's own id; `kill` sends SIGTERM so it drains gracefully.
            let _ = Command::new("kill")
                .arg("-TERM")
                .arg(pid.to_string())
                .status()
                .await;
        }
        match tokio::time::timeout(STOP_TIMEOUT, self.child.wait()).await {
            Ok(status) => Ok(status?.code()),
            Err(_) => {
                self.child.kill().await?;
                Ok(None)
            }
        }
    }
}

/// Spawns `cmd`, stderr to `log`, and waits for a stdout line containing `marker`.
pub async fn spawn_ready(
    mut cmd: Command,
    what: &'static str,
    marker: &str,
    log: &Path,
) -> Result<Running, HarnessError> {
    let bin = format!("{:?}", cmd.as_std().get_program());
    cmd.stdout(Stdio::piped())
        .stderr(std::fs::File::create(log)?)
        .stdin(Stdio::null())
        .kill_on_drop(true);
    let mut child = cmd
        .spawn()
        .map_err(|source| HarnessError::Spawn { bin, source })?;
    let not_ready = || HarnessError::NotReady {
        what,
        log: log.display().to_string(),
    };
    let stdout = child.stdout.take().ok_or_else(not_ready)?;
    let mut lines = BufReader::new(stdout).lines();
    let found = tokio::time::timeout(READY_TIMEOUT, async {
        while let Ok(Some(line)) = lines.next_line().await {
            if line.contains(marker) {
                return Some(line);
            }
        }
        None
    })
    .await;
    let ready = match found {
        Ok(Some(line)) => line,
        _ => {
            let _ = child.kill().await;
            return Err(not_ready());
        }
    };
    // Keep reading stdout so the child never blocks on a full pipe.
    tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
    Ok(Running { child, ready })
}

/// Starts dynamo-sim with `args`; returns it and its endpoint URL.
pub async fn start_sim(
    bin: &Path,
    args: &[String],
    dir: &Path,
) -> Result<(Running, String), HarnessError> {
    let mut cmd = Command::new(bin);
    cmd.arg("--listen").arg("127.0.0.1:0").args(args);
    let sim = spawn_ready(
        cmd,
        "dynamo-sim",
        "listening on",
        &dir.join("dynamo-sim.log"),
    )
    .await?;
    let endpoint = sim
        .ready
        .split_whitespace()
        .find(|w| w.starts_with("http://"))
        .map(str::to_owned)
        .ok_or_else(|| HarnessError::BadReadyLine {
            what: "dynamo-sim",
            line: sim.ready.clone(),
            field: "http://",
        })?;
    Ok((sim, endpoint))
}

/// Writes the gateway config for a scenario: `base` with `overrides` merged
/// over it, loopback ephemeral listeners, `endpoint`, dead-letter file in `dir`.
pub fn gateway_config(
    base: &Path,
    overrides: &toml::Table,
    endpoint: &str,
    dir: &Path,
) -> Result<PathBuf, HarnessError> {
    let text = std::fs::read_to_string(base)?;
    let mut config: toml::Table = toml::from_str(&text)
        .map_err(|e| HarnessError::Config(format!("{}: {e}", base.display())))?;
    merge(&mut config, overrides);
    let mut forced = toml::Table::new();
    let set = |t: &mut toml::Table, section: &str, key: &str, v: toml::Value| {
        let mut s = toml::Table::new();
        s.insert(key.to_owned(), v);
        merge(
            t,
            &toml::Table::from_iter([(section.to_owned(), toml::Value::Table(s))]),
        );
    };
    set(&mut forced, "http", "listen", "127.0.0.1:0".into());
    set(&mut forced, "admin", "listen", "127.0.0.1:0".into());
    set(&mut forced, "dynamodb", "endpoint", endpoint.into());
    set(
        &mut forced,
        "dead_letter",
        "path",
        dir.join("dead-letter.ndjson").display().to_string().into(),
    );
    merge(&mut config, &forced);
    let path = dir.join("gateway.toml");
    let text = toml::to_string(&config).map_err(|e| HarnessError::Config(e.to_string()))?;
    std::fs::write(&path, text)?;
    Ok(path)
}

/// Deep merge: tables merge key by key, anything else is replaced.
pub fn merge(into: &mut toml::Table, from: &toml::Table) {
    for (k, v) in from {
        match (into.get_mut(k), v) {
            (Some(toml::Value::Table(a)), toml::Value::Table(b)) => merge(a, b),
            _ => {
                into.insert(k.clone(), v.clone());
            }
        }
    }
}

/// Starts the gateway with `config`; `mqtt_listen` adds `--mqtt-listen`.
pub async fn start_gateway(
    bin: &Path,
    config: &Path,
    mqtt_listen: Option<&str>,
    dir: &Path,
) -> Result<Running, HarnessError> {
    let mut cmd = Command::new(bin);
    cmd.arg("--config").arg(config);
    if let Some(addr) = mqtt_listen {
        cmd.arg("--mqtt-listen").arg(addr);
    }
    cmd.env("RUST_LOG", "warn");
    spawn_ready(
        cmd,
        "dynamo-ingest",
        "dynamo-ingest ready",
        &dir.join("gateway.log"),
    )
    .await
}

/// A free loopback port (bound then released; fine for a local harness).
pub fn free_port() -> std::io::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn merge_is_deep() {
        let mut a: toml::Table = toml::from_str("[p]\nx = 1\ny = 2\n[q]\nz = 3").expect("a");
        let b: toml::Table = toml::from_str("[p]\ny = 20\n[r]\nw = 4").expect("b");
        merge(&mut a, &b);
        assert_eq!(a["p"]["x"].as_integer(), Some(1));
        assert_eq!(a["p"]["y"].as_integer(), Some(20));
        assert_eq!(a["q"]["z"].as_integer(), Some(3));
        assert_eq!(a["r"]["w"].as_integer(), Some(4));
    }
}
