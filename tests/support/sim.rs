//! dynamo-sim served in-process on a loopback port, for tests that shape
//! the simulator themselves (capacity, clock, tables) before the gateway
//! starts against it.
#![allow(dead_code)]

use std::net::SocketAddr;
use std::sync::Arc;

use dynamo_sim::Simulator;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

/// A running simulator, until [`SimServer::stop`] or until it is dropped
/// (then it stops accepting, without waiting).
pub struct SimServer {
    /// `http://127.0.0.1:PORT`
    pub endpoint: String,
    pub addr: SocketAddr,
    stop: CancellationToken,
    task: Option<JoinHandle<()>>,
}

impl SimServer {
    pub async fn start(sim: Arc<Simulator>) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("addr");
        let stop = CancellationToken::new();
        let task = tokio::spawn(dynamo_sim::serve(
            listener,
            sim,
            stop.clone().cancelled_owned(),
        ));
        Self {
            endpoint: format!("http://{addr}"),
            addr,
            stop,
            task: Some(task),
        }
    }

    /// Stops accepting, lets open connections finish, and waits for it.
    pub async fn stop(mut self) {
        self.stop.cancel();
        if let Some(task) = self.task.take() {
            task.await.expect("dynamo-sim stops");
        }
    }
}

impl Drop for SimServer {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}
