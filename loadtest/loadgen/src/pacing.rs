//! When the next request goes out. Open loop: each of the C workers sends on
//! its own fixed schedule at rate/C, staggered, and latency is measured from
//! the *scheduled* time, so a slow server shows as latency instead of
//! silently lowering the offered rate (coordinated omission). Closed loop:
//! each worker sends as soon as its previous request was answered.
//!
//! Invariant: the run ends at the deadline or when the shared event budget
//! (`--count`) is used up, whichever is first; no worker sends after either.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;

/// The shared bounds of a run: deadline and event budget.
#[derive(Debug, Clone)]
pub struct Budget {
    deadline: Instant,
    remaining: Arc<AtomicU64>,
}

impl Budget {
    /// A run of at most `duration` and `count` events from now.
    pub fn new(duration: Duration, count: Option<u64>) -> Self {
        Self {
            deadline: Instant::now() + duration,
            remaining: Arc::new(AtomicU64::new(count.unwrap_or(u64::MAX))),
        }
    }

    /// The deadline.
    pub fn deadline(&self) -> Instant {
        self.deadline
    }

    /// Takes up to `n` events from the budget; 0 when the run is over.
    pub fn take(&self, n: u64) -> u64 {
        if Instant::now() >= self.deadline {
            return 0;
        }
        let mut cur = self.remaining.load(Ordering::Relaxed);
        loop {
            let grant = cur.min(n);
            if grant == 0 {
                return 0;
            }
            match self.remaining.compare_exchange_weak(
                cur,
                cur - grant,
                Ordering::Relaxed,
                Ordering::Relaxed,
            ) {
                Ok(_) => return grant,
                Err(actual) => cur = actual,
            }
        }
    }
}

/// One worker's send schedule.
#[derive(Debug)]
pub struct Pacer {
    /// Time between this worker's sends (open loop), None for closed loop.
    period: Option<Duration>,
    next: Instant,
}

impl Pacer {
    /// Worker `index` of `workers`, sending requests of `per_request` events at
    /// a total of `rate` events/s (None: closed loop).
    pub fn new(rate: Option<f64>, workers: u64, per_request: u64, index: u64) -> Self {
        let start = Instant::now();
        match rate {
            Some(r) => {
                let requests_per_sec = r / per_request as f64 / workers as f64;
                let period = Duration::from_secs_f64(1.0 / requests_per_sec.max(1e-6));
                // Stagger the workers over one period so their sends interleave.
                let offset = period.mul_f64(index as f64 / workers as f64);
                Self {
                    period: Some(period),
                    next: start + offset,
                }
            }
            None => Self {
                period: None,
                next: start,
            },
        }
    }

    /// Waits for the next send slot and returns its scheduled time (the
    /// latency origin), or None if the slot would be past `deadline`.
    pub async fn next_slot(&mut self, deadline: Instant) -> Option<Instant> {
        let slot = self.reserve(deadline)?;
        tokio::time::sleep_until(slot).await;
        Some(slot)
    }

    /// Takes the next send slot without waiting for it (closed loop: now),
    /// or None if it would be past `deadline`. For a caller that has other
    /// things to do (keep-alive pings) until the slot comes.
    pub fn reserve(&mut self, deadline: Instant) -> Option<Instant> {
        match self.period {
            None => {
                let now = Instant::now();
                (now < deadline).then_some(now)
            }
            Some(p) => {
                let slot = self.next;
                if slot >= deadline {
                    return None;
                }
                self.next += p;
                Some(slot)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn open_loop_keeps_its_schedule() {
        let deadline = Instant::now() + Duration::from_secs(1);
        // 1000 events/s over 4 workers, one event per request: 250/s each.
        let mut p = Pacer::new(Some(1000.0), 4, 1, 2);
        let mut slots = Vec::new();
        while let Some(s) = p.next_slot(deadline).await {
            slots.push(s);
        }
        assert_eq!(slots.len(), 250);
        assert_eq!(slots[1] - slots[0], Duration::from_millis(4));
        // Worker 2 of 4 starts half a period late.
        assert_eq!(
            slots[0] - (deadline - Duration::from_secs(1)),
            Duration::from_millis(2)
        );
    }

    #[tokio::test(start_paused = true)]
    async fn budget_ends_the_run_by_count_and_by_time() {
        let b = Budget::new(Duration::from_secs(5), Some(10));
        assert_eq!(b.take(4), 4);
        assert_eq!(b.take(4), 4);
        assert_eq!(b.take(4), 2);
        assert_eq!(b.take(4), 0);
        let b = Budget::new(Duration::from_secs(5), None);
        assert_eq!(b.take(100), 100);
        tokio::time::advance(Duration::from_secs(5)).await;
        assert_eq!(b.take(1), 0);
    }
}
