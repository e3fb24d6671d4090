//! One simulated device: its own TCP connection to the broker, a writer
//! ([`Publisher`]) that publishes on the pacer's schedule, and a reader
//! ([`read_acks`]) that turns PUBACKs into acknowledged events. Sits under
//! [`super::run`], which connects the devices and adds up their
//! recorders; packets come from [`super::wire`].
//!
//! QoS 1: up to [`IN_FLIGHT`] messages per device await their PUBACK (the
//! in-flight window; in closed loop the window is the load). When acks
//! free several slots at once, the device writes that many PUBLISHes in
//! one write, as a client with its messages ready would. Latency runs to
//! the PUBACK: in open loop from the scheduled slot (a full window's wait
//! included), in closed loop from when the window let the message go.
//! QoS 0: a message is acknowledged once it is written to the socket.
//!
//! Invariant: every event the writer counts as sent ends acked, failed
//! (`connection_lost`, `protocol_error`) or, if neither came by the end,
//! is counted `no_ack` by the caller.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::{Buf, BytesMut};
use rand::rngs::SmallRng;
use rand::SeedableRng;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::TcpStream;
use tokio::sync::{Notify, Semaphore};
use tokio::time::Instant;

use super::wire::{self, Incoming};
use crate::events::EventGen;
use crate::pacing::{Budget, Pacer};
use crate::recorder::Recorder;

/// QoS 1 messages one device may have awaiting a PUBACK.
pub const IN_FLIGHT: usize = 100;
/// QoS 0 messages a closed-loop device writes at once.
const QOS0_BURST: u64 = 32;
/// The keep-alive each device announces; it pings after half of it idle.
pub const KEEP_ALIVE: Duration = Duration::from_secs(30);

/// A connected device, CONNACK received.
pub struct Connection {
    read: OwnedReadHalf,
    write: OwnedWriteHalf,
    /// Bytes that came after the CONNACK.
    leftover: BytesMut,
}

/// Connects `client_id` to `addr` (host:port) and waits for an accepting CONNACK.
pub async fn connect(addr: &str, client_id: &str) -> Result<Connection, String> {
    let stream = TcpStream::connect(addr).await.map_err(|e| e.to_string())?;
    stream.set_nodelay(true).map_err(|e| e.to_string())?;
    let (mut read, mut write) = stream.into_split();
    let mut out = Vec::new();
    wire::connect(&mut out, client_id, KEEP_ALIVE.as_secs() as u16);
    write.write_all(&out).await.map_err(|e| e.to_string())?;
    let mut buf = BytesMut::with_capacity(4096);
    loop {
        match wire::next(&buf).map_err(|e| e.to_string())? {
            Some((Incoming::ConnAck { code: 0 }, n)) => {
                buf.advance(n);
                return Ok(Connection {
                    read,
                    write,
                    leftover: buf,
                });
            }
            Some((Incoming::ConnAck { code }, _)) => {
                return Err(format!(
                    "CONNACK refused the connection: {} (code {code})",
                    wire::connack_reason(code)
                ))
            }
            Some((other, _)) => return Err(format!("expected CONNACK, got {other:?}")),
            None => {}
        }
        if read.read_buf(&mut buf).await.map_err(|e| e.to_string())? == 0 {
            return Err("connection closed before CONNACK".into());
        }
    }
}

impl Connection {
    /// The read half, the bytes already read from it, the write half.
    pub fn into_parts(self) -> (OwnedReadHalf, BytesMut, OwnedWriteHalf) {
        (self.read, self.leftover, self.write)
    }
}

/// What a device's writer and reader share.
pub struct Shared {
    /// QoS 1 messages awaiting their PUBACK: packet id, scheduled send.
    pending: Mutex<VecDeque<(u16, Instant)>>,
    /// Free slots of the in-flight window (QoS 1); closed when the connection is lost.
    window: Semaphore,
    /// The connection failed: the writer stops.
    dead: AtomicBool,
    /// The writer sent DISCONNECT: the connection closing is not a loss.
    closing: AtomicBool,
    /// The reader saw `pending` empty.
    drained: Notify,
    /// The writer is done: the reader stops.
    stop: Notify,
}

impl Shared {
    pub fn new() -> Arc<Self> {
        Arc::new(Self {
            pending: Mutex::new(VecDeque::with_capacity(IN_FLIGHT)),
            window: Semaphore::new(IN_FLIGHT),
            dead: AtomicBool::new(false),
            closing: AtomicBool::new(false),
            drained: Notify::new(),
            stop: Notify::new(),
        })
    }

    fn pending(&self) -> std::sync::MutexGuard<'_, VecDeque<(u16, Instant)>> {
        self.pending
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Removes `pkid` from the pending messages (the broker acks in order, so
    /// it is normally the first) and returns its scheduled send.
    fn take(&self, pkid: u16) -> Option<Instant> {
        let mut p = self.pending();
        match p.front() {
            Some(&(id, at)) if id == pkid => {
                p.pop_front();
                Some(at)
            }
            _ => {
                let i = p.iter().position(|&(id, _)| id == pkid)?;
                p.remove(i).map(|(_, at)| at)
            }
        }
    }

    /// The connection is gone: whatever awaited an ack failed with `kind`.
    fn lost(&self, rec: &mut Recorder, kind: &str) {
        self.dead.store(true, Ordering::Relaxed);
        let n = self.pending().drain(..).count() as u64;
        if n > 0 {
            rec.failed(n, kind);
        }
        self.window.close();
        self.drained.notify_one();
    }
}

/// Reads the broker's packets until the writer stops or the connection
/// fails, recording each PUBACK as an acknowledged event.
pub async fn read_acks(
    mut read: OwnedReadHalf,
    mut buf: BytesMut,
    shared: Arc<Shared>,
    mut rec: Recorder,
) -> Recorder {
    loop {
        let now = Instant::now();
        let mut acked = 0;
        loop {
            match wire::next(&buf) {
                Ok(Some((Incoming::PubAck { pkid }, n))) => {
                    buf.advance(n);
                    if let Some(at) = shared.take(pkid) {
                        rec.acked(1, Some(now.saturating_duration_since(at)));
                        acked += 1;
                    }
                }
                Ok(Some((_, n))) => buf.advance(n),
                Ok(None) => break,
                Err(_) => {
                    shared.lost(&mut rec, "protocol_error");
                    rec.flush_window();
                    return rec;
                }
            }
        }
        if acked > 0 {
            shared.window.add_permits(acked);
            if shared.pending().is_empty() {
                shared.drained.notify_one();
            }
        }
        let read = tokio::select! {
            r = read.read_buf(&mut buf) => r,
            _ = shared.stop.notified() => break,
        };
        if !matches!(read, Ok(n) if n > 0) {
            if !shared.closing.load(Ordering::Relaxed) {
                shared.lost(&mut rec, "connection_lost");
            }
            break;
        }
    }
    rec.flush_window();
    rec
}

/// A device's writer: publishes on the pacer's schedule until the budget
/// or the connection ends, then waits (bounded) for outstanding acks and
/// disconnects.
pub struct Publisher {
    pub write: OwnedWriteHalf,
    pub shared: Arc<Shared>,
    pub topics: Vec<String>,
    pub qos: u8,
    pub gen: EventGen,
    pub budget: Budget,
    pub pacer: Pacer,
    pub closed_loop: bool,
    pub rec: Recorder,
    /// How long to wait for outstanding acks at the end.
    pub timeout: Duration,
}

impl Publisher {
    pub async fn run(mut self) -> Recorder {
        let mut rng = SmallRng::seed_from_u64(rand::random());
        let deadline = self.budget.deadline();
        let mut out = Vec::with_capacity(16 * 1024);
        let mut ids = Vec::with_capacity(IN_FLIGHT);
        let mut last_write = Instant::now();
        let mut next_topic = 0usize;
        let mut pkid = 0u16;
        loop {
            if self.shared.dead.load(Ordering::Relaxed) {
                break;
            }
            let Some(slot) = self.pacer.reserve(deadline) else {
                break;
            };
            if self.idle_until(slot, &mut last_write).await.is_err() {
                break;
            }
            // How many to write now: one per slot in open loop; in closed
            // loop every free slot of the window (QoS 1) or a burst (QoS 0).
            let want = if self.qos == 0 {
                if self.closed_loop {
                    QOS0_BURST
                } else {
                    1
                }
            } else {
                match self.window_slot(deadline, &mut last_write).await {
                    Some(()) => {}
                    None => break,
                }
                let mut n = 1;
                while self.closed_loop
                    && self.shared.window.try_acquire().map(|p| p.forget()).is_ok()
                {
                    n += 1;
                }
                n
            };
            // Closed loop: a message is due when the window lets it go, so
            // its latency runs from then; open loop: from its scheduled slot,
            // waiting for the window included.
            let slot = if self.closed_loop {
                Instant::now()
            } else {
                slot
            };
            let n = self.budget.take(want);
            if self.qos > 0 && n < want {
                self.shared.window.add_permits((want - n) as usize);
            }
            if n == 0 {
                break;
            }
            out.clear();
            ids.clear();
            for _ in 0..n {
                pkid = pkid.checked_add(1).unwrap_or(1);
                let payload = self.gen.json(&mut rng, None);
                let topic = &self.topics[next_topic % self.topics.len()];
                next_topic = next_topic.wrapping_add(1);
                wire::publish(&mut out, topic, self.qos, pkid, payload.as_bytes());
                ids.push(pkid);
                self.rec.sent(1);
            }
            if self.qos > 0 {
                // Before the write: an ack cannot come for a message not yet pending.
                self.shared
                    .pending()
                    .extend(ids.iter().map(|&id| (id, slot)));
            }
            if self.write.write_all(&out).await.is_err() {
                if self.qos == 0 {
                    self.rec.failed(n, "connection_lost");
                }
                self.shared.lost(&mut self.rec, "connection_lost");
                break;
            }
            last_write = Instant::now();
            if self.qos == 0 {
                let latency = last_write.saturating_duration_since(slot);
                for _ in 0..n {
                    self.rec.acked(1, Some(latency));
                }
            }
        }
        self.finish().await;
        self.rec.flush_window();
        self.rec
    }

    /// Waits until `slot`, sending a PINGREQ whenever the connection has
    /// been silent for half the keep-alive.
    async fn idle_until(&mut self, slot: Instant, last_write: &mut Instant) -> Result<(), ()> {
        while slot > *last_write + KEEP_ALIVE / 2 {
            tokio::time::sleep_until(*last_write + KEEP_ALIVE / 2).await;
            self.ping(last_write).await?;
        }
        if !self.closed_loop {
            tokio::time::sleep_until(slot).await;
        }
        Ok(())
    }

    /// Waits for a free slot of the in-flight window (pinging while the
    /// broker holds the acks); None at the deadline or if the connection
    /// is lost.
    async fn window_slot(&mut self, deadline: Instant, last_write: &mut Instant) -> Option<()> {
        if let Ok(p) = self.shared.window.try_acquire() {
            p.forget();
            return Some(());
        }
        let shared = self.shared.clone();
        loop {
            let ping_at = *last_write + KEEP_ALIVE / 2;
            tokio::select! {
                p = shared.window.acquire() => return p.ok().map(|p| p.forget()),
                _ = tokio::time::sleep_until(deadline) => return None,
                _ = tokio::time::sleep_until(ping_at) => self.ping(last_write).await.ok()?,
            }
        }
    }

    async fn ping(&mut self, last_write: &mut Instant) -> Result<(), ()> {
        if self.write.write_all(&wire::PINGREQ).await.is_err() {
            self.shared.lost(&mut self.rec, "connection_lost");
            return Err(());
        }
        *last_write = Instant::now();
        Ok(())
    }

    /// Waits (bounded by the timeout) for outstanding acks, then disconnects
    /// and stops the reader.
    async fn finish(&mut self) {
        let shared = self.shared.clone();
        let drained = async {
            loop {
                let notified = shared.drained.notified();
                if shared.dead.load(Ordering::Relaxed) || shared.pending().is_empty() {
                    return;
                }
                notified.await;
            }
        };
        let _ = tokio::time::timeout(self.timeout, drained).await;
        self.shared.closing.store(true, Ordering::Relaxed);
        if !self.shared.dead.load(Ordering::Relaxed) {
            let _ = self.write.write_all(&wire::DISCONNECT).await;
            let _ = self.write.shutdown().await;
        }
        self.shared.stop.notify_one();
    }
}
