//! The MQTT front: the gateway's own listener on `mqtt.listen`, the first
//! stop of every device connection. Each connection is checked here; its
//! QoS 0 and 1 PUBLISHes (not retained) go from here straight into the
//! pipeline and are PUBACKed by the front once queued ([`super::take`]);
//! every other packet (CONNECT, SUBSCRIBE, PINGREQ, retained and QoS 2
//! PUBLISHes...) is forwarded to rumqttd on its internal loopback port, and
//! rumqttd's answers come back whole ([`super::downstream`]).
//!
//! What the front adds to rumqttd: a connection limit (more are closed at
//! accept), TLS (rustls, the certificate re-read on SIGHUP), a CONNECT
//! deadline, device credentials and the topic ACL,
//! payload and topic checks on every PUBLISH (an offending packet is
//! neither taken nor forwarded, so it is never acknowledged: the connection
//! is closed, the reason counted), QoS accounting, backpressure (no reads
//! while the queue or the hand-off is full), rumqttd's keep-alive fed while
//! a device only publishes (a PINGREQ the device never sees answered), and
//! a clean stop at shutdown (stop accepting, close device connections, count
//! what was forwarded so the link can be drained exactly).

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::{Buf, BytesMut};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Mutex, Semaphore};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::auth::DeviceAuth;
use super::downstream;
use super::handoff::Handoff;
use super::ingest::MqttIngest;
use super::metrics::MqttMetrics;
use super::packet::{self, PacketError, CONNECT, PUBLISH};
use super::take::{self, Pending, Taken};

/// Largest non-PUBLISH packet accepted (SUBSCRIBE, PINGREQ, acks...).
const MAX_CONTROL_PACKET: usize = 64 * 1024;

/// Everything a connection task needs.
pub struct Front {
    pub internal: SocketAddr,
    pub auth: DeviceAuth,
    pub handoff: Arc<Handoff>,
    /// Where taken PUBLISHes go.
    pub ingest: MqttIngest,
    pub max_payload: usize,
    pub connect_timeout: Duration,
    /// Complete PUBLISH packets forwarded to rumqttd.
    pub forwarded: Arc<AtomicU64>,
    pub metrics: MqttMetrics,
    pub connections: Arc<Semaphore>,
    /// TLS on the device listener (`[mqtt.tls]`).
    pub tls: Option<tokio_rustls::TlsAcceptor>,
}

/// Why a device connection was closed by the front (a metric label).
#[derive(Debug)]
pub(super) enum Reject {
    Reason(&'static str),
    Io,
}

impl From<std::io::Error> for Reject {
    fn from(_: std::io::Error) -> Self {
        Reject::Io
    }
}

impl From<PacketError> for Reject {
    fn from(e: PacketError) -> Self {
        Reject::Reason(match e {
            PacketError::BadTopic => "bad_topic",
            PacketError::Protocol { .. } => "protocol",
            _ => "malformed_packet",
        })
    }
}

/// Accepts device connections until `shutdown`, then closes them all.
pub async fn serve(listener: TcpListener, front: Arc<Front>, shutdown: CancellationToken) {
    let tracker = TaskTracker::new();
    loop {
        let accepted = tokio::select! {
            _ = shutdown.cancelled() => break,
            a = listener.accept() => a,
        };
        match accepted {
            Ok((socket, peer)) => {
                let Ok(permit) = front.connections.clone().try_acquire_owned() else {
                    front.metrics.rejected("connection_limit");
                    tracing::warn!(%peer, "MQTT connection limit reached: connection closed");
                    drop(socket);
                    continue;
                };
                let front = front.clone();
                let stop = shutdown.clone();
                tracker.spawn(async move {
                    front.metrics.connections.increment(1.0);
                    let _ = socket.set_nodelay(true);
                    let result = match &front.tls {
                        None => connection(socket, &front, &stop).await,
                        Some(acceptor) => {
                            match tokio::time::timeout(
                                front.connect_timeout,
                                acceptor.accept(socket),
                            )
                            .await
                            {
                                Ok(Ok(tls)) => connection(tls, &front, &stop).await,
                                _ => Err(Reject::Reason("tls_handshake")),
                            }
                        }
                    };
                    front.metrics.connections.decrement(1.0);
                    drop(permit);
                    if let Err(Reject::Reason(reason)) = result {
                        front.metrics.rejected(reason);
                        tracing::info!(%peer, reason, "MQTT connection closed by the gateway");
                    }
                });
            }
            Err(e) => {
                // Out of file descriptors and the like: back off a little.
                tracing::warn!(error = %e, "MQTT accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    }
    drop(listener);
    tracker.close();
    tracker.wait().await;
}

async fn connection<S>(
    mut device: S,
    front: &Front,
    shutdown: &CancellationToken,
) -> Result<(), Reject>
where
    S: AsyncRead + AsyncWrite + Unpin + Send,
{
    let mut buf = BytesMut::with_capacity(8 * 1024);
    let first = tokio::time::timeout(front.connect_timeout, read_connect(&mut device, &mut buf))
        .await
        .map_err(|_| Reject::Reason("connect_timeout"))?;
    let (connect, len) = match first {
        Ok(c) => c,
        Err(Reject::Reason("protocol")) => {
            // 0x01: unacceptable protocol version (3.1.1 is served).
            let _ = device.write_all(&packet::connack_refused(1)).await;
            return Err(Reject::Reason("protocol"));
        }
        Err(e) => return Err(e),
    };
    if front
        .auth
        .check(connect.username.as_deref(), connect.password.as_deref())
        .is_err()
    {
        // 0x04: bad user name or password.
        let _ = device.write_all(&packet::connack_refused(4)).await;
        tracing::info!(client_id = %connect.client_id, username = ?connect.username, "MQTT login refused");
        return Err(Reject::Reason("auth"));
    }
    let mut broker = TcpStream::connect(front.internal).await?;
    let _ = broker.set_nodelay(true);
    broker.write_all(&buf[..len]).await?;
    buf.advance(len);
    let mut from_broker = BytesMut::with_capacity(4 * 1024);
    let accepted = tokio::time::timeout(
        front.connect_timeout,
        downstream::connack(&mut broker, &mut device, &mut from_broker),
    )
    .await
    .map_err(|_| Reject::Reason("connect_timeout"))??;
    if !accepted {
        // rumqttd refused the session (e.g. keep-alive 0) and said why.
        return Ok(());
    }
    let (broker_rx, broker_tx) = broker.into_split();
    let (device_rx, device_tx) = tokio::io::split(device);
    let device_tx = Mutex::new(device_tx);
    let injected_pings = AtomicU32::new(0);
    let up = Upstream {
        front,
        username: connect.username.as_deref(),
        keep_alive: Duration::from_secs(u64::from(connect.keep_alive)),
        device_tx: &device_tx,
        injected_pings: &injected_pings,
    };
    tokio::select! {
        _ = shutdown.cancelled() => Ok(()),
        // The broker closed (keep-alive, protocol error): the device goes too.
        _ = downstream::relay(broker_rx, &device_tx, &injected_pings, from_broker) => Ok(()),
        r = up.run(device_rx, broker_tx, buf) => r,
    }
}

/// Reads until the first packet is complete; it must be a 3.1.1 CONNECT.
async fn read_connect<S: AsyncRead + Unpin>(
    device: &mut S,
    buf: &mut BytesMut,
) -> Result<(packet::Connect, usize), Reject> {
    loop {
        if let Some(h) = packet::header(buf)? {
            if h.kind != CONNECT {
                return Err(PacketError::NotConnect.into());
            }
            if h.remaining > MAX_CONTROL_PACKET {
                return Err(Reject::Reason("malformed_packet"));
            }
            if buf.len() >= h.total() {
                let c = packet::connect(&buf[h.header_len..h.total()])?;
                return Ok((c, h.total()));
            }
        }
        if device.read_buf(buf).await? == 0 {
            return Err(Reject::Io);
        }
    }
}

/// Device → pipeline or broker: one connection's reading half.
struct Upstream<'a, W> {
    front: &'a Front,
    username: Option<&'a str>,
    /// The device's keep-alive (0: none).
    keep_alive: Duration,
    device_tx: &'a Mutex<W>,
    /// PINGREQs sent to rumqttd on the device's behalf, not yet answered.
    injected_pings: &'a AtomicU32,
}

impl<W: AsyncWrite + Unpin> Upstream<'_, W> {
    /// Takes QoS 0/1 PUBLISHes, forwards everything else whole; stops at
    /// the first bad packet (the packets before it are still served).
    async fn run<R: AsyncRead + Unpin>(
        &self,
        mut device: R,
        mut broker: tokio::net::tcp::OwnedWriteHalf,
        mut buf: BytesMut,
    ) -> Result<(), Reject> {
        let front = self.front;
        // Bytes of the current forwarded packet still to pass through, and whether it is a PUBLISH.
        let mut skip = 0usize;
        let mut in_publish = false;
        let mut to_broker: Vec<u8> = Vec::new();
        let mut taken: Vec<Taken> = Vec::new();
        let mut pending = Pending::default();
        let mut fed = Instant::now();
        loop {
            let mut pos = 0usize;
            let mut completed = 0u64;
            let verdict = loop {
                if skip > 0 {
                    let n = skip.min(buf.len() - pos);
                    to_broker.extend_from_slice(&buf[pos..pos + n]);
                    pos += n;
                    skip -= n;
                    if skip > 0 {
                        break Ok(());
                    }
                    if in_publish {
                        completed += 1;
                        in_publish = false;
                    }
                }
                let h = match packet::header(&buf[pos..]) {
                    Ok(Some(h)) => h,
                    Ok(None) => break Ok(()),
                    Err(e) => break Err(Reject::from(e)),
                };
                if h.kind == PUBLISH {
                    let body = &buf[pos + h.header_len..];
                    let Some(need) = packet::publish_topic_bytes(body) else {
                        break Ok(());
                    };
                    if body.len() < need.min(h.remaining) {
                        break Ok(());
                    }
                    let info = match packet::publish(
                        h.flags,
                        &body[..need.min(body.len())],
                        h.remaining,
                    ) {
                        Ok(i) => i,
                        Err(e) => break Err(e.into()),
                    };
                    if info.payload_len > front.max_payload {
                        break Err(Reject::Reason("oversize"));
                    }
                    if info.topic.starts_with('$') {
                        break Err(Reject::Reason("reserved_topic"));
                    }
                    if !front.auth.may_publish(self.username, info.topic) {
                        tracing::info!(
                            username = ?self.username,
                            topic = info.topic,
                            "MQTT publish outside the device's ACL"
                        );
                        break Err(Reject::Reason("acl"));
                    }
                    if info.qos < 2 && !info.retain {
                        // Taken here, once the whole packet is in the buffer.
                        if body.len() < h.remaining {
                            buf.reserve(h.remaining - body.len());
                            break Ok(());
                        }
                        let start = pos + h.header_len;
                        let parts = match packet::publish_parts(info.qos, &body[..h.remaining]) {
                            Ok(p) => p,
                            Err(e) => break Err(e.into()),
                        };
                        taken.push(Taken {
                            qos: info.qos,
                            packet_id: parts.packet_id,
                            topic: start + parts.topic.start..start + parts.topic.end,
                            payload: start + parts.payload.start..start + parts.payload.end,
                        });
                        pos += h.total();
                        continue;
                    }
                    front.metrics.received(info.qos);
                    in_publish = true;
                } else if h.kind == CONNECT {
                    break Err(Reject::Reason("protocol"));
                } else if h.remaining > MAX_CONTROL_PACKET {
                    break Err(Reject::Reason("malformed_packet"));
                }
                skip = h.total();
            };
            if !to_broker.is_empty() {
                broker.write_all(&to_broker).await?;
                to_broker.clear();
                fed = Instant::now();
                front.forwarded.fetch_add(completed, Ordering::Release);
            }
            if !taken.is_empty() {
                take::take_all(&buf, &mut taken, &mut pending, front, self.device_tx).await?;
                // rumqttd drops a connection silent for 1.5 × its keep-alive;
                // a device that only publishes sends it nothing else.
                if !self.keep_alive.is_zero() && fed.elapsed() >= self.keep_alive / 2 {
                    self.injected_pings.fetch_add(1, Ordering::AcqRel);
                    broker.write_all(&packet::PINGREQ_PACKET).await?;
                    fed = Instant::now();
                }
            }
            buf.advance(pos);
            verdict?;
            if front.handoff.is_full() {
                let _paused = front.metrics.pause();
                front.handoff.wait_for_space().await;
            }
            buf.reserve(16 * 1024);
            if device.read_buf(&mut buf).await? == 0 {
                return Ok(());
            }
        }
    }
}
