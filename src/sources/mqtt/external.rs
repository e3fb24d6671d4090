//! `mqtt.mode = "external"`: scale-out on an MQTT cluster. Each gateway
//! replica consumes `$share/GROUP/FILTER` from an external broker (EMQX,
//! HiveMQ, VerneMQ, Mosquitto) with QoS 1, a persistent session and manual
//! acknowledgements: a message is PUBACKed to the broker only after
//! DynamoDB confirmed its items (or they went to the dead-letter file), so a
//! crashed replica's unacknowledged messages are redelivered, never lost
//! (at-least-once: duplicates are possible and overwrite the same item when
//! the event carries its own sort key). Throughput per replica is therefore
//! the broker's in-flight window divided by the write latency: raise the
//! broker's per-client in-flight limit (mosquitto `max_inflight_messages`).
//!
//! The event loop only moves packets; a worker task ingests and acks, so
//! keep-alives flow while the pipeline applies backpressure. The broker's
//! in-flight window bounds how many unacknowledged messages are held.

use std::time::Duration;

use rumqttc::{AsyncClient, Event, MqttOptions, Packet, Publish, QoS};
use tokio_util::sync::CancellationToken;

use crate::config::file::ExternalSection;

use super::ingest::{MqttIngest, Outcome};

/// Runs until `shutdown`; returns once the worker has handed every received
/// message to the pipeline.
pub async fn run(
    x: ExternalSection,
    max_payload: usize,
    ingest: MqttIngest,
    shutdown: CancellationToken,
    connected: std::sync::Arc<std::sync::atomic::AtomicBool>,
) {
    let mut options = MqttOptions::new(x.client_id.clone(), x.host.clone(), x.port);
    options
        .set_keep_alive(x.keep_alive)
        .set_clean_session(false)
        .set_manual_acks(true)
        .set_max_packet_size(max_payload + 64 * 1024, 64 * 1024)
        .set_inflight(x.inflight.get().min(u16::MAX as usize) as u16);
    if let Some(user) = &x.username {
        options.set_credentials(user.clone(), x.password.clone().unwrap_or_default());
    }
    let (client, eventloop) = AsyncClient::new(options, x.inflight.get());
    let filters: Vec<String> = if x.topics.is_empty() {
        ingest.routes.filters()
    } else {
        x.topics.clone()
    };
    let shared: Vec<String> = filters
        .iter()
        .map(|f| format!("$share/{}/{f}", x.group))
        .collect();
    // Bounded by the broker's in-flight window: it sends no more until we ack.
    let (tx, rx) = flume::bounded::<Publish>(u16::MAX as usize);
    let mut worker = {
        let client = client.clone();
        tokio::spawn(async move {
            let acks = tokio_util::task::TaskTracker::new();
            while let Ok(publish) = rx.recv_async().await {
                let outcome = ingest
                    .offer_until_taken(&publish.topic, &publish.payload, true)
                    .await;
                let client = client.clone();
                // PUBACK once DynamoDB (or the dead-letter file) has the
                // message: a crash before that means redelivery, not loss.
                acks.spawn(async move {
                    if let Outcome::Accepted {
                        written: Some((ack, items)),
                        ..
                    } = outcome
                    {
                        ack.wait(items).await;
                    }
                    if let Err(e) = client.ack(&publish).await {
                        tracing::warn!(error = %e, "cannot ack to the MQTT broker: it will redeliver");
                    }
                });
            }
            acks.close();
            acks.wait().await;
        })
    };
    let mut eventloop = eventloop;
    let mut session = Session {
        client: &client,
        shared: &shared,
        x: &x,
        tx,
        connected: &connected,
        backoff: Duration::from_millis(100),
        pending_subacks: 0,
    };
    // Normal operation.
    loop {
        let event = tokio::select! {
            _ = shutdown.cancelled() => break,
            e = eventloop.poll() => e,
        };
        if session.handle(event, &shutdown).await.is_err() {
            break;
        }
    }
    // Shutdown: leave the share group so the broker sends new messages to
    // the other replicas, take what is already on the way, ack it all, then
    // disconnect. A message that arrives after the deadline stays with this
    // session and is redelivered when a gateway with this client_id returns.
    for filter in &shared {
        let _ = client.try_unsubscribe(filter.clone());
    }
    let mut pending_unsubacks = shared.len();
    let drain = async {
        while pending_unsubacks > 0 {
            match eventloop.poll().await {
                Ok(Event::Incoming(Packet::UnsubAck(_))) => pending_unsubacks -= 1,
                Ok(Event::Incoming(Packet::Publish(p))) => {
                    if session.tx.send_async(p).await.is_err() {
                        return;
                    }
                }
                Ok(_) => {}
                Err(_) => return,
            }
        }
    };
    let _ = tokio::time::timeout(Duration::from_secs(5), drain).await;
    drop(session);
    // Keep the event loop moving so the worker's acks reach the broker.
    let flushed = async {
        loop {
            tokio::select! {
                _ = &mut worker => return,
                e = eventloop.poll() => if e.is_err() { let _ = (&mut worker).await; return; },
            }
        }
    };
    flushed.await;
    let _ = client.try_disconnect();
    let _ = tokio::time::timeout(Duration::from_millis(500), eventloop.poll()).await;
}

/// The connection state the event loop updates.
struct Session<'a> {
    client: &'a AsyncClient,
    shared: &'a [String],
    x: &'a ExternalSection,
    tx: flume::Sender<Publish>,
    connected: &'a std::sync::atomic::AtomicBool,
    backoff: Duration,
    pending_subacks: usize,
}

impl Session<'_> {
    /// Handles one event; `Err` when the worker is gone.
    async fn handle(
        &mut self,
        event: Result<Event, rumqttc::ConnectionError>,
        shutdown: &CancellationToken,
    ) -> Result<(), ()> {
        use std::sync::atomic::Ordering;
        match event {
            Ok(Event::Incoming(Packet::ConnAck(ack))) => {
                self.backoff = Duration::from_millis(100);
                tracing::info!(host = %self.x.host, port = self.x.port, session_present = ack.session_present, "connected to the external MQTT broker");
                if ack.session_present {
                    self.connected.store(true, Ordering::Relaxed);
                } else {
                    // Ready once the broker confirmed every subscription.
                    self.pending_subacks = self.shared.len();
                    for filter in self.shared {
                        if let Err(e) = self.client.try_subscribe(filter.clone(), QoS::AtLeastOnce)
                        {
                            tracing::error!(error = %e, %filter, "cannot subscribe");
                        }
                    }
                }
            }
            Ok(Event::Incoming(Packet::SubAck(_))) => {
                self.pending_subacks = self.pending_subacks.saturating_sub(1);
                if self.pending_subacks == 0 {
                    tracing::info!(filters = ?self.shared, "subscribed on the external MQTT broker");
                    self.connected.store(true, Ordering::Relaxed);
                }
            }
            Ok(Event::Incoming(Packet::Publish(p))) => {
                self.tx.send_async(p).await.map_err(|_| ())?;
            }
            Ok(_) => {}
            Err(e) => {
                self.connected.store(false, Ordering::Relaxed);
                tracing::warn!(error = %e, retry_in = ?self.backoff, "external MQTT broker connection failed");
                tokio::select! {
                    _ = shutdown.cancelled() => {}
                    _ = tokio::time::sleep(self.backoff) => {}
                }
                self.backoff = (self.backoff * 2).min(self.x.reconnect_max);
            }
        }
        Ok(())
    }
}
