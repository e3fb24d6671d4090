//! In-flight slots of one table's writer (between the batcher and
//! DynamoDB): a batch task holds a slot while it is *calling* DynamoDB, not
//! while it waits out a throttled key range.
//!
//! A task whose remaining items were left unprocessed or refused for
//! capacity gives its slot back while it backs off ("parks"), so fresh
//! batches for the other key ranges keep flowing instead of queueing behind
//! one hot partition (head-of-line blocking), and no slot ever sleeps
//! through a backoff. Parking is bounded by items (`[dynamodb]
//! max_parked_items`): while the bound is reached the writer takes no fresh
//! batch ([`Slots::wait_not_full`]), so the queue fills and intake is
//! refused (503) while the slots serve the parked retries; memory stays
//! bounded (at most the bound plus one batch per slot). Parked items keep
//! their keys held (see `key_guard`), so writes of one key stay in order.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use tokio::sync::Notify;

/// Counts the calls in flight against a limit that may change.
#[derive(Debug)]
pub struct Slots {
    active: AtomicUsize,
    parked_items: AtomicUsize,
    max_parked_items: usize,
    freed: Notify,
    unparked: Notify,
}

/// One slot, given back when dropped.
#[derive(Debug)]
pub struct Slot {
    slots: Arc<Slots>,
}

/// Items parked outside the slots, un-parked when dropped.
#[derive(Debug)]
pub struct Parked {
    slots: Arc<Slots>,
    items: usize,
}

impl Slots {
    pub fn new(max_parked_items: usize) -> Arc<Self> {
        Arc::new(Self {
            active: AtomicUsize::new(0),
            parked_items: AtomicUsize::new(0),
            max_parked_items,
            freed: Notify::new(),
            unparked: Notify::new(),
        })
    }

    /// Slots taken now.
    pub fn active(&self) -> usize {
        self.active.load(Ordering::Acquire)
    }

    /// Items parked now.
    pub fn parked_items(&self) -> usize {
        self.parked_items.load(Ordering::Acquire)
    }

    fn try_take(self: &Arc<Self>, limit: usize) -> Option<Slot> {
        let mut cur = self.active.load(Ordering::Acquire);
        loop {
            if cur >= limit.max(1) {
                return None;
            }
            match self.active.compare_exchange_weak(
                cur,
                cur + 1,
                Ordering::AcqRel,
                Ordering::Acquire,
            ) {
                Ok(_) => {
                    return Some(Slot {
                        slots: self.clone(),
                    })
                }
                Err(now) => cur = now,
            }
        }
    }

    /// Waits for a slot under `limit()` (read again after every release).
    /// Cancel-safe: a dropped wait takes nothing.
    pub async fn acquire(self: &Arc<Self>, limit: impl Fn() -> usize) -> Slot {
        loop {
            let freed = self.freed.notified();
            tokio::pin!(freed);
            freed.as_mut().enable();
            if let Some(slot) = self.try_take(limit()) {
                return slot;
            }
            freed.await;
        }
    }

    /// Parks `items` (always: the bound stops fresh batches instead, see
    /// [`Slots::wait_not_full`]).
    pub fn park(self: &Arc<Self>, items: usize) -> Parked {
        self.parked_items.fetch_add(items, Ordering::AcqRel);
        Parked {
            slots: self.clone(),
            items,
        }
    }

    /// Whether the parked items reached `max_parked_items` (with a bound
    /// of 0: whether anything is parked).
    pub fn full(&self) -> bool {
        let parked = self.parked_items();
        parked > 0 && parked >= self.max_parked_items
    }

    /// Completes once [`Slots::full`] is false. Cancel-safe.
    pub async fn wait_not_full(&self) {
        loop {
            let unparked = self.unparked.notified();
            tokio::pin!(unparked);
            unparked.as_mut().enable();
            if !self.full() {
                return;
            }
            unparked.await;
        }
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        self.slots.active.fetch_sub(1, Ordering::AcqRel);
        // Every waiter re-checks the limit; the losers wait again.
        self.slots.freed.notify_waiters();
    }
}

impl Drop for Parked {
    fn drop(&mut self) {
        self.slots
            .parked_items
            .fetch_sub(self.items, Ordering::AcqRel);
        self.slots.unparked.notify_waiters();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_slot_is_taken_only_under_the_limit_and_freed_on_drop() {
        let slots = Slots::new(10);
        let a = slots.acquire(|| 2).await;
        let _b = slots.acquire(|| 2).await;
        assert_eq!(slots.active(), 2);
        let waiter = {
            let slots = slots.clone();
            tokio::spawn(async move { slots.acquire(|| 2).await })
        };
        tokio::task::yield_now().await;
        assert!(!waiter.is_finished(), "a third slot over a limit of 2");
        drop(a);
        let c = waiter.await.expect("waiter");
        assert_eq!(slots.active(), 2);
        drop(c);
        assert_eq!(slots.active(), 1);
    }

    #[tokio::test]
    async fn a_raised_limit_is_seen_by_the_next_acquire() {
        let slots = Slots::new(10);
        let _a = slots.acquire(|| 1).await;
        assert!(slots.try_take(1).is_none());
        let _b = slots.acquire(|| 2).await;
        assert_eq!(slots.active(), 2);
    }

    #[tokio::test]
    async fn past_the_bound_fresh_work_waits_until_parked_items_drain() {
        let slots = Slots::new(30);
        let p = slots.park(25);
        assert!(!slots.full(), "25 < 30");
        let q = slots.park(10);
        assert!(
            slots.full(),
            "35 ≥ 30: parking never refuses, the bound stops fresh batches"
        );
        assert_eq!(slots.parked_items(), 35);
        let waiter = {
            let slots = slots.clone();
            tokio::spawn(async move { slots.wait_not_full().await })
        };
        tokio::task::yield_now().await;
        assert!(!waiter.is_finished(), "still full");
        drop(q);
        waiter.await.expect("released once under the bound");
        drop(p);
        assert_eq!(slots.parked_items(), 0);
        let none = Slots::new(0);
        assert!(!none.full(), "a bound of 0 with nothing parked");
        let _r = none.park(1);
        assert!(
            none.full(),
            "a bound of 0: no fresh batch while anything is parked"
        );
    }
}
