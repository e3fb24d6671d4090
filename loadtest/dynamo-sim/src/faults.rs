//! Fault injection: added latency and a configured share of 500s, 503s and
//! dropped connections, decided per data-plane request before it runs.
//!
//! `decide` is pure (takes the random roll), so the split between outcomes
//! is unit-tested without randomness; the server calls `roll`.

use std::time::Duration;

use crate::config::FaultConfig;

/// What to do with one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FaultAction {
    /// Run it normally.
    Pass,
    /// Answer 500 InternalServerError without running it.
    InternalError,
    /// Answer 503 ServiceUnavailable without running it.
    Unavailable,
    /// Close the connection without answering.
    Drop,
}

/// Fault decisions for one simulator.
#[derive(Debug, Clone)]
pub struct Faults {
    cfg: FaultConfig,
}

impl Faults {
    /// From configuration.
    pub fn new(cfg: FaultConfig) -> Self {
        Faults { cfg }
    }

    /// Outcome for a uniform roll in `[0, 1)`.
    pub fn decide(&self, roll: f64) -> FaultAction {
        let c = &self.cfg;
        if roll < c.drop_rate {
            FaultAction::Drop
        } else if roll < c.drop_rate + c.error_500_rate {
            FaultAction::InternalError
        } else if roll < c.drop_rate + c.error_500_rate + c.error_503_rate {
            FaultAction::Unavailable
        } else {
            FaultAction::Pass
        }
    }

    /// Outcome for this request (random).
    pub fn roll(&self) -> FaultAction {
        if self.cfg.drop_rate + self.cfg.error_500_rate + self.cfg.error_503_rate <= 0.0 {
            return FaultAction::Pass;
        }
        self.decide(fastrand::f64())
    }

    /// Latency to add to this request: fixed plus uniform jitter.
    pub fn delay(&self) -> Option<Duration> {
        let jitter = if self.cfg.jitter_ms > 0 {
            fastrand::u64(0..=self.cfg.jitter_ms)
        } else {
            0
        };
        let ms = self.cfg.latency_ms + jitter;
        (ms > 0).then(|| Duration::from_millis(ms))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shares_split_the_unit_interval() {
        let f = Faults::new(FaultConfig {
            drop_rate: 0.1,
            error_500_rate: 0.2,
            error_503_rate: 0.3,
            ..FaultConfig::default()
        });
        assert_eq!(f.decide(0.05), FaultAction::Drop);
        assert_eq!(f.decide(0.15), FaultAction::InternalError);
        assert_eq!(f.decide(0.35), FaultAction::Unavailable);
        assert_eq!(f.decide(0.65), FaultAction::Pass);
        let none = Faults::new(FaultConfig::default());
        assert_eq!(none.roll(), FaultAction::Pass);
        assert_eq!(none.delay(), None);
    }
}
