//! The per-table WCU token bucket (governor, GCRA): every BatchWriteItem
//! call is charged with its items' write capacity units (DynamoDB's size
//! rules) before it is sent, at the rate the [`super::controller`] allows.
//!
//! The bucket holds at most 100 ms of the rate (at least one 400 KB item), so
//! the gateway sends smoothly instead of in bursts; larger charges are taken
//! in bucket-sized chunks. DynamoDB's ConsumedCapacity corrects the charge:
//! when a call consumed less than we charged, the difference is credited to
//! the next charge. Changing the rate rebuilds the bucket (governor quotas are
//! fixed), at most when the rate moved by more than 1%.

use std::num::NonZeroU32;
use std::sync::Mutex;
use std::time::Duration;

use governor::clock::{Clock, DefaultClock};
use governor::middleware::NoOpMiddleware;
use governor::state::keyed::HashMapStateStore;
use governor::state::{InMemoryState, NotKeyed};
use governor::{Quota, RateLimiter};

/// The largest single item: 400 KB = 400 WCU.
const MIN_BURST: u32 = 400;

type Bucket<C> = RateLimiter<NotKeyed, InMemoryState, C, NoOpMiddleware<<C as Clock>::Instant>>;

#[derive(Debug)]
struct State<C: Clock> {
    bucket: Option<Bucket<C>>,
    rate: f64,
    burst: u32,
    /// WCU charged but not consumed, to subtract from the next charge.
    credit: f64,
}

/// A WCU/s token bucket whose rate can change.
#[derive(Debug)]
pub struct WcuLimiter<C: Clock = DefaultClock> {
    clock: C,
    state: Mutex<State<C>>,
}

impl WcuLimiter<DefaultClock> {
    /// An unlimited limiter (rate infinity) on the real clock.
    pub fn new() -> Self {
        Self::with_clock(DefaultClock::default())
    }
}

impl Default for WcuLimiter<DefaultClock> {
    fn default() -> Self {
        Self::new()
    }
}

impl<C: Clock + Clone> WcuLimiter<C> {
    pub fn with_clock(clock: C) -> Self {
        Self {
            clock,
            state: Mutex::new(State {
                bucket: None,
                rate: f64::INFINITY,
                burst: 0,
                credit: 0.0,
            }),
        }
    }

    /// The current rate (WCU/s); infinite when unlimited.
    pub fn rate(&self) -> f64 {
        self.state.lock().map(|s| s.rate).unwrap_or(f64::INFINITY)
    }

    /// Sets the rate; a change under 1% keeps the current bucket.
    pub fn set_rate(&self, rate: f64) {
        let Ok(mut s) = self.state.lock() else { return };
        if rate.is_finite() && s.rate.is_finite() && ((rate - s.rate) / s.rate).abs() < 0.01 {
            return;
        }
        s.rate = rate;
        if !rate.is_finite() || rate <= 0.0 {
            s.bucket = None;
            return;
        }
        let burst = ((rate / 10.0).ceil() as u32).max(MIN_BURST);
        let quota = Quota::with_period(Duration::from_secs_f64(1.0 / rate))
            .map(|q| q.allow_burst(NonZeroU32::new(burst).unwrap_or(NonZeroU32::MIN)));
        s.burst = burst;
        s.bucket = quota.map(|q| RateLimiter::direct_with_clock(q, self.clock.clone()));
    }

    /// Tries to take `wcu` units (at most one bucket's worth).
    /// `Err(wait)`: nothing was taken; try again after `wait`.
    pub fn try_take(&self, wcu: u32) -> Result<(), Duration> {
        let Ok(mut s) = self.state.lock() else {
            return Ok(());
        };
        let credit = s.credit.floor().min(wcu as f64);
        let charge = wcu - credit as u32;
        let Some(bucket) = &s.bucket else {
            return Ok(());
        };
        let Some(n) = NonZeroU32::new(charge.min(s.burst)) else {
            s.credit -= credit;
            return Ok(());
        };
        match bucket.check_n(n) {
            Ok(Ok(())) => {
                s.credit -= credit;
                Ok(())
            }
            Ok(Err(not_until)) => Err(not_until.wait_time_from(self.clock.now())),
            // Cannot happen: n is capped at the burst size.
            Err(_) => Ok(()),
        }
    }

    /// The largest charge [`Self::try_take`] accepts at once.
    pub fn chunk(&self) -> u32 {
        self.state
            .lock()
            .map(|s| {
                if s.bucket.is_some() {
                    s.burst
                } else {
                    u32::MAX
                }
            })
            .unwrap_or(u32::MAX)
    }

    /// DynamoDB consumed `consumed` for a call we charged `charged`: credit the difference.
    pub fn correct(&self, charged: u32, consumed: f64) {
        if let Ok(mut s) = self.state.lock() {
            s.credit = (s.credit + charged as f64 - consumed).clamp(0.0, s.burst as f64);
        }
    }
}

impl WcuLimiter<DefaultClock> {
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
    buckets: RateLimiter<u64, HashMapStateStore<u64>, C, NoOpMiddleware<<C as Clock>::Instant>>,
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
        let clock = FakeRelativeClock::default();
        let l = WcuLimiter::with_clock(clock.clone());
        assert_eq!(l.try_take(10_000), Ok(()), "unlimited until a rate is set");
        l.set_rate(1000.0);
        // Burst = max(100 ms of rate, 400) = 400 WCU; then 1 WCU per ms.
        let mut admitted = 0u32;
        for _ in 0..10_000 {
            if l.try_take(25).is_ok() {
                admitted += 25;
            }
            clock.advance(Duration::from_micros(500));
        }
        // 5 s at 1000 WCU/s plus the initial 400 burst, within one charge.
        assert!((5375..=5425).contains(&admitted), "{admitted}");
    }

    #[test]
    fn a_refusal_says_how_long_to_wait() {
        let clock = FakeRelativeClock::default();
        let l = WcuLimiter::with_clock(clock.clone());
        l.set_rate(100.0);
        assert_eq!(l.try_take(400), Ok(()));
        let wait = l.try_take(50).unwrap_err();
        assert_eq!(wait, Duration::from_millis(500), "50 WCU at 100 WCU/s");
        clock.advance(wait);
        assert_eq!(l.try_take(50), Ok(()));
    }

    #[test]
    fn consumed_capacity_below_the_charge_is_credited() {
        let clock = FakeRelativeClock::default();
        let l = WcuLimiter::with_clock(clock.clone());
        l.set_rate(100.0);
        assert_eq!(l.try_take(400), Ok(()));
        l.correct(400, 300.0);
        // 100 WCU of credit: the next 100 are free.
        assert_eq!(l.try_take(100), Ok(()));
        assert!(l.try_take(1).is_err());
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

    #[test]
    fn small_rate_changes_keep_the_bucket() {
        let clock = FakeRelativeClock::default();
        let l = WcuLimiter::with_clock(clock.clone());
        l.set_rate(1000.0);
        assert_eq!(l.try_take(400), Ok(()));
        l.set_rate(1005.0);
        assert!(l.try_take(400).is_err(), "the emptied bucket was kept");
        assert_eq!(l.rate(), 1000.0);
        l.set_rate(2000.0);
        assert_eq!(l.rate(), 2000.0);
    }
}
