//! The five stores behind one interface, and what they share: the record
//! payload (derived from its sequence number, so every read-back is
//! checked byte for byte) and the group-commit writer thread used by the
//! stores that do not group concurrent commits themselves.

pub mod fjall_store;
pub mod minimal;
pub mod okaywal_store;
pub mod redb_store;
pub mod spool;

use std::path::Path;
use std::thread::JoinHandle;

use anyhow::{bail, Context};
use rand::{rngs::SmallRng, RngCore, SeedableRng};

/// Payload bytes of one record (the sequence number is the first 8).
pub const PAYLOAD_BYTES: usize = 300;
/// Most appends one group commit takes (the gateway's appender uses the same).
pub const MAX_GROUP: usize = 4096;
/// Deletes per durable commit when releasing (redb, fjall).
pub const RELEASE_CHUNK: usize = 4096;
/// Segment file size of the two segmented logs.
pub const SEGMENT_BYTES: u64 = 16 << 20;

pub const NAMES: [&str; 6] = [
    "spool",
    "minimal",
    "minimal-pre",
    "redb",
    "fjall",
    "okaywal",
];

/// One store under test. `append` returns once the record is durable.
pub trait Store: Send + Sync {
    fn append(&self, seq: u64, payload: &[u8]) -> anyhow::Result<()>;
    /// Releases every record it holds (the ones recovered at open and
    /// the ones appended since), durably, in append order, then closes.
    fn release_all(self: Box<Self>) -> anyhow::Result<()>;
}

/// Opens (or creates) the store `name` in `dir` and reads back every live
/// record: the checked sequence numbers, in the store's order.
pub fn open(name: &str, dir: &Path) -> anyhow::Result<(Box<dyn Store>, Vec<u64>)> {
    std::fs::create_dir_all(dir)?;
    Ok(match name {
        "spool" => boxed(spool::SpoolStore::open(dir)?),
        "minimal" => boxed(minimal::open(dir, false)?),
        "minimal-pre" => boxed(minimal::open(dir, true)?),
        "redb" => boxed(redb_store::open(dir)?),
        "fjall" => boxed(fjall_store::open(dir)?),
        "okaywal" => boxed(okaywal_store::open(dir)?),
        _ => bail!("unknown store {name:?} (one of {NAMES:?})"),
    })
}

fn boxed<S: Store + 'static>((s, seqs): (S, Vec<u64>)) -> (Box<dyn Store>, Vec<u64>) {
    (Box::new(s), seqs)
}

/// The payload of record `seq`: its number, then bytes from a PRNG seeded with it.
pub fn payload(seq: u64) -> Vec<u8> {
    let mut out = vec![0; PAYLOAD_BYTES];
    out[..8].copy_from_slice(&seq.to_le_bytes());
    SmallRng::seed_from_u64(seq).fill_bytes(&mut out[8..]);
    out
}

/// The sequence number of a payload read back, after checking every byte.
pub fn check(payload: &[u8]) -> anyhow::Result<u64> {
    let head: [u8; 8] = payload
        .get(..8)
        .and_then(|h| h.try_into().ok())
        .context("payload shorter than its sequence number")?;
    let seq = u64::from_le_bytes(head);
    if payload != self::payload(seq).as_slice() {
        bail!("record {seq}: payload differs from what was written");
    }
    Ok(seq)
}

/// What a group-commit writer thread writes: one durable commit per group.
pub trait Sink: Send + 'static {
    fn commit(&mut self, group: &[(u64, Vec<u8>)]) -> anyhow::Result<()>;
}

struct Req {
    seq: u64,
    payload: Vec<u8>,
    done: flume::Sender<Result<(), String>>,
}

/// One writer thread that takes every append waiting in its channel,
/// commits them together and answers them all (group commit), as the
/// gateway's appender does.
pub struct Group<S: Sink> {
    tx: Option<flume::Sender<Req>>,
    thread: Option<JoinHandle<S>>,
}

impl<S: Sink> Group<S> {
    pub fn spawn(mut sink: S) -> Self {
        let (tx, rx) = flume::bounded::<Req>(65_536);
        let thread = std::thread::spawn(move || {
            let mut group = Vec::new();
            let mut waiting = Vec::new();
            while let Ok(first) = rx.recv() {
                for r in std::iter::once(first).chain(rx.try_iter().take(MAX_GROUP - 1)) {
                    group.push((r.seq, r.payload));
                    waiting.push(r.done);
                }
                let res = sink.commit(&group).map_err(|e| format!("{e:#}"));
                for done in waiting.drain(..) {
                    let _ = done.send(res.clone());
                }
                group.clear();
            }
            sink
        });
        Self {
            tx: Some(tx),
            thread: Some(thread),
        }
    }

    pub fn append(&self, seq: u64, payload: &[u8]) -> anyhow::Result<()> {
        let (done, wait) = flume::bounded(1);
        let req = Req {
            seq,
            payload: payload.to_vec(),
            done,
        };
        self.tx
            .as_ref()
            .context("writer stopped")?
            .send(req)
            .ok()
            .context("writer thread gone")?;
        wait.recv()
            .context("writer thread gone")?
            .map_err(anyhow::Error::msg)
    }

    /// Stops the writer thread and hands its sink back.
    pub fn stop(mut self) -> anyhow::Result<S> {
        drop(self.tx.take());
        self.thread
            .take()
            .context("stopped twice")?
            .join()
            .map_err(|_| anyhow::anyhow!("writer thread panicked"))
    }
}

/// Dropping the handle waits for the writer thread, so the store's files
/// are closed (and its lock released) before anything reopens them.
impl<S: Sink> Drop for Group<S> {
    fn drop(&mut self) {
        drop(self.tx.take());
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}
