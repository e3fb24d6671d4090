//! Test harness shared by the integration tests: a real dynalite (npm) on a
//! free loopback port, the real `dynamo-ingest` binary on ephemeral ports,
//! an aws-sdk-dynamodb client to read tables back, and a small HTTP client.
//! Readiness is signalled by each process's own "listening"/"ready" line on
//! stdout, never by sleeping.
#![allow(dead_code)]

pub mod keys;
pub mod mqtt;
pub mod outage;
pub mod sim;
pub mod tls;

use std::io::{BufRead, BufReader};
use std::net::{SocketAddr, TcpListener};
use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::sync::Once;
use std::time::Duration;

use aws_sdk_dynamodb::types::{AttributeValue, Select};
use aws_sdk_dynamodb::Client;
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client as HttpClient;
use hyper_util::rt::TokioExecutor;

/// How long a process may take to announce readiness.
const READY_TIMEOUT: Duration = Duration::from_secs(60);

pub fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Installs the npm test dependencies (dynalite) once, if missing.
pub fn ensure_npm_deps() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let root = repo_root();
        if root.join("node_modules/dynalite/cli.js").exists() {
            return;
        }
        let status = Command::new("npm")
            .args(["install", "--no-audit", "--no-fund", "--loglevel=error"])
            .current_dir(&root)
            .status()
            .expect("npm must be installed to run the integration tests");
        assert!(status.success(), "npm install failed");
    });
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("addr")
        .port()
}

/// Spawns `cmd`, waits for a stdout line containing `marker`, returns the child and that line.
fn spawn_until(mut cmd: Command, marker: &str, stderr: Stdio) -> Result<(Child, String), String> {
    let mut child = cmd
        .stdout(Stdio::piped())
        .stderr(stderr)
        .spawn()
        .map_err(|e| format!("spawn: {e}"))?;
    let stdout = child.stdout.take().expect("stdout");
    let (tx, rx) = mpsc::channel();
    let marker = marker.to_owned();
    std::thread::spawn(move || {
        let mut sent = false;
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if !sent && line.contains(&marker) {
                let _ = tx.send(line.clone());
                sent = true;
            }
        }
    });
    match rx.recv_timeout(READY_TIMEOUT) {
        Ok(line) => Ok((child, line)),
        Err(_) => {
            let _ = child.kill();
            let status = child.wait().ok();
            Err(format!("process did not become ready (exit: {status:?})"))
        }
    }
}

/// A dynalite server, killed on drop.
pub struct Dynalite {
    child: Child,
    pub endpoint: String,
}

impl Dynalite {
    pub fn start() -> Self {
        ensure_npm_deps();
        let cli = repo_root().join("node_modules/dynalite/cli.js");
        for _ in 0..5 {
            let port = free_port();
            let mut cmd = Command::new("node");
            cmd.arg(&cli).args([
                "--host",
                "127.0.0.1",
                "--port",
                &port.to_string(),
                "--createTableMs",
                "0",
                "--deleteTableMs",
                "0",
                "--updateTableMs",
                "0",
            ]);
            if let Ok((child, _)) = spawn_until(cmd, "listening", Stdio::null()) {
                return Self {
                    child,
                    endpoint: format!("http://127.0.0.1:{port}"),
                };
            }
        }
        panic!("dynalite did not start");
    }

    /// Stops the server (DynamoDB becomes unreachable).
    pub fn stop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Dynalite {
    fn drop(&mut self) {
        self.stop();
    }
}

/// The real gateway binary on ephemeral ports, killed on drop.
pub struct Gateway {
    child: Child,
    pub http: SocketAddr,
    pub admin: SocketAddr,
    /// The embedded MQTT broker's listener (None when MQTT is off or external).
    pub mqtt: Option<SocketAddr>,
    /// The DynamoDB endpoint it writes to.
    pub dynamodb: String,
    pub dir: tempfile::TempDir,
}

impl Gateway {
    /// Starts the gateway with the default config plus `extra_toml` (appended;
    /// use it for top-level keys or extra sections) and `replace` pairs applied to the default text.
    pub fn start(endpoint: &str, replace: &[(&str, &str)], extra_toml: &str) -> Self {
        match Self::try_start(endpoint, replace, extra_toml) {
            Ok(g) => g,
            Err((msg, log)) => panic!("gateway did not start: {msg}\n{log}"),
        }
    }

    pub fn try_start(
        endpoint: &str,
        replace: &[(&str, &str)],
        extra_toml: &str,
    ) -> Result<Self, (String, String)> {
        let dir = tempfile::tempdir().expect("tmp");
        let mut text = std::fs::read_to_string(repo_root().join("config/default.toml"))
            .expect("default config");
        for (from, to) in replace {
            assert!(text.contains(from), "default.toml has no `{from}`");
            text = text.replace(from, to);
        }
        text = text.replace("listen = \"127.0.0.1:8080\"", "listen = \"127.0.0.1:0\"");
        text = text.replace("listen = \"127.0.0.1:9464\"", "listen = \"127.0.0.1:0\"");
        text = text.replace("listen = \"127.0.0.1:1883\"", "listen = \"127.0.0.1:0\"");
        let dlq = dir.path().join("dead-letter.ndjson");
        text = text.replace(
            "path = \"dead-letter.ndjson\"",
            &format!("path = {:?}", dlq.display().to_string()),
        );
        text.push('\n');
        text.push_str(extra_toml);
        let config = dir.path().join("config.toml");
        std::fs::write(&config, text).expect("write config");
        let log = dir.path().join("gateway.log");
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_dynamo-ingest"));
        cmd.arg("--config")
            .arg(&config)
            .arg("--dynamodb-endpoint")
            .arg(endpoint);
        cmd.env("RUST_LOG", "info");
        let stderr = Stdio::from(std::fs::File::create(&log).expect("log file"));
        match spawn_until(cmd, "dynamo-ingest ready", stderr) {
            Ok((child, line)) => Ok(Self::ready(child, &line, dir)),
            Err(msg) => Err((msg, std::fs::read_to_string(&log).unwrap_or_default())),
        }
    }

    /// Spawns a prepared command line of the binary and waits for its ready line.
    pub fn spawn(cmd: Command, stderr: Stdio) -> Result<Self, String> {
        let (child, line) = spawn_until(cmd, "dynamo-ingest ready", stderr)?;
        Ok(Self::ready(child, &line, tempfile::tempdir().expect("tmp")))
    }

    /// Parses `dynamo-ingest ready http=.. admin=.. dynamodb=..`.
    fn ready(child: Child, line: &str, dir: tempfile::TempDir) -> Self {
        let field = |name: &str| -> String {
            line.split_whitespace()
                .find_map(|w| w.strip_prefix(name))
                .map(str::to_owned)
                .unwrap_or_else(|| panic!("no {name} in `{line}`"))
        };
        let addr = |name: &str| -> SocketAddr { field(name).parse().expect("socket address") };
        Self {
            child,
            http: addr("http="),
            admin: addr("admin="),
            mqtt: field("mqtt=").parse().ok(),
            dynamodb: field("dynamodb="),
            dir,
        }
    }

    /// The gateway's process id (for signals).
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.http, path)
    }

    pub fn dead_letter_path(&self) -> PathBuf {
        self.dir.path().join("dead-letter.ndjson")
    }

    pub fn dead_letters(&self) -> Vec<serde_json::Value> {
        std::fs::read_to_string(self.dead_letter_path())
            .unwrap_or_default()
            .lines()
            .map(|l| serde_json::from_str(l).expect("dead-letter line is JSON"))
            .collect()
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("gateway.log")).unwrap_or_default()
    }

    /// SIGKILL: the process gets no chance to flush anything.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Sends SIGTERM.
    pub fn terminate(&self) {
        self.signal("-TERM");
    }

    /// Sends SIGHUP: re-read TLS certificates and API keys.
    pub fn sighup(&self) {
        self.signal("-HUP");
    }

    fn signal(&self, flag: &str) {
        let status = Command::new("kill")
            .args([flag, &self.child.id().to_string()])
            .status()
            .expect("kill");
        assert!(status.success());
    }

    /// The config file the gateway was started with (rewrite it, then SIGHUP).
    pub fn config_path(&self) -> PathBuf {
        self.dir.path().join("config.toml")
    }

    /// Waits for the process to exit (bounded).
    pub fn wait(&mut self, timeout: Duration) -> ExitStatus {
        let deadline = std::time::Instant::now() + timeout;
        loop {
            if let Some(status) = self.child.try_wait().expect("try_wait") {
                return status;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "gateway did not exit within {timeout:?}\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// SIGTERM and wait: every queued event is flushed when this returns.
    pub fn shutdown(&mut self) -> ExitStatus {
        self.terminate();
        self.wait(Duration::from_secs(60))
    }
}

impl Drop for Gateway {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Runs the binary with `args` to completion: (exit code, stdout, stderr).
pub fn run_binary(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_dynamo-ingest"))
        .args(args)
        .output()
        .expect("run");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into(),
        String::from_utf8_lossy(&out.stderr).into(),
    )
}

/// An HTTP response.
#[derive(Debug)]
pub struct Resp {
    pub status: u16,
    pub headers: hyper::HeaderMap,
    pub body: String,
}

impl Resp {
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.body))
    }
}

/// A keep-alive HTTP/1.1 client.
#[derive(Clone)]
pub struct Http {
    client: HttpClient<hyper_util::client::legacy::connect::HttpConnector, Full<Bytes>>,
}

impl Default for Http {
    fn default() -> Self {
        Self {
            client: HttpClient::builder(TokioExecutor::new()).build_http(),
        }
    }
}

impl Http {
    pub async fn request(
        &self,
        method: &str,
        url: &str,
        content_type: Option<&str>,
        body: impl Into<Bytes>,
    ) -> Resp {
        self.try_request(method, url, content_type, body)
            .await
            .unwrap_or_else(|e| panic!("{method} {url}: {e}"))
    }

    pub async fn try_request(
        &self,
        method: &str,
        url: &str,
        content_type: Option<&str>,
        body: impl Into<Bytes>,
    ) -> Result<Resp, String> {
        let mut req = hyper::Request::builder().method(method).uri(url);
        if let Some(ct) = content_type {
            req = req.header("content-type", ct);
        }
        let req = req
            .body(Full::new(body.into()))
            .map_err(|e| e.to_string())?;
        let resp = self
            .client
            .request(req)
            .await
            .map_err(|e| format!("{e:?}"))?;
        let status = resp.status().as_u16();
        let headers = resp.headers().clone();
        let body = resp
            .into_body()
            .collect()
            .await
            .map_err(|e| e.to_string())?
            .to_bytes();
        Ok(Resp {
            status,
            headers,
            body: String::from_utf8_lossy(&body).into_owned(),
        })
    }

    pub async fn post_json(&self, url: &str, body: &str) -> Resp {
        self.request("POST", url, Some("application/json"), body.to_owned())
            .await
    }

    pub async fn post_ndjson(&self, url: &str, body: String) -> Resp {
        self.request("POST", url, Some("application/x-ndjson"), body)
            .await
    }

    pub async fn get(&self, url: &str) -> Resp {
        self.request("GET", url, None, Bytes::new()).await
    }
}

/// An SDK client for reading tables back.
pub async fn dynamodb(endpoint: &str) -> Client {
    let config = aws_config::defaults(aws_config::BehaviorVersion::latest())
        .region(aws_config::Region::new("us-east-1"))
        .endpoint_url(endpoint)
        .credentials_provider(aws_credential_types::Credentials::new(
            "test", "test", None, None, "test",
        ))
        .load()
        .await;
    Client::new(&config)
}

/// Number of items in `table` (Scan with Select COUNT, all pages).
pub async fn count(client: &Client, table: &str) -> usize {
    let mut total = 0;
    let mut start = None;
    loop {
        let out = client
            .scan()
            .table_name(table)
            .select(Select::Count)
            .set_exclusive_start_key(start)
            .send()
            .await
            .expect("scan");
        total += out.count() as usize;
        start = out.last_evaluated_key().cloned();
        if start.is_none() {
            return total;
        }
    }
}

/// All items of one partition key.
pub async fn query(
    client: &Client,
    table: &str,
    key: &str,
    value: &str,
) -> Vec<std::collections::HashMap<String, AttributeValue>> {
    let mut items = Vec::new();
    let mut start = None;
    loop {
        let out = client
            .query()
            .table_name(table)
            .key_condition_expression("#k = :v")
            .expression_attribute_names("#k", key)
            .expression_attribute_values(":v", AttributeValue::S(value.to_owned()))
            .set_exclusive_start_key(start)
            .send()
            .await
            .expect("query");
        items.extend(out.items().iter().cloned());
        start = out.last_evaluated_key().cloned();
        if start.is_none() {
            return items;
        }
    }
}

/// Reads one gauge or counter sample from /metrics (sum over matching series).
pub async fn metric(http: &Http, admin: SocketAddr, name: &str, label: &str) -> f64 {
    let body = http.get(&format!("http://{admin}/metrics")).await.body;
    body.lines()
        .filter(|l| l.starts_with(name) && l.contains(label))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

/// Polls `cond` every 100 ms until it holds; panics after `limit`.
pub async fn eventually<F, Fut>(what: &str, limit: Duration, mut cond: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + limit;
    while !cond().await {
        assert!(tokio::time::Instant::now() < deadline, "timed out: {what}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Polls the item count of `table` until it reaches `want` or `limit`
/// passes; returns the last count.
pub async fn wait_for_count(client: &Client, table: &str, want: usize, limit: Duration) -> usize {
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        let stored = count(client, table).await;
        if stored >= want || tokio::time::Instant::now() >= deadline {
            return stored;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}
