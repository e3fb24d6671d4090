//! The spool's accounting: which segments exist, how many unreleased
//! records each holds, and the disk bytes against `max_bytes`.
//!
//! Invariants: `disk_bytes` is the sum of the sizes of segment files not yet
//! deleted; `reserved` is the bytes of appends admitted but not yet written.
//! Admission refuses when `disk_bytes + reserved` would pass `max_bytes`, so
//! the directory never grows past it. A segment is doomed (its file to be
//! deleted) once it is sealed — no more appends go to it — and its last
//! record is released. Locks: a [`super::ticket::Ticket`] may call in here
//! while holding its own lock; the ledger never calls out.

use std::collections::BTreeMap;
use std::sync::{Mutex, MutexGuard};
use std::time::{SystemTime, UNIX_EPOCH};

use crate::telemetry::metrics::SpoolMetrics;

/// The spool holds `max_bytes` already: retry later.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the spool is full")]
pub struct SpoolFull;

#[derive(Debug, Default)]
struct Segment {
    live: u64,
    bytes: u64,
    /// Epoch milliseconds of its first record (oldest-record age).
    first_ms: Option<u64>,
    sealed: bool,
}

#[derive(Debug, Default)]
struct State {
    segments: BTreeMap<u64, Segment>,
    disk_bytes: u64,
    reserved: u64,
    records: u64,
    doomed: Vec<u64>,
}

/// Shared by the router (admission), the appender thread and the tickets
/// (release).
#[derive(Debug)]
pub struct Ledger {
    state: Mutex<State>,
    max_bytes: u64,
    metrics: SpoolMetrics,
}

impl Ledger {
    pub fn new(max_bytes: u64, metrics: SpoolMetrics) -> Self {
        Self {
            state: Mutex::new(State::default()),
            max_bytes,
            metrics,
        }
    }

    pub fn metrics(&self) -> &SpoolMetrics {
        &self.metrics
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic elsewhere cannot leave the counters half-updated (each
        // method changes them together), so a poisoned lock is still usable.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Admits `bytes` of appends, or refuses them all.
    pub fn reserve(&self, bytes: u64) -> Result<(), SpoolFull> {
        let mut s = self.lock();
        if s.disk_bytes + s.reserved + bytes > self.max_bytes {
            self.metrics.full.increment(1);
            return Err(SpoolFull);
        }
        s.reserved += bytes;
        Ok(())
    }

    /// An admitted append that will not be written.
    pub fn unreserve(&self, bytes: u64) {
        let mut s = self.lock();
        s.reserved = s.reserved.saturating_sub(bytes);
    }

    /// A segment found at start-up: `live` intact records, `bytes` on disk after any cut.
    pub fn recovered(&self, segment: u64, bytes: u64, live: u64, first_ms: Option<u64>) {
        let mut s = self.lock();
        s.disk_bytes += bytes;
        s.records += live;
        s.segments.insert(
            segment,
            Segment {
                live,
                bytes,
                first_ms,
                sealed: true,
            },
        );
        if live == 0 {
            doom(&mut s, segment);
        }
        self.publish(&s);
    }

    /// One record of `frame_bytes` was fsynced into `segment` (admitted as `reserved` bytes).
    pub fn appended(&self, segment: u64, frame_bytes: u64, reserved: u64, now_ms: u64) {
        let mut s = self.lock();
        s.reserved = s.reserved.saturating_sub(reserved);
        s.disk_bytes += frame_bytes;
        s.records += 1;
        let seg = s.segments.entry(segment).or_default();
        seg.live += 1;
        seg.bytes += frame_bytes;
        seg.first_ms.get_or_insert(now_ms);
        self.publish(&s);
    }

    /// No more appends go to `segment`.
    pub fn seal(&self, segment: u64) {
        let mut s = self.lock();
        let seg = s.segments.entry(segment).or_default();
        seg.sealed = true;
        if seg.live == 0 {
            doom(&mut s, segment);
        }
        self.publish(&s);
    }

    /// Seals every segment (shutdown: the active one will get no more appends).
    pub fn seal_all(&self) {
        let ids: Vec<u64> = self.lock().segments.keys().copied().collect();
        for id in ids {
            self.seal(id);
        }
    }

    /// A record of `segment` was written to DynamoDB or dead-lettered.
    pub fn release(&self, segment: u64) {
        let mut s = self.lock();
        let Some(seg) = s.segments.get_mut(&segment) else {
            return;
        };
        seg.live = seg.live.saturating_sub(1);
        let empty = seg.live == 0 && seg.sealed;
        s.records = s.records.saturating_sub(1);
        if empty {
            doom(&mut s, segment);
        }
        self.publish(&s);
    }

    /// Segments whose files should now be deleted.
    pub fn take_doomed(&self) -> Vec<u64> {
        std::mem::take(&mut self.lock().doomed)
    }

    /// Unreleased records (tests and start-up logs).
    pub fn records(&self) -> u64 {
        self.lock().records
    }

    /// Disk bytes of the segment files.
    pub fn disk_bytes(&self) -> u64 {
        self.lock().disk_bytes
    }

    /// Refreshes the oldest-record age gauge.
    pub fn publish_age(&self) {
        let s = self.lock();
        let oldest = s
            .segments
            .values()
            .find(|seg| seg.live > 0)
            .and_then(|seg| seg.first_ms);
        let age = oldest.map_or(0.0, |ms| now_ms().saturating_sub(ms) as f64 / 1000.0);
        self.metrics.oldest_age.set(age);
    }

    fn publish(&self, s: &State) {
        self.metrics.bytes.set(s.disk_bytes as f64);
        self.metrics.records.set(s.records as f64);
    }
}

fn doom(s: &mut State, segment: u64) {
    if let Some(seg) = s.segments.remove(&segment) {
        s.disk_bytes = s.disk_bytes.saturating_sub(seg.bytes);
        s.doomed.push(segment);
    }
}

/// Wall-clock epoch milliseconds (record timestamps survive restarts).
pub fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ledger(max: u64) -> Ledger {
        Ledger::new(max, SpoolMetrics::register())
    }

    #[test]
    fn admission_counts_disk_and_reserved_bytes() {
        let l = ledger(100);
        l.reserve(60).expect("room");
        assert_eq!(l.reserve(50), Err(SpoolFull));
        l.appended(1, 60, 60, 0);
        assert_eq!(l.reserve(41), Err(SpoolFull), "60 on disk");
        l.reserve(40).expect("room");
        l.unreserve(40);
        l.reserve(40).expect("unreserved bytes are free again");
    }

    #[test]
    fn a_segment_is_doomed_when_sealed_and_fully_released() {
        let l = ledger(1000);
        l.appended(1, 10, 0, 0);
        l.appended(1, 10, 0, 0);
        l.release(1);
        l.release(1);
        assert!(l.take_doomed().is_empty(), "the active segment stays");
        l.appended(1, 10, 0, 0);
        l.seal(1);
        assert!(l.take_doomed().is_empty(), "one record still live");
        l.release(1);
        assert_eq!(l.take_doomed(), vec![1]);
        assert_eq!((l.records(), l.disk_bytes()), (0, 0));
    }
}
