//! Test backends: dynalite (a real DynamoDB implementation, as a child
//! process) and dynamo-sim (in-process on port 0), each with an
//! aws-sdk-dynamodb client configured like the gateway's (retries off).
//!
//! Readiness is detected from each server's "listening" line, never by
//! sleeping; both are stopped when the `Backend` is dropped.

#![allow(dead_code)]

use std::path::PathBuf;
use std::process::Stdio;
use std::sync::Arc;
use std::time::Duration;

use aws_config::retry::RetryConfig;
use aws_config::BehaviorVersion;
use aws_credential_types::Credentials;
use aws_sdk_dynamodb::Client;
use dynamo_sim::{SimConfig, Simulator};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};
use tokio::sync::oneshot;

/// Which implementation a backend runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// dynamo-sim in-process.
    Sim,
    /// dynalite child process.
    Dynalite,
}

/// A running backend and a client for it.
pub struct Backend {
    pub kind: Kind,
    pub client: Client,
    pub url: String,
    _stop: Option<oneshot::Sender<()>>,
    _child: Option<Child>,
}

pub async fn client_for(url: &str) -> Client {
    let conf = aws_config::defaults(BehaviorVersion::latest())
        .region("us-east-1")
        .endpoint_url(url)
        .credentials_provider(Credentials::new("test", "test", None, None, "static"))
        .retry_config(RetryConfig::disabled())
        .load()
        .await;
    Client::new(&conf)
}

/// Start dynamo-sim in-process with `config`.
pub async fn sim(config: SimConfig) -> Backend {
    let sim = Arc::new(Simulator::new(config).expect("simulator"));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let url = format!("http://{}", listener.local_addr().expect("addr"));
    let (tx, rx) = oneshot::channel::<()>();
    tokio::spawn(dynamo_sim::serve(listener, sim, async {
        let _ = rx.await;
    }));
    Backend {
        kind: Kind::Sim,
        client: client_for(&url).await,
        url,
        _stop: Some(tx),
        _child: None,
    }
}

fn dynalite_bin() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../node_modules/.bin/dynalite")
}

/// Start dynalite on a free port; fails loudly if it is not installed.
pub async fn dynalite() -> Backend {
    let bin = dynalite_bin();
    assert!(
        bin.exists(),
        "dynalite not found at {}: run `npm install` in the workspace root",
        bin.display()
    );
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").expect("free port");
        l.local_addr().expect("addr").port()
    };
    let mut child = Command::new(&bin)
        .args(["--host", "127.0.0.1", "--port", &port.to_string()])
        .args([
            "--createTableMs",
            "0",
            "--deleteTableMs",
            "0",
            "--updateTableMs",
            "0",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .kill_on_drop(true)
        .spawn()
        .expect("spawn dynalite");
    let stdout = child.stdout.take().expect("stdout");
    let mut lines = BufReader::new(stdout).lines();
    let ready = tokio::time::timeout(Duration::from_secs(60), async {
        while let Ok(Some(line)) = lines.next_line().await {
            if line.contains("Dynalite listening at") {
                return true;
            }
        }
        false
    })
    .await;
    assert_eq!(ready, Ok(true), "dynalite did not report readiness");
    // Keep draining stdout so dynalite never blocks on a full pipe.
    tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
    let url = format!("http://127.0.0.1:{port}");
    Backend {
        kind: Kind::Dynalite,
        client: client_for(&url).await,
        url,
        _stop: None,
        _child: Some(child),
    }
}

/// Both backends, dynamo-sim first.
pub async fn both() -> Vec<Backend> {
    vec![sim(SimConfig::default()).await, dynalite().await]
}
