//! The per-table bounded queue between the router and the batcher.
//!
//! Bounded in items AND bytes. A request's items are admitted all together
//! or not at all (the sender gets 503 instead), so a request is never half
//! accepted. Capacity is reserved before the items enter the flume channel
//! and released when the batcher hands them to the writer, so
//! `queue_depth` counts everything acknowledged but not yet being written.

use std::sync::{Arc, Mutex};

use metrics::Gauge;
use tokio::sync::Notify;

use crate::event::Item;

/// The queue is full: the sender should retry later.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("queue full")]
pub struct QueueFull;

#[derive(Debug)]
struct Usage {
    items: usize,
    bytes: usize,
    closed: bool,
}

/// Producer side, shared by every source writing to one table.
#[derive(Debug)]
pub struct QueueSender {
    tx: flume::Sender<Vec<Item>>,
    shared: Arc<Shared>,
}

/// Consumer side, owned by the table's batcher.
#[derive(Debug)]
pub struct QueueReceiver {
    rx: flume::Receiver<Vec<Item>>,
    shared: Arc<Shared>,
}

#[derive(Debug)]
struct Shared {
    usage: Mutex<Usage>,
    max_items: usize,
    max_bytes: usize,
    depth: Gauge,
    depth_bytes: Gauge,
    /// Wakes the spool's feeder (its only waiter) when capacity is released.
    room: Notify,
}

/// A queue holding at most `max_items` items and `max_bytes` bytes.
pub fn bounded(
    max_items: usize,
    max_bytes: usize,
    depth: Gauge,
    depth_bytes: Gauge,
) -> (QueueSender, QueueReceiver) {
    // Every message holds at least one item, so the channel never fills
    // before the reservation does.
    let (tx, rx) = flume::bounded(max_items);
    let shared = Arc::new(Shared {
        usage: Mutex::new(Usage {
            items: 0,
            bytes: 0,
            closed: false,
        }),
        max_items,
        max_bytes,
        depth,
        depth_bytes,
        room: Notify::new(),
    });
    (
        QueueSender {
            tx,
            shared: shared.clone(),
        },
        QueueReceiver { rx, shared },
    )
}

impl QueueSender {
    /// Admits all `items` or none.
    pub fn try_push(&self, items: Vec<Item>) -> Result<(), QueueFull> {
        self.push_or_return(items).map_err(|_| QueueFull)
    }

    /// Like [`QueueSender::try_push`], handing the items back when full.
    pub fn push_or_return(&self, items: Vec<Item>) -> Result<(), Vec<Item>> {
        if items.is_empty() {
            return Ok(());
        }
        let n = items.len();
        let bytes: usize = items.iter().map(|i| i.size as usize).sum();
        // Reserve and send under one lock, so that `close_and_drain` sees
        // every item that was ever admitted.
        let Ok(mut u) = self.shared.usage.lock() else {
            return Err(items);
        };
        if u.closed
            || u.items + n > self.shared.max_items
            || u.bytes + bytes > self.shared.max_bytes
        {
            return Err(items);
        }
        if let Err(e) = self.tx.try_send(items) {
            return Err(e.into_inner());
        }
        u.items += n;
        u.bytes += bytes;
        self.shared.depth.set(u.items as f64);
        self.shared.depth_bytes.set(u.bytes as f64);
        Ok(())
    }

    /// Whether `items` more items fit right now (by count; their bytes are
    /// checked at push). Lets a source refuse a request before mapping it.
    pub fn has_room(&self, items: usize) -> bool {
        self.shared.usage.lock().is_ok_and(|u| {
            !u.closed && u.items + items <= self.shared.max_items && u.bytes < self.shared.max_bytes
        })
    }

    /// Whether `items` items could ever fit (a request larger than the queue is refused outright).
    pub fn capacity_items(&self) -> usize {
        self.shared.max_items
    }

    /// The byte bound (a request larger than it is refused outright).
    pub fn capacity_bytes(&self) -> usize {
        self.shared.max_bytes
    }

    /// Completes after capacity was released since the last call (or now).
    pub async fn room(&self) {
        self.shared.room.notified().await;
    }
}

impl QueueReceiver {
    /// Next request's items; `None` once every sender is gone and the queue is empty.
    pub async fn recv(&self) -> Option<Vec<Item>> {
        self.rx.recv_async().await.ok()
    }

    /// The next request's items if one is waiting (no waker registered).
    pub fn try_recv(&self) -> Option<Vec<Item>> {
        self.rx.try_recv().ok()
    }

    /// Refuses all further pushes and takes whatever is queued (the shutdown deadline).
    pub fn close_and_drain(&self) -> Vec<Vec<Item>> {
        if let Ok(mut u) = self.shared.usage.lock() {
            u.closed = true;
        }
        self.rx.drain().collect()
    }

    /// The batcher handed these items to the writer: free their capacity.
    pub fn release(&self, items: usize, bytes: usize) {
        self.shared.release(items, bytes);
    }
}

impl Shared {
    fn release(&self, items: usize, bytes: usize) {
        if let Ok(mut u) = self.usage.lock() {
            u.items = u.items.saturating_sub(items);
            u.bytes = u.bytes.saturating_sub(bytes);
            self.depth.set(u.items as f64);
            self.depth_bytes.set(u.bytes as f64);
        }
        self.room.notify_one();
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use std::time::Instant;

    pub(crate) fn item(key: &str, size: u32) -> Item {
        Item {
            text: crate::event::ItemText::new(b"{}", key),
            size,
            stream: "s".into(),
            received: Instant::now(),
            acks: Default::default(),
        }
    }

    #[tokio::test]
    async fn admits_whole_requests_within_items_and_bytes() {
        let (tx, rx) = bounded(3, 1000, Gauge::noop(), Gauge::noop());
        assert_eq!(tx.try_push(vec![item("a", 10), item("b", 10)]), Ok(()));
        assert_eq!(
            tx.try_push(vec![item("c", 10), item("d", 10)]),
            Err(QueueFull),
            "4 items > 3: all refused"
        );
        assert_eq!(
            tx.try_push(vec![item("e", 991)]),
            Err(QueueFull),
            "bytes bound"
        );
        assert_eq!(tx.try_push(vec![item("f", 10)]), Ok(()));
        let first = rx.recv().await.expect("queued");
        assert_eq!(first.len(), 2);
        rx.release(2, 20);
        assert_eq!(
            tx.try_push(vec![item("g", 10), item("h", 10)]),
            Ok(()),
            "released capacity is reusable"
        );
        assert!(!tx.has_room(1), "3 of 3 items queued");
        rx.release(1, 10);
        assert!(tx.has_room(1) && !tx.has_room(2));
        drop(tx);
        assert_eq!(rx.recv().await.map(|v| v.len()), Some(1));
        assert_eq!(rx.recv().await.map(|v| v.len()), Some(2));
        assert!(rx.recv().await.is_none());
    }

    #[test]
    fn closed_queue_refuses_and_drain_returns_everything() {
        let (tx, rx) = bounded(10, 1000, Gauge::noop(), Gauge::noop());
        tx.try_push(vec![item("a", 1)]).expect("room");
        tx.try_push(vec![item("b", 1), item("c", 1)]).expect("room");
        let drained: usize = rx.close_and_drain().iter().map(Vec::len).sum();
        assert_eq!(drained, 3);
        assert_eq!(tx.try_push(vec![item("d", 1)]), Err(QueueFull));
    }
}
