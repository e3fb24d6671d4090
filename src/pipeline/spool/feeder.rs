//! The feeder: one task per table that moves the table's overflow records
//! ([`super::overflow`]) from disk into its in-memory queue as the queue
//! drains, oldest first. Start-up replay goes the same way.
//!
//! A record is read back by its place (a blocking read, batched onto the
//! blocking pool), checked against its checksum, decoded to its original
//! items (same keys, same sort keys) and pushed whole; a full queue is
//! waited out ([`QueueSender::room`]). A record that no longer reads back
//! intact is counted as corrupted, logged and released (its events are
//! lost: the disk changed under us).
//!
//! Shutdown: the feeder keeps feeding during the grace period and stops
//! once nothing waits, or at the deadline (`abort`): what it did not feed
//! stays on disk, unreleased, and is replayed at the next start.

use std::collections::HashMap;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use tokio_util::sync::CancellationToken;

use super::codec::{self, Decoded};
use super::overflow::{Located, Overflow};
use super::{record, segment_path};
use crate::event::Item;
use crate::pipeline::ack::Ack;
use crate::pipeline::queue::QueueSender;
use crate::telemetry::metrics::SpoolMetrics;

/// Records read per trip to the blocking pool.
const BATCH: usize = 64;

/// One table's feeder.
#[derive(Debug)]
pub struct Feeder {
    pub table: String,
    pub overflow: Arc<Overflow>,
    pub queue: Arc<QueueSender>,
    /// The table's streams by name (a record names its stream).
    pub streams: HashMap<String, Arc<str>>,
    pub dir: PathBuf,
    pub metrics: SpoolMetrics,
}

impl Feeder {
    /// Feeds until shutdown with nothing waiting, or until `abort`.
    pub async fn run(self, shutdown: CancellationToken, abort: CancellationToken) {
        loop {
            let batch = self.overflow.front(BATCH);
            if batch.is_empty() {
                if shutdown.is_cancelled() && self.overflow.waiting() == 0 {
                    return;
                }
                tokio::select! {
                    _ = self.overflow.changed() => {}
                    _ = shutdown.cancelled(), if !shutdown.is_cancelled() => {}
                    _ = abort.cancelled() => return,
                }
                continue;
            }
            let dir = self.dir.clone();
            let places: Vec<(u64, u64, u32)> =
                batch.iter().map(|l| (l.segment, l.offset, l.len)).collect();
            let read = tokio::task::spawn_blocking(move || read_all(&dir, &places)).await;
            let payloads = match read {
                Ok(p) => p,
                Err(e) => {
                    tracing::error!(error = %e, "spool feeder: read task failed");
                    return;
                }
            };
            for (at, payload) in batch.into_iter().zip(payloads) {
                if !self.feed(at, payload, &abort).await {
                    return;
                }
            }
        }
    }

    /// Pushes one record's items; false at `abort`.
    async fn feed(
        &self,
        at: Located,
        payload: std::io::Result<Option<Vec<u8>>>,
        abort: &CancellationToken,
    ) -> bool {
        let decoded = match payload {
            Ok(Some(p)) => codec::decode(&p).map_err(|e| e.to_string()),
            Ok(None) => Err("its checksum no longer matches".to_owned()),
            Err(e) => Err(e.to_string()),
        };
        let mut items = match decoded.and_then(|d| self.items(&d, &at)) {
            Ok(items) => items,
            Err(reason) => {
                tracing::error!(
                    table = %self.table,
                    segment = at.segment,
                    offset = at.offset,
                    %reason,
                    "spool: a waiting record cannot be read back; its events are lost"
                );
                self.metrics.corrupted.increment(1);
                at.ticket.settle();
                self.overflow.fed();
                return true;
            }
        };
        loop {
            let room = self.queue.room();
            match self.queue.push_or_return(items) {
                Ok(()) => {
                    self.overflow.fed();
                    return true;
                }
                Err(back) => items = back,
            }
            tokio::select! {
                _ = room => {}
                _ = abort.cancelled() => return false,
            }
        }
    }

    fn items(&self, d: &Decoded, at: &Located) -> Result<Vec<Item>, String> {
        let stream = self
            .streams
            .get(&d.stream)
            .ok_or_else(|| format!("stream `{}` is not one of this table's", d.stream))?;
        let ack = Arc::new(Ack::spooled(d.items.len(), at.ticket.clone()));
        let now = Instant::now();
        Ok(d.items
            .iter()
            .map(|it| Item {
                size: it.size as u32,
                text: it.text.clone(),
                stream: stream.clone(),
                received: now,
                acks: smallvec::smallvec![ack.clone()],
            })
            .collect())
    }
}

/// Reads records back by place, reusing the open file of a segment.
fn read_all(dir: &Path, places: &[(u64, u64, u32)]) -> Vec<std::io::Result<Option<Vec<u8>>>> {
    let mut open: Option<(u64, File)> = None;
    places
        .iter()
        .map(|&(segment, offset, len)| {
            if open.as_ref().is_none_or(|(id, _)| *id != segment) {
                open = Some((segment, File::open(segment_path(dir, segment))?));
            }
            match &open {
                Some((_, f)) => record::read_at(f, offset, len),
                None => Err(std::io::Error::other("no segment file")),
            }
        })
        .collect()
}

/// One record's payload by its place (tests and tools).
pub fn read_payload(dir: &Path, at: &Located) -> std::io::Result<Option<Vec<u8>>> {
    let f = File::open(segment_path(dir, at.segment))?;
    record::read_at(&f, at.offset, at.len)
}
