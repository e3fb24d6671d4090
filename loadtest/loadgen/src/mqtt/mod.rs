//! MQTT load driver: N simulated devices, each its own connection
//! publishing to its own topic (`sensors/{device}/telemetry`, ...), paced by
//! [`crate::pacing`]. The devices speak MQTT 3.1.1 themselves
//! ([`device`], [`wire`]): a client library's event loop and channels
//! cost more CPU per message than the gateway under test, on the same
//! cores. QoS 1: an event is acknowledged by the broker's PUBACK (latency
//! from the scheduled send to the PUBACK). QoS 0: by the message leaving
//! the client. `--subscribe` adds one subscriber (rumqttc) on the shape's
//! topic filter and counts deliveries: a bare broker's publish→subscribe
//! rate.
//!
//! Works against any MQTT 3.1.1 broker (the gateway's embedded one,
//! mosquitto). Invariant: every published event ends acked or failed; those
//! without an ack by the end count as `no_ack`.

mod device;
mod wire;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use rumqttc::{AsyncClient, Event, MqttOptions, Outgoing, Packet, QoS};
use tokio::sync::oneshot;

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
    let qos = spec.qos.min(1);
    let devices = spec.concurrency.get();
    // Each device publishes under its own keys (`--topics-per-device`, default one).
    let picker = KeyPicker::new(1, spec.distribution, spec.zipf_exponent, spec.hot_share)?;

    let delivered = Arc::new(AtomicU64::new(0));
    let subscriber = if spec.subscribe {
        let sub_qos = if qos == 0 {
            QoS::AtMostOnce
        } else {
            QoS::AtLeastOnce
        };
        Some(subscribe(&host, port, &run_id, spec, sub_qos, delivered.clone()).await?)
    } else {
        None
    };

    // All devices connect at once, each within CONNECT_TIMEOUT.
    let mut connecting = tokio::task::JoinSet::new();
    for d in 0..devices {
        let (target, id) = (spec.target.clone(), format!("{run_id}-dev{d}"));
        connecting.spawn(async move {
            let c = tokio::time::timeout(CONNECT_TIMEOUT, device::connect(&target, &id)).await;
            (d, c)
        });
    }
    let mut conns: Vec<Option<device::Connection>> = (0..devices).map(|_| None).collect();
    while let Some(done) = connecting.join_next().await {
        match done? {
            (d, Ok(Ok(c))) => conns[d as usize] = Some(c),
            (d, Ok(Err(e))) => anyhow::bail!("device {d}: cannot connect to {}: {e}", spec.target),
            (d, Err(_)) => anyhow::bail!(
                "device {d}: no CONNACK from {} within {CONNECT_TIMEOUT:?}",
                spec.target
            ),
        }
    }

    let budget = Budget::new(spec.duration, spec.count);
    let started = std::time::Instant::now();
    let mut publishers = tokio::task::JoinSet::new();
    let mut ack_tasks = Vec::new();
    for (d, conn) in (0..devices).zip(conns) {
        let Some(conn) = conn else { continue };
        // Device d's keys: d, d + devices, d + 2 × devices, ...
        let topics = (0..spec.topics_per_device.get())
            .map(|j| {
                spec.shape
                    .topic(&key_name(&run_id, spec.shape.key_prefix(), d + j * devices))
            })
            .collect();
        let shared = device::Shared::new();
        let (read, leftover, write) = conn.into_parts();
        ack_tasks.push(tokio::spawn(device::read_acks(
            read,
            leftover,
            shared.clone(),
            Recorder::new(live),
        )));
        let publisher = device::Publisher {
            write,
            shared,
            topics,
            qos,
            gen: EventGen::new(spec.shape, &run_id, picker.clone(), spec.pad_bytes, d),
            budget: budget.clone(),
            pacer: Pacer::new(spec.rate, devices, 1, d),
            closed_loop: spec.rate.is_none(),
            rec: Recorder::new(live),
            timeout: spec.request_timeout,
        };
        publishers.spawn(publisher.run());
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

#[cfg(test)]
mod tests {
    use std::num::NonZeroU64;

    use bytes::{Buf, BytesMut};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpListener;

    use super::wire::{self, Incoming};
    use super::*;
    use crate::spec::Mode;

    /// The packet id of a QoS 1 PUBLISH packet (`packet` whole).
    fn publish_id(packet: &[u8]) -> u16 {
        let mut header = 1;
        while packet[header] & 0x80 != 0 {
            header += 1;
        }
        let topic = header + 1;
        let topic_len = usize::from(u16::from_be_bytes([packet[topic], packet[topic + 1]]));
        let id = topic + 2 + topic_len;
        u16::from_be_bytes([packet[id], packet[id + 1]])
    }

    /// A broker that takes one device's CONNECT and all 50 of its PUBLISHes,
    /// PUBACKs the first 5 and closes the connection: the 45 that awaited an
    /// ack fail as `connection_lost`, none is counted acked or left unaccounted.
    #[tokio::test]
    async fn a_lost_connection_fails_what_awaited_its_ack() {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let broker = tokio::spawn(async move {
            let (mut sock, _) = listener.accept().await.expect("accept");
            let mut buf = BytesMut::new();
            let mut ids = Vec::new();
            while ids.len() < 50 {
                while let Some((packet, n)) = wire::next(&buf).expect("valid packets") {
                    match packet {
                        Incoming::Other(1) => {
                            sock.write_all(&[0x20, 2, 0, 0]).await.expect("connack")
                        }
                        Incoming::Other(3) => ids.push(publish_id(&buf[..n])),
                        other => panic!("unexpected {other:?}"),
                    }
                    buf.advance(n);
                }
                if ids.len() < 50 {
                    assert!(
                        sock.read_buf(&mut buf).await.expect("read") > 0,
                        "device left early"
                    );
                }
            }
            for id in &ids[..5] {
                let [hi, lo] = id.to_be_bytes();
                sock.write_all(&[0x40, 2, hi, lo]).await.expect("puback");
            }
            // Everything sent was read: closing sends FIN, not a reset.
            sock.shutdown().await.expect("shutdown");
            ids
        });
        let spec = LoadSpec {
            mode: Mode::Mqtt,
            target: addr.to_string(),
            concurrency: NonZeroU64::MIN,
            count: Some(50),
            duration: Duration::from_secs(20),
            request_timeout: Duration::from_secs(10),
            qos: 1,
            run_id: Some("lost".into()),
            ..LoadSpec::default()
        };
        let summary = run(&spec, &Live::default()).await.expect("run");
        let ids = broker.await.expect("broker");
        assert_eq!(ids, (1..=50).collect::<Vec<u16>>(), "packet ids 1, 2, ...");
        assert_eq!(summary.sent, 50);
        assert_eq!(summary.acked, 5);
        assert_eq!(
            summary.errors.into_iter().collect::<Vec<_>>(),
            vec![("connection_lost".to_owned(), 45)]
        );
    }
}
