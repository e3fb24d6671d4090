//! The spool's one writer: a dedicated thread (blocking file I/O never runs
//! on the async runtime) that takes every append waiting in its channel,
//! writes them as one buffer and fsyncs once — group commit — before
//! answering any of them. Throughput therefore scales with the number of
//! concurrent appenders instead of being one fsync per request.
//!
//! Invariants: an append is answered `Ok` only after its frame is fsynced
//! (`fdatasync`) and counted in the ledger; a new segment file's directory
//! entry is fsynced before anything in it is acknowledged. After an I/O
//! error the active segment is abandoned (sealed), so a half-written frame
//! can only ever be a segment's tail, which recovery cuts.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::oneshot;

use super::ledger::{now_ms, Ledger};
use super::overflow::{Located, Overflow};
use super::record::{encode_frame, HEADER_BYTES};
use super::ticket::Ticket;
use super::{segment_path, SpoolError};

/// Most appends written per fsync; bounds one group's buffer.
const MAX_GROUP: usize = 4096;
/// How long an idle appender waits before checking for shutdown again.
const IDLE_TICK: Duration = Duration::from_millis(100);

/// One request's record on its way to disk.
pub(super) struct Append {
    pub payload: Vec<u8>,
    pub reserved: u64,
    pub ticket: Arc<Ticket>,
    /// Set when the items did not go to the queue: the record waits in
    /// this overflow once it is on disk.
    pub overflow: Option<Arc<Overflow>>,
    pub done: oneshot::Sender<Result<(), SpoolError>>,
}

impl Append {
    /// The record will not be written.
    pub fn fail(self, ledger: &Ledger, err: SpoolError) {
        ledger.unreserve(self.reserved);
        self.ticket.append_failed();
        if let Some(o) = &self.overflow {
            o.append_failed();
        }
        let _ = self.done.send(Err(err));
    }
}

/// Where one append landed.
#[derive(Debug, Clone, Copy)]
pub(super) struct Place {
    pub segment: u64,
    pub ordinal: u32,
    /// Frame bytes (header included).
    pub frame: u64,
    /// Byte offset of the payload in the segment file.
    pub offset: u64,
}

/// Each append's place, and the segments closed on the way.
type Placed = (Vec<Place>, Vec<u64>);

struct Active {
    id: u64,
    file: File,
    bytes: u64,
    records: u32,
}

pub(super) struct Appender {
    pub dir: PathBuf,
    pub segment_bytes: u64,
    pub next_segment: u64,
    pub ledger: Arc<Ledger>,
}

impl Appender {
    /// Runs until every sender is gone.
    pub fn run(mut self, rx: flume::Receiver<Append>) {
        let mut active: Option<Active> = None;
        let mut buf = Vec::new();
        loop {
            let first = match rx.recv_timeout(IDLE_TICK) {
                Ok(a) => a,
                Err(flume::RecvTimeoutError::Timeout) => continue,
                Err(flume::RecvTimeoutError::Disconnected) => break,
            };
            let mut group = vec![first];
            group.extend(rx.try_iter().take(MAX_GROUP - 1));
            match self.write_group(&mut active, &group, &mut buf) {
                Ok((placed, closed)) => {
                    let now = now_ms();
                    for (a, p) in group.into_iter().zip(placed) {
                        self.ledger.appended(p.segment, p.frame, a.reserved, now);
                        self.ledger.metrics().appended_bytes.increment(p.frame);
                        a.ticket.appended(p.segment, p.ordinal);
                        if let Some(o) = &a.overflow {
                            o.located(Located {
                                segment: p.segment,
                                offset: p.offset,
                                len: a.payload.len() as u32,
                                ticket: a.ticket.clone(),
                            });
                        }
                        let _ = a.done.send(Ok(()));
                    }
                    for segment in closed {
                        self.ledger.seal(segment);
                    }
                }
                Err(e) => {
                    tracing::error!(error = %e, dir = %self.dir.display(), "spool append failed");
                    if let Some(a) = active.take() {
                        self.ledger.seal(a.id);
                    }
                    for a in group {
                        a.fail(&self.ledger, SpoolError::Io(e.to_string()));
                    }
                }
            }
        }
    }

    /// Writes and fsyncs a group; returns each append's segment and frame
    /// size, and the segments closed on the way (sealed by the caller once
    /// the group's records are counted, so none is doomed early).
    fn write_group(
        &mut self,
        active: &mut Option<Active>,
        group: &[Append],
        buf: &mut Vec<u8>,
    ) -> std::io::Result<Placed> {
        buf.clear();
        let mut placed = Vec::with_capacity(group.len());
        let mut closed = Vec::new();
        for a in group {
            let frame = (HEADER_BYTES + a.payload.len()) as u64;
            let full = active
                .as_ref()
                .is_none_or(|s| s.bytes > 0 && s.bytes + frame > self.segment_bytes);
            if full {
                if let Some(mut old) = active.take() {
                    old.file.write_all(buf)?;
                    buf.clear();
                    old.file.sync_data()?;
                    closed.push(old.id);
                }
                *active = Some(self.open_segment()?);
            }
            if let Some(s) = active.as_mut() {
                encode_frame(&a.payload, buf);
                placed.push(Place {
                    segment: s.id,
                    ordinal: s.records,
                    frame,
                    offset: s.bytes + HEADER_BYTES as u64,
                });
                s.bytes += frame;
                s.records += 1;
            }
        }
        if let Some(s) = active.as_mut() {
            s.file.write_all(buf)?;
            let started = Instant::now();
            s.file.sync_data()?;
            self.ledger
                .metrics()
                .fsync
                .record(started.elapsed().as_secs_f64());
        }
        buf.clear();
        Ok((placed, closed))
    }

    fn open_segment(&mut self) -> std::io::Result<Active> {
        let id = self.next_segment;
        self.next_segment += 1;
        let path = segment_path(&self.dir, id);
        let file = OpenOptions::new()
            .create_new(true)
            .append(true)
            .open(&path)?;
        // The new file's name must be durable before its records are acknowledged.
        File::open(&self.dir)?.sync_all()?;
        Ok(Active {
            id,
            file,
            bytes: 0,
            records: 0,
        })
    }
}
