//! `ack=written`: a request waits until DynamoDB confirmed every one of its
//! items (or they were dead-lettered). One [`Ack`] per request, shared by
//! its items; the writer settles each item exactly once. A spooled request's
//! `Ack` also carries its spool record's release [`Ticket`], settled when
//! the last item is.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use tokio::sync::Notify;

use super::spool::ticket::Ticket;

/// Completion state of one request's items.
#[derive(Debug)]
pub struct Ack {
    pending: AtomicUsize,
    failed: AtomicUsize,
    first_failure: Mutex<Option<String>>,
    done: Notify,
    release: Option<Arc<Ticket>>,
}

/// What happened to a request's items once all are settled.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AckOutcome {
    pub written: usize,
    pub failed: usize,
    /// The reason of the first failed item, if any.
    pub first_failure: Option<String>,
}

impl Ack {
    /// An ack waiting for `items` items.
    pub fn new(items: usize) -> Self {
        Self {
            pending: AtomicUsize::new(items),
            failed: AtomicUsize::new(0),
            first_failure: Mutex::new(None),
            done: Notify::new(),
            release: None,
        }
    }

    /// An ack whose completion also releases a spool record.
    pub fn spooled(items: usize, ticket: Arc<Ticket>) -> Self {
        Self {
            release: Some(ticket),
            ..Self::new(items)
        }
    }

    /// One item reached DynamoDB.
    pub fn written(&self) {
        self.settle();
    }

    /// One item went to the dead-letter file instead.
    pub fn failed(&self, reason: &str) {
        self.failed.fetch_add(1, Ordering::AcqRel);
        if let Ok(mut first) = self.first_failure.lock() {
            first.get_or_insert_with(|| reason.to_owned());
        }
        self.settle();
    }

    fn settle(&self) {
        if self.pending.fetch_sub(1, Ordering::AcqRel) == 1 {
            if let Some(ticket) = &self.release {
                ticket.settle();
            }
            self.done.notify_one();
        }
    }

    /// Waits until every item is settled.
    pub async fn wait(&self, items: usize) -> AckOutcome {
        while self.pending.load(Ordering::Acquire) > 0 {
            self.done.notified().await;
        }
        let failed = self.failed.load(Ordering::Acquire);
        let first_failure = self.first_failure.lock().ok().and_then(|f| f.clone());
        AckOutcome {
            written: items - failed,
            failed,
            first_failure,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn completes_when_every_item_is_settled() {
        let ack = Arc::new(Ack::new(3));
        let waiter = tokio::spawn({
            let ack = ack.clone();
            async move { ack.wait(3).await }
        });
        ack.written();
        ack.failed("ValidationException: bad");
        assert!(!waiter.is_finished());
        ack.written();
        let outcome = waiter.await.expect("join");
        assert_eq!(
            outcome,
            AckOutcome {
                written: 2,
                failed: 1,
                first_failure: Some("ValidationException: bad".into())
            }
        );
    }
}
