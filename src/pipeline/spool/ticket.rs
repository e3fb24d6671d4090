//! The link between a spooled request's [`crate::pipeline::ack::Ack`] and
//! its spool record: the record is released once every item of the request
//! is settled (written or dead-lettered) AND the record is on disk,
//! whichever happens last. The writer can settle items before the appender
//! thread has fsynced their record (the queue push and the append run side
//! by side), hence the two-sided state.

use std::sync::{Arc, Mutex};

use super::ledger::Ledger;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Neither appended nor settled.
    Pending,
    /// On disk in this segment at this ordinal, items not all settled.
    Appended(u64, u32),
    /// Items settled, record not (yet) on disk.
    Settled,
    /// Released, or the append failed: nothing more to do.
    Done,
}

/// One spooled request's release handle.
#[derive(Debug)]
pub struct Ticket {
    state: Mutex<State>,
    ledger: Arc<Ledger>,
}

impl Ticket {
    pub(super) fn new(ledger: Arc<Ledger>) -> Self {
        Self {
            state: Mutex::new(State::Pending),
            ledger,
        }
    }

    /// A record recovered at start-up, already on disk in `segment`.
    pub(super) fn recovered(ledger: Arc<Ledger>, segment: u64, ordinal: u32) -> Self {
        Self {
            state: Mutex::new(State::Appended(segment, ordinal)),
            ledger,
        }
    }

    fn with<R>(&self, f: impl FnOnce(&mut State) -> R) -> R {
        let mut s = self.state.lock().unwrap_or_else(|e| e.into_inner());
        f(&mut s)
    }

    /// The appender fsynced the record into `segment` at `ordinal`.
    pub(super) fn appended(&self, segment: u64, ordinal: u32) {
        self.with(|s| match *s {
            State::Pending => *s = State::Appended(segment, ordinal),
            State::Settled => {
                *s = State::Done;
                self.ledger.release(segment, ordinal);
            }
            State::Appended(..) | State::Done => {}
        });
    }

    /// The append failed: the record is not on disk.
    pub(super) fn append_failed(&self) {
        self.with(|s| *s = State::Done);
    }

    /// Every item of the request is written or dead-lettered.
    pub fn settle(&self) {
        self.with(|s| match *s {
            State::Pending => *s = State::Settled,
            State::Appended(segment, ordinal) => {
                *s = State::Done;
                self.ledger.release(segment, ordinal);
            }
            State::Settled | State::Done => {}
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::telemetry::metrics::SpoolMetrics;

    #[test]
    fn releases_once_whichever_side_comes_last() {
        let ledger = Arc::new(Ledger::new(1000, SpoolMetrics::register()));
        for settle_first in [true, false] {
            ledger.appended(7, 10, 0, 0);
            let t = Ticket::new(ledger.clone());
            if settle_first {
                t.settle();
                assert_eq!(ledger.records(), 1, "not released before it is on disk");
                t.appended(7, 0);
            } else {
                t.appended(7, 0);
                assert_eq!(ledger.records(), 1);
                t.settle();
            }
            assert_eq!(ledger.records(), 0);
            t.settle();
            t.appended(7, 0);
            assert_eq!(ledger.records(), 0, "released exactly once");
        }
    }
}
