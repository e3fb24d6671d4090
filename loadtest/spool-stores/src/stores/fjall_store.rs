//! fjall (LSM tree with a journal): one write batch per group of appends,
//! committed with `PersistMode::SyncData` (fdatasync of the journal, as
//! the gateway's log does); release = remove the keys (tombstones), 4,096
//! per durable batch. Background flushes and compactions run in fjall's
//! own worker threads (their I/O and CPU are counted: same process).

use std::path::Path;

use fjall::{Database, Keyspace, KeyspaceCreateOptions, PersistMode};

use super::{Group, Sink, RELEASE_CHUNK};

pub struct Db {
    db: Database,
    ks: Keyspace,
    live: Vec<u64>,
}

pub fn open(dir: &Path) -> anyhow::Result<(Group<Db>, Vec<u64>)> {
    let db = Database::builder(dir).open()?;
    let ks = db.keyspace("spool", KeyspaceCreateOptions::default)?;
    let mut seqs = Vec::new();
    for kv in ks.iter() {
        let (k, v) = kv.into_inner()?;
        let seq = super::check(&v)?;
        anyhow::ensure!(*k == seq.to_be_bytes(), "key {k:?} holds record {seq}");
        seqs.push(seq);
    }
    let live = seqs.clone();
    Ok((Group::spawn(Db { db, ks, live }), seqs))
}

impl Sink for Db {
    fn commit(&mut self, group: &[(u64, Vec<u8>)]) -> anyhow::Result<()> {
        let mut batch = self.db.batch().durability(Some(PersistMode::SyncData));
        for (seq, p) in group {
            batch.insert(&self.ks, seq.to_be_bytes(), p.as_slice());
        }
        batch.commit()?;
        self.live.extend(group.iter().map(|(s, _)| *s));
        Ok(())
    }
}

impl super::Store for Group<Db> {
    fn append(&self, seq: u64, payload: &[u8]) -> anyhow::Result<()> {
        Group::append(self, seq, payload)
    }

    fn release_all(self: Box<Self>) -> anyhow::Result<()> {
        let mut db = self.stop()?;
        db.live.sort_unstable();
        for chunk in db.live.chunks(RELEASE_CHUNK) {
            let mut batch = db.db.batch().durability(Some(PersistMode::SyncData));
            for seq in chunk {
                batch.remove(&db.ks, seq.to_be_bytes());
            }
            batch.commit()?;
        }
        Ok(())
    }
}
