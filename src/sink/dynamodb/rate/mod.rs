//! Write-rate control for one table, between the batcher and DynamoDB:
//! the adaptive [`controller`] decides how many WCU per second DynamoDB will
//! take, the [`limiter`] (a governor token bucket) holds every call to that
//! rate, and a keyed bucket holds each partition key to DynamoDB's 1,000
//! WCU/s per partition so one hot key waits while the others flow.
//! [`RateControl`] joins them for the writer: hold back items of hot keys,
//! charge a call before it is sent, report what DynamoDB said after. The
//! [`ceiling`] poll tells the controller the table's provisioned capacity.

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

/// The rate controller and token bucket of one table.
#[derive(Debug)]
pub struct RateControl {
    controller: Mutex<RateController>,
    limiter: WcuLimiter,
    keys: KeyLimiter,
    splits: AtomicU64,
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

    /// How often to poll the table's capacity (zero: never).
    pub fn capacity_poll(&self) -> Duration {
        self.capacity_poll
    }

    /// The table's provisioned capacity (None: on-demand or unknown);
    /// returns whether it changed.
    pub fn set_ceiling(&self, ceiling: Option<f64>) -> bool {
        let now = Instant::now();
        let changed = self
            .controller
            .lock()
            .map(|mut c| c.set_ceiling(now, ceiling))
            .unwrap_or(false);
        if changed {
            self.update(now);
        }
        changed
    }

    /// The ceiling in force.
    pub fn ceiling(&self) -> Option<f64> {
        self.controller.lock().ok().and_then(|c| c.ceiling())
    }

    /// Splits `items` into those whose partition key has capacity now and
    /// those that must wait, with how long the first of them waits.
    pub fn split_by_key(&self, items: Vec<Item>) -> (Vec<Item>, Vec<Item>, Duration) {
        if self.splits.fetch_add(1, Ordering::Relaxed) % FORGET_EVERY == FORGET_EVERY - 1 {
            self.keys.forget_idle();
        }
        let mut ready = Vec::with_capacity(items.len());
        let mut waiting = Vec::new();
        let mut wait = Duration::MAX;
        for item in items {
            match self.keys.try_take(item.partition_hash(), item.wcu()) {
                Ok(()) => ready.push(item),
                Err(w) => {
                    wait = wait.min(w);
                    waiting.push(item);
                }
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
        let reaction = self.controller.lock().ok().and_then(|mut c| {
            c.on_written(now, consumed.unwrap_or(written_wcu));
            c.on_partial(now, sent, unprocessed)
        });
        self.log(reaction, "unprocessed items");
    }

    /// DynamoDB refused a call for capacity.
    pub fn throttled(&self) {
        let reaction = self
            .controller
            .lock()
            .ok()
            .map(|mut c| c.on_throttle(Instant::now()));
        self.log(reaction, "throttling");
    }

    fn log(&self, reaction: Option<Reaction>, signal: &str) {
        if let Some(Reaction::Decreased(rate)) = reaction {
            tracing::debug!(table = %self.table, rate, signal, "write rate lowered");
            self.update(Instant::now());
        }
    }
}
