//! The gateway's own spool (`dynamo_ingest::pipeline::spool`), used as the
//! gateway uses it: reserve, submit, wait for the fsync; a record is
//! released by settling its ticket; `close` persists the releases and
//! deletes the released segments.

use std::collections::hash_map::{Entry, HashMap};
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::Context;
use dynamo_ingest::pipeline::spool::ticket::Ticket;
use dynamo_ingest::pipeline::spool::{Spool, SpoolOptions};
use dynamo_ingest::telemetry::metrics::SpoolMetrics;

pub struct SpoolStore {
    spool: Spool,
    rt: tokio::runtime::Runtime,
    tickets: Mutex<Vec<Arc<Ticket>>>,
}

impl SpoolStore {
    pub fn open(dir: &Path) -> anyhow::Result<(Self, Vec<u64>)> {
        let options = SpoolOptions {
            path: dir.to_path_buf(),
            max_bytes: 4 << 30,
            segment_bytes: super::SEGMENT_BYTES,
            release_tick: Duration::from_millis(100),
        };
        let (spool, recovered) = Spool::open(&options, SpoolMetrics::register())?;
        // Each segment is read once and the records are sliced out of it
        // (as Spool::open's own scan does), then checked byte for byte.
        let mut files: HashMap<u64, Vec<u8>> = HashMap::new();
        let mut seqs = Vec::with_capacity(recovered.len());
        let mut tickets = Vec::with_capacity(recovered.len());
        for r in recovered {
            let at = r.at;
            let buf = match files.entry(at.segment) {
                Entry::Occupied(e) => e.into_mut(),
                Entry::Vacant(e) => {
                    e.insert(std::fs::read(dir.join(format!("{:020}.seg", at.segment)))?)
                }
            };
            let (start, end) = (at.offset as usize, at.offset as usize + at.len as usize);
            let payload = buf
                .get(start..end)
                .with_context(|| format!("segment {}: {start}..{end} past its end", at.segment))?;
            seqs.push(super::check(payload)?);
            tickets.push(at.ticket);
        }
        let rt = tokio::runtime::Builder::new_current_thread().build()?;
        let store = Self {
            spool,
            rt,
            tickets: Mutex::new(tickets),
        };
        Ok((store, seqs))
    }
}

impl super::Store for SpoolStore {
    fn append(&self, _seq: u64, payload: &[u8]) -> anyhow::Result<()> {
        let ticket = self.spool.ticket();
        let reservation = self
            .spool
            .reserve(payload.len())
            .map_err(|_| anyhow::anyhow!("spool full"))?;
        let wait = self
            .spool
            .submit(reservation, payload.to_vec(), ticket.clone(), None);
        self.rt.handle().block_on(wait.wait())?;
        self.tickets
            .lock()
            .map_err(|_| anyhow::anyhow!("poisoned"))?
            .push(ticket);
        Ok(())
    }

    fn release_all(self: Box<Self>) -> anyhow::Result<()> {
        let tickets = self
            .tickets
            .into_inner()
            .map_err(|_| anyhow::anyhow!("poisoned"))?;
        for t in &tickets {
            t.settle();
        }
        self.spool.close();
        Ok(())
    }
}
