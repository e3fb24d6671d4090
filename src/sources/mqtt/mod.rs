//! The MQTT source: devices publish telemetry, every acknowledged message
//! reaches the stream router.
//!
//! Embedded mode (default):
//! ```text
//! devices ─► front (mqtt.listen: TLS, limits, login, ACL, QoS counts, backpressure)
//!   ├ QoS 0/1 PUBLISH, not retained: topic → stream, JSON → events ─► router,
//!   │   then PUBACK from the front (take.rs)
//!   └ everything else ─► rumqttd (own threads, internal loopback port)
//!         ─► local link on `#` (own thread, never waits) ─► hand-off
//!         ─► ingest task: topic → stream, JSON → events ─► router
//! ```
//! rumqttd keeps the MQTT session (CONNACK, keep-alive, subscriptions,
//! retained messages, QoS 2, wills); the front takes the bulk of the
//! traffic out of it, so a PUBACK from the front means the message is
//! queued (or spooled), and a full queue pauses the device.
//! External mode: rumqttc on a shared subscription of another broker, acks
//! after the pipeline took the message (`external.rs`).
//!
//! Shutdown: the front stops accepting and closes device connections; the
//! link is drained until it received every PUBLISH the front forwarded;
//! then the hand-off closes, the ingest task finishes, and its router
//! handle drops so the queues can close.

pub mod auth;
pub mod broker;
mod downstream;
pub mod external;
pub mod front;
pub mod handoff;
pub mod ingest;
pub mod link;
pub mod metrics;
pub mod packet;
mod take;

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::config::file::MqttMode;
use crate::config::ValidatedConfig;
use crate::pipeline::router::Router;
use crate::sink::dead_letter::DeadLetter;
use crate::sources::http::tls::{reload_on_sighup, CertStore};

use self::front::Front;
use self::handoff::Handoff;
use self::ingest::{MqttIngest, TopicRoutes};
use self::metrics::MqttMetrics;

/// Why the MQTT source could not start.
#[derive(Debug, thiserror::Error)]
pub enum MqttError {
    #[error(transparent)]
    Broker(#[from] broker::BrokerError),
    #[error("cannot listen for MQTT on {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("cannot start the MQTT link thread: {0}")]
    Thread(std::io::Error),
    #[error("mqtt.tls: {0}")]
    Tls(#[from] crate::sources::http::tls::TlsError),
}

/// A started MQTT source.
#[derive(Debug)]
pub struct Running {
    /// The embedded broker's device listener (None in external mode).
    pub listen: Option<SocketAddr>,
    /// False while the broker (link or external connection) is down.
    pub healthy: Arc<AtomicBool>,
    /// Ends after the shutdown drain, when the source dropped its router handle.
    pub done: JoinHandle<()>,
}

/// Starts the configured MQTT source; `None` when `mqtt.mode = "off"`.
pub async fn start(
    config: &ValidatedConfig,
    router: Arc<Router>,
    dead_letter: DeadLetter,
    shutdown: CancellationToken,
    abort: CancellationToken,
) -> Result<Option<Running>, MqttError> {
    let m = &config.file.mqtt;
    let metrics = MqttMetrics::new();
    let ingest = MqttIngest {
        router,
        routes: TopicRoutes::new(&config.streams),
        dead_letter,
        metrics: metrics.clone(),
    };
    match m.mode {
        MqttMode::Off => Ok(None),
        MqttMode::External => {
            let Some(x) = m.external.clone() else {
                return Ok(None);
            };
            let healthy = Arc::new(AtomicBool::new(false));
            let done = tokio::spawn(external::run(
                x,
                m.max_payload_bytes.as_u64() as usize,
                ingest,
                shutdown,
                healthy.clone(),
            ));
            Ok(Some(Running {
                listen: None,
                healthy,
                done,
            }))
        }
        MqttMode::Embedded => {
            // Certificates first: a bad file stops start-up before any port is bound.
            let cert_store = match &m.tls {
                Some(files) => Some(Arc::new(CertStore::load(files)?)),
                None => None,
            };
            let tls = cert_store
                .as_ref()
                .map(|s| s.acceptor_for(&[]))
                .transpose()?;
            tokio::spawn(reload_on_sighup(cert_store, "mqtt_tls", shutdown.clone()));
            let embedded = broker::start(m).await?;
            let listener = TcpListener::bind(m.listen)
                .await
                .map_err(|source| MqttError::Bind {
                    addr: m.listen,
                    source,
                })?;
            let listen = listener.local_addr().map_err(|source| MqttError::Bind {
                addr: m.listen,
                source,
            })?;
            let handoff = Arc::new(Handoff::new(
                m.overflow_max_bytes.as_u64() as usize,
                metrics.handoff_depth.clone(),
                metrics.handoff_bytes.clone(),
            ));
            let received = Arc::new(AtomicU64::new(0));
            let forwarded = Arc::new(AtomicU64::new(0));
            let healthy = Arc::new(AtomicBool::new(true));
            link::spawn(
                embedded.link_tx,
                embedded.link_rx,
                handoff.clone(),
                received.clone(),
                healthy.clone(),
            )
            .map_err(MqttError::Thread)?;
            let front = Arc::new(Front {
                internal: embedded.internal,
                auth: auth::DeviceAuth::new(m),
                handoff: handoff.clone(),
                ingest: ingest.clone(),
                max_payload: m.max_payload_bytes.as_u64() as usize,
                connect_timeout: m.connect_timeout,
                forwarded: forwarded.clone(),
                metrics: metrics.clone(),
                connections: Arc::new(Semaphore::new(m.max_connections.get())),
                tls,
            });
            let lag = {
                let (received, forwarded, gauge) = (
                    received.clone(),
                    forwarded.clone(),
                    metrics.link_lag.clone(),
                );
                move || {
                    let lag = forwarded
                        .load(Ordering::Acquire)
                        .saturating_sub(received.load(Ordering::Acquire));
                    gauge.set(lag as f64);
                    lag
                }
            };
            let done = tokio::spawn(async move {
                let ingest_task = tokio::spawn(ingest::run(handoff.clone(), ingest, abort.clone()));
                let sampler = {
                    let lag = lag.clone();
                    tokio::spawn(async move {
                        let mut tick = tokio::time::interval(Duration::from_millis(500));
                        loop {
                            tick.tick().await;
                            lag();
                        }
                    })
                };
                front::serve(listener, front, shutdown).await;
                // Everything the front forwarded was acknowledged by the
                // broker: wait until the link has it too.
                while lag() > 0 && !abort.is_cancelled() {
                    tokio::time::sleep(Duration::from_millis(5)).await;
                }
                if lag() > 0 {
                    tracing::error!(
                        messages = lag(),
                        "shutdown deadline: the broker still holds acknowledged messages the link never received"
                    );
                }
                sampler.abort();
                handoff.close();
                let _ = ingest_task.await;
            });
            Ok(Some(Running {
                listen: Some(listen),
                healthy,
                done,
            }))
        }
    }
}
