//! Measurement: each worker records into its own [`Recorder`] (no locks on
//! the hot path) and the results are merged at the end. A [`Live`] view of
//! shared atomic counters and a one-second latency window feed the progress
//! bar and the scenario sampler while the load runs.
//!
//! Invariant: every event a worker attempts ends in exactly one of
//! `acked` or `errors[kind]`, so sent = acked + Σ errors.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;

/// Latency histogram in microseconds, 1 µs .. 10 min, 3 significant digits.
pub fn new_histogram() -> Histogram<u64> {
    // Bounds are constants within hdrhistogram's limits: this cannot fail.
    Histogram::new_with_bounds(1, 600_000_000, 3)
        .unwrap_or_else(|_| Histogram::new(3).unwrap_or_else(|_| unreachable!()))
}

/// Counters shared by all workers, read while the load runs.
#[derive(Debug, Clone, Default)]
pub struct Live {
    inner: Arc<LiveInner>,
}

#[derive(Debug, Default)]
struct LiveInner {
    sent: AtomicU64,
    acked: AtomicU64,
    errors: AtomicU64,
    window: Mutex<Option<Histogram<u64>>>,
}

/// A point-in-time copy of [`Live`].
#[derive(Debug, Clone, Copy, Default)]
pub struct LiveSnapshot {
    /// Events attempted.
    pub sent: u64,
    /// Events acknowledged.
    pub acked: u64,
    /// Events that failed.
    pub errors: u64,
}

impl Live {
    /// Current totals.
    pub fn snapshot(&self) -> LiveSnapshot {
        LiveSnapshot {
            sent: self.inner.sent.load(Ordering::Relaxed),
            acked: self.inner.acked.load(Ordering::Relaxed),
            errors: self.inner.errors.load(Ordering::Relaxed),
        }
    }

    /// Takes the latencies recorded since the last call (p50, p99 in µs), if any.
    pub fn take_window(&self) -> Option<(u64, u64)> {
        let mut w = self.inner.window.lock().ok()?;
        let h = w.take()?;
        (!h.is_empty()).then(|| (h.value_at_quantile(0.5), h.value_at_quantile(0.99)))
    }

    fn add_window(&self, h: &Histogram<u64>) {
        if let Ok(mut w) = self.inner.window.lock() {
            match w.as_mut() {
                Some(acc) => {
                    let _ = acc.add(h);
                }
                None => *w = Some(h.clone()),
            }
        }
    }
}

/// One worker's measurements.
#[derive(Debug)]
pub struct Recorder {
    live: Live,
    /// Latency of acknowledged requests (µs).
    pub latency: Histogram<u64>,
    /// Events attempted.
    pub sent: u64,
    /// Events acknowledged.
    pub acked: u64,
    /// Requests (or messages) made.
    pub requests: u64,
    /// Failed events by kind (`http_503_queue_full`, `timeout`, ...).
    pub errors: BTreeMap<String, u64>,
    window: Histogram<u64>,
    window_start: Instant,
}

/// How often a worker hands its latency window to [`Live`].
const WINDOW_FLUSH: Duration = Duration::from_millis(200);

impl Recorder {
    /// A recorder reporting live totals to `live`.
    pub fn new(live: &Live) -> Self {
        Self {
            live: live.clone(),
            latency: new_histogram(),
            sent: 0,
            acked: 0,
            requests: 0,
            errors: BTreeMap::new(),
            window: new_histogram(),
            window_start: Instant::now(),
        }
    }

    /// `events` were sent in one request/message.
    pub fn sent(&mut self, events: u64) {
        self.sent += events;
        self.requests += 1;
        self.live.inner.sent.fetch_add(events, Ordering::Relaxed);
    }

    /// `events` were acknowledged after `latency`.
    pub fn acked(&mut self, events: u64, latency: Option<Duration>) {
        self.acked += events;
        self.live.inner.acked.fetch_add(events, Ordering::Relaxed);
        if let Some(l) = latency {
            let us = (l.as_micros() as u64).clamp(1, 600_000_000);
            let _ = self.latency.record(us);
            let _ = self.window.record(us);
            if self.window_start.elapsed() >= WINDOW_FLUSH {
                self.flush_window();
            }
        }
    }

    /// `events` failed with `kind`.
    pub fn failed(&mut self, events: u64, kind: &str) {
        *self.errors.entry(kind.to_owned()).or_default() += events;
        self.live.inner.errors.fetch_add(events, Ordering::Relaxed);
    }

    /// Hands the pending latency window to [`Live`].
    pub fn flush_window(&mut self) {
        if !self.window.is_empty() {
            self.live.add_window(&self.window);
            self.window.reset();
        }
        self.window_start = Instant::now();
    }

    /// Adds another worker's results into this one.
    pub fn merge(&mut self, other: Recorder) {
        let _ = self.latency.add(&other.latency);
        self.sent += other.sent;
        self.acked += other.acked;
        self.requests += other.requests;
        for (k, v) in other.errors {
            *self.errors.entry(k).or_default() += v;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn merge_adds_counts_and_latencies() {
        let live = Live::default();
        let mut a = Recorder::new(&live);
        let mut b = Recorder::new(&live);
        a.sent(10);
        a.acked(10, Some(Duration::from_micros(100)));
        b.sent(5);
        b.failed(5, "http_503_queue_full");
        b.sent(1);
        b.acked(1, Some(Duration::from_micros(300)));
        a.merge(b);
        assert_eq!((a.sent, a.acked, a.requests), (16, 11, 3));
        assert_eq!(a.errors["http_503_queue_full"], 5);
        assert_eq!(a.latency.len(), 2);
        let s = live.snapshot();
        assert_eq!((s.sent, s.acked, s.errors), (16, 11, 5));
    }

    #[test]
    fn window_is_taken_once() {
        let live = Live::default();
        let mut a = Recorder::new(&live);
        a.acked(1, Some(Duration::from_micros(1000)));
        a.flush_window();
        let (p50, _) = live.take_window().expect("window");
        assert!((990..=1010).contains(&p50), "{p50}");
        assert!(live.take_window().is_none());
    }
}
