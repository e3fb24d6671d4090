//! okaywal (a write-ahead log with checkpointing): concurrent appenders
//! call `begin_entry`/`write_chunk`/`commit` themselves; okaywal serialises
//! the writes and lets one committer `fdatasync` for all who wait (its own
//! group commit). Its checkpoint model is per file and size-driven: when
//! a file passes `checkpoint_after_bytes` it calls `checkpoint_to` and
//! then recycles the file, and at open it checkpoints every recovered file
//! but the newest. A spool cannot let go of records DynamoDB does not have
//! yet, so here the threshold is set beyond the run (one file, never
//! checkpointed while appending) and release = `checkpoint_active` (the
//! manager accepts: everything is released) followed by `shutdown`.

use std::io;
use std::path::Path;
use std::sync::{Arc, Mutex};

use okaywal::{Configuration, Entry, EntryId, LogManager, SegmentReader, WriteAheadLog};

#[derive(Debug, Default)]
struct Manager {
    recovered: Arc<Mutex<Vec<Vec<u8>>>>,
}

impl LogManager for Manager {
    fn recover(&mut self, entry: &mut Entry<'_>) -> io::Result<()> {
        // `None`: an entry not completely written (never acknowledged). A
        // torn last chunk is not reported that way but as an error:
        // `InvalidData` "crc check failed" when its bytes are zeros of the
        // preallocated file, `Other` "crc cannot be checked before reading
        // all chunk bytes" when the file ends inside it (seen after a
        // SIGKILL). Propagated with `?` as in okaywal's own example, either
        // fails the whole open, so here any error skips the entry (counted;
        // the check against the acknowledged records tells if that loses one).
        match entry.read_all_chunks() {
            Ok(Some(chunks)) => {
                let mut r = self
                    .recovered
                    .lock()
                    .map_err(|_| io::Error::other("poisoned"))?;
                r.push(chunks.concat());
            }
            Ok(None) => {}
            Err(e) => eprintln!("okaywal: entry {:?} skipped: {e}", entry.id()),
        }
        Ok(())
    }

    fn checkpoint_to(
        &mut self,
        _last: EntryId,
        _entries: &mut SegmentReader,
        _wal: &WriteAheadLog,
    ) -> io::Result<()> {
        Ok(())
    }
}

pub struct Wal(WriteAheadLog);

pub fn open(dir: &Path) -> anyhow::Result<(Wal, Vec<u64>)> {
    let manager = Manager::default();
    let recovered = manager.recovered.clone();
    let wal = Configuration::default_for(dir)
        .checkpoint_after_bytes(1 << 40)
        .open(manager)?;
    let payloads = std::mem::take(&mut *recovered.lock().map_err(|_| anyhow::anyhow!("poisoned"))?);
    let seqs = payloads
        .iter()
        .map(|p| super::check(p))
        .collect::<anyhow::Result<_>>()?;
    Ok((Wal(wal), seqs))
}

impl super::Store for Wal {
    fn append(&self, _seq: u64, payload: &[u8]) -> anyhow::Result<()> {
        let mut entry = self.0.begin_entry()?;
        entry.write_chunk(payload)?;
        entry.commit()?;
        Ok(())
    }

    fn release_all(self: Box<Self>) -> anyhow::Result<()> {
        self.0.checkpoint_active()?;
        self.0.shutdown()?;
        Ok(())
    }
}
