//! Write-rate control for one table, between the batcher and DynamoDB:
//! the adaptive [`controller`] decides how many WCU per second DynamoDB will
//! take, the [`limiter`] (a governor token bucket) holds every call to that
//! rate, and a keyed bucket holds each partition key to DynamoDB's 1,000
//! WCU/s per partition so one hot key waits while the others flow.
//! [`RateControl`] joins them for the writer: hold back items of hot keys,
//! charge a call before it is sent, report what DynamoDB said after. The
//! [`ceiling`] poll tells the controller the table's provisioned capacity
//! and its warm throughput.

pub mod ceiling;
pub mod concurrency;
pub mod controller;
pub mod limiter;

use std::num::NonZeroU32;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use metrics::{Counter, Gauge};

use self::controller::{ControllerConfig, RateController, Reaction};
use self::limiter::{KeyLimiter, WcuLimiter};
use crate::event::Item;

/// How often (in calls) idle partition keys are forgotten.
const FORGET_EVERY: u64 = 1024;

/// How long after a call refused for a hot key range (ThrottlingReasons
/// `KeyRangeThroughputExceeded`) partial answers are put down to that key
/// range rather than to the table. UnprocessedItems carry no reason; the
/// retry of the leftovers alone, refused whole, does.
const KEY_RANGE_MEMORY: Duration = Duration::from_secs(10);

/// The rate controller and token bucket of one table.
#[derive(Debug)]
pub struct RateControl {
    controller: Mutex<RateController>,
    limiter: WcuLimiter,
    keys: KeyLimiter,
    splits: AtomicU64,
    key_range_at: Mutex<Option<Instant>>,
    rate_gauge: Gauge,
    waited: Counter,
    table: String,
    capacity_poll: Duration,
}

impl RateControl {
    /// `partition_wcu`: the most one partition key gets per second.
    pub fn new(
        config: ControllerConfig,
        partition_wcu: NonZeroU32,
        table: &str,
        rate_gauge: Gauge,
        waited: Counter,
    ) -> Self {
        let now = Instant::now();
        let capacity_poll = config.capacity_poll;
        let control = Self {
            controller: Mutex::new(RateController::new(config, now)),
            limiter: WcuLimiter::new(),
            keys: KeyLimiter::new(partition_wcu),
            splits: AtomicU64::new(0),
            key_range_at: Mutex::new(None),
            rate_gauge,
            waited,
            table: table.to_owned(),
            capacity_poll,
        };
        control.update(now);
        control
    }

    fn update(&self, now: Instant) -> f64 {
        let rate = self
            .controller
            .lock()
            .map(|mut c| c.rate(now))
            .unwrap_or(f64::INFINITY);
        self.limiter.set_rate(rate);
        self.rate_gauge.set(rate);
        rate
    }

    /// A control for table "T" whose metrics go nowhere (unit tests).
    #[cfg(test)]
    pub(crate) fn unmetered(config: ControllerConfig, partition_wcu: u32) -> Self {
        Self::new(
            config,
            NonZeroU32::new(partition_wcu).unwrap_or(NonZeroU32::MIN),
            "T",
            Gauge::noop(),
            Counter::noop(),
        )
    }

    /// How often to poll the table's capacity (zero: never).
    pub fn capacity_poll(&self) -> Duration {
        self.capacity_poll
    }

    /// What DescribeTable says now: the ceiling (provisioned WCU or an
    /// on-demand maximum; None: neither) and the warm throughput (None:
    /// not reported). Both are applied under one lock and the rate is
    /// recomputed once, so the rate in force never mixes a new ceiling
    /// with an old warm throughput. Returns whether each changed (ceiling,
    /// warm). See [`RateController::set_ceiling`] and
    /// [`RateController::set_warm`].
    pub fn set_described(&self, ceiling: Option<f64>, warm: Option<f64>) -> (bool, bool) {
        let now = Instant::now();
        let changed = self
            .controller
            .lock()
            .map(|mut c| (c.set_ceiling(now, ceiling), c.set_warm(warm)))
            .unwrap_or((false, false));
        if changed.0 || changed.1 {
            self.update(now);
        }
        changed
    }

    /// The rate in force now (WCU/s; infinite when unlimited). Tests; the
    /// `rate_limit_wcu` gauge shows it.
    #[cfg(test)]
    pub fn current(&self) -> f64 {
        self.limiter.rate()
    }

    /// The ceiling in force.
    pub fn ceiling(&self) -> Option<f64> {
        self.controller.lock().ok().and_then(|c| c.ceiling())
    }

    /// Splits `items` into those whose partition key has capacity now and
    /// those that must wait, with how long the first of them waits.
    ///
    /// A key's items in the batch go or wait together: its bucket is asked
    /// for their summed WCU (capped at the bucket's burst), so a hot key's
    /// items leave in one call once there is room for all of them, not one
    /// item per call as each token trickles in.
    pub fn split_by_key(&self, items: Vec<Item>) -> (Vec<Item>, Vec<Item>, Duration) {
        if self.splits.fetch_add(1, Ordering::Relaxed) % FORGET_EVERY == FORGET_EVERY - 1 {
            self.keys.forget_idle();
        }
        // (key, WCU of its items, may go); a batch holds at most 25 items.
        let hashes: Vec<u64> = items.iter().map(Item::partition_hash).collect();
        let mut keys: Vec<(u64, u32, bool)> = Vec::with_capacity(items.len());
        for (item, &key) in items.iter().zip(&hashes) {
            match keys.iter_mut().find(|(k, _, _)| *k == key) {
                Some((_, wcu, _)) => *wcu = wcu.saturating_add(item.wcu()),
                None => keys.push((key, item.wcu(), false)),
            }
        }
        let mut wait = Duration::MAX;
        for (key, wcu, go) in &mut keys {
            if *wcu > self.keys.burst() {
                continue; // more than the bucket holds: item by item below
            }
            match self.keys.try_take(*key, *wcu) {
                Ok(()) => *go = true,
                Err(w) => wait = wait.min(w),
            }
        }
        if keys.iter().all(|&(_, _, go)| go) {
            // The common case, every key had room: the batch goes as it is.
            return (items, Vec::new(), Duration::ZERO);
        }
        let mut ready = Vec::with_capacity(items.len());
        let mut waiting = Vec::new();
        for (item, key) in items.into_iter().zip(hashes) {
            // Every item's key was listed above; an unlisted one would go.
            let (wcu, go) = keys
                .iter()
                .find(|(k, _, _)| *k == key)
                .map_or((0, true), |&(_, wcu, go)| (wcu, go));
            let go = go
                || (wcu > self.keys.burst()
                    && match self.keys.try_take(key, item.wcu()) {
                        Ok(()) => true,
                        Err(w) => {
                            wait = wait.min(w);
                            false
                        }
                    });
            if go {
                ready.push(item);
            } else {
                waiting.push(item);
            }
        }
        (
            ready,
            waiting,
            if wait == Duration::MAX {
                Duration::ZERO
            } else {
                wait
            },
        )
    }

    /// Waits until a call costing `wcu` may be sent.
    pub async fn charge(&self, wcu: u32) {
        self.update(Instant::now());
        let waited = self.limiter.take(wcu).await;
        if waited > Duration::ZERO {
            self.waited.increment(waited.as_micros() as u64);
        }
    }

    /// A call charged `charged` succeeded: `written` WCU of items were
    /// confirmed (DynamoDB's ConsumedCapacity when it sent it), `unprocessed`
    /// of `sent` items came back.
    pub fn succeeded(
        &self,
        charged: u32,
        consumed: Option<f64>,
        written_wcu: f64,
        sent: usize,
        unprocessed: usize,
    ) {
        let now = Instant::now();
        if let Some(consumed) = consumed {
            self.limiter.correct(charged, consumed);
        }
        let key_range = self.hot_key_range(now);
        let reaction = self.controller.lock().ok().and_then(|mut c| {
            c.on_written(now, consumed.unwrap_or(written_wcu));
            if key_range {
                None
            } else {
                c.on_partial(now, sent, unprocessed)
            }
        });
        self.log(reaction, "unprocessed items");
    }

    /// DynamoDB refused a whole call for capacity. Its charge is kept
    /// although DynamoDB consumed nothing: the tokens also pace retries
    /// (crediting them back let parked batches retry as fast as the slots
    /// allowed: 92 % of calls throttled in rate-bench's on-demand run).
    /// `key_range`: its ThrottlingReasons named a hot key range, which is
    /// the per-key limiter's and the writer's business, not a reason to slow
    /// the table.
    pub fn throttled(&self, key_range: bool) {
        let now = Instant::now();
        if key_range {
            if let Ok(mut at) = self.key_range_at.lock() {
                *at = Some(now);
            }
            return;
        }
        let reaction = self.controller.lock().ok().map(|mut c| c.on_throttle(now));
        self.log(reaction, "throttling");
    }

    /// Whether a hot key range was reported within [`KEY_RANGE_MEMORY`].
    fn hot_key_range(&self, now: Instant) -> bool {
        self.key_range_at
            .lock()
            .ok()
            .and_then(|at| *at)
            .is_some_and(|at| now.saturating_duration_since(at) < KEY_RANGE_MEMORY)
    }

    fn log(&self, reaction: Option<Reaction>, signal: &str) {
        if let Some(Reaction::Decreased(rate)) = reaction {
            tracing::debug!(table = %self.table, rate, signal, "write rate lowered");
            self.update(Instant::now());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pipeline::queue::tests::item;

    #[test]
    fn a_keys_items_wait_for_room_for_all_of_them_not_one_at_a_time() {
        let rate = RateControl::unmetered(ControllerConfig::default(), 400);
        // 20 items of 20 WCU on one key: the bucket's whole burst.
        let first: Vec<Item> = (0..20)
            .map(|i| item(&format!("HOT\0{i}"), 20 * 1024))
            .collect();
        let (ready, waiting, wait) = rate.split_by_key(first);
        assert_eq!((ready.len(), waiting.len(), wait), (20, 0, Duration::ZERO));
        let order: Vec<&str> = ready.iter().map(Item::key).collect();
        let sent: Vec<String> = (0..20).map(|i| format!("HOT\0{i}")).collect();
        assert_eq!(order, sent, "a batch that goes whole keeps its order");
        // Five more (100 WCU) and one on another key: the other key goes;
        // the five wait until all five fit (100 WCU at 400/s = 250 ms), not
        // until the first one does (50 ms).
        let mut next: Vec<Item> = (0..5)
            .map(|i| item(&format!("HOT\0n{i}"), 20 * 1024))
            .collect();
        next.push(item("COLD\0x", 1024));
        let (ready, waiting, wait) = rate.split_by_key(next);
        assert_eq!(ready.len(), 1);
        assert!(ready[0].key().starts_with("COLD"), "{:?}", ready[0].key());
        assert_eq!(waiting.len(), 5);
        assert!(
            wait > Duration::from_millis(200) && wait <= Duration::from_millis(250),
            "{wait:?}"
        );
    }
}
