//! The embedded rumqttd broker: configured from `[mqtt]`, listening only on
//! an internal loopback port that the front (`front.rs`) forwards device
//! connections to, and one local link subscribed to `#` that feeds the
//! gateway (`link.rs`).
//!
//! rumqttd runs its router and its listener on threads of its own; neither
//! can be stopped, so shutdown stops the front instead and drains the link.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::Duration;

use rumqttd::{Broker, Config, ConnectionSettings, RouterConfig, ServerSettings};

use crate::config::file::MqttSection;

/// Why the broker could not start.
#[derive(Debug, thiserror::Error)]
pub enum BrokerError {
    #[error("cannot reserve a loopback port for the embedded broker: {0}")]
    Port(std::io::Error),
    #[error("cannot start the embedded broker: {0}")]
    Start(String),
    #[error("the embedded broker did not listen on {0} within 5s")]
    NotListening(SocketAddr),
}

/// A running broker and its gateway link.
pub struct Embedded {
    /// Where rumqttd itself listens (loopback only; the front forwards here).
    pub internal: SocketAddr,
    pub link_tx: rumqttd::local::LinkTx,
    pub link_rx: rumqttd::local::LinkRx,
}

impl std::fmt::Debug for Embedded {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Embedded")
            .field("internal", &self.internal)
            .finish_non_exhaustive()
    }
}

/// Starts rumqttd and subscribes the gateway's link to every topic.
pub async fn start(m: &MqttSection) -> Result<Embedded, BrokerError> {
    // rumqttd binds its listener itself and cannot report the port it got:
    // reserve a free one first.
    let internal = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map_err(BrokerError::Port)?;
    let connections = ConnectionSettings {
        connection_timeout_ms: m.connect_timeout.as_millis().min(60_000) as u16,
        max_payload_size: m.max_payload_bytes.as_u64() as usize,
        max_inflight_count: m.max_inflight.get(),
        auth: None,
        external_auth: None,
        dynamic_filters: false,
    };
    let server = ServerSettings {
        name: "mqtt-v4".to_owned(),
        listen: internal,
        tls: None,
        next_connection_delay_ms: 0,
        connections,
    };
    let config = Config {
        id: 0,
        router: RouterConfig {
            // The front enforces the device limit; the link needs one more.
            max_connections: m.max_connections.get() + 1,
            max_outgoing_packet_count: 1000,
            max_segment_size: m.segment_bytes.as_u64() as usize,
            max_segment_count: m.segment_count.get(),
            custom_segment: None,
            initialized_filters: None,
            shared_subscriptions_strategy: Default::default(),
        },
        v4: Some(HashMap::from([("mqtt-v4".to_owned(), server)])),
        ..Default::default()
    };
    let mut broker = Broker::new(config);
    let (mut link_tx, link_rx) = broker
        .link("dynamo-ingest")
        .map_err(|e| BrokerError::Start(e.to_string()))?;
    link_tx
        .subscribe("#")
        .map_err(|e| BrokerError::Start(e.to_string()))?;
    std::thread::Builder::new()
        .name("rumqttd".to_owned())
        .spawn(move || {
            if let Err(e) = broker.start() {
                tracing::error!(error = %e, "embedded MQTT broker stopped");
            }
        })
        .map_err(|e| BrokerError::Start(e.to_string()))?;
    wait_listening(internal).await?;
    Ok(Embedded {
        internal,
        link_tx,
        link_rx,
    })
}

/// Polls until rumqttd serves MQTT (its listener starts on its own thread):
/// a CONNECT answered by a CONNACK, then the socket is closed. A bare TCP
/// probe would make rumqttd log an ERROR ("connection closed by peer") at
/// every start, and so would a DISCONNECT packet ("router-drop"); a closed
/// session is an INFO line, below the default `rumqttd=warn`.
async fn wait_listening(addr: SocketAddr) -> Result<(), BrokerError> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    loop {
        if probe(addr).await.is_ok() {
            return Ok(());
        }
        if tokio::time::Instant::now() >= deadline {
            return Err(BrokerError::NotListening(addr));
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// One MQTT 3.1.1 session: CONNECT (clean session), CONNACK accepted, close.
async fn probe(addr: SocketAddr) -> std::io::Result<()> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    const ID: &[u8] = b"dynamo-ingest-probe";
    let mut connect = vec![0x10, (12 + ID.len()) as u8];
    connect.extend_from_slice(&[0, 4, b'M', b'Q', b'T', b'T', 4, 0x02, 0, 10]);
    connect.extend_from_slice(&[0, ID.len() as u8]);
    connect.extend_from_slice(ID);
    let mut stream = tokio::net::TcpStream::connect(addr).await?;
    stream.write_all(&connect).await?;
    let mut connack = [0u8; 4];
    tokio::time::timeout(Duration::from_secs(1), stream.read_exact(&mut connack))
        .await
        .map_err(|_| std::io::Error::other("no CONNACK"))??;
    if connack != [0x20, 2, 0, 0] {
        return Err(std::io::Error::other(format!("CONNACK {connack:?}")));
    }
    Ok(())
}
