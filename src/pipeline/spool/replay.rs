//! Start-up replay: records the previous run left unreleased go back into
//! the queues before any listener opens, each with its original items (same
//! keys, same sort keys: DynamoDB overwrites, nothing is duplicated).
//!
//! A full queue is waited out (the writers are already running); a record
//! whose stream is no longer configured stays on disk and is logged.

use std::time::Duration;

use tokio_util::sync::CancellationToken;

use super::{codec, Recovered};
use crate::pipeline::router::{ReplayError, Router};
use crate::telemetry::metrics::SpoolMetrics;

/// Longest pause between two offers of a record to a full queue.
const MAX_BACKOFF: Duration = Duration::from_millis(50);

/// Replays `recovered` into the router's queues; returns the records replayed.
pub async fn replay(
    router: &Router,
    recovered: Vec<Recovered>,
    metrics: &SpoolMetrics,
    stop: &CancellationToken,
) -> usize {
    let mut replayed = 0;
    for r in recovered {
        let decoded = match codec::decode(&r.payload) {
            Ok(d) => d,
            Err(e) => {
                // Its checksum held, so the bytes are what was written: a
                // record no version of this code can read. Release it rather
                // than pin its segment forever.
                tracing::error!(error = %e, "spool: undecodable record dropped");
                metrics.corrupted.increment(1);
                r.ticket.settle();
                continue;
            }
        };
        let mut backoff = Duration::from_millis(1);
        loop {
            match router.replay(&decoded, r.ticket.clone()) {
                Ok(()) => {
                    replayed += 1;
                    metrics.replayed.increment(1);
                    break;
                }
                Err(ReplayError::UnknownStream) => {
                    tracing::error!(
                        stream = %decoded.stream,
                        "spool: record of a stream no longer configured kept on disk"
                    );
                    break;
                }
                Err(ReplayError::QueueFull) => {
                    if stop.is_cancelled() {
                        return replayed;
                    }
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(MAX_BACKOFF);
                }
            }
        }
    }
    replayed
}
