//! `--local`: the embedded DynamoDB simulator (dynamo-sim) for development
//! and load tests. It runs in-process on 127.0.0.1:8000 (`--local-listen`),
//! the gateway writes to it like to any DynamoDB endpoint, and any DynamoDB
//! client (AWS CLI, boto3, the SDKs) can read the items there.
//!
//! It is a simulator, not storage: items live in memory and vanish when the
//! process stops. Its capacity model is DynamoDB's on-demand mode (4,000
//! write units/s warm throughput, up to double the previous peak, 1,000
//! WCU/s per partition, AWS's default per-table quota of 40,000 WCU/s).

use std::net::SocketAddr;
use std::sync::Arc;

use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

/// A running embedded simulator; stop it with [`LocalSim::stop`] after the
/// gateway has flushed.
#[derive(Debug)]
pub struct LocalSim {
    pub addr: SocketAddr,
    stop: CancellationToken,
    task: tokio::task::JoinHandle<()>,
}

impl LocalSim {
    /// Starts the simulator on `listen` with its default (on-demand) capacity model.
    pub async fn start(listen: SocketAddr) -> anyhow::Result<Self> {
        let sim = dynamo_sim::Simulator::new(dynamo_sim::SimConfig::default())
            .map_err(|e| anyhow::anyhow!("cannot start the embedded simulator: {e}"))?;
        let listener = TcpListener::bind(listen).await.map_err(|e| {
            anyhow::anyhow!(
                "cannot listen on {listen} for the embedded simulator: {e} (use --local-listen)"
            )
        })?;
        let addr = listener.local_addr()?;
        let stop = CancellationToken::new();
        let stopped = stop.clone();
        let task = tokio::spawn(async move {
            dynamo_sim::serve(
                listener,
                Arc::new(sim),
                async move { stopped.cancelled().await },
            )
            .await;
        });
        tracing::info!(
            endpoint = %format!("http://{addr}"),
            "embedded dynamo-sim started: a DynamoDB simulator for development and load tests, NOT storage (items vanish on exit)"
        );
        Ok(Self { addr, stop, task })
    }

    /// The endpoint URL to give the DynamoDB client.
    pub fn endpoint(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Stops serving.
    pub async fn stop(self) {
        self.stop.cancel();
        let _ = self.task.await;
    }
}
