//! dynamo-sim served in-process on a loopback port, for tests that shape
//! the simulator themselves (capacity, clock, tables) before the gateway
//! starts against it.
#![allow(dead_code)]

use std::sync::Arc;

use dynamo_sim::Simulator;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

/// A running simulator, until [`SimServer::stop`] or the test's runtime ends.
pub struct SimServer {
    /// `http://127.0.0.1:PORT`
    pub endpoint: String,
    stop: CancellationToken,
    task: JoinHandle<()>,
}

impl SimServer {
    pub async fn start(sim: Arc<Simulator>) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let endpoint = format!("http://{}", listener.local_addr().expect("addr"));
        let stop = CancellationToken::new();
        let task = tokio::spawn(dynamo_sim::serve(
            listener,
            sim,
            stop.clone().cancelled_owned(),
        ));
        Self {
            endpoint,
            stop,
            task,
        }
    }

    /// Stops accepting, lets open connections finish, and waits for it.
    pub async fn stop(self) {
        self.stop.cancel();
        self.task.await.expect("dynamo-sim stops");
    }
}
