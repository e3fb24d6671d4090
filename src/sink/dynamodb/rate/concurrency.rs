//! Adaptive concurrency: how many BatchWriteItem calls of one table may be
//! in flight, learned from their latency (in the manner of Vector's adaptive
//! request concurrency). Pure logic, time passed in.
//!
//! Calls are observed in windows of about one round trip. At the end of a
//! window: server errors, timeouts or a round trip well above its running
//! mean (`rtt_tolerance`) mean DynamoDB (or the network) is saturated → the
//! limit shrinks by `decrease_factor` (throttling is not such a signal: the
//! WCU rate limiter answers it); otherwise, if the limit was reached
//! during the window (it actually constrained us), it grows by one. The
//! limit stays within `[1, max]`, `max` being `dynamodb.max_in_flight`.

use std::time::{Duration, Instant};

/// Tuning.
#[derive(Debug, Clone, PartialEq)]
pub struct ConcurrencyConfig {
    pub max: usize,
    pub decrease_factor: f64,
    /// A window's mean round trip this much above the running mean is congestion.
    pub rtt_tolerance: f64,
    /// Weight of a new window in the running mean round trip.
    pub ewma_alpha: f64,
}

impl ConcurrencyConfig {
    pub fn new(max: usize) -> Self {
        Self {
            max: max.max(1),
            decrease_factor: 0.9,
            rtt_tolerance: 0.5,
            ewma_alpha: 0.4,
        }
    }
}

/// The learned limit.
#[derive(Debug, Clone)]
pub struct ConcurrencyController {
    cfg: ConcurrencyConfig,
    limit: usize,
    window_start: Instant,
    window_len: Duration,
    rtt_sum: f64,
    rtt_count: u32,
    congested: bool,
    reached_limit: bool,
    mean_rtt: Option<f64>,
}

impl ConcurrencyController {
    /// Starts at the maximum: DynamoDB's latency is flat until it throttles.
    pub fn new(cfg: ConcurrencyConfig, now: Instant) -> Self {
        Self {
            limit: cfg.max,
            cfg,
            window_start: now,
            window_len: Duration::ZERO,
            rtt_sum: 0.0,
            rtt_count: 0,
            congested: false,
            reached_limit: false,
            mean_rtt: None,
        }
    }

    pub fn limit(&self) -> usize {
        self.limit
    }

    /// A call is about to start with `in_flight` calls (itself included) running.
    pub fn on_start(&mut self, in_flight: usize) {
        if in_flight >= self.limit {
            self.reached_limit = true;
        }
    }

    /// A call ended after `rtt`; `congested` for a server error or timeout.
    pub fn on_end(&mut self, now: Instant, rtt: Duration, congested: bool) {
        self.rtt_sum += rtt.as_secs_f64();
        self.rtt_count += 1;
        self.congested |= congested;
        if now.saturating_duration_since(self.window_start) >= self.window_len {
            self.end_window(now);
        }
    }

    fn end_window(&mut self, now: Instant) {
        let avg = self.rtt_sum / f64::from(self.rtt_count.max(1));
        let slow = self
            .mean_rtt
            .is_some_and(|m| avg > m * (1.0 + self.cfg.rtt_tolerance));
        if self.congested || slow {
            self.limit = ((self.limit as f64 * self.cfg.decrease_factor).floor() as usize).max(1);
        } else if self.reached_limit {
            self.limit = (self.limit + 1).min(self.cfg.max);
        }
        let mean = match self.mean_rtt {
            None => avg,
            Some(m) => m + self.cfg.ewma_alpha * (avg - m),
        };
        self.mean_rtt = Some(mean);
        // The next window lasts about one round trip (bounded).
        self.window_len = Duration::from_secs_f64(mean.clamp(0.01, 1.0));
        self.window_start = now;
        self.rtt_sum = 0.0;
        self.rtt_count = 0;
        self.congested = false;
        self.reached_limit = false;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: Duration = Duration::from_millis(1);

    /// Runs `windows` windows of calls with round trip `rtt` at full limit.
    fn run(
        c: &mut ConcurrencyController,
        now: &mut Instant,
        windows: usize,
        rtt: Duration,
        congested: bool,
    ) {
        for _ in 0..windows {
            for _ in 0..c.limit() {
                c.on_start(c.limit());
            }
            *now += rtt.max(10 * MS) + MS;
            c.on_end(*now, rtt, congested);
        }
    }

    #[test]
    fn congestion_shrinks_the_limit_multiplicatively_and_not_below_one() {
        let mut now = Instant::now();
        let mut c = ConcurrencyController::new(ConcurrencyConfig::new(8), now);
        assert_eq!(c.limit(), 8);
        run(&mut c, &mut now, 1, 20 * MS, true);
        assert_eq!(c.limit(), 7);
        run(&mut c, &mut now, 30, 20 * MS, true);
        assert_eq!(c.limit(), 1);
    }

    #[test]
    fn the_limit_grows_by_one_per_window_while_it_constrains() {
        let mut now = Instant::now();
        let mut c = ConcurrencyController::new(ConcurrencyConfig::new(8), now);
        run(&mut c, &mut now, 5, 20 * MS, true);
        let low = c.limit();
        run(&mut c, &mut now, 2, 20 * MS, false);
        assert_eq!(c.limit(), low + 2);
        run(&mut c, &mut now, 20, 20 * MS, false);
        assert_eq!(c.limit(), 8, "capped at max_in_flight");
    }

    #[test]
    fn rising_latency_is_congestion() {
        let mut now = Instant::now();
        let mut c = ConcurrencyController::new(ConcurrencyConfig::new(8), now);
        run(&mut c, &mut now, 5, 20 * MS, false);
        assert_eq!(c.limit(), 8);
        run(&mut c, &mut now, 1, 60 * MS, false);
        assert_eq!(c.limit(), 7, "3x the mean round trip");
    }

    #[test]
    fn an_unused_limit_does_not_grow() {
        let mut now = Instant::now();
        let mut c = ConcurrencyController::new(ConcurrencyConfig::new(8), now);
        run(&mut c, &mut now, 3, 20 * MS, true);
        let low = c.limit();
        for _ in 0..5 {
            c.on_start(1);
            now += 30 * MS;
            c.on_end(now, 20 * MS, false);
        }
        assert_eq!(c.limit(), low);
    }
}
