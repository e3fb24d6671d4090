//! redb (copy-on-write B-tree, one file): one write transaction with
//! `Durability::Immediate` per group of appends (redb commits one writer
//! at a time, so concurrent appends are grouped by the writer thread);
//! release = remove the keys, 4,096 per durable transaction.

use std::path::Path;
use std::sync::Arc;

use redb::{Database, Durability, ReadableDatabase, TableDefinition};

use super::{Group, Sink, RELEASE_CHUNK};

const TABLE: TableDefinition<u64, &[u8]> = TableDefinition::new("spool");

pub struct Db {
    db: Arc<Database>,
    live: Vec<u64>,
}

pub fn open(dir: &Path) -> anyhow::Result<(Group<Db>, Vec<u64>)> {
    let db = Database::builder().create(dir.join("spool.redb"))?;
    let tx = db.begin_write()?;
    tx.open_table(TABLE)?;
    tx.commit()?;
    let mut seqs = Vec::new();
    let tx = db.begin_read()?;
    let table = tx.open_table(TABLE)?;
    for kv in table.range::<u64>(..)? {
        let (k, v) = kv?;
        let seq = super::check(v.value())?;
        anyhow::ensure!(seq == k.value(), "key {} holds record {seq}", k.value());
        seqs.push(seq);
    }
    drop(table);
    drop(tx);
    let live = seqs.clone();
    Ok((
        Group::spawn(Db {
            db: Arc::new(db),
            live,
        }),
        seqs,
    ))
}

impl Sink for Db {
    fn commit(&mut self, group: &[(u64, Vec<u8>)]) -> anyhow::Result<()> {
        let mut tx = self.db.begin_write()?;
        tx.set_durability(Durability::Immediate)?;
        {
            let mut table = tx.open_table(TABLE)?;
            for (seq, p) in group {
                table.insert(seq, p.as_slice())?;
            }
        }
        tx.commit()?;
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
            let mut tx = db.db.begin_write()?;
            tx.set_durability(Durability::Immediate)?;
            {
                let mut table = tx.open_table(TABLE)?;
                for seq in chunk {
                    table.remove(seq)?;
                }
            }
            tx.commit()?;
        }
        Ok(())
    }
}
