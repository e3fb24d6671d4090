//! In-flight slots of one table's writer (between the batcher and
//! DynamoDB): a batch task holds a slot while it is *calling* DynamoDB, not
//! while it waits out a throttled key range.
//!
//! A task whose remaining items were left unprocessed or refused for
//! capacity gives its slot back while it backs off ("parks"), so fresh
//! batches for the other key ranges keep flowing instead of queueing behind
//! one hot partition (head-of-line blocking). Parking is bounded by items
//! (`[dynamodb] max_parked_items`): past it a task keeps its slot while it
//! waits, which throttles intake as before. Parked items keep their keys
//! held (see `key_guard`), so writes of one key stay in order.

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

    /// Parks `items` if the bound allows; None: the caller keeps its slot.
    pub fn park(self: &Arc<Self>, items: usize) -> Option<Parked> {
        let mut cur = self.parked_items.load(Ordering::Acquire);
        loop {
            if cur + items > self.max_parked_items {
                return None;
            }
            match self.parked_items.compare_exchange_weak(
                cur,
                cur + items,
                Ordering::AcqRel,
                Ordering::Acquire,
            ) {
                Ok(_) => {
                    return Some(Parked {
                        slots: self.clone(),
                        items,
                    })
                }
                Err(now) => cur = now,
            }
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

    #[test]
    fn parking_is_bounded_by_items_and_undone_on_drop() {
        let slots = Slots::new(30);
        let p = slots.park(25).expect("room for 25");
        assert!(slots.park(6).is_none(), "31 > 30");
        let q = slots.park(5).expect("exactly 30");
        assert_eq!(slots.parked_items(), 30);
        drop(p);
        drop(q);
        assert_eq!(slots.parked_items(), 0);
    }
}
