//! The WCU buckets that hold writes to the rate the [`super::controller`]
//! allows: every BatchWriteItem call is charged with its items' write
//! capacity units (DynamoDB's size rules) before it is sent.
//!
//! [`WcuLimiter`], one per table, is a token bucket whose rate changes while
//! it runs: it holds at most 100 ms of the rate (at least one 400 KB item),
//! so the gateway sends smoothly instead of in bursts, and a rate change
//! keeps the tokens it has (a governor quota is fixed, and rebuilding one
//! per change refilled its burst each time: measured in loadtest/rate-bench
//! as a throttling spiral). DynamoDB's ConsumedCapacity corrects the charge:
//! what a call consumed less than we charged is credited to the next charge.
//! [`KeyLimiter`] (governor, keyed GCRA) holds each partition key to
//! DynamoDB's per-partition rate.

use std::num::NonZeroU32;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use governor::clock::{Clock, DefaultClock};
use governor::middleware::NoOpMiddleware;
use governor::state::keyed::HashMapStateStore;
use governor::{Quota, RateLimiter};

use crate::event::KeyHasher;

/// The largest single item: 400 KB = 400 WCU.
const MIN_BURST: u32 = 400;

#[derive(Debug)]
struct Bucket {
    /// WCU per second; infinite = unlimited.
    rate: f64,
    capacity: f64,
    tokens: f64,
    last: Instant,
    /// WCU charged but not consumed, to subtract from the next charge.
    credit: f64,
}

impl Bucket {
    fn refill(&mut self, now: Instant) {
        let dt = now.saturating_duration_since(self.last).as_secs_f64();
        self.last = self.last.max(now);
        if self.rate.is_finite() {
            self.tokens = (self.tokens + dt * self.rate).min(self.capacity);
        }
    }
}

/// A WCU/s token bucket whose rate can change.
#[derive(Debug)]
pub struct WcuLimiter {
    bucket: Mutex<Bucket>,
}

impl Default for WcuLimiter {
    fn default() -> Self {
        Self::new()
    }
}

impl WcuLimiter {
    /// An unlimited limiter (rate infinity).
    pub fn new() -> Self {
        Self {
            bucket: Mutex::new(Bucket {
                rate: f64::INFINITY,
                capacity: f64::from(MIN_BURST),
                tokens: f64::from(MIN_BURST),
                last: Instant::now(),
                credit: 0.0,
            }),
        }
    }

    /// The current rate (WCU/s); infinite when unlimited.
    pub fn rate(&self) -> f64 {
        self.bucket.lock().map(|b| b.rate).unwrap_or(f64::INFINITY)
    }

    /// Sets the rate from `now` on; the tokens in the bucket are kept.
    pub fn set_rate_at(&self, rate: f64, now: Instant) {
        let Ok(mut b) = self.bucket.lock() else {
            return;
        };
        b.refill(now);
        b.rate = if rate > 0.0 { rate } else { f64::INFINITY };
        b.capacity = if b.rate.is_finite() {
            (b.rate / 10.0).max(f64::from(MIN_BURST))
        } else {
            f64::from(MIN_BURST)
        };
        b.tokens = b.tokens.min(b.capacity);
    }

    pub fn set_rate(&self, rate: f64) {
        self.set_rate_at(rate, Instant::now());
    }

    /// Takes `wcu` units at `now` (at most [`Self::chunk`] at once).
    /// `Err(wait)`: nothing was taken; try again after `wait`.
    pub fn try_take_at(&self, wcu: u32, now: Instant) -> Result<(), Duration> {
        let Ok(mut b) = self.bucket.lock() else {
            return Ok(());
        };
        let credit = b.credit.min(f64::from(wcu));
        let need = f64::from(wcu) - credit;
        if !b.rate.is_finite() || need <= 0.0 {
            b.credit -= credit;
            return Ok(());
        }
        b.refill(now);
        // A millionth of a WCU of slack absorbs float rounding of the waits.
        if b.tokens + 1e-6 >= need {
            b.tokens = (b.tokens - need).max(0.0);
            b.credit -= credit;
            Ok(())
        } else {
            Err(Duration::from_secs_f64((need - b.tokens) / b.rate))
        }
    }

    pub fn try_take(&self, wcu: u32) -> Result<(), Duration> {
        self.try_take_at(wcu, Instant::now())
    }

    /// The largest charge [`Self::try_take`] accepts at once.
    pub fn chunk(&self) -> u32 {
        self.bucket
            .lock()
            .map(|b| {
                if b.rate.is_finite() {
                    b.capacity as u32
                } else {
                    u32::MAX
                }
            })
            .unwrap_or(u32::MAX)
    }

    /// DynamoDB consumed `consumed` for a call we charged `charged`: credit the difference.
    pub fn correct(&self, charged: u32, consumed: f64) {
        if let Ok(mut b) = self.bucket.lock() {
            b.credit = (b.credit + f64::from(charged) - consumed).clamp(0.0, b.capacity);
        }
    }

    /// Takes `wcu` units, waiting as long as needed; returns the time waited.
    pub async fn take(&self, wcu: u32) -> Duration {
        let started = tokio::time::Instant::now();
        let mut left = wcu;
        while left > 0 {
            let chunk = left.min(self.chunk());
            match self.try_take(chunk) {
                Ok(()) => left -= chunk,
                Err(wait) => tokio::time::sleep(wait).await,
            }
        }
        started.elapsed()
    }
}

/// Per-partition-key WCU buckets: DynamoDB serves one partition at most
/// 1,000 WCU/s, so one hot key is held to that while other keys flow.
/// Keys are the hashes of the items' normalized partition keys.
#[derive(Debug)]
pub struct KeyLimiter<C: Clock = DefaultClock> {
    clock: C,
    buckets: RateLimiter<
        u64,
        HashMapStateStore<u64, KeyHasher>,
        C,
        NoOpMiddleware<<C as Clock>::Instant>,
    >,
    burst: u32,
}

impl KeyLimiter<DefaultClock> {
    /// `wcu` per second and key, with one second of burst.
    pub fn new(wcu: NonZeroU32) -> Self {
        Self::with_clock(wcu, DefaultClock::default())
    }
}

impl<C: Clock + Clone> KeyLimiter<C> {
    pub fn with_clock(wcu: NonZeroU32, clock: C) -> Self {
        let burst = wcu.max(NonZeroU32::new(MIN_BURST).unwrap_or(NonZeroU32::MIN));
        let quota = Quota::per_second(wcu).allow_burst(burst);
        Self {
            buckets: RateLimiter::new(quota, HashMapStateStore::default(), clock.clone()),
            clock,
            burst: burst.get(),
        }
    }

    /// Takes `wcu` (capped at one second's worth) from `key`'s bucket, or
    /// says how long to wait.
    pub fn try_take(&self, key: u64, wcu: u32) -> Result<(), Duration> {
        let Some(n) = NonZeroU32::new(wcu.min(self.burst)) else {
            return Ok(());
        };
        match self.buckets.check_key_n(&key, n) {
            Ok(Ok(())) | Err(_) => Ok(()),
            Ok(Err(not_until)) => Err(not_until.wait_time_from(self.clock.now())),
        }
    }

    /// The most one key's bucket holds (its `try_take` caps a take there).
    pub fn burst(&self) -> u32 {
        self.burst
    }

    /// Forgets keys whose buckets are full again (bounded memory).
    pub fn forget_idle(&self) {
        self.buckets.retain_recent();
    }

    /// Keys currently remembered.
    pub fn len(&self) -> usize {
        self.buckets.len()
    }

    pub fn is_empty(&self) -> bool {
        self.buckets.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use governor::clock::FakeRelativeClock;

    #[test]
    fn admits_the_rate_and_no_more() {
        let l = WcuLimiter::new();
        let t0 = Instant::now();
        assert_eq!(
            l.try_take_at(10_000, t0),
            Ok(()),
            "unlimited until a rate is set"
        );
        l.set_rate_at(1000.0, t0);
        // Burst = max(100 ms of rate, 400) = 400 WCU; then 1 WCU per ms.
        let mut admitted = 0u32;
        let mut now = t0;
        for _ in 0..10_000 {
            if l.try_take_at(25, now).is_ok() {
                admitted += 25;
            }
            now += Duration::from_micros(500);
        }
        assert!((5375..=5425).contains(&admitted), "{admitted}");
    }

    #[test]
    fn rate_changes_keep_the_tokens_so_no_burst_is_gained() {
        let l = WcuLimiter::new();
        let t0 = Instant::now();
        l.set_rate_at(1000.0, t0);
        assert_eq!(l.try_take_at(400, t0), Ok(()));
        let mut now = t0;
        let mut admitted = 0u32;
        // The controller moves the rate every 10 ms, as during recovery.
        for i in 0..100 {
            l.set_rate_at(1000.0 + f64::from(i % 2) * 20.0, now);
            while l.try_take_at(10, now).is_ok() {
                admitted += 10;
            }
            now += Duration::from_millis(10);
        }
        // 1 s at 1000-1020 WCU/s: about 1,010, not a fresh 400 per change.
        assert!((990..=1030).contains(&admitted), "{admitted}");
    }

    #[test]
    fn a_refusal_says_how_long_to_wait() {
        let l = WcuLimiter::new();
        let t0 = Instant::now();
        l.set_rate_at(100.0, t0);
        assert_eq!(l.try_take_at(400, t0), Ok(()));
        let wait = l.try_take_at(50, t0).unwrap_err();
        assert_eq!(wait, Duration::from_millis(500), "50 WCU at 100 WCU/s");
        assert_eq!(l.try_take_at(50, t0 + wait), Ok(()));
    }

    #[test]
    fn consumed_capacity_below_the_charge_is_credited() {
        let l = WcuLimiter::new();
        let t0 = Instant::now();
        l.set_rate_at(100.0, t0);
        assert_eq!(l.try_take_at(400, t0), Ok(()));
        l.correct(400, 300.0);
        // 100 WCU of credit: the next 100 are free.
        assert_eq!(l.try_take_at(100, t0), Ok(()));
        assert!(l.try_take_at(1, t0).is_err());
    }

    #[test]
    fn a_hot_key_is_held_to_its_partition_rate_while_others_flow() {
        let clock = FakeRelativeClock::default();
        let keys = KeyLimiter::with_clock(NonZeroU32::new(1000).expect("nonzero"), clock.clone());
        let (mut hot, mut cold) = (0u32, 0u32);
        for _ in 0..2000 {
            // 2 WCU per ms offered on the hot key: twice its partition's rate.
            for _ in 0..2 {
                if keys.try_take(7, 1).is_ok() {
                    hot += 1;
                }
            }
            if keys.try_take(9, 1).is_ok() {
                cold += 1;
            }
            clock.advance(Duration::from_millis(1));
        }
        assert!(
            (2990..=3010).contains(&hot),
            "1 s of burst + 2 s at 1000 WCU/s: {hot}"
        );
        assert_eq!(cold, 2000, "the other key is not slowed");
        clock.advance(Duration::from_secs(2));
        keys.forget_idle();
        assert!(keys.is_empty(), "idle keys are forgotten");
    }
}
