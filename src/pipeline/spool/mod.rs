//! The durable spool: between the stream router and the per-table queues,
//! for requests with ack level `spooled` (and the embedded MQTT broker's
//! messages when `[spool] enabled`).
//!
//! A spooled request becomes one record (its fully mapped items, sort keys
//! assigned) appended to a segmented log in `[spool] path`; its 2xx is sent
//! once the appender thread fsynced the record (grouped with every other
//! append waiting, see [`appender`]). The items enter the queue at the same
//! time as the record is written; the record is released once all of them
//! are written or dead-lettered AND it is on disk ([`ticket`]), and a
//! segment file is deleted once it is closed and all its records released
//! ([`ledger`]). On start-up [`Spool::open`] scans the segments ([`record`]):
//! intact records are handed back for replay (before the listeners open),
//! damaged ones are counted and logged, a torn tail is cut.
//!
//! Invariants: nothing is acknowledged before it is fsynced; nothing leaves
//! the disk before DynamoDB (or the dead-letter file) has it; the directory
//! holds at most `max_bytes` of segments (new appends are refused first).

mod appender;
pub mod codec;
pub mod ledger;
pub mod record;
pub mod replay;
pub mod ticket;

use std::fs::OpenOptions;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use tokio::sync::oneshot;

use crate::telemetry::metrics::SpoolMetrics;
use appender::{Append, Appender};
use ledger::Ledger;
pub use ledger::SpoolFull;
use ticket::Ticket;

/// Appends waiting for the appender thread; admission by bytes keeps it far below.
const CHANNEL_CAPACITY: usize = 65_536;

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
}

/// A record found at start-up, to replay.
#[derive(Debug)]
pub struct Recovered {
    pub payload: Vec<u8>,
    /// Its release handle (already on disk).
    pub ticket: Arc<Ticket>,
}

/// Handle to the spool; cheap to clone. The appender thread stops when the
/// last handle is dropped.
#[derive(Debug, Clone)]
pub struct Spool {
    tx: flume::Sender<Append>,
    ledger: Arc<Ledger>,
    dir: Arc<PathBuf>,
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
        let mut recovered = Vec::new();
        let mut next_segment = 1;
        for (id, path) in segments(&options.path)? {
            next_segment = next_segment.max(id + 1);
            recover_segment(id, &path, &ledger, &mut recovered)?;
        }
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

    /// Hands an admitted record to the appender thread.
    pub fn submit(
        &self,
        mut reservation: Reservation,
        payload: Vec<u8>,
        ticket: Arc<Ticket>,
    ) -> AppendWait {
        let (done, rx) = oneshot::channel();
        let append = Append {
            payload,
            reserved: std::mem::take(&mut reservation.bytes),
            ticket,
            done,
        };
        if let Err(e) = self.tx.try_send(append) {
            let (append, err) = match e {
                flume::TrySendError::Full(a) => (a, SpoolError::Full),
                flume::TrySendError::Disconnected(a) => (a, SpoolError::Closed),
            };
            self.ledger.unreserve(append.reserved);
            append.ticket.append_failed();
            let _ = append.done.send(Err(err));
        }
        AppendWait(rx)
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

    /// End of a clean shutdown, after the writers drained: seals every
    /// segment and deletes those fully released, so the next start replays
    /// only what is really unwritten.
    pub fn close(self) {
        self.ledger.seal_all();
        for id in self.ledger.take_doomed() {
            let _ = std::fs::remove_file(segment_path(&self.dir, id));
        }
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

fn recover_segment(
    id: u64,
    path: &Path,
    ledger: &Arc<Ledger>,
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
    let first_ms = scan
        .frames
        .first()
        .and_then(|&(o, l)| codec::time_ms(&buf[o..o + l]));
    ledger.recovered(id, bytes, scan.frames.len() as u64, first_ms);
    for (o, l) in scan.frames {
        recovered.push(Recovered {
            payload: buf[o..o + l].to_vec(),
            ticket: Arc::new(Ticket::recovered(ledger.clone(), id)),
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests;
