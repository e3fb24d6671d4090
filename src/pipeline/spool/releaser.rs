//! The releaser: persists release marks and deletes released segments, on
//! its own thread (its fsyncs never delay an append's group commit) every
//! [`super::RELEASE_TICK`], and once more at a clean close.
//!
//! Invariant: a segment file is deleted only after the release log holds
//! every release made before the segment was doomed (taken together from
//! the ledger, persisted, then deleted), which keeps the persisted releases
//! a prefix of the release order ([`super::release`]).

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use super::ledger::Ledger;
use super::release::ReleaseLog;
use super::segment_path;

#[derive(Debug)]
struct Log {
    file: ReleaseLog,
    /// The last write failed: the next flush rewrites the whole log.
    broken: bool,
    /// [`Releaser::close`] ran: the files are no longer this process's to
    /// touch (a test may reopen the directory right away).
    closed: bool,
}

/// Shared by the releaser thread and [`super::Spool::close`].
#[derive(Debug)]
pub(super) struct Releaser {
    log: Mutex<Log>,
    ledger: Arc<Ledger>,
    dir: PathBuf,
}

impl Releaser {
    pub fn new(file: ReleaseLog, ledger: Arc<Ledger>, dir: &Path) -> Self {
        Self {
            log: Mutex::new(Log {
                file,
                broken: false,
                closed: false,
            }),
            ledger,
            dir: dir.to_path_buf(),
        }
    }

    /// Runs until every sender of `stop` is gone. Without a
    /// [`Releaser::close`] the last releases stay unpersisted, as in a crash.
    pub fn run(&self, stop: flume::Receiver<()>, tick: std::time::Duration) {
        while let Err(flume::RecvTimeoutError::Timeout) = stop.recv_timeout(tick) {
            self.flush();
            self.ledger.publish_age();
        }
    }

    /// Persists the releases made so far, then deletes the segments doomed
    /// before them.
    pub fn flush(&self) {
        let mut log = self.log.lock().unwrap_or_else(|e| e.into_inner());
        if !log.closed {
            self.flush_locked(&mut log);
        }
    }

    /// A last flush; nothing is written after it.
    pub fn close(&self) {
        let mut log = self.log.lock().unwrap_or_else(|e| e.into_inner());
        if !log.closed {
            self.flush_locked(&mut log);
            log.closed = true;
        }
    }

    fn flush_locked(&self, log: &mut Log) {
        let (persisted, doomed) = if log.broken || log.file.oversized() {
            let (marks, doomed) = self.ledger.take_marks();
            let r = ReleaseLog::rewrite(&self.dir, &marks).map(|f| log.file = f);
            (r, doomed)
        } else {
            let f = self.ledger.take_flush();
            (log.file.append(&f.releases), f.doomed)
        };
        match persisted {
            Ok(()) => {
                log.broken = false;
                self.delete(&doomed);
            }
            Err(e) => {
                tracing::error!(
                    error = %e,
                    dir = %self.dir.display(),
                    "spool: cannot persist release marks; released segments are kept until it works"
                );
                log.broken = true;
                self.ledger.return_doomed(doomed);
            }
        }
    }

    /// A segment whose file could not be deleted keeps its marks (they are
    /// what stops its records from being replayed).
    fn delete(&self, doomed: &[u64]) {
        let mut gone = Vec::with_capacity(doomed.len());
        for &id in doomed {
            let path = segment_path(&self.dir, id);
            match std::fs::remove_file(&path) {
                Ok(()) => gone.push(id),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => gone.push(id),
                Err(e) => {
                    tracing::warn!(error = %e, path = %path.display(), "cannot delete a released spool segment");
                }
            }
        }
        self.ledger.forget(&gone);
    }
}
