//! Start-up replay: records the previous run left unreleased are handed to
//! their table's overflow ([`super::overflow`]) before any listener opens,
//! in append order; the feeders move them into the queues (the writers
//! already run) with their original items (same keys, same sort keys:
//! DynamoDB overwrites, nothing is duplicated). New requests for a table
//! queue up behind its replayed records, so a replayed value of a key never
//! lands after a newer write of that key.
//!
//! A record whose stream is no longer configured stays on disk and is
//! logged; one that does not decode is counted, logged and released.

use super::Recovered;
use crate::pipeline::router::Router;
use crate::telemetry::metrics::SpoolMetrics;

/// Hands `recovered` to the overflows; returns the records to be replayed.
pub fn replay(router: &Router, recovered: Vec<Recovered>, metrics: &SpoolMetrics) -> usize {
    let mut replayed = 0;
    for r in recovered {
        let stream = match r.stream {
            Ok(s) => s,
            Err(e) => {
                // Its checksum held, so the bytes are what was written: a
                // record no version of this code can read. Release it rather
                // than pin its segment forever.
                tracing::error!(error = %e, "spool: undecodable record dropped");
                metrics.corrupted.increment(1);
                r.at.ticket.settle();
                continue;
            }
        };
        match router.overflow(&stream) {
            Some(overflow) => {
                overflow.recovered(r.at);
                replayed += 1;
                metrics.replayed.increment(1);
            }
            None => {
                tracing::error!(
                    %stream,
                    "spool: record of a stream no longer configured kept on disk"
                );
            }
        }
    }
    replayed
}
