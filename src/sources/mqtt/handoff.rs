//! The hand-off between rumqttd's local link (a blocking thread) and the
//! async MQTT ingest task.
//!
//! rumqttd acknowledges QoS 1 on receipt and drops the oldest log segments
//! when a subscriber lags, so the link thread must never wait: `push` never
//! blocks and never drops. The bound is enforced one step earlier, at the
//! front: while the hand-off holds more than `high_bytes`, the front stops
//! reading device sockets ([`Handoff::wait_for_space`]) and TCP backpressure
//! slows the devices down. What is already past the front (socket buffers,
//! rumqttd's log) still lands here, so the bytes held can exceed
//! `high_bytes` by at most that much.

use std::collections::VecDeque;
use std::sync::Mutex;
use std::time::Instant;

use bytes::Bytes;
use metrics::Gauge;
use tokio::sync::Notify;

/// One message the broker acknowledged.
#[derive(Debug, Clone)]
pub struct Message {
    pub topic: Bytes,
    pub payload: Bytes,
    /// When the link received it (the start of its end-to-end latency).
    pub received: Instant,
}

impl Message {
    fn bytes(&self) -> usize {
        self.topic.len() + self.payload.len() + 64
    }
}

#[derive(Debug, Default)]
struct State {
    queue: VecDeque<Message>,
    bytes: usize,
    closed: bool,
}

/// Bounded-by-backpressure FIFO of acknowledged messages.
#[derive(Debug)]
pub struct Handoff {
    state: Mutex<State>,
    /// Wakes the consumer.
    filled: Notify,
    /// Wakes paused front connections.
    drained: Notify,
    high_bytes: usize,
    depth: Gauge,
    depth_bytes: Gauge,
}

impl Handoff {
    pub fn new(high_bytes: usize, depth: Gauge, depth_bytes: Gauge) -> Self {
        Self {
            state: Mutex::new(State::default()),
            filled: Notify::new(),
            drained: Notify::new(),
            high_bytes,
            depth,
            depth_bytes,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        // A panic while holding this lock cannot leave the queue half-updated.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Appends a message; never blocks, never drops.
    pub fn push(&self, msg: Message) {
        {
            let mut s = self.lock();
            s.bytes += msg.bytes();
            s.queue.push_back(msg);
            self.depth.set(s.queue.len() as f64);
            self.depth_bytes.set(s.bytes as f64);
        }
        self.filled.notify_one();
    }

    /// Up to `max` messages from the front, without removing them; waits
    /// while empty. `None` once closed and empty.
    pub async fn peek(&self, max: usize) -> Option<Vec<Message>> {
        loop {
            let notified = self.filled.notified();
            {
                let s = self.lock();
                if !s.queue.is_empty() {
                    return Some(s.queue.iter().take(max).cloned().collect());
                }
                if s.closed {
                    return None;
                }
            }
            notified.await;
        }
    }

    /// Removes the first `n` messages (after the pipeline took them).
    pub fn consume(&self, n: usize) {
        let below = {
            let mut s = self.lock();
            for _ in 0..n {
                match s.queue.pop_front() {
                    Some(m) => s.bytes -= m.bytes(),
                    None => break,
                }
            }
            self.depth.set(s.queue.len() as f64);
            self.depth_bytes.set(s.bytes as f64);
            s.bytes < self.high_bytes
        };
        if below {
            self.drained.notify_waiters();
        }
    }

    /// Waits until the hand-off holds less than its high-water mark.
    pub async fn wait_for_space(&self) {
        loop {
            let notified = self.drained.notified();
            if self.lock().bytes < self.high_bytes {
                return;
            }
            notified.await;
        }
    }

    /// True while the front should stop reading.
    pub fn is_full(&self) -> bool {
        self.lock().bytes >= self.high_bytes
    }

    /// No more pushes; the consumer ends after the last message.
    pub fn close(&self) {
        self.lock().closed = true;
        self.filled.notify_one();
        self.drained.notify_waiters();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    fn msg(payload: &'static [u8]) -> Message {
        Message {
            topic: Bytes::from_static(b"t"),
            payload: Bytes::from_static(payload),
            received: Instant::now(),
        }
    }

    fn handoff(high: usize) -> Arc<Handoff> {
        Arc::new(Handoff::new(
            high,
            metrics::gauge!("test_depth"),
            metrics::gauge!("test_bytes"),
        ))
    }

    #[tokio::test]
    async fn fifo_peek_then_consume() {
        let h = handoff(1 << 20);
        h.push(msg(b"1"));
        h.push(msg(b"2"));
        h.push(msg(b"3"));
        let first = h.peek(2).await.expect("open");
        assert_eq!(first.len(), 2);
        assert_eq!(&first[0].payload[..], b"1");
        // Not removed until consumed: a refused message is retried in order.
        assert_eq!(&h.peek(1).await.expect("open")[0].payload[..], b"1");
        h.consume(2);
        assert_eq!(&h.peek(5).await.expect("open")[0].payload[..], b"3");
        h.consume(1);
        h.close();
        assert!(h.peek(1).await.is_none());
    }

    #[tokio::test]
    async fn push_never_drops_above_the_mark_and_space_wakes_waiters() {
        let h = handoff(100);
        for _ in 0..10 {
            h.push(msg(b"0123456789"));
        }
        assert!(h.is_full());
        assert_eq!(h.peek(100).await.expect("open").len(), 10);
        let (tx, rx) = tokio::sync::oneshot::channel();
        let waiter = {
            let h = h.clone();
            tokio::spawn(async move {
                h.wait_for_space().await;
                let _ = tx.send(());
            })
        };
        tokio::task::yield_now().await;
        h.consume(9);
        rx.await.expect("woken once below the mark");
        waiter.await.expect("joined");
        assert!(!h.is_full());
    }

    #[tokio::test]
    async fn peek_waits_for_a_push() {
        let h = handoff(1000);
        let reader = {
            let h = h.clone();
            tokio::spawn(async move { h.peek(1).await.map(|v| v.len()) })
        };
        tokio::task::yield_now().await;
        h.push(msg(b"x"));
        assert_eq!(reader.await.expect("joined"), Some(1));
    }
}
