//! The per-table batcher: queue → batches of at most 25 items and
//! `batch_max_bytes`, flushed when full, when the oldest item has waited
//! `linger`, and at end of stream.
//!
//! Invariant: a batch never holds two writes of one primary key (DynamoDB
//! rejects the whole call). A later write of a key replaces the earlier one
//! in place (last write wins) and inherits its waiting acks; the collapse is
//! counted. Queue capacity is released when a batch is handed on, so the
//! queue bound covers everything not yet with the writer.

use std::time::Duration;

use tokio::sync::mpsc;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::queue::QueueReceiver;
use crate::event::Item;
use crate::sink::dead_letter::{DeadLetter, DeadLetterReason};
use crate::telemetry::metrics::TableMetrics;

/// DynamoDB's limit of items per BatchWriteItem call.
pub const MAX_BATCH_ITEMS: usize = 25;

/// Items for one BatchWriteItem call, keys unique.
#[derive(Debug, Default)]
pub struct Batch {
    pub items: Vec<Item>,
    pub bytes: usize,
}

/// The pure batching policy: what goes into which batch.
#[derive(Debug)]
pub struct BatchBuilder {
    max_items: usize,
    max_bytes: usize,
    current: Batch,
    /// Writes replaced by a later write of the same key.
    pub collapsed: u64,
}

impl BatchBuilder {
    pub fn new(max_items: usize, max_bytes: usize) -> Self {
        Self {
            max_items: max_items.clamp(1, MAX_BATCH_ITEMS),
            max_bytes,
            current: Batch::default(),
            collapsed: 0,
        }
    }

    pub fn is_empty(&self) -> bool {
        self.current.items.is_empty()
    }

    /// Adds an item; returns a finished batch when one is complete.
    pub fn push(&mut self, mut item: Item) -> Option<Batch> {
        let mut done = None;
        // At most 25 items, so a scan beats a map; keys compare their
        // stored hashes first (no key copied, nothing hashed again).
        let held = self
            .current
            .items
            .iter()
            .position(|it| it.text.same_key(&item.text));
        if let Some(i) = held {
            let grown =
                self.current.bytes - self.current.items[i].size as usize + item.size as usize;
            if grown <= self.max_bytes {
                let old = std::mem::replace(&mut self.current.items[i], item);
                self.current.bytes = grown;
                self.current.items[i].acks.extend(old.acks);
                self.collapsed += 1;
                return None;
            }
            // The larger write does not fit beside the others: the earlier
            // write goes in this batch, the later one in the next (the
            // writer never runs two batches holding one key at once).
            done = Some(self.take());
        }
        if self.current.bytes + item.size as usize > self.max_bytes && !self.is_empty() {
            done = Some(self.take());
        }
        self.current.bytes += item.size as usize;
        item.acks.shrink_to_fit();
        self.current.items.push(item);
        if self.current.items.len() >= self.max_items {
            // Only one batch can complete per push: a flush above left a
            // single item behind, which cannot reach max_items > 1.
            return done.or_else(|| Some(self.take()));
        }
        done
    }

    /// Takes the forming batch (possibly empty). The next batch starts
    /// with room for `max_items`: grown from empty it was reallocated four
    /// times on its way to 25 items, each time copying the items so far.
    pub fn take(&mut self) -> Batch {
        if self.current.items.is_empty() {
            return Batch::default();
        }
        let room = Vec::with_capacity(self.max_items);
        Batch {
            items: std::mem::replace(&mut self.current.items, room),
            bytes: std::mem::take(&mut self.current.bytes),
        }
    }
}

/// Batcher settings.
#[derive(Debug, Clone)]
pub struct BatcherConfig {
    pub linger: Duration,
    pub max_bytes: usize,
}

/// Runs until the queue is closed and drained (graceful shutdown) or
/// `abort` fires (the shutdown deadline: what is held goes to the dead-letter file).
pub async fn run(
    queue: QueueReceiver,
    out: mpsc::Sender<Batch>,
    config: BatcherConfig,
    abort: CancellationToken,
    dead_letter: DeadLetter,
    metrics: TableMetrics,
) {
    let mut builder = BatchBuilder::new(MAX_BATCH_ITEMS, config.max_bytes);
    let mut deadline: Option<Instant> = None;
    let mut left: Vec<Item> = Vec::new();
    'outer: loop {
        // While requests are waiting they are taken without the select
        // below: its cancellation waiter and linger timer are registered
        // and dropped again at every wake-up, which cost more than batching
        // an MQTT message's one item. The order of the checks is the
        // select's: shutdown, then linger, then the queue.
        let step = match ready_step(&abort, deadline, &queue) {
            Some(step) => step,
            None => tokio::select! {
                biased;
                _ = abort.cancelled() => Step::Abort,
                _ = sleep_until(deadline) => Step::Linger,
                r = queue.recv() => Step::Received(r),
            },
        };
        let received = match step {
            Step::Abort => break,
            Step::Linger => {
                deadline = None;
                if builder.is_empty()
                    || forward(builder.take(), &queue, &out, &metrics, &abort, &dead_letter).await
                {
                    continue;
                }
                break;
            }
            Step::Received(r) => r,
        };
        let Some(items) = received else {
            // End of stream: flush what is left and stop.
            if !builder.is_empty() {
                forward(builder.take(), &queue, &out, &metrics, &abort, &dead_letter).await;
            }
            return;
        };
        let mut items = items.into_iter();
        while let Some(item) = items.next() {
            if builder.is_empty() {
                deadline = Some(Instant::now() + config.linger);
            }
            if let Some(batch) = builder.push(item) {
                if !forward(batch, &queue, &out, &metrics, &abort, &dead_letter).await {
                    left.extend(items);
                    break 'outer;
                }
                deadline = (!builder.is_empty()).then(|| Instant::now() + config.linger);
            }
        }
        metrics.collapsed.absolute(builder.collapsed);
    }
    // Aborted at the shutdown deadline: nothing held may vanish.
    left.extend(builder.take().items);
    for chunk in queue.close_and_drain() {
        left.extend(chunk);
    }
    if !left.is_empty() {
        let (n, bytes) = (left.len(), left.iter().map(|i| i.size as usize).sum());
        dead_letter
            .write(
                &metrics,
                DeadLetterReason::ShutdownDeadline,
                "still queued at the shutdown deadline",
                left,
            )
            .await;
        queue.release(n, bytes);
    }
}

/// What the batcher does next.
enum Step {
    Abort,
    /// The oldest item of the forming batch has waited `linger`.
    Linger,
    /// A request's items; `None` at the end of the stream.
    Received(Option<Vec<Item>>),
}

/// The next step when it needs no waiting, checked in the select's order.
/// The linger deadline comes before waiting requests, so a stream that
/// keeps the queue busy without filling a batch (writes of one key
/// collapsing into one item) is still flushed on time.
fn ready_step(
    abort: &CancellationToken,
    deadline: Option<Instant>,
    queue: &QueueReceiver,
) -> Option<Step> {
    if abort.is_cancelled() {
        Some(Step::Abort)
    } else if deadline.is_some_and(|d| d <= Instant::now()) {
        Some(Step::Linger)
    } else {
        queue.try_recv().map(|items| Step::Received(Some(items)))
    }
}

async fn sleep_until(deadline: Option<Instant>) {
    match deadline {
        Some(d) => tokio::time::sleep_until(d).await,
        None => std::future::pending().await,
    }
}

/// Hands a batch to the writer; false (batch dead-lettered) if the writer is gone or the deadline passed.
async fn forward(
    batch: Batch,
    queue: &QueueReceiver,
    out: &mpsc::Sender<Batch>,
    metrics: &TableMetrics,
    abort: &CancellationToken,
    dead_letter: &DeadLetter,
) -> bool {
    let (n, bytes) = (batch.items.len(), batch.bytes);
    let permit = tokio::select! {
        p = out.reserve() => p,
        _ = abort.cancelled() => {
            dead_letter.write(metrics, DeadLetterReason::ShutdownDeadline, "still queued at the shutdown deadline", batch.items).await;
            queue.release(n, bytes);
            return false;
        }
    };
    match permit {
        Ok(p) => {
            p.send(batch);
            queue.release(n, bytes);
            metrics.batch_items.record(n as f64);
            true
        }
        Err(_) => {
            dead_letter
                .write(
                    metrics,
                    DeadLetterReason::ShutdownDeadline,
                    "writer stopped",
                    batch.items,
                )
                .await;
            queue.release(n, bytes);
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pipeline::queue::bounded;
    use crate::pipeline::queue::tests::item;
    use metrics::Gauge;
    use proptest::prelude::*;
    use std::collections::{HashMap, HashSet};

    #[test]
    fn flushes_at_25_items() {
        let mut b = BatchBuilder::new(25, 1 << 24);
        for i in 0..24 {
            assert!(b.push(item(&format!("k{i}"), 10)).is_none());
        }
        let batch = b.push(item("k24", 10)).expect("full");
        assert_eq!(batch.items.len(), 25);
        assert!(b.is_empty());
        assert!(
            b.current.items.capacity() >= 25,
            "the next batch has room for 25 items (not grown from empty)"
        );
        assert_eq!(
            b.take().items.capacity(),
            0,
            "taking no items allocates nothing"
        );
    }

    #[test]
    fn same_key_is_collapsed_last_write_wins() {
        let mut b = BatchBuilder::new(25, 1 << 24);
        let mut first = item("k", 10);
        first
            .acks
            .push(std::sync::Arc::new(crate::pipeline::ack::Ack::new(1)));
        b.push(first);
        b.push(item("other", 5));
        let mut second = item("k", 30);
        second.stream = "latest".into();
        b.push(second);
        let batch = b.take();
        assert_eq!(batch.items.len(), 2);
        assert_eq!(&*batch.items[0].stream, "latest");
        assert_eq!(
            batch.items[0].acks.len(),
            1,
            "the replaced write's ack moves to the winner"
        );
        assert_eq!(batch.bytes, 35);
        assert_eq!(b.collapsed, 1);
    }

    #[test]
    fn keys_sharing_a_hash_stay_apart_and_each_collapses_with_itself() {
        use crate::event::ItemText;
        let mut b = BatchBuilder::new(25, 1 << 24);
        let with = |text: &str, size: u32, stream: &str| {
            let mut it = item(text, size);
            it.text = ItemText::with_hash(b"{}", text, 7);
            it.stream = stream.into();
            it
        };
        b.push(with("a", 1, "a1"));
        b.push(with("b", 2, "b1"));
        assert_eq!(b.collapsed, 0, "equal hashes, different keys");
        b.push(with("b", 3, "b2"));
        let batch = b.take();
        assert_eq!(b.collapsed, 1);
        let streams: Vec<&str> = batch.items.iter().map(|i| &*i.stream).collect();
        assert_eq!(streams, ["a1", "b2"], "the later b replaced b, not a");
        assert_eq!(batch.bytes, 4);
    }

    proptest! {
        #[test]
        fn nothing_lost_nothing_duplicated_limits_kept(
            specs in prop::collection::vec((0u8..40, 1u32..300_000), 0..400),
            max_bytes in 400_000usize..2_000_000,
        ) {
            let mut b = BatchBuilder::new(25, max_bytes);
            let mut batches = Vec::new();
            for (i, (key, size)) in specs.iter().enumerate() {
                let mut it = item(&format!("k{key}"), *size);
                it.stream = i.to_string().into();
                batches.extend(b.push(it));
            }
            batches.push(b.take());
            // Every key's last write survives exactly once, in some batch after
            // any earlier batch holding that key.
            let mut seen: HashMap<String, usize> = HashMap::new();
            let mut total = 0;
            for batch in &batches {
                prop_assert!(batch.items.len() <= 25);
                prop_assert!(batch.bytes <= max_bytes);
                prop_assert_eq!(batch.bytes, batch.items.iter().map(|i| i.size as usize).sum::<usize>());
                let keys: HashSet<_> = batch.items.iter().map(|i| i.key()).collect();
                prop_assert_eq!(keys.len(), batch.items.len());
                for it in &batch.items {
                    seen.insert(it.key().to_owned(), it.stream.parse().expect("index"));
                    total += 1;
                }
            }
            let mut last: HashMap<String, usize> = HashMap::new();
            for (i, (key, _)) in specs.iter().enumerate() {
                last.insert(format!("k{key}"), i);
            }
            prop_assert_eq!(seen, last);
            prop_assert_eq!(total as u64 + b.collapsed, specs.len() as u64);
        }
    }

    #[tokio::test(start_paused = true)]
    async fn waiting_requests_come_after_shutdown_and_linger() {
        let (tx, rx) = bounded(100, 1 << 20, Gauge::noop(), Gauge::noop());
        let abort = CancellationToken::new();
        assert!(ready_step(&abort, None, &rx).is_none(), "nothing waiting");
        tx.try_push(vec![item("a", 1)]).expect("room");
        let later = Instant::now() + Duration::from_millis(20);
        assert!(matches!(
            ready_step(&abort, Some(later), &rx),
            Some(Step::Received(Some(items))) if items.len() == 1
        ));
        tx.try_push(vec![item("a", 1)]).expect("room");
        tokio::time::advance(Duration::from_millis(20)).await;
        assert!(
            matches!(ready_step(&abort, Some(later), &rx), Some(Step::Linger)),
            "a due batch is flushed before more items are taken"
        );
        abort.cancel();
        assert!(matches!(
            ready_step(&abort, Some(later), &rx),
            Some(Step::Abort)
        ));
        assert!(
            rx.try_recv().is_some(),
            "the waiting request was left queued"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn linger_flushes_a_partial_batch_and_end_of_stream_flushes_the_rest() {
        let (tx, rx) = bounded(100, 1 << 20, Gauge::noop(), Gauge::noop());
        let (out_tx, mut out_rx) = mpsc::channel(4);
        let dir = tempfile::tempdir().expect("tmp");
        let dlq = DeadLetter::new(dir.path().join("dlq.ndjson"));
        let cfg = BatcherConfig {
            linger: Duration::from_millis(20),
            max_bytes: 1 << 20,
        };
        let task = tokio::spawn(run(
            rx,
            out_tx,
            cfg,
            CancellationToken::new(),
            dlq,
            TableMetrics::register("T", &[]),
        ));
        let start = Instant::now();
        tx.try_push(vec![item("a", 1), item("b", 1)]).expect("room");
        let batch = out_rx.recv().await.expect("batch");
        assert_eq!(batch.items.len(), 2);
        assert_eq!(
            start.elapsed(),
            Duration::from_millis(20),
            "flushed exactly at linger"
        );
        tx.try_push((0..30).map(|i| item(&format!("x{i}"), 1)).collect())
            .expect("room");
        assert_eq!(out_rx.recv().await.expect("full batch").items.len(), 25);
        drop(tx);
        assert_eq!(out_rx.recv().await.expect("tail").items.len(), 5);
        task.await.expect("batcher ends at end of stream");
        assert!(out_rx.recv().await.is_none());
    }
}
