//! The adaptive write-rate controller of one table: pure logic, time passed in.
//!
//! It sits between the batcher and the writer (through the WCU limiter) and
//! answers one question: how many WCU per second may we send now? Inputs are
//! DynamoDB's signals: WCUs it confirmed (ConsumedCapacity) and throttling —
//! a refused call (ProvisionedThroughputExceeded, ThrottlingException) or a
//! share of UnprocessedItems above `unprocessed_threshold`.
//!
//! Policy (CUBIC-like, measured in capacity units, not requests):
//! - On a throttling signal the capacity estimate `w_max` becomes what
//!   DynamoDB actually admitted over the last second (never more than the
//!   current rate), and the rate drops to `decrease_factor × w_max`. Further
//!   signals within `hold` belong to the same episode (calls already in
//!   flight) and are ignored.
//! - Afterwards the rate climbs back to `w_max` along a cubic that is steep
//!   at first and flat near `w_max` (reached after `recovery`), stays there
//!   for `plateau`, then probes beyond it along a convex cubic (slow at
//!   first, twice `w_max` after `probe_doubling`) — so it sits at the real
//!   capacity most of the time, overshoots a capacity that did not change
//!   only by a little, and finds a raised capacity within seconds.
//! - The table's provisioned WCU, when known (DescribeTable, see
//!   [`RateController::set_ceiling`]), is a ceiling: without throttling the
//!   rate is exactly the ceiling, and probing never goes above it. A new
//!   ceiling value (the table was resized) starts afresh at it. Throttling
//!   below the ceiling (other writers on the table, burst or account limits)
//!   is still answered as above.
//! - The rate never exceeds `max_wcu` (the table's `wcu_budget`) nor twice
//!   what was admitted over the last second (or `initial_wcu`, or the
//!   table's warm throughput when DescribeTable reports one, if higher), so
//!   an idle or lightly loaded table does not accumulate a limit it never
//!   tested, while a table that says it serves N WCU/s at once (DynamoDB's
//!   `WarmThroughput`: 4,000 for a new on-demand table, more after a peak or
//!   a pre-warm) is written at up to N from the first call instead of
//!   being climbed to from `initial_wcu`. After a throttle the warm
//!   throughput no longer counts (the table refused less than it says it
//!   serves; a new ceiling, which starts the rate afresh, restores it):
//!   probing earns its growth.

use std::time::{Duration, Instant};

/// Tuning of the controller (config `[tables.NAME]` and defaults).
#[derive(Debug, Clone, PartialEq)]
pub struct ControllerConfig {
    /// Rate before any measurement, and the floor of the growth cap.
    pub initial_wcu: f64,
    /// Never below this.
    pub min_wcu: f64,
    /// The table's budget: never above this (None = purely adaptive).
    pub max_wcu: Option<f64>,
    /// Multiplicative decrease on throttling (of the measured capacity).
    pub decrease_factor: f64,
    /// Time to climb back to the capacity estimate after a decrease.
    pub recovery: Duration,
    /// Time spent at the estimate before probing above it.
    pub plateau: Duration,
    /// While probing, the rate reaches twice the estimate after this long.
    pub probe_doubling: Duration,
    /// Signals within this time after a decrease are the same episode.
    pub hold: Duration,
    /// Share of a call's items returned unprocessed that counts as throttling.
    pub unprocessed_threshold: f64,
    /// How often DescribeTable is polled for the ceiling (zero: never).
    pub capacity_poll: Duration,
}

impl Default for ControllerConfig {
    fn default() -> Self {
        Self {
            initial_wcu: 1000.0,
            min_wcu: 1.0,
            max_wcu: None,
            decrease_factor: 0.9,
            recovery: Duration::from_secs(2),
            plateau: Duration::from_secs(5),
            probe_doubling: Duration::from_secs(1),
            hold: Duration::from_millis(500),
            unprocessed_threshold: 0.0,
            capacity_poll: Duration::from_secs(1),
        }
    }
}

/// Width of one admitted-WCU bucket; ten complete buckets make the window
/// (1 s), plus the one being filled.
const BUCKET: Duration = Duration::from_millis(100);
const BUCKETS: usize = 11;

/// Admitted WCU over the last complete second, in 100 ms buckets.
#[derive(Debug, Clone)]
struct Window {
    start: Instant,
    slots: [f64; BUCKETS],
    current: u64,
}

impl Window {
    fn new(now: Instant) -> Self {
        Self {
            start: now,
            slots: [0.0; BUCKETS],
            current: 0,
        }
    }

    fn advance(&mut self, now: Instant) {
        let idx =
            (now.saturating_duration_since(self.start).as_millis() / BUCKET.as_millis()) as u64;
        if idx > self.current {
            let steps = (idx - self.current).min(BUCKETS as u64);
            for i in 1..=steps {
                self.slots[((self.current + i) % BUCKETS as u64) as usize] = 0.0;
            }
            self.current = idx;
        }
    }

    fn add(&mut self, now: Instant, wcu: f64) {
        self.advance(now);
        self.slots[(self.current % BUCKETS as u64) as usize] += wcu;
    }

    /// WCU admitted over the last ten complete buckets (one second).
    fn per_second(&mut self, now: Instant) -> f64 {
        self.advance(now);
        let current = (self.current % BUCKETS as u64) as usize;
        self.slots
            .iter()
            .enumerate()
            .filter(|(i, _)| *i != current)
            .map(|(_, w)| w)
            .sum()
    }

    /// Whether a full second has been observed.
    fn warm(&self, now: Instant) -> bool {
        now.saturating_duration_since(self.start) >= BUCKET * (BUCKETS as u32 - 1)
    }
}

/// What the controller did with a signal.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Reaction {
    /// The rate was lowered to this value.
    Decreased(f64),
    /// Part of an episode already answered.
    Ignored,
}

/// The controller's state for one table.
#[derive(Debug, Clone)]
pub struct RateController {
    cfg: ControllerConfig,
    window: Window,
    /// Capacity estimate from the last throttling episode.
    w_max: f64,
    /// Start of the current growth epoch (the last decrease).
    epoch: Option<Instant>,
    /// Rate right after the last decrease.
    floor: f64,
    /// The table's provisioned WCU (DescribeTable), if known.
    ceiling: Option<f64>,
    /// The WCU/s the table serves at once (DescribeTable's warm
    /// throughput); 0 when unknown.
    warm: f64,
    throttles: u64,
}

impl RateController {
    pub fn new(cfg: ControllerConfig, now: Instant) -> Self {
        let start = cfg.max_wcu.unwrap_or(cfg.initial_wcu).max(cfg.min_wcu);
        Self {
            window: Window::new(now),
            w_max: start,
            epoch: None,
            floor: start,
            ceiling: None,
            warm: 0.0,
            throttles: 0,
            cfg,
        }
    }

    /// The most the rate may be: the budget and the provisioned ceiling.
    fn cap(&self) -> f64 {
        let budget = self.cfg.max_wcu.unwrap_or(f64::INFINITY);
        self.ceiling.map_or(budget, |c| c.min(budget))
    }

    /// The table's provisioned WCU as DynamoDB describes it now; None for
    /// an on-demand table or when unknown. A changed value is a resized
    /// table: the rate starts afresh at the new ceiling (the episode's
    /// estimate belonged to the old capacity). Returns whether it changed.
    pub fn set_ceiling(&mut self, now: Instant, ceiling: Option<f64>) -> bool {
        let ceiling = ceiling.filter(|c| c.is_finite() && *c > 0.0);
        if ceiling == self.ceiling {
            return false;
        }
        self.ceiling = ceiling;
        if let Some(c) = ceiling {
            let c = c.min(self.cfg.max_wcu.unwrap_or(f64::INFINITY));
            if self.epoch.is_some() {
                // Keep the episode's shape but not an estimate above the table.
                self.w_max = self.w_max.min(c);
                self.floor = self.floor.min(c);
            }
            if self
                .epoch
                .is_some_and(|e| now.saturating_duration_since(e) >= self.cfg.hold)
            {
                self.epoch = None;
            }
        }
        true
    }

    /// The provisioned ceiling in force, if any.
    pub fn ceiling(&self) -> Option<f64> {
        self.ceiling
    }

    /// The table's warm throughput (`WarmThroughput.WriteUnitsPerSecond`):
    /// what DynamoDB says the table serves instantly. The rate's growth cap
    /// never holds it below this (the budget and the ceiling still do).
    /// None: not reported (older APIs, DynamoDB Local, dynalite). Returns
    /// whether it changed.
    pub fn set_warm(&mut self, warm: Option<f64>) -> bool {
        let warm = warm.filter(|w| w.is_finite() && *w > 0.0).unwrap_or(0.0);
        let changed = warm != self.warm;
        self.warm = warm;
        changed
    }

    /// DynamoDB confirmed `wcu` capacity units.
    pub fn on_written(&mut self, now: Instant, wcu: f64) {
        self.window.add(now, wcu);
    }

    /// The outcome of a successful call: `sent` items, `unprocessed` of them returned.
    pub fn on_partial(
        &mut self,
        now: Instant,
        sent: usize,
        unprocessed: usize,
    ) -> Option<Reaction> {
        if sent == 0 || unprocessed == 0 {
            return None;
        }
        let share = unprocessed as f64 / sent as f64;
        (share > self.cfg.unprocessed_threshold).then(|| self.on_throttle(now))
    }

    /// DynamoDB refused for capacity (a whole call, or enough unprocessed items).
    pub fn on_throttle(&mut self, now: Instant) -> Reaction {
        if let Some(epoch) = self.epoch {
            if now.saturating_duration_since(epoch) < self.cfg.hold {
                return Reaction::Ignored;
            }
        }
        let current = self.rate(now);
        let admitted = self.window.per_second(now);
        let estimate = if self.window.warm(now) && admitted > 0.0 {
            admitted.min(current)
        } else {
            current
        };
        self.w_max = estimate.max(self.cfg.min_wcu);
        self.floor = (self.w_max * self.cfg.decrease_factor).max(self.cfg.min_wcu);
        self.epoch = Some(now);
        self.throttles += 1;
        Reaction::Decreased(self.floor)
    }

    /// The allowed rate in WCU/s at `now`.
    pub fn rate(&mut self, now: Instant) -> f64 {
        let grown = match self.epoch {
            None => self.cap(),
            Some(epoch) => {
                let t = now.saturating_duration_since(epoch).as_secs_f64();
                let k = self.cfg.recovery.as_secs_f64().max(1e-3);
                let plateau_end = k + self.cfg.plateau.as_secs_f64();
                if t < k {
                    // Concave approach: steep first, flat near the estimate.
                    self.w_max - (self.w_max - self.floor) * ((k - t) / k).powi(3)
                } else if t < plateau_end {
                    self.w_max
                } else {
                    // Convex: a capacity that did not change is overshot
                    // only by a little before the next episode answers it.
                    let doubling = self.cfg.probe_doubling.as_secs_f64().max(1e-3);
                    self.w_max * (1.0 + ((t - plateau_end) / doubling).powi(3))
                }
            }
        };
        // Do not grant much more than was recently used (growth must be
        // earned), unless the table says it serves more at once and has not
        // refused us since (a throttle below its warm throughput means
        // something else limits it: other writers, account limits).
        let warm = if self.epoch.is_none() { self.warm } else { 0.0 };
        let earned = self
            .cfg
            .initial_wcu
            .max(warm)
            .max(2.0 * self.window.per_second(now));
        let capped = grown.min(earned).min(self.cap());
        capped.max(self.cfg.min_wcu)
    }

    /// The current capacity estimate (from the last throttling episode).
    pub fn capacity_estimate(&self) -> f64 {
        self.w_max
    }

    /// Throttling episodes answered so far.
    pub fn episodes(&self) -> u64 {
        self.throttles
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg() -> ControllerConfig {
        ControllerConfig {
            initial_wcu: 1000.0,
            ..ControllerConfig::default()
        }
    }

    /// Feeds `rate` WCU/s of confirmed writes from `from` for `secs`, in 10 ms steps.
    fn feed(c: &mut RateController, from: Instant, secs: f64, rate: f64) -> Instant {
        let steps = (secs * 100.0) as u32;
        let mut now = from;
        for _ in 0..steps {
            now += Duration::from_millis(10);
            c.on_written(now, rate / 100.0);
        }
        now
    }

    #[test]
    fn a_budget_is_the_rate_until_dynamodb_disagrees() {
        let t0 = Instant::now();
        let mut c = RateController::new(
            ControllerConfig {
                max_wcu: Some(800.0),
                ..cfg()
            },
            t0,
        );
        let now = feed(&mut c, t0, 2.0, 800.0);
        assert_eq!(c.rate(now), 800.0);
        assert_eq!(c.episodes(), 0);
    }

    #[test]
    fn throttling_sets_the_estimate_to_what_was_admitted() {
        let t0 = Instant::now();
        let mut c = RateController::new(
            ControllerConfig {
                max_wcu: Some(2000.0),
                ..cfg()
            },
            t0,
        );
        // The table admits only 500 WCU/s although we send at 2000.
        let now = feed(&mut c, t0, 2.0, 500.0);
        assert_eq!(c.on_throttle(now), Reaction::Decreased(450.0));
        assert!(
            (c.capacity_estimate() - 500.0).abs() < 1.0,
            "{}",
            c.capacity_estimate()
        );
        assert!((c.rate(now) - 450.0).abs() < 1e-6);
        // The same episode: calls already in flight report throttling too.
        assert_eq!(
            c.on_throttle(now + Duration::from_millis(100)),
            Reaction::Ignored
        );
    }

    #[test]
    fn recovery_climbs_back_rests_at_the_estimate_then_probes() {
        let t0 = Instant::now();
        let mut c = RateController::new(
            ControllerConfig {
                max_wcu: Some(4000.0),
                ..cfg()
            },
            t0,
        );
        let now = feed(&mut c, t0, 2.0, 1000.0);
        assert_eq!(c.on_throttle(now), Reaction::Decreased(900.0));
        // Keep the window busy at the estimate so the growth cap does not bind.
        let mut t = now;
        let mut rates = Vec::new();
        // Seconds 0.5 .. 8.5 after the decrease.
        for _ in 0..17 {
            t = feed(&mut c, t, 0.5, 1000.0);
            rates.push(c.rate(t));
        }
        assert!(
            (rates[1] - 987.5).abs() < 0.5,
            "steep, then flat: {rates:?}"
        );
        assert_eq!(
            rates[3], 1000.0,
            "back at the estimate after `recovery`: {rates:?}"
        );
        assert!(
            rates[3..=13].iter().all(|r| *r == 1000.0),
            "plateau of 5 s: {rates:?}"
        );
        assert!(
            (rates[14] - 1125.0).abs() < 0.5,
            "probing starts gently (convex): {rates:?}"
        );
        assert_eq!(
            rates[15], 2000.0,
            "twice the estimate after `probe_doubling`, capped at 2x admitted: {rates:?}"
        );
    }

    #[test]
    fn a_provisioned_ceiling_is_the_rate_and_probing_stops_there() {
        let t0 = Instant::now();
        let mut c = RateController::new(cfg(), t0);
        assert!(c.set_ceiling(t0, Some(1000.0)));
        assert!(!c.set_ceiling(t0, Some(1000.0)), "unchanged");
        let now = feed(&mut c, t0, 2.0, 1000.0);
        assert_eq!(c.rate(now), 1000.0, "exactly the provisioned capacity");
        // Another writer takes 400 of the table: we are throttled at 600.
        let now = feed(&mut c, now, 1.0, 600.0);
        assert!(
            matches!(c.on_throttle(now), Reaction::Decreased(r) if (r - 540.0).abs() < 10.0),
            "0.9 x the 600 admitted"
        );
        // Long after, probing has reached the ceiling and stays there.
        let mut t = now;
        for _ in 0..30 {
            let r = c.rate(t);
            assert!(r <= 1000.0, "never above the ceiling: {r}");
            t = feed(&mut c, t, 0.5, r);
        }
        assert_eq!(c.rate(t), 1000.0);
    }

    #[test]
    fn a_resized_table_starts_afresh_at_its_new_ceiling() {
        let t0 = Instant::now();
        let mut c = RateController::new(cfg(), t0);
        c.set_ceiling(t0, Some(2000.0));
        let now = feed(&mut c, t0, 2.0, 2000.0);
        assert_eq!(c.rate(now), 2000.0);
        // UpdateTable to 500: the next poll says so; the rate follows at once.
        assert!(c.set_ceiling(now, Some(500.0)));
        assert_eq!(c.rate(now), 500.0);
        // Throttled meanwhile (the poll came late): the episode stays under 500.
        let now = feed(&mut c, now, 1.0, 500.0);
        assert_eq!(c.on_throttle(now), Reaction::Decreased(450.0));
        // Back to 2000: growth is earned, doubling what was admitted per second.
        let mut now = feed(&mut c, now, 1.0, 500.0);
        assert!(c.set_ceiling(now, Some(2000.0)));
        assert_eq!(c.rate(now), 1000.0, "twice the last second's 500");
        now = feed(&mut c, now, 1.0, 1000.0);
        assert!(c.rate(now) >= 1950.0, "{}", c.rate(now));
        // On-demand (no ceiling): purely adaptive again.
        assert!(c.set_ceiling(now, None));
        assert_eq!(c.ceiling(), None);
    }

    #[test]
    fn growth_is_capped_by_what_was_recently_used() {
        let t0 = Instant::now();
        let mut c = RateController::new(cfg(), t0);
        // Purely adaptive, light load: the limit stays near 2x usage (min initial).
        let now = feed(&mut c, t0, 2.0, 100.0);
        assert_eq!(c.rate(now), 1000.0);
        let now = feed(&mut c, now, 2.0, 900.0);
        assert!((c.rate(now) - 1800.0).abs() < 20.0, "{}", c.rate(now));
    }

    #[test]
    fn a_reported_warm_throughput_is_granted_at_once_within_budget_and_ceiling() {
        let t0 = Instant::now();
        let mut c = RateController::new(cfg(), t0);
        assert_eq!(c.rate(t0), 1000.0, "nothing known: initial_wcu");
        assert!(c.set_warm(Some(50_000.0)));
        assert!(!c.set_warm(Some(50_000.0)), "unchanged");
        assert_eq!(c.rate(t0), 50_000.0, "before any write");
        // Light use does not shrink it: the table said it serves that much.
        let now = feed(&mut c, t0, 2.0, 100.0);
        assert_eq!(c.rate(now), 50_000.0);
        // Use beyond it still earns growth (twice the last second).
        let now = feed(&mut c, now, 2.0, 40_000.0);
        assert!((c.rate(now) - 80_000.0).abs() < 800.0, "{}", c.rate(now));
        // A provisioned ceiling and the budget still bound it.
        assert!(c.set_ceiling(now, Some(30_000.0)));
        assert_eq!(c.rate(now), 30_000.0);
        let mut budgeted = RateController::new(
            ControllerConfig {
                max_wcu: Some(8_000.0),
                ..cfg()
            },
            t0,
        );
        budgeted.set_warm(Some(50_000.0));
        assert_eq!(budgeted.rate(t0), 8_000.0);
        // Throttling is answered as without it.
        let now = feed(&mut c, now, 1.0, 20_000.0);
        assert!(matches!(c.on_throttle(now), Reaction::Decreased(_)));
        assert!(c.rate(now) < 20_000.0, "{}", c.rate(now));
        // After a throttle below the warm throughput, probing must earn its
        // growth again: well into the probe, twice what was admitted.
        let mut probed = RateController::new(cfg(), t0);
        probed.set_warm(Some(50_000.0));
        let now = feed(&mut probed, t0, 2.0, 10_000.0);
        assert!(matches!(probed.on_throttle(now), Reaction::Decreased(_)));
        let now = feed(&mut probed, now, 10.0, 10_000.0);
        let r = probed.rate(now);
        assert!((r - 20_000.0).abs() < 200.0, "{r}");
        // Not reported (or nonsense): back to initial_wcu as the floor.
        let mut gone = RateController::new(cfg(), t0);
        gone.set_warm(Some(50_000.0));
        assert!(gone.set_warm(None));
        assert_eq!(gone.rate(t0), 1000.0);
        assert!(!gone.set_warm(Some(f64::NAN)));
    }

    #[test]
    fn a_capacity_step_down_and_up_is_followed() {
        let t0 = Instant::now();
        let mut c = RateController::new(
            ControllerConfig {
                max_wcu: Some(2000.0),
                ..cfg()
            },
            t0,
        );
        let mut now = feed(&mut c, t0, 3.0, 2000.0);
        assert_eq!(c.rate(now), 2000.0);
        // Capacity drops to 500: admitted falls, throttles arrive.
        now = feed(&mut c, now, 1.0, 500.0);
        assert!(matches!(c.on_throttle(now), Reaction::Decreased(r) if (r - 450.0).abs() < 20.0));
        // Capacity returns to 2000, unknown to the controller (no ceiling):
        // it finds it after recovery, plateau and one probe, within 9 s
        // (the table admits whatever the controller sends, up to 2000).
        let mut t = now;
        for _ in 0..9 {
            let r = c.rate(t).min(2000.0);
            t = feed(&mut c, t, 1.0, r);
        }
        assert!(c.rate(t) >= 1900.0, "{}", c.rate(t));
    }

    #[test]
    fn unprocessed_share_above_threshold_is_a_throttle() {
        let t0 = Instant::now();
        let mut c = RateController::new(
            ControllerConfig {
                unprocessed_threshold: 0.1,
                ..cfg()
            },
            t0,
        );
        assert_eq!(c.on_partial(t0, 25, 2), None, "8% is below 10%");
        assert!(matches!(
            c.on_partial(t0, 25, 5),
            Some(Reaction::Decreased(_))
        ));
        assert_eq!(c.on_partial(t0, 25, 0), None);
    }
}
