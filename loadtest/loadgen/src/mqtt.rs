//! MQTT load driver: N simulated devices, each its own rumqttc connection
//! publishing to its own topic (`sensors/{device}/telemetry`, ...), paced by
//! [`crate::pacing`]. QoS 1: an event is acknowledged by the broker's PUBACK
//! (latency from the scheduled send to the PUBACK; a broker acknowledges in
//! order on one connection). QoS 0: by the message leaving the client.
//! `--subscribe` adds one subscriber on the shape's topic filter and counts
//! deliveries: a bare broker's publish→subscribe rate.
//!
//! Works against any MQTT 3.1.1 broker (the gateway's embedded one,
//! mosquitto). Invariant: every published event ends acked or failed; those
//! without an ack by the end count as `no_ack`.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rand::rngs::SmallRng;
use rand::SeedableRng;
use rumqttc::{AsyncClient, Event, EventLoop, MqttOptions, Outgoing, Packet, QoS};
use tokio::sync::oneshot;
use tokio::time::Instant;

use crate::events::EventGen;
use crate::keys::{key_name, KeyPicker};
use crate::pacing::{Budget, Pacer};
use crate::recorder::{Live, Recorder};
use crate::spec::LoadSpec;
use crate::summary::Summary;

/// How long a device may take to connect.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// Runs the MQTT load of `spec` (target = the broker) and returns its summary.
pub async fn run(spec: &LoadSpec, live: &Live) -> anyhow::Result<Summary> {
    spec.validate()?;
    let (host, port) = split_addr(&spec.target)?;
    let run_id = spec.run_id.clone().unwrap_or_default();
    let qos = if spec.qos == 0 {
        QoS::AtMostOnce
    } else {
        QoS::AtLeastOnce
    };
    let devices = spec.concurrency.get();
    // Each device publishes under its own keys (`--topics-per-device`, default one).
    let picker = KeyPicker::new(1, spec.distribution, spec.zipf_exponent, spec.hot_share)?;

    let delivered = Arc::new(AtomicU64::new(0));
    let subscriber = if spec.subscribe {
        Some(subscribe(&host, port, &run_id, spec, qos, delivered.clone()).await?)
    } else {
        None
    };

    let mut conns = Vec::new();
    for d in 0..devices {
        let mut opts = MqttOptions::new(format!("{run_id}-dev{d}"), host.clone(), port);
        opts.set_keep_alive(Duration::from_secs(30));
        opts.set_max_packet_size(1 << 20, 1 << 20);
        // A short request queue: in closed loop the in-flight window (100 by
        // default) is the load, not a deep client-side backlog that only adds
        // queueing latency.
        let (client, eventloop) = AsyncClient::new(opts, 10);
        let (ready_tx, ready_rx) = oneshot::channel();
        let pending = Arc::new(Mutex::new(VecDeque::new()));
        let dead = Arc::new(AtomicBool::new(false));
        let acks = tokio::spawn(drive(
            eventloop,
            qos,
            pending.clone(),
            dead.clone(),
            Recorder::new(live),
            ready_tx,
        ));
        conns.push((client, pending, dead, acks, ready_rx, d));
    }
    for (.., ready, d) in conns.iter_mut() {
        match tokio::time::timeout(CONNECT_TIMEOUT, ready).await {
            Ok(Ok(Ok(()))) => {}
            Ok(Ok(Err(e))) => anyhow::bail!("device {d}: cannot connect to {}: {e}", spec.target),
            _ => anyhow::bail!(
                "device {d}: no CONNACK from {} within {CONNECT_TIMEOUT:?}",
                spec.target
            ),
        }
    }

    let budget = Budget::new(spec.duration, spec.count);
    let started = std::time::Instant::now();
    let mut publishers = tokio::task::JoinSet::new();
    let mut ack_tasks = Vec::new();
    for (client, pending, dead, acks, _, d) in conns {
        // Device d's keys: d, d + devices, d + 2 × devices, ...
        let topics = (0..spec.topics_per_device.get())
            .map(|j| {
                spec.shape
                    .topic(&key_name(&run_id, spec.shape.key_prefix(), d + j * devices))
            })
            .collect();
        let gen = EventGen::new(spec.shape, &run_id, picker.clone(), spec.pad_bytes, d);
        let publisher = Publisher {
            client,
            topics,
            next_topic: 0,
            qos,
            gen,
            budget: budget.clone(),
            pacer: Pacer::new(spec.rate, devices, 1, d),
            pending,
            dead,
            rec: Recorder::new(live),
            timeout: spec.request_timeout,
        };
        publishers.spawn(publisher.run());
        ack_tasks.push(acks);
    }
    let mut total = Recorder::new(&Live::default());
    while let Some(done) = publishers.join_next().await {
        total.merge(done?);
    }
    let elapsed = started.elapsed();
    for t in ack_tasks {
        total.merge(t.await?);
    }
    let missing = total
        .sent
        .saturating_sub(total.acked + total.errors.values().sum::<u64>());
    if missing > 0 {
        total.failed(missing, "no_ack");
    }
    let mut summary = Summary::new(spec, &run_id, total, elapsed);
    if let Some(sub) = subscriber {
        // Deliveries trail the publishes a little: wait (bounded) until they stop growing.
        let mut last = u64::MAX;
        let _ = crate::poll_until(Duration::from_secs(5), Duration::from_millis(200), || {
            let now = delivered.load(Ordering::Relaxed);
            let stable = now == last || now >= summary.acked;
            last = now;
            async move { stable.then_some(()) }
        })
        .await;
        let _ = sub.disconnect().await;
        summary.set_delivered(delivered.load(Ordering::Relaxed));
    }
    Ok(summary)
}

fn split_addr(addr: &str) -> anyhow::Result<(String, u16)> {
    let (host, port) = addr
        .rsplit_once(':')
        .ok_or_else(|| anyhow::anyhow!("--target must be host:port, got {addr:?}"))?;
    let port = port
        .parse()
        .map_err(|_| anyhow::anyhow!("--target port must be a number, got {port:?}"))?;
    Ok((host.to_owned(), port))
}

struct Publisher {
    client: AsyncClient,
    topics: Vec<String>,
    next_topic: usize,
    qos: QoS,
    gen: EventGen,
    budget: Budget,
    pacer: Pacer,
    pending: Arc<Mutex<VecDeque<Instant>>>,
    dead: Arc<AtomicBool>,
    rec: Recorder,
    timeout: Duration,
}

impl Publisher {
    async fn run(mut self) -> Recorder {
        let mut rng = SmallRng::seed_from_u64(rand::random());
        while let Some(slot) = self.pacer.next_slot(self.budget.deadline()).await {
            if self.dead.load(Ordering::Relaxed) || self.budget.take(1) == 0 {
                break;
            }
            let payload = self.gen.json(&mut rng, None);
            if let Ok(mut p) = self.pending.lock() {
                p.push_back(slot);
            }
            self.rec.sent(1);
            let topic = &self.topics[self.next_topic % self.topics.len()];
            self.next_topic = self.next_topic.wrapping_add(1);
            let publish = self
                .client
                .publish(topic.as_str(), self.qos, false, payload);
            match tokio::time::timeout(self.timeout, publish).await {
                Ok(Ok(())) => {}
                // The message never reached the event loop: not pending any more.
                _ => {
                    if let Ok(mut p) = self.pending.lock() {
                        p.pop_back();
                    }
                    self.rec.failed(1, "publish_queue");
                }
            }
        }
        // Wait (bounded) for outstanding acks before disconnecting.
        let pending = self.pending.clone();
        let dead = self.dead.clone();
        let _ = crate::poll_until(self.timeout, Duration::from_millis(10), || {
            let done = pending.lock().map(|p| p.is_empty()).unwrap_or(true)
                || dead.load(Ordering::Relaxed);
            async move { done.then_some(()) }
        })
        .await;
        let _ = self.client.disconnect().await;
        self.rec.flush_window();
        self.rec
    }
}

/// Polls one connection's event loop: CONNACK, then acks, until it disconnects or fails.
async fn drive(
    mut eventloop: EventLoop,
    qos: QoS,
    pending: Arc<Mutex<VecDeque<Instant>>>,
    dead: Arc<AtomicBool>,
    mut rec: Recorder,
    ready: oneshot::Sender<Result<(), String>>,
) -> Recorder {
    let mut ready = Some(ready);
    loop {
        let ev = eventloop.poll().await;
        let acked = match ev {
            Ok(Event::Incoming(Packet::ConnAck(_))) => {
                if let Some(r) = ready.take() {
                    let _ = r.send(Ok(()));
                }
                false
            }
            Ok(Event::Incoming(Packet::PubAck(_))) => qos == QoS::AtLeastOnce,
            Ok(Event::Outgoing(Outgoing::Publish(_))) => qos == QoS::AtMostOnce,
            Ok(Event::Outgoing(Outgoing::Disconnect)) => break,
            Ok(_) => false,
            Err(e) => {
                if let Some(r) = ready.take() {
                    let _ = r.send(Err(e.to_string()));
                } else {
                    // Whatever was waiting for an ack on this connection is lost to us.
                    let n = pending.lock().map(|mut p| p.drain(..).count()).unwrap_or(0);
                    rec.failed(n as u64, "connection_lost");
                }
                dead.store(true, Ordering::Relaxed);
                break;
            }
        };
        if acked {
            let sent_at = pending.lock().ok().and_then(|mut p| p.pop_front());
            rec.acked(1, sent_at.map(|t| t.elapsed()));
        }
    }
    rec.flush_window();
    rec
}

/// One subscriber on the shape's topic filter, counting deliveries of this run.
async fn subscribe(
    host: &str,
    port: u16,
    run_id: &str,
    spec: &LoadSpec,
    qos: QoS,
    delivered: Arc<AtomicU64>,
) -> anyhow::Result<AsyncClient> {
    let mut opts = MqttOptions::new(format!("{run_id}-sub"), host, port);
    opts.set_keep_alive(Duration::from_secs(30));
    opts.set_max_packet_size(1 << 20, 1 << 20);
    let (client, mut eventloop) = AsyncClient::new(opts, 64);
    client.subscribe(spec.shape.topic_filter(), qos).await?;
    let (tx, rx) = oneshot::channel();
    tokio::spawn(async move {
        let mut tx = Some(tx);
        loop {
            match eventloop.poll().await {
                Ok(Event::Incoming(Packet::SubAck(_))) => {
                    if let Some(t) = tx.take() {
                        let _ = t.send(());
                    }
                }
                Ok(Event::Incoming(Packet::Publish(_))) => {
                    delivered.fetch_add(1, Ordering::Relaxed);
                }
                Ok(Event::Outgoing(Outgoing::Disconnect)) | Err(_) => break,
                Ok(_) => {}
            }
        }
    });
    tokio::time::timeout(CONNECT_TIMEOUT, rx)
        .await
        .map_err(|_| anyhow::anyhow!("subscriber: no SUBACK from {}:{port}", host))??;
    Ok(client)
}
