//! The per-table writer: batches → BatchWriteItem, as many calls at once as
//! the adaptive concurrency limit allows (at most `max_in_flight`), until
//! DynamoDB confirmed every item or it went to the dead-letter file.
//!
//! Per batch: UnprocessedItems are re-sent after exponential backoff with
//! full jitter; throttling, 5xx and timeouts are retried the same way. While
//! it backs off from unprocessed items or throttling, a batch gives its
//! in-flight slot to fresh batches ([`Slots`]: parking, bounded by
//! `max_parked_items`), so one hot key range does not hold back the rest; a
//! ValidationException splits the batch in halves until the bad item is
//! alone, and that item is dead-lettered with DynamoDB's message while the
//! rest are written. At the shutdown deadline (`abort`) whatever is still
//! unwritten is dead-lettered. No path drops an item.

use std::future::Future;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::mpsc;
use tokio::task::JoinSet;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::key_guard::KeysInFlight;
use super::rate::ceiling::{self, DescribeCapacity};
use super::rate::concurrency::{ConcurrencyConfig, ConcurrencyController};
use super::rate::RateControl;
use super::retry::{Backoff, WriteError};
use super::slots::{Parked, Slot, Slots};
use crate::config::TableSpec;
use crate::event::Item;
use crate::pipeline::batcher::Batch;
use crate::sink::dead_letter::{DeadLetter, DeadLetterReason};
use crate::telemetry::metrics::TableMetrics;

/// What one successful call did.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct WriteOutcome {
    /// Indexes (into the items sent) that DynamoDB left unprocessed.
    pub unprocessed: Vec<usize>,
    /// Capacity units DynamoDB reported as consumed, if it did.
    pub consumed_wcu: Option<f64>,
}

/// One BatchWriteItem call. The SDK implements it in production; tests
/// script it.
pub trait BatchWrite: Send + Sync + 'static {
    fn write(
        &self,
        table: &TableSpec,
        items: &[Item],
    ) -> impl Future<Output = Result<WriteOutcome, WriteError>> + Send;
}

/// Writer settings.
#[derive(Debug, Clone)]
pub struct WriterConfig {
    pub max_in_flight: usize,
    /// Items that may wait outside the in-flight slots (see [`Slots`]).
    pub max_parked_items: usize,
    pub backoff: Backoff,
    pub max_fatal_attempts: u32,
}

/// Everything a batch task needs.
#[derive(Debug)]
struct Ctx<W> {
    table: Arc<TableSpec>,
    writer: Arc<W>,
    config: WriterConfig,
    abort: CancellationToken,
    dead_letter: DeadLetter,
    metrics: TableMetrics,
    reachable: Arc<AtomicBool>,
    rate: Option<Arc<RateControl>>,
    concurrency: Mutex<ConcurrencyController>,
    calls_in_flight: AtomicUsize,
    /// Batches sleeping until their partition key has room.
    key_waiters: AtomicUsize,
    slots: Arc<Slots>,
}

impl<W> Ctx<W> {
    fn concurrency_limit(&self) -> usize {
        self.concurrency
            .lock()
            .map(|c| c.limit())
            .unwrap_or(self.config.max_in_flight)
            .max(1)
    }

    /// A slot for the next call; None if `abort` fired first.
    async fn slot(&self) -> Option<Slot> {
        tokio::select! {
            s = self.slots.acquire(|| self.concurrency_limit()) => Some(s),
            _ = self.abort.cancelled() => None,
        }
    }

    /// Parks `items`: gives `slot` back while the batch waits.
    fn park(&self, slot: &mut Option<Slot>, items: usize) -> Parked {
        let parked = self.slots.park(items);
        *slot = None;
        self.metrics
            .parked_items
            .set(self.slots.parked_items() as f64);
        parked
    }

    fn unpark(&self, parked: Option<Parked>) {
        if parked.is_some() {
            drop(parked);
            self.metrics
                .parked_items
                .set(self.slots.parked_items() as f64);
        }
    }
}

/// Runs until `batches` is closed and every batch is settled.
/// `reachable` reflects whether DynamoDB answered the last call (for /readyz).
/// With a rate control, the table's capacity is polled beside it (see
/// [`ceiling`]) until the writer ends.
#[allow(clippy::too_many_arguments)]
pub async fn run<W: BatchWrite + DescribeCapacity>(
    table: Arc<TableSpec>,
    mut batches: mpsc::Receiver<Batch>,
    writer: Arc<W>,
    config: WriterConfig,
    abort: CancellationToken,
    dead_letter: DeadLetter,
    metrics: TableMetrics,
    reachable: Arc<AtomicBool>,
    rate: Option<Arc<RateControl>>,
) {
    let concurrency = Mutex::new(ConcurrencyController::new(
        ConcurrencyConfig::new(config.max_in_flight),
        Instant::now().into_std(),
    ));
    metrics.concurrency_limit.set(config.max_in_flight as f64);
    let poll_stop = CancellationToken::new();
    let _poll_guard = poll_stop.clone().drop_guard();
    if let Some(rate) = rate.as_ref().filter(|r| !r.capacity_poll().is_zero()) {
        tokio::spawn(ceiling::poll(
            writer.clone(),
            table.clone(),
            rate.clone(),
            metrics.clone(),
            rate.capacity_poll(),
            poll_stop.clone(),
        ));
    }
    let slots = Slots::new(config.max_parked_items);
    let ctx = Arc::new(Ctx {
        table,
        writer,
        config,
        abort,
        dead_letter,
        metrics,
        reachable,
        rate,
        concurrency,
        calls_in_flight: AtomicUsize::new(0),
        key_waiters: AtomicUsize::new(0),
        slots,
    });
    let keys = Arc::new(KeysInFlight::default());
    let mut tasks = JoinSet::new();
    loop {
        while tasks.try_join_next().is_some() {}
        let batch = tokio::select! {
            b = batches.recv() => b,
            Some(_) = tasks.join_next(), if !tasks.is_empty() => continue,
        };
        let Some(batch) = batch else { break };
        let hashes = KeysInFlight::hashes(&batch.items);
        while keys.conflicts(&hashes) {
            if tasks.join_next().await.is_none() {
                break;
            }
        }
        keys.hold(&hashes);
        // Room under the learned concurrency limit (parked batches hold
        // none). Taken after the key wait: a parked batch holding a key must
        // be able to get a slot back.
        // Past max_parked_items no fresh batch starts: the channel and then
        // the queue fill up (503), and the slots serve the parked retries.
        let slot = loop {
            ctx.slots.wait_not_full().await;
            let slot = ctx.slots.acquire(|| ctx.concurrency_limit()).await;
            if !ctx.slots.full() {
                break slot;
            }
        };
        let ctx = ctx.clone();
        let keys = keys.clone();
        tasks.spawn(async move {
            write_batch(&ctx, batch.items, slot).await;
            keys.release(&hashes);
        });
    }
    while tasks.join_next().await.is_some() {}
}

/// Writes one batch to completion (written or dead-lettered).
/// `slot` is given back while the batch is parked and taken again before
/// its next call.
async fn write_batch<W: BatchWrite>(ctx: &Ctx<W>, items: Vec<Item>, slot: Slot) {
    let mut slot = Some(slot);
    // Groups still to write; a ValidationException splits a group in two.
    let mut groups = vec![items];
    let mut rng = {
        use rand::SeedableRng;
        rand::rngs::StdRng::from_rng(&mut rand::rng())
    };
    let mut attempt: u32 = 0;
    let mut fatal_attempts: u32 = 0;
    while let Some(mut pending) = groups.pop() {
        loop {
            if ctx.abort.is_cancelled() {
                ctx.dead_letter
                    .write(
                        &ctx.metrics,
                        DeadLetterReason::ShutdownDeadline,
                        "unwritten at the shutdown deadline",
                        pending,
                    )
                    .await;
                break;
            }
            // A parked batch takes a slot again before it takes any tokens:
            // batches without a slot competing for tokens would starve the
            // ones holding slots (each side waiting for the other).
            if slot.is_none() {
                slot = ctx.slot().await;
                if slot.is_none() {
                    continue; // aborted: the loop head dead-letters
                }
            }
            // Items whose partition key is over its partition's rate wait
            // (parked if there is room); the others go now.
            let mut held = Vec::new();
            if let Some(rate) = &ctx.rate {
                let (ready, waiting, wait) = rate.split_by_key(pending);
                pending = ready;
                held = waiting;
                if pending.is_empty() {
                    pending = held;
                    // Other batches may wait for the same key: spread the
                    // wake-ups over the time all of them need instead of
                    // waking them together to find room for one.
                    let waiters = ctx.key_waiters.fetch_add(1, Ordering::AcqRel);
                    let spread = rand::Rng::random_range(&mut rng, 1.0..=1.0 + waiters as f64);
                    let wait = wait.mul_f64(spread).min(ctx.config.backoff.max);
                    let parked = Some(ctx.park(&mut slot, pending.len()));
                    sleep_or_abort(wait, &ctx.abort).await;
                    ctx.unpark(parked);
                    ctx.key_waiters.fetch_sub(1, Ordering::AcqRel);
                    continue; // the loop head dead-letters on abort
                }
            }
            let charge: u32 = pending.iter().map(Item::wcu).sum();
            if let Some(rate) = &ctx.rate {
                tokio::select! {
                    _ = rate.charge(charge) => {}
                    _ = ctx.abort.cancelled() => {
                        // The loop head dead-letters everything, held items too.
                        pending.extend(held);
                        continue;
                    }
                }
            }
            let started = Instant::now();
            let running = ctx.calls_in_flight.fetch_add(1, Ordering::AcqRel) + 1;
            ctx.metrics.in_flight.set(running as f64);
            if let Ok(mut c) = ctx.concurrency.lock() {
                c.on_start(running);
            }
            ctx.metrics.items_sent.increment(pending.len() as u64);
            let result = ctx.writer.write(&ctx.table, &pending).await;
            let running = ctx.calls_in_flight.fetch_sub(1, Ordering::AcqRel) - 1;
            ctx.metrics.in_flight.set(running as f64);
            let rtt = started.elapsed();
            ctx.metrics.write_latency.record(rtt.as_secs_f64());
            // Throttling is the rate limiter's signal; concurrency reacts to
            // a saturated service or network (5xx, timeouts, rising latency).
            let congested = matches!(result, Err(WriteError::Retriable { .. }));
            if let Ok(mut c) = ctx.concurrency.lock() {
                c.on_end(Instant::now().into_std(), rtt, congested);
                ctx.metrics.concurrency_limit.set(c.limit() as f64);
            }
            let retry_cause = match result {
                Ok(outcome) => {
                    ctx.reachable.store(true, Ordering::Relaxed);
                    if let Some(wcu) = outcome.consumed_wcu {
                        ctx.metrics.wcu.increment(wcu.round() as u64);
                    }
                    if let Some(rate) = &ctx.rate {
                        let unprocessed_wcu: u32 = outcome
                            .unprocessed
                            .iter()
                            .filter_map(|&i| pending.get(i))
                            .map(Item::wcu)
                            .sum();
                        let written_wcu = f64::from(charge - unprocessed_wcu);
                        rate.succeeded(
                            charge,
                            outcome.consumed_wcu,
                            written_wcu,
                            pending.len(),
                            outcome.unprocessed.len(),
                        );
                    }
                    pending = settle_written(ctx, pending, &outcome.unprocessed);
                    if pending.is_empty() {
                        ctx.metrics.batch("ok");
                        if held.is_empty() {
                            break;
                        }
                        pending = held;
                        continue;
                    }
                    ctx.metrics.batch("partial");
                    ctx.metrics.unprocessed.increment(pending.len() as u64);
                    pending.extend(held);
                    "unprocessed"
                }
                Err(WriteError::Validation { message }) => {
                    if !held.is_empty() {
                        groups.push(held);
                    }
                    ctx.reachable.store(true, Ordering::Relaxed);
                    ctx.metrics.batch("validation");
                    if pending.len() == 1 {
                        ctx.dead_letter
                            .write(
                                &ctx.metrics,
                                DeadLetterReason::Validation,
                                &message,
                                pending,
                            )
                            .await;
                    } else {
                        let second = pending.split_off(pending.len() / 2);
                        groups.push(second);
                        groups.push(pending);
                    }
                    break;
                }
                Err(e) => {
                    pending.extend(held);
                    ctx.metrics.batch(e.outcome());
                    match &e {
                        WriteError::Throttled { reason, .. } => {
                            ctx.reachable.store(true, Ordering::Relaxed);
                            ctx.metrics.throttled(reason);
                            if let Some(rate) = &ctx.rate {
                                rate.throttled(*reason == "key_range");
                            }
                        }
                        WriteError::Retriable { .. } => {
                            ctx.reachable.store(false, Ordering::Relaxed)
                        }
                        WriteError::Fatal { message } => {
                            fatal_attempts += 1;
                            if fatal_attempts > ctx.config.max_fatal_attempts {
                                let message = message.clone();
                                ctx.dead_letter
                                    .write(&ctx.metrics, DeadLetterReason::Fatal, &message, pending)
                                    .await;
                                break;
                            }
                        }
                        WriteError::Validation { .. } => {}
                    }
                    tracing::debug!(table = %ctx.table.name, error = %e, items = pending.len(), attempt, "write failed; will retry");
                    e.retry_cause()
                }
            };
            ctx.metrics.retry(retry_cause);
            let delay = ctx.config.backoff.delay(attempt, &mut rng);
            attempt = attempt.saturating_add(1);
            // Waiting out capacity needs no slot; a failing service keeps it.
            let parked = matches!(retry_cause, "unprocessed" | "throttled")
                .then(|| ctx.park(&mut slot, pending.len()));
            let slept = sleep_or_abort(delay, &ctx.abort).await;
            ctx.unpark(parked);
            if !slept {
                continue; // the loop head dead-letters on abort
            }
        }
    }
}

/// Settles every item not listed in `unprocessed`; returns the unprocessed ones.
fn settle_written<W>(ctx: &Ctx<W>, items: Vec<Item>, unprocessed: &[usize]) -> Vec<Item> {
    let mut left = Vec::with_capacity(unprocessed.len());
    let mut next = unprocessed.iter().peekable();
    let now = std::time::Instant::now();
    let mut written = 0u64;
    let mut latencies = ctx.metrics.latency_recorder();
    for (i, item) in items.into_iter().enumerate() {
        if next.peek() == Some(&&i) {
            next.next();
            left.push(item);
            continue;
        }
        written += 1;
        latencies.record(
            &item.stream,
            now.saturating_duration_since(item.received).as_secs_f64(),
        );
        for ack in &item.acks {
            ack.written();
        }
    }
    ctx.metrics.written.increment(written);
    left
}

/// Sleeps `delay`; false if `abort` fired first.
async fn sleep_or_abort(delay: Duration, abort: &CancellationToken) -> bool {
    tokio::select! {
        _ = tokio::time::sleep(delay) => true,
        _ = abort.cancelled() => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pipeline::ack::Ack;
    use crate::pipeline::queue::tests::item;
    use std::collections::VecDeque;

    type Rule = fn(&[Item]) -> Result<WriteOutcome, WriteError>;

    /// A scripted BatchWriteItem: each call pops the next scripted answer
    /// (or applies `rule` when the script is empty) and records what it got.
    #[derive(Default)]
    struct Scripted {
        script: Mutex<VecDeque<Result<WriteOutcome, WriteError>>>,
        rule: Option<Rule>,
        calls: Mutex<Vec<Vec<String>>>,
        written: Mutex<Vec<String>>,
        delay: Duration,
    }

    impl BatchWrite for Scripted {
        async fn write(
            &self,
            _table: &TableSpec,
            items: &[Item],
        ) -> Result<WriteOutcome, WriteError> {
            let keys: Vec<String> = items.iter().map(|i| i.key().to_owned()).collect();
            self.calls.lock().expect("lock").push(keys.clone());
            if !self.delay.is_zero() {
                tokio::time::sleep(self.delay).await;
            }
            let next = self.script.lock().expect("lock").pop_front();
            let answer = match (next, self.rule) {
                (Some(a), _) => a,
                (None, Some(rule)) => rule(items),
                (None, None) => Ok(WriteOutcome::default()),
            };
            if let Ok(o) = &answer {
                let mut w = self.written.lock().expect("lock");
                w.extend(
                    keys.iter()
                        .enumerate()
                        .filter(|(i, _)| !o.unprocessed.contains(i))
                        .map(|(_, k)| k.clone()),
                );
            }
            answer
        }
    }

    impl DescribeCapacity for Scripted {
        async fn capacity(
            &self,
            _table: &TableSpec,
        ) -> Result<ceiling::Described, ceiling::DescribeError> {
            Ok(ceiling::TableCapacity::OnDemand(None).into())
        }
    }

    struct Harness {
        fake: Arc<Scripted>,
        dlq_path: std::path::PathBuf,
        _dir: tempfile::TempDir,
        abort: CancellationToken,
        tx: mpsc::Sender<Batch>,
        task: tokio::task::JoinHandle<()>,
    }

    fn start(fake: Scripted, max_in_flight: usize) -> Harness {
        start_with_rate(fake, max_in_flight, None)
    }

    fn start_with_rate(
        fake: Scripted,
        max_in_flight: usize,
        rate: Option<Arc<RateControl>>,
    ) -> Harness {
        start_full(fake, max_in_flight, rate, 1000)
    }

    fn start_full(
        fake: Scripted,
        max_in_flight: usize,
        rate: Option<Arc<RateControl>>,
        max_parked_items: usize,
    ) -> Harness {
        let fake = Arc::new(fake);
        let dir = tempfile::tempdir().expect("tmp");
        let dlq_path = dir.path().join("dlq.ndjson");
        let abort = CancellationToken::new();
        let (tx, rx) = mpsc::channel(8);
        let table = Arc::new(TableSpec::string_keyed("T"));
        let config = WriterConfig {
            max_in_flight,
            max_parked_items,
            backoff: Backoff {
                base: Duration::from_millis(10),
                max: Duration::from_secs(1),
            },
            max_fatal_attempts: 2,
        };
        let task = tokio::spawn(run(
            table,
            rx,
            fake.clone(),
            config,
            abort.clone(),
            DeadLetter::new(dlq_path.clone()),
            TableMetrics::register("T", &[]),
            Arc::new(AtomicBool::new(true)),
            rate,
        ));
        Harness {
            fake,
            dlq_path,
            _dir: dir,
            abort,
            tx,
            task,
        }
    }

    fn batch(keys: &[&str], ack: Option<&Arc<Ack>>) -> Batch {
        let items: Vec<Item> = keys
            .iter()
            .map(|k| {
                let mut it = item(k, 10);
                it.acks.extend(ack.cloned());
                it
            })
            .collect();
        Batch {
            bytes: items.len() * 10,
            items,
        }
    }

    fn dead_letters(path: &std::path::Path) -> Vec<serde_json::Value> {
        std::fs::read_to_string(path)
            .unwrap_or_default()
            .lines()
            .map(|l| serde_json::from_str(l).expect("json line"))
            .collect()
    }

    /// Calls of a batch whose HOT item comes back unprocessed once, and of a
    /// second batch sent behind it, with one slot.
    async fn calls_behind_a_backing_off_batch(max_parked_items: usize) -> Vec<Vec<String>> {
        let fake = Scripted::default();
        fake.script
            .lock()
            .expect("lock")
            .push_back(Ok(WriteOutcome {
                unprocessed: vec![0],
                consumed_wcu: Some(1.0),
            }));
        let h = start_full(fake, 1, None, max_parked_items);
        let ack = Arc::new(Ack::new(4));
        h.tx.send(batch(&["HOT", "a"], Some(&ack)))
            .await
            .expect("send");
        h.tx.send(batch(&["b", "c"], Some(&ack)))
            .await
            .expect("send");
        assert_eq!(ack.wait(4).await.written, 4);
        drop(h.tx);
        h.task.await.expect("writer ends");
        let calls = h.fake.calls.lock().expect("lock").clone();
        calls
    }

    #[tokio::test(start_paused = true)]
    async fn a_batch_backing_off_from_unprocessed_items_gives_its_slot_to_the_next() {
        assert_eq!(
            calls_behind_a_backing_off_batch(1000).await,
            vec![vec!["HOT", "a"], vec!["b", "c"], vec!["HOT"]],
            "the second batch is written while the first backs off"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn past_max_parked_items_no_fresh_batch_is_taken_until_the_retry_is_written() {
        assert_eq!(
            calls_behind_a_backing_off_batch(0).await,
            vec![vec!["HOT", "a"], vec!["HOT"], vec!["b", "c"]],
            "no room to park: the retry goes first"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn unprocessed_items_are_resent_until_written() {
        let fake = Scripted::default();
        fake.script.lock().expect("lock").extend([
            Ok(WriteOutcome {
                unprocessed: vec![0, 2],
                consumed_wcu: Some(1.0),
            }),
            Ok(WriteOutcome {
                unprocessed: vec![1],
                consumed_wcu: Some(1.0),
            }),
        ]);
        let h = start(fake, 2);
        let ack = Arc::new(Ack::new(3));
        h.tx.send(batch(&["a", "b", "c"], Some(&ack)))
            .await
            .expect("send");
        let outcome = ack.wait(3).await;
        assert_eq!(outcome.written, 3);
        let calls = h.fake.calls.lock().expect("lock").clone();
        assert_eq!(
            calls,
            vec![vec!["a", "b", "c"], vec!["a", "c"], vec!["c"]],
            "only unprocessed items are re-sent"
        );
        let mut written = h.fake.written.lock().expect("lock").clone();
        written.sort();
        assert_eq!(written, ["a", "b", "c"]);
        drop(h.tx);
        h.task.await.expect("writer ends when its input closes");
        assert!(dead_letters(&h.dlq_path).is_empty());
    }

    #[tokio::test(start_paused = true)]
    async fn throttling_and_server_errors_are_retried_with_backoff() {
        let fake = Scripted::default();
        fake.script.lock().expect("lock").extend([
            Err(WriteError::Throttled {
                reason: "throttling",
                message: "slow".into(),
            }),
            Err(WriteError::Retriable {
                cause: "server_error",
                message: "500".into(),
            }),
            Err(WriteError::Throttled {
                reason: "provisioned_throughput_exceeded",
                message: "slow".into(),
            }),
        ]);
        let h = start(fake, 1);
        let ack = Arc::new(Ack::new(2));
        let started = tokio::time::Instant::now();
        h.tx.send(batch(&["a", "b"], Some(&ack)))
            .await
            .expect("send");
        assert_eq!(ack.wait(2).await.written, 2);
        assert_eq!(h.fake.calls.lock().expect("lock").len(), 4);
        // Full jitter: at most 10 + 20 + 40 ms of backoff in total.
        assert!(
            started.elapsed() <= Duration::from_millis(70),
            "{:?}",
            started.elapsed()
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_bad_item_is_isolated_and_dead_lettered_the_rest_written() {
        let fake = Scripted {
            rule: Some(|items| {
                if items.iter().any(|i| i.key() == "bad") {
                    Err(WriteError::Validation {
                        message: "One or more parameter values were invalid".into(),
                    })
                } else {
                    Ok(WriteOutcome::default())
                }
            }),
            ..Default::default()
        };
        let h = start(fake, 2);
        let ack = Arc::new(Ack::new(7));
        h.tx.send(batch(&["a", "b", "c", "bad", "d", "e", "f"], Some(&ack)))
            .await
            .expect("send");
        let outcome = ack.wait(7).await;
        assert_eq!((outcome.written, outcome.failed), (6, 1));
        assert!(outcome
            .first_failure
            .as_deref()
            .unwrap_or("")
            .contains("parameter values were invalid"));
        let mut written = h.fake.written.lock().expect("lock").clone();
        written.sort();
        assert_eq!(written, ["a", "b", "c", "d", "e", "f"]);
        let dl = dead_letters(&h.dlq_path);
        assert_eq!(dl.len(), 1);
        assert_eq!(dl[0]["reason"], "validation");
        assert_eq!(dl[0]["table"], "T");
        assert!(dl[0]["message"].as_str().unwrap_or("").contains("invalid"));
    }

    #[tokio::test(start_paused = true)]
    async fn persistent_fatal_errors_end_in_the_dead_letter_file() {
        let fake = Scripted {
            rule: Some(|_| {
                Err(WriteError::Fatal {
                    message: "AccessDeniedException: no".into(),
                })
            }),
            ..Default::default()
        };
        let h = start(fake, 1);
        let ack = Arc::new(Ack::new(2));
        h.tx.send(batch(&["a", "b"], Some(&ack)))
            .await
            .expect("send");
        assert_eq!(ack.wait(2).await.failed, 2);
        assert_eq!(
            h.fake.calls.lock().expect("lock").len(),
            3,
            "max_fatal_attempts = 2 retries after the first"
        );
        let dl = dead_letters(&h.dlq_path);
        assert_eq!(dl.len(), 2);
        assert!(dl.iter().all(|l| l["reason"] == "fatal"));
    }

    #[tokio::test(start_paused = true)]
    async fn at_the_deadline_unwritten_items_are_dead_lettered() {
        let fake = Scripted {
            rule: Some(|_| {
                Err(WriteError::Throttled {
                    reason: "throttling",
                    message: "slow".into(),
                })
            }),
            ..Default::default()
        };
        let h = start(fake, 1);
        let ack = Arc::new(Ack::new(3));
        h.tx.send(batch(&["a", "b", "c"], Some(&ack)))
            .await
            .expect("send");
        tokio::time::sleep(Duration::from_secs(2)).await;
        assert!(
            h.fake.calls.lock().expect("lock").len() > 2,
            "still retrying"
        );
        h.abort.cancel();
        assert_eq!(ack.wait(3).await.failed, 3);
        let dl = dead_letters(&h.dlq_path);
        assert_eq!(dl.len(), 3);
        assert!(dl.iter().all(|l| l["reason"] == "shutdown_deadline"));
    }

    /// Real time: the limiters run on governor's clock.
    #[tokio::test]
    async fn a_hot_partition_key_waits_while_the_rest_of_its_batch_is_written() {
        use crate::sink::dynamodb::rate::controller::ControllerConfig;
        let rate = Arc::new(RateControl::unmetered(ControllerConfig::default(), 400));
        let h = start_with_rate(Scripted::default(), 2, Some(rate));
        let ack = Arc::new(Ack::new(26));
        // 20 items of 20 KB (20 WCU each) on partition key HOT: 400 WCU, the
        // key's whole burst; 5 more items on other keys.
        let mut items: Vec<Item> = (0..20)
            .map(|i| {
                let mut it = item(&format!("HOT\0{i}"), 20 * 1024);
                it.acks.push(ack.clone());
                it
            })
            .collect();
        items.extend((0..5).map(|i| {
            let mut it = item(&format!("K{i}\0x"), 1024);
            it.acks.push(ack.clone());
            it
        }));
        // One more HOT item beyond the burst: it must wait ~50 ms for tokens.
        let mut late = item("HOT\0late", 20 * 1024);
        late.acks.push(ack.clone());
        let extra = Arc::new(Ack::new(1));
        late.acks.push(extra.clone());
        items.push(late);
        let bytes = items.iter().map(|i| i.size as usize).sum();
        h.tx.send(Batch { items, bytes }).await.expect("send");
        assert_eq!(extra.wait(1).await.written, 1);
        assert_eq!(ack.wait(26).await.written, 26);
        let calls = h.fake.calls.lock().expect("lock").clone();
        assert_eq!(calls.len(), 2, "{calls:?}");
        assert!(
            calls[0].iter().any(|k| k.starts_with('K')),
            "other keys went in the first call"
        );
        assert_eq!(
            calls[1].len(),
            1,
            "only the over-budget HOT item waited: {calls:?}"
        );
        assert!(calls[1][0].starts_with("HOT"));
    }

    /// Real time: the limiters run on the real clock.
    #[tokio::test]
    async fn the_deadline_while_waiting_for_tokens_dead_letters_held_items_too() {
        use crate::sink::dynamodb::rate::controller::ControllerConfig;
        // The table takes 1 WCU/s after its first 400; a partition key 400 WCU/s.
        let config = ControllerConfig {
            max_wcu: Some(1.0),
            ..ControllerConfig::default()
        };
        let rate = Arc::new(RateControl::unmetered(config, 400));
        let h = start_with_rate(Scripted::default(), 1, Some(rate));
        let ack = Arc::new(Ack::new(26));
        // 20 HOT items of 20 WCU use the key's burst; one more HOT item is
        // held for its key; 5 others make the call 500 WCU, over the table's 400.
        let mut items: Vec<Item> = (0..21)
            .map(|i| item(&format!("HOT\0{i}"), 20 * 1024))
            .collect();
        items.extend((0..5).map(|i| item(&format!("K{i}\0x"), 20 * 1024)));
        for it in &mut items {
            it.acks.push(ack.clone());
        }
        let bytes = items.iter().map(|i| i.size as usize).sum();
        h.tx.send(Batch { items, bytes }).await.expect("send");
        // Let the writer reach the table bucket (it waits ~100 s there).
        tokio::time::sleep(Duration::from_millis(100)).await;
        assert!(
            h.fake.calls.lock().expect("lock").is_empty(),
            "still waiting for tokens"
        );
        h.abort.cancel();
        let outcome = tokio::time::timeout(Duration::from_secs(10), ack.wait(26))
            .await
            .expect("every item settled");
        assert_eq!(
            outcome.failed, 26,
            "every item, the held one included, is dead-lettered"
        );
        assert_eq!(dead_letters(&h.dlq_path).len(), 26);
    }

    #[tokio::test(start_paused = true)]
    async fn two_batches_with_one_key_are_never_in_flight_together() {
        let fake = Scripted {
            delay: Duration::from_millis(100),
            ..Default::default()
        };
        let h = start(fake, 4);
        let ack = Arc::new(Ack::new(4));
        h.tx.send(batch(&["x", "k"], Some(&ack)))
            .await
            .expect("send");
        h.tx.send(batch(&["k", "y"], Some(&ack)))
            .await
            .expect("send");
        let started = tokio::time::Instant::now();
        ack.wait(4).await;
        assert!(
            started.elapsed() >= Duration::from_millis(200),
            "second batch waited for the first"
        );
        let other = Arc::new(Ack::new(4));
        h.tx.send(batch(&["p", "q"], Some(&other)))
            .await
            .expect("send");
        h.tx.send(batch(&["r", "s"], Some(&other)))
            .await
            .expect("send");
        let started = tokio::time::Instant::now();
        other.wait(4).await;
        assert_eq!(
            started.elapsed(),
            Duration::from_millis(100),
            "independent batches run in parallel"
        );
    }
}
