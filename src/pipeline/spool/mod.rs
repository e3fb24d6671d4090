//! The durable spool: between the stream router and the per-table queues,
//! for requests with ack level `spooled` (and the embedded MQTT broker's
//! messages when `[spool] enabled`).
//!
//! A spooled request becomes one record (its fully mapped items, sort keys
//! assigned) appended to a segmented log in `[spool] path`; its 2xx is sent
//! once the appender thread fsynced the record (grouped with every other
//! append waiting, see [`appender`]). The items enter the queue at the same
//! time as the record is written; the record is released once all of them
//! are written or dead-lettered AND it is on disk ([`ticket`]); releases
//! are persisted lazily in a release log ([`release`], by the [`releaser`]
//! thread), and a segment file is deleted once it is closed and all its
//! records released ([`ledger`]). On start-up [`Spool::open`] scans the
//! segments ([`record`]): intact records not marked released are handed
//! back for replay (before the listeners open), damaged ones are counted
//! and logged, a torn tail is cut.
//!
//! Invariants: nothing is acknowledged before it is fsynced; nothing leaves
//! the disk before DynamoDB (or the dead-letter file) has it; a record
//! whose release was persisted is never replayed, and the persisted
//! releases are a prefix of the release order; the directory holds at most
//! `max_bytes` of segments (new appends are refused first).

mod appender;
pub mod codec;
pub mod feeder;
pub mod ledger;
pub mod overflow;
pub mod record;
pub mod release;
mod releaser;
pub mod replay;
pub mod ticket;

use std::fs::OpenOptions;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::oneshot;

use crate::telemetry::metrics::SpoolMetrics;
use appender::{Append, Appender};
use ledger::Ledger;
pub use ledger::SpoolFull;
use releaser::Releaser;
use ticket::Ticket;

/// Appends waiting for the appender thread; admission by bytes keeps it far below.
const CHANNEL_CAPACITY: usize = 65_536;
/// How often releases are persisted and released segments deleted. A
/// release not yet persisted at a crash means one more replay of an item
/// DynamoDB already has (an overwrite with the same value).
pub const RELEASE_TICK: Duration = Duration::from_millis(100);

/// Why the spool could not take or keep a record.
#[derive(Debug, Clone, thiserror::Error)]
pub enum SpoolError {
    /// Retry later (HTTP 503).
    #[error("the spool is full")]
    Full,
    /// Disk trouble: the record is not durable (HTTP 503; logged).
    #[error("spool I/O error: {0}")]
    Io(String),
    /// The appender thread is gone (shutdown).
    #[error("the spool is closed")]
    Closed,
}

/// Sizes and place of the spool.
#[derive(Debug, Clone)]
pub struct SpoolOptions {
    pub path: PathBuf,
    pub max_bytes: u64,
    pub segment_bytes: u64,
    /// How often releases are persisted ([`RELEASE_TICK`]).
    pub release_tick: Duration,
}

/// A record found at start-up, to replay: its stream and its place on disk
/// (the payload stays there until the feeder reads it back).
#[derive(Debug)]
pub struct Recovered {
    /// Its stream, or why the record does not decode.
    pub stream: Result<String, codec::DecodeError>,
    /// Its place and release handle.
    pub at: overflow::Located,
}

/// Handle to the spool; cheap to clone. The appender thread stops when the
/// last handle is dropped.
#[derive(Debug, Clone)]
pub struct Spool {
    tx: flume::Sender<Append>,
    ledger: Arc<Ledger>,
    dir: Arc<PathBuf>,
    releaser: Arc<Releaser>,
    /// Dropped with the last handle: stops the releaser thread.
    _releaser_stop: flume::Sender<()>,
}

/// Admitted bytes, returned to the ledger unless the append is submitted.
#[derive(Debug)]
pub struct Reservation {
    ledger: Arc<Ledger>,
    bytes: u64,
}

impl Drop for Reservation {
    fn drop(&mut self) {
        if self.bytes > 0 {
            self.ledger.unreserve(self.bytes);
        }
    }
}

/// Completes when the record is fsynced (or could not be).
#[derive(Debug)]
pub struct AppendWait(oneshot::Receiver<Result<(), SpoolError>>);

impl AppendWait {
    pub async fn wait(self) -> Result<(), SpoolError> {
        self.0.await.unwrap_or(Err(SpoolError::Closed))
    }
}

impl Spool {
    /// Opens (or creates) the spool directory, recovers its segments and
    /// starts the appender thread. Returns the intact records to replay.
    pub fn open(
        options: &SpoolOptions,
        metrics: SpoolMetrics,
    ) -> std::io::Result<(Spool, Vec<Recovered>)> {
        std::fs::create_dir_all(&options.path)?;
        let ledger = Arc::new(Ledger::new(options.max_bytes, metrics));
        let mut marks = release::load(&options.path)?;
        // Ids never repeat, not even those only the release log remembers.
        let mut next_segment = marks.keys().next_back().map_or(1, |id| id + 1);
        let mut recovered = Vec::new();
        let mut kept = release::Marks::new();
        for (id, path) in segments(&options.path)? {
            next_segment = next_segment.max(id + 1);
            let released = marks.remove(&id).unwrap_or_default();
            recover_segment(id, &path, &ledger, released.clone(), &mut recovered)?;
            if !released.is_empty() {
                kept.insert(id, released);
            }
        }
        // Marks of segments already deleted are dropped (their ids are never
        // reused); the rewrite is durable before the appender starts.
        let log = release::ReleaseLog::rewrite(&options.path, &kept)?;
        let releaser = Arc::new(Releaser::new(log, ledger.clone(), &options.path));
        let (releaser_stop, stop_rx) = flume::bounded(1);
        std::thread::Builder::new()
            .name("spool-releaser".into())
            .spawn({
                let (releaser, tick) = (releaser.clone(), options.release_tick);
                move || releaser.run(stop_rx, tick)
            })?;
        let (tx, rx) = flume::bounded(CHANNEL_CAPACITY);
        let appender = Appender {
            dir: options.path.clone(),
            segment_bytes: options.segment_bytes,
            next_segment,
            ledger: ledger.clone(),
        };
        std::thread::Builder::new()
            .name("spool-appender".into())
            .spawn(move || appender.run(rx))?;
        if !recovered.is_empty() {
            tracing::info!(
                records = recovered.len(),
                bytes = ledger.disk_bytes(),
                "spool: replaying unreleased records"
            );
        }
        Ok((
            Spool {
                tx,
                ledger,
                dir: Arc::new(options.path.clone()),
                releaser,
                _releaser_stop: releaser_stop,
            },
            recovered,
        ))
    }

    /// A release handle for a request about to be spooled.
    pub fn ticket(&self) -> Arc<Ticket> {
        Arc::new(Ticket::new(self.ledger.clone()))
    }

    /// Admits a record of `payload_len` bytes, or refuses it (spool full).
    pub fn reserve(&self, payload_len: usize) -> Result<Reservation, SpoolFull> {
        let bytes = (record::HEADER_BYTES + payload_len) as u64;
        self.ledger.reserve(bytes)?;
        Ok(Reservation {
            ledger: self.ledger.clone(),
            bytes,
        })
    }

    /// Hands an admitted record to the appender thread. With `overflow`
    /// (already [`overflow::Overflow::admit`]ted) the record's items are not in the
    /// queue: once on disk the record waits there for the feeder.
    pub fn submit(
        &self,
        mut reservation: Reservation,
        payload: Vec<u8>,
        ticket: Arc<Ticket>,
        overflow: Option<Arc<overflow::Overflow>>,
    ) -> AppendWait {
        let (done, rx) = oneshot::channel();
        let append = Append {
            payload,
            reserved: std::mem::take(&mut reservation.bytes),
            ticket,
            overflow,
            done,
        };
        if let Err(e) = self.tx.try_send(append) {
            let (append, err) = match e {
                flume::TrySendError::Full(a) => (a, SpoolError::Full),
                flume::TrySendError::Disconnected(a) => (a, SpoolError::Closed),
            };
            append.fail(&self.ledger, err);
        }
        AppendWait(rx)
    }

    /// The directory of the segment files.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Unreleased records.
    pub fn records(&self) -> u64 {
        self.ledger.records()
    }

    /// Disk bytes of the segment files.
    pub fn disk_bytes(&self) -> u64 {
        self.ledger.disk_bytes()
    }

    /// Metrics handles (replay counts).
    pub fn metrics(&self) -> &SpoolMetrics {
        self.ledger.metrics()
    }

    /// Persists the releases made so far and deletes released segments now
    /// (the releaser thread does it every [`RELEASE_TICK`]).
    pub fn sync_releases(&self) {
        self.releaser.flush();
    }

    /// End of a clean shutdown, after the writers drained: seals every
    /// segment, persists every release and deletes the segments fully
    /// released, so the next start replays only what is really unwritten.
    pub fn close(self) {
        self.ledger.seal_all();
        self.releaser.close();
    }
}

/// `DIR/00000000000000000042.seg`: names sort in append order.
fn segment_path(dir: &Path, id: u64) -> PathBuf {
    dir.join(format!("{id:020}.seg"))
}

fn segments(dir: &Path) -> std::io::Result<Vec<(u64, PathBuf)>> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        let id = path
            .file_name()
            .and_then(|n| n.to_str())
            .and_then(|n| n.strip_suffix(".seg"))
            .and_then(|n| n.parse::<u64>().ok());
        if let Some(id) = id {
            out.push((id, path));
        }
    }
    out.sort();
    Ok(out)
}

/// Scans one segment; its records not in `released` are to be replayed.
fn recover_segment(
    id: u64,
    path: &Path,
    ledger: &Arc<Ledger>,
    released: Vec<u32>,
    recovered: &mut Vec<Recovered>,
) -> std::io::Result<()> {
    let buf = std::fs::read(path)?;
    let scan = record::scan(&buf);
    let metrics = ledger.metrics();
    if scan.corrupted > 0 {
        metrics.corrupted.increment(scan.corrupted as u64);
        tracing::error!(
            segment = %path.display(),
            records = scan.corrupted,
            "spool: records with a bad checksum skipped (their events are lost)"
        );
    }
    let mut bytes = buf.len() as u64;
    if let Some(cut) = scan.cut_at {
        metrics.torn_tail.increment(1);
        tracing::warn!(
            segment = %path.display(),
            cut_bytes = buf.len() - cut,
            "spool: torn or damaged tail cut (a write interrupted by a crash is never acknowledged)"
        );
        let f = OpenOptions::new().write(true).open(path)?;
        f.set_len(cut as u64)?;
        f.sync_all()?;
        bytes = cut as u64;
    }
    let done: std::collections::HashSet<u32> = released.iter().copied().collect();
    let live: Vec<_> = scan
        .frames
        .into_iter()
        .filter(|f| !done.contains(&f.ordinal))
        .collect();
    let first_ms = live.first().and_then(|f| codec::time_ms(f.payload(&buf)));
    ledger.recovered(id, bytes, live.len() as u64, first_ms, released);
    for f in live {
        recovered.push(Recovered {
            stream: codec::decode(f.payload(&buf)).map(|d| d.stream),
            at: overflow::Located {
                segment: id,
                offset: f.offset as u64,
                len: f.len as u32,
                ticket: Arc::new(Ticket::recovered(ledger.clone(), id, f.ordinal)),
            },
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests;
