//! The spool as overflow of one table's in-memory queue: spooled records
//! that did not fit the queue (and, at start-up, the records to replay) wait
//! on disk, in order, and the [`super::feeder`] moves them into the queue as
//! it drains. Only their places are kept in memory (a few dozen bytes per
//! record), so a DynamoDB outage buffers up to the spool's `max_bytes`.
//!
//! Order: once anything waits here, every new request for the table goes
//! behind it (spooled ones into the overflow too, others are refused as
//! "queue full"), so the items of one key still reach the queue in the
//! order their requests were accepted. `waiting` counts a record from the
//! moment the router decides to overflow it, before its append completes,
//! so a request accepted next cannot overtake it.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, MutexGuard};

use tokio::sync::Notify;

use super::ticket::Ticket;

/// Where one waiting record's payload lies on disk.
#[derive(Debug, Clone)]
pub struct Located {
    pub segment: u64,
    /// Byte offset of the payload in the segment file.
    pub offset: u64,
    pub len: u32,
    pub ticket: Arc<Ticket>,
}

#[derive(Debug, Default)]
struct State {
    /// Records overflowed and not yet fed, appends in flight included.
    waiting: usize,
    /// Those already on disk, in append order.
    located: VecDeque<Located>,
}

/// One table's overflow.
#[derive(Debug, Default)]
pub struct Overflow {
    state: Mutex<State>,
    ready: Notify,
}

impl Overflow {
    fn lock(&self) -> MutexGuard<'_, State> {
        // Each method updates the state in one step; a poisoned lock is usable.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Records waiting (appends in flight included).
    pub fn waiting(&self) -> usize {
        self.lock().waiting
    }

    /// Counts a record about to be appended as an overflow record.
    pub fn admit(&self) {
        self.lock().waiting += 1;
    }

    /// Its append failed: it will not be fed.
    pub fn append_failed(&self) {
        let mut s = self.lock();
        s.waiting = s.waiting.saturating_sub(1);
        drop(s);
        self.ready.notify_one();
    }

    /// An admitted record is fsynced here (called in append order).
    pub fn located(&self, at: Located) {
        self.lock().located.push_back(at);
        self.ready.notify_one();
    }

    /// A recovered record to replay (start-up, before any new append).
    pub fn recovered(&self, at: Located) {
        let mut s = self.lock();
        s.waiting += 1;
        s.located.push_back(at);
        drop(s);
        self.ready.notify_one();
    }

    /// Up to `max` records at the front, not removed.
    pub fn front(&self, max: usize) -> Vec<Located> {
        self.lock().located.iter().take(max).cloned().collect()
    }

    /// The front record is in the queue now.
    pub fn fed(&self) {
        let mut s = self.lock();
        if s.located.pop_front().is_some() {
            s.waiting = s.waiting.saturating_sub(1);
        }
    }

    /// Waits until a record is located or `waiting` changed.
    pub async fn changed(&self) {
        self.ready.notified().await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pipeline::spool::ledger::Ledger;
    use crate::telemetry::metrics::SpoolMetrics;

    #[test]
    fn waiting_counts_appends_in_flight_and_feeding_keeps_order() {
        let ledger = Arc::new(Ledger::new(1000, SpoolMetrics::register()));
        let o = Overflow::default();
        let at = |offset| Located {
            segment: 1,
            offset,
            len: 10,
            ticket: Arc::new(Ticket::new(ledger.clone())),
        };
        o.admit();
        o.admit();
        assert_eq!(o.waiting(), 2, "counted before the appends complete");
        assert!(o.front(8).is_empty());
        o.located(at(8));
        o.append_failed();
        assert_eq!(o.waiting(), 1);
        o.admit();
        o.located(at(26));
        let offsets: Vec<u64> = o.front(8).iter().map(|l| l.offset).collect();
        assert_eq!(offsets, vec![8, 26]);
        o.fed();
        assert_eq!(o.front(8)[0].offset, 26);
        o.fed();
        assert_eq!(o.waiting(), 0);
    }
}
