//! A minimal segmented log: the gateway's frame (`len | crc32c | payload`,
//! `record::encode_frame`/`scan` reused from the gateway library), one
//! writer thread with group commit (write one buffer, `fdatasync`),
//! 16 MiB segment files, release = delete whole segment files. No release
//! marks, no accounting: the floor any hand-written log starts from.
//! `minimal-pre` is the same log with each segment preallocated
//! (`set_len` to 16 MiB at creation, frames written at their offset): the
//! fdatasync of an append then no longer changes the file size. The scan
//! already cuts a zeroed tail (`record::scan`: length 0 = end).

use std::fs::{File, OpenOptions};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use dynamo_ingest::pipeline::spool::record::{encode_frame, scan};

use super::{Group, Sink, SEGMENT_BYTES};

pub struct Log {
    dir: PathBuf,
    next: u64,
    active: Option<(File, u64)>,
    buf: Vec<u8>,
    prealloc: bool,
}

fn segments(dir: &Path) -> std::io::Result<Vec<(u64, PathBuf)>> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir)? {
        let path = e?.path();
        let id = path.file_name().and_then(|n| n.to_str());
        if let Some(id) = id.and_then(|n| n.strip_suffix(".log")?.parse().ok()) {
            out.push((id, path));
        }
    }
    out.sort();
    Ok(out)
}

pub fn open(dir: &Path, prealloc: bool) -> anyhow::Result<(Group<Log>, Vec<u64>)> {
    let mut seqs = Vec::new();
    let mut next = 1;
    for (id, path) in segments(dir)? {
        next = id + 1;
        let buf = std::fs::read(&path)?;
        let s = scan(&buf);
        for f in &s.frames {
            seqs.push(super::check(f.payload(&buf))?);
        }
        if let Some(cut) = s.cut_at {
            let f = OpenOptions::new().write(true).open(&path)?;
            f.set_len(cut as u64)?;
            f.sync_all()?;
        }
    }
    let log = Log {
        dir: dir.to_path_buf(),
        next,
        active: None,
        buf: Vec::new(),
        prealloc,
    };
    Ok((Group::spawn(log), seqs))
}

impl Sink for Log {
    fn commit(&mut self, group: &[(u64, Vec<u8>)]) -> anyhow::Result<()> {
        self.buf.clear();
        for (_, p) in group {
            encode_frame(p, &mut self.buf);
        }
        let full = self
            .active
            .as_ref()
            .is_none_or(|(_, len)| *len > 0 && len + self.buf.len() as u64 > SEGMENT_BYTES);
        if full {
            let path = self.dir.join(format!("{:020}.log", self.next));
            self.next += 1;
            let f = OpenOptions::new().create_new(true).write(true).open(path)?;
            if self.prealloc {
                f.set_len(SEGMENT_BYTES)?;
                f.sync_all()?;
            }
            File::open(&self.dir)?.sync_all()?;
            self.active = Some((f, 0));
        }
        if let Some((f, len)) = self.active.as_mut() {
            f.write_all_at(&self.buf, *len)?;
            f.sync_data()?;
            *len += self.buf.len() as u64;
        }
        Ok(())
    }
}

impl super::Store for Group<Log> {
    fn append(&self, seq: u64, payload: &[u8]) -> anyhow::Result<()> {
        Group::append(self, seq, payload)
    }

    fn release_all(self: Box<Self>) -> anyhow::Result<()> {
        let log = self.stop()?;
        for (_, path) in segments(&log.dir)? {
            std::fs::remove_file(path)?;
        }
        File::open(&log.dir)?.sync_all()?;
        Ok(())
    }
}
