//! A DynamoDB outage on demand: dynamo-sim in-process behind a TCP proxy
//! that, while "down", cuts every open connection and closes new ones at
//! once, so every write the gateway tries fails (a connection error, as
//! when DynamoDB's endpoint is unreachable).
#![allow(dead_code)]

use std::net::SocketAddr;
use std::sync::Arc;

use dynamo_sim::{KeyType, SimConfig, Simulator, TableSpec};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use super::sim::SimServer;

/// dynamo-sim with the sensor table (on demand) and a proxy in front.
pub struct Outage {
    pub sim: Arc<Simulator>,
    /// The simulator itself (reads bypass the proxy).
    pub direct: String,
    /// The proxy: give this one to the gateway.
    pub endpoint: String,
    down: watch::Sender<bool>,
    stop: CancellationToken,
    _server: SimServer,
}

impl Outage {
    pub async fn start() -> Self {
        let sim = Arc::new(Simulator::new(SimConfig::default()).expect("sim"));
        sim.create_table(TableSpec::on_demand(
            "IoTSensorData",
            ("device_id", KeyType::S),
            Some(("timestamp", KeyType::N)),
        ))
        .expect("table");
        let server = SimServer::start(sim.clone()).await;
        let stop = CancellationToken::new();
        let proxy = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let endpoint = format!("http://{}", proxy.local_addr().expect("addr"));
        let (down, _) = watch::channel(false);
        tokio::spawn(proxy_loop(proxy, server.addr, down.clone(), stop.clone()));
        Self {
            sim,
            direct: server.endpoint.clone(),
            endpoint,
            down,
            stop,
            _server: server,
        }
    }

    /// Starts or ends the outage.
    pub fn set_down(&self, down: bool) {
        self.down.send_replace(down);
    }
}

impl Drop for Outage {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

async fn proxy_loop(
    listener: TcpListener,
    target: SocketAddr,
    down: watch::Sender<bool>,
    stop: CancellationToken,
) {
    loop {
        let accepted = tokio::select! {
            a = listener.accept() => a,
            _ = stop.cancelled() => return,
        };
        let Ok((mut client, _)) = accepted else {
            continue;
        };
        if *down.borrow() {
            drop(client);
            continue;
        }
        let mut down = down.subscribe();
        tokio::spawn(async move {
            let Ok(mut upstream) = TcpStream::connect(target).await else {
                return;
            };
            tokio::select! {
                _ = tokio::io::copy_bidirectional(&mut client, &mut upstream) => {}
                _ = down.wait_for(|d| *d) => {}
            }
        });
    }
}
