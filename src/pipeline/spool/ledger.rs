//! The spool's accounting: which segments exist, how many unreleased
//! records each holds, and the disk bytes against `max_bytes`.
//!
//! Invariants: `disk_bytes` is the sum of the sizes of segment files not yet
//! deleted; `reserved` is the bytes of appends admitted but not yet written.
//! Admission refuses when `disk_bytes + reserved` would pass `max_bytes`, so
//! the directory never grows past it. A segment is doomed (its file to be
//! deleted) once it is sealed — no more appends go to it — and its last
//! record is released; releases wait in `pending` until the releaser thread
//! persists them ([`super::release`]), and it takes doomed segments and
//! pending releases in one step, so a segment's file is deleted only after
//! every release made before it was doomed is on disk. Locks: a [`super::ticket::Ticket`] may call in here
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
    /// Ordinals released (persisted or pending): the release log's
    /// compaction rewrites them.
    released: Vec<u32>,
    /// Its file is to be deleted (kept here, marks and all, until it is).
    doomed: bool,
}

#[derive(Debug, Default)]
struct State {
    segments: BTreeMap<u64, Segment>,
    disk_bytes: u64,
    reserved: u64,
    records: u64,
    doomed: Vec<u64>,
    /// Releases not yet persisted, in release order.
    pending: Vec<(u64, u32)>,
    /// The last admission was refused (logged once per episode).
    full: bool,
}

/// What the releaser persists and deletes in one tick.
#[derive(Debug, Default)]
pub struct Flush {
    /// Releases to append to the release log, in order.
    pub releases: Vec<(u64, u32)>,
    /// Segments to delete once `releases` are persisted.
    pub doomed: Vec<u64>,
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
            if !s.full {
                s.full = true;
                tracing::warn!(
                    max_bytes = self.max_bytes,
                    disk_bytes = s.disk_bytes,
                    "spool full: spooled HTTP requests get 503 + Retry-After, the MQTT broker stops reading devices"
                );
            }
            return Err(SpoolFull);
        }
        if s.full {
            s.full = false;
            tracing::info!(disk_bytes = s.disk_bytes, "spool has room again");
        }
        s.reserved += bytes;
        Ok(())
    }

    /// An admitted append that will not be written.
    pub fn unreserve(&self, bytes: u64) {
        let mut s = self.lock();
        s.reserved = s.reserved.saturating_sub(bytes);
    }

    /// A segment found at start-up: `live` intact unreleased records,
    /// `bytes` on disk after any cut, `released` its persisted marks.
    pub fn recovered(
        &self,
        segment: u64,
        bytes: u64,
        live: u64,
        first_ms: Option<u64>,
        released: Vec<u32>,
    ) {
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
                released,
                doomed: false,
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

    /// Record `ordinal` of `segment` was written to DynamoDB or dead-lettered.
    pub fn release(&self, segment: u64, ordinal: u32) {
        let mut s = self.lock();
        let Some(seg) = s.segments.get_mut(&segment) else {
            return;
        };
        seg.live = seg.live.saturating_sub(1);
        seg.released.push(ordinal);
        let empty = seg.live == 0 && seg.sealed;
        s.records = s.records.saturating_sub(1);
        s.pending.push((segment, ordinal));
        if empty {
            doom(&mut s, segment);
        }
        self.publish(&s);
    }

    /// The releases to persist and, behind them, the segments to delete.
    pub fn take_flush(&self) -> Flush {
        let mut s = self.lock();
        Flush {
            releases: std::mem::take(&mut s.pending),
            doomed: std::mem::take(&mut s.doomed),
        }
    }

    /// Like [`Ledger::take_flush`] for a rewrite of the release log: every
    /// release mark of the segment files still on disk (doomed ones
    /// included), pending ones too (taken: the caller persists them all).
    pub fn take_marks(&self) -> (super::release::Marks, Vec<u64>) {
        let mut s = self.lock();
        s.pending.clear();
        let marks = s
            .segments
            .iter()
            .filter(|(_, seg)| !seg.released.is_empty())
            .map(|(&id, seg)| (id, seg.released.clone()))
            .collect();
        (marks, std::mem::take(&mut s.doomed))
    }

    /// These doomed segments' files are deleted.
    pub fn forget(&self, ids: &[u64]) {
        let mut s = self.lock();
        for id in ids {
            s.segments.remove(id);
        }
    }

    /// Persisting failed: these doomed segments wait for the next flush.
    pub fn return_doomed(&self, ids: Vec<u64>) {
        self.lock().doomed.extend(ids);
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

/// Its bytes stop counting against `max_bytes` now (the file goes at the
/// next flush); the entry stays, with its marks, until the file is deleted.
fn doom(s: &mut State, segment: u64) {
    let Some(seg) = s.segments.get_mut(&segment) else {
        return;
    };
    if seg.doomed {
        return;
    }
    seg.doomed = true;
    let bytes = seg.bytes;
    s.disk_bytes = s.disk_bytes.saturating_sub(bytes);
    s.doomed.push(segment);
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
        l.release(1, 1);
        l.release(1, 0);
        let f = l.take_flush();
        assert!(f.doomed.is_empty(), "the active segment stays");
        assert_eq!(f.releases, vec![(1, 1), (1, 0)], "in release order");
        l.appended(1, 10, 0, 0);
        l.seal(1);
        assert!(l.take_flush().doomed.is_empty(), "one record still live");
        l.appended(2, 10, 0, 0);
        l.release(2, 0);
        l.release(1, 2);
        let f = l.take_flush();
        assert_eq!(f.doomed, vec![1]);
        assert_eq!(
            f.releases,
            vec![(2, 0), (1, 2)],
            "every release before the doom is persisted with it"
        );
        assert_eq!(l.records(), 0);
        assert_eq!(l.disk_bytes(), 10, "segment 2 is still active");
        let (marks, _) = l.take_marks();
        assert_eq!(
            marks,
            super::super::release::Marks::from([(1, vec![1, 0, 2]), (2, vec![0])]),
            "a doomed segment keeps its marks until its file is gone"
        );
        l.forget(&[1]);
        let (marks, _) = l.take_marks();
        assert_eq!(marks, super::super::release::Marks::from([(2, vec![0])]));
    }
}
