//! The persisted release marks: which spool records DynamoDB (or the
//! dead-letter file) already has, so that a restart after a crash replays
//! only the others.
//!
//! One append-only file, `DIR/releases.log`, of frames (the segment frame
//! format, [`super::record`]) whose payload is a run of 12-byte entries
//! `segment: u64 LE | ordinal: u32 LE`, in the order the records were
//! released. The releaser thread appends what was released since its last
//! tick and fdatasyncs (lazily, every [`super::RELEASE_TICK`]); a segment
//! file is deleted only after every release made before it was doomed is
//! persisted.
//!
//! The guarantee this buys: after a crash, the records NOT replayed are
//! exactly a prefix of the release order (a damaged frame ends the log:
//! [`super::record::scan_prefix`]), plus deleted segments, whose releases
//! lie inside that prefix. So a record is replayed only if it was never
//! confirmed or was confirmed after every record that is not replayed; a
//! replay (in append order, before any new write) cannot put an older value
//! of an upsert key back over a newer one whose release was persisted.
//!
//! The file is rewritten (temp file, fsync, rename, fsync dir) with only the
//! marks of segments still on disk at start-up and whenever it outgrows
//! [`COMPACT_BYTES`]; the rewrite holds every release so far, so it is
//! itself a flush.

use std::collections::BTreeMap;
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};

use super::record::{encode_frame, scan_prefix};

/// Entries per frame (a frame is at most 768 KiB).
const ENTRIES_PER_FRAME: usize = 65_536;
/// Bytes of one entry.
const ENTRY_BYTES: usize = 12;
/// The log is rewritten (compacted) once it is this large.
pub const COMPACT_BYTES: u64 = 4 << 20;

const FILE_NAME: &str = "releases.log";
const TEMP_NAME: &str = "releases.log.tmp";

/// Released ordinals per segment id.
pub type Marks = BTreeMap<u64, Vec<u32>>;

/// The open release log.
#[derive(Debug)]
pub struct ReleaseLog {
    dir: PathBuf,
    file: File,
    bytes: u64,
}

/// Reads the persisted marks (a missing file is an empty log).
pub fn load(dir: &Path) -> std::io::Result<Marks> {
    let buf = match std::fs::read(dir.join(FILE_NAME)) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Marks::new()),
        Err(e) => return Err(e),
    };
    let (frames, end) = scan_prefix(&buf);
    if end < buf.len() {
        tracing::warn!(
            ignored_bytes = buf.len() - end,
            "spool: release log ends in a torn or damaged frame; the releases after it will be replayed"
        );
    }
    let mut marks = Marks::new();
    for f in frames {
        for e in f.payload(&buf).chunks_exact(ENTRY_BYTES) {
            let (segment, ordinal) = decode_entry(e);
            marks.entry(segment).or_default().push(ordinal);
        }
    }
    Ok(marks)
}

impl ReleaseLog {
    /// Replaces the log with `marks` (durably) and opens it for appending.
    pub fn rewrite(dir: &Path, marks: &Marks) -> std::io::Result<Self> {
        let entries: Vec<(u64, u32)> = marks
            .iter()
            .flat_map(|(&s, ords)| ords.iter().map(move |&o| (s, o)))
            .collect();
        let temp = dir.join(TEMP_NAME);
        let mut buf = Vec::new();
        encode(&entries, &mut buf);
        {
            let mut f = File::create(&temp)?;
            f.write_all(&buf)?;
            f.sync_all()?;
        }
        std::fs::rename(&temp, dir.join(FILE_NAME))?;
        File::open(dir)?.sync_all()?;
        let file = OpenOptions::new().append(true).open(dir.join(FILE_NAME))?;
        Ok(Self {
            dir: dir.to_path_buf(),
            file,
            bytes: buf.len() as u64,
        })
    }

    /// Appends releases in release order and fdatasyncs them.
    pub fn append(&mut self, entries: &[(u64, u32)]) -> std::io::Result<()> {
        if entries.is_empty() {
            return Ok(());
        }
        let mut buf = Vec::with_capacity(entries.len() * ENTRY_BYTES + 16);
        encode(entries, &mut buf);
        self.file.write_all(&buf)?;
        self.file.sync_data()?;
        self.bytes += buf.len() as u64;
        Ok(())
    }

    /// Whether the log should be compacted.
    pub fn oversized(&self) -> bool {
        self.bytes > COMPACT_BYTES
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }
}

fn encode(entries: &[(u64, u32)], out: &mut Vec<u8>) {
    let mut payload = Vec::with_capacity(entries.len().min(ENTRIES_PER_FRAME) * ENTRY_BYTES);
    for chunk in entries.chunks(ENTRIES_PER_FRAME) {
        payload.clear();
        for &(segment, ordinal) in chunk {
            payload.extend_from_slice(&segment.to_le_bytes());
            payload.extend_from_slice(&ordinal.to_le_bytes());
        }
        encode_frame(&payload, out);
    }
}

fn decode_entry(e: &[u8]) -> (u64, u32) {
    let mut s = [0u8; 8];
    s.copy_from_slice(&e[..8]);
    let mut o = [0u8; 4];
    o.copy_from_slice(&e[8..12]);
    (u64::from_le_bytes(s), u32::from_le_bytes(o))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn appended_marks_come_back_and_a_rewrite_keeps_only_what_it_is_given() {
        let dir = tempfile::tempdir().expect("tmp");
        assert!(load(dir.path()).expect("empty").is_empty());
        let mut log = ReleaseLog::rewrite(dir.path(), &Marks::new()).expect("create");
        log.append(&[(1, 0), (2, 5)]).expect("append");
        log.append(&[(1, 3)]).expect("append");
        let marks = load(dir.path()).expect("load");
        assert_eq!(marks, Marks::from([(1, vec![0, 3]), (2, vec![5])]));
        let kept = Marks::from([(2, vec![5])]);
        ReleaseLog::rewrite(dir.path(), &kept).expect("compact");
        assert_eq!(load(dir.path()).expect("load"), kept);
    }

    #[test]
    fn a_torn_frame_ends_the_log_so_later_releases_are_not_trusted() {
        let dir = tempfile::tempdir().expect("tmp");
        let mut log = ReleaseLog::rewrite(dir.path(), &Marks::new()).expect("create");
        log.append(&[(1, 0)]).expect("append");
        log.append(&[(1, 1)]).expect("append");
        log.append(&[(1, 2)]).expect("append");
        let path = dir.path().join(FILE_NAME);
        let mut bytes = std::fs::read(&path).expect("read");
        // Damage the middle frame (a block written back out of order):
        // the third release must not count although its frame is intact.
        let frame = 8 + ENTRY_BYTES;
        bytes[frame + 10] ^= 0xff;
        std::fs::write(&path, &bytes).expect("write");
        assert_eq!(load(dir.path()).expect("load"), Marks::from([(1, vec![0])]));
    }
}
