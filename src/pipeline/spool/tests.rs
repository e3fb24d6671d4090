//! Unit tests of the spool as a whole: append, recovery, release and
//! segment deletion, damage, full. Real files in a temporary directory.

use std::time::{Duration, Instant};

use super::*;

fn options(dir: &Path, max_bytes: u64, segment_bytes: u64) -> SpoolOptions {
    SpoolOptions {
        path: dir.to_path_buf(),
        max_bytes,
        segment_bytes,
    }
}

fn open(o: &SpoolOptions) -> (Spool, Vec<Recovered>) {
    Spool::open(o, SpoolMetrics::register()).expect("opens")
}

async fn append(spool: &Spool, payload: &[u8]) -> Arc<Ticket> {
    let ticket = spool.ticket();
    let r = spool.reserve(payload.len()).expect("room");
    spool
        .submit(r, payload.to_vec(), ticket.clone())
        .wait()
        .await
        .expect("fsynced");
    ticket
}

fn seg_files(dir: &Path) -> Vec<u64> {
    segments(dir)
        .expect("list")
        .into_iter()
        .map(|(id, _)| id)
        .collect()
}

/// Deletion happens on the appender thread: poll with a deadline.
fn eventually(what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(5);
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting: {what}");
        std::thread::park_timeout(Duration::from_millis(10));
    }
}

fn payload(i: u32) -> Vec<u8> {
    let mut p = (i as u64).to_le_bytes().to_vec();
    p.extend_from_slice(format!("record-{i}").as_bytes());
    p
}

#[tokio::test]
async fn appended_records_come_back_after_reopen_in_order() {
    let dir = tempfile::tempdir().expect("tmp");
    let o = options(dir.path(), 1 << 20, 4096);
    let (spool, recovered) = open(&o);
    assert!(recovered.is_empty());
    // Concurrent appenders share fsyncs.
    let tasks: Vec<_> = (0..64)
        .map(|i| {
            let spool = spool.clone();
            tokio::spawn(async move { append(&spool, &payload(i)).await })
        })
        .collect();
    for t in tasks {
        t.await.expect("join");
    }
    assert_eq!(spool.records(), 64);
    drop(spool);
    let (_spool, recovered) = open(&o);
    let mut got: Vec<Vec<u8>> = recovered.into_iter().map(|r| r.payload).collect();
    got.sort();
    let mut want: Vec<Vec<u8>> = (0..64).map(payload).collect();
    want.sort();
    assert_eq!(got, want);
}

#[tokio::test]
async fn released_records_are_not_replayed_and_their_segments_deleted() {
    let dir = tempfile::tempdir().expect("tmp");
    let o = options(dir.path(), 1 << 20, 4096);
    let (spool, _) = open(&o);
    let big = vec![7u8; 1500];
    let mut tickets = Vec::new();
    for _ in 0..6 {
        tickets.push(append(&spool, &big).await);
    }
    let files = seg_files(dir.path());
    assert!(files.len() >= 3, "4 KiB segments roll over: {files:?}");
    // Release all but the last record: every closed segment goes.
    for t in &tickets[..5] {
        t.settle();
    }
    eventually("closed segments deleted", || {
        seg_files(dir.path()).len() == 1
    });
    assert_eq!(spool.records(), 1);
    drop(spool);
    let (_s, recovered) = open(&o);
    // Releases are not persisted: the released record sharing the live
    // segment comes back too (a rewrite of the same item), the deleted
    // segments' records do not.
    assert_eq!(recovered.len(), 2, "only the surviving segment is replayed");
}

#[tokio::test]
async fn clean_close_deletes_fully_released_segments() {
    let dir = tempfile::tempdir().expect("tmp");
    let o = options(dir.path(), 1 << 20, 1 << 16);
    let (spool, _) = open(&o);
    append(&spool, b"12345678a").await.settle();
    assert_eq!(
        seg_files(dir.path()).len(),
        1,
        "the active segment stays while open"
    );
    spool.close();
    eventually("released active segment deleted", || {
        seg_files(dir.path()).is_empty()
    });
}

#[tokio::test]
async fn torn_tail_and_corrupted_record_keep_every_intact_record() {
    let dir = tempfile::tempdir().expect("tmp");
    let o = options(dir.path(), 1 << 20, 1 << 16);
    let (spool, _) = open(&o);
    for i in 0..5 {
        append(&spool, &payload(i)).await;
    }
    drop(spool);
    let (id, path) = segments(dir.path()).expect("list").remove(0);
    let mut bytes = std::fs::read(&path).expect("read");
    let frame = record::HEADER_BYTES + payload(0).len();
    // Flip a payload byte of record 1, tear record 4 in half.
    bytes[frame + record::HEADER_BYTES + 2] ^= 0x55;
    bytes.truncate(4 * frame + frame / 2);
    std::fs::write(&path, &bytes).expect("write");

    let metrics = SpoolMetrics::register();
    let (spool, recovered) = Spool::open(&o, metrics).expect("opens");
    let got: Vec<Vec<u8>> = recovered.iter().map(|r| r.payload.clone()).collect();
    assert_eq!(got, vec![payload(0), payload(2), payload(3)]);
    assert_eq!(
        std::fs::metadata(segment_path(dir.path(), id))
            .expect("stat")
            .len(),
        4 * frame as u64,
        "the torn tail is cut from the file"
    );
    assert_eq!(spool.records(), 3);
    // New appends go to a fresh segment, not after the damaged one.
    append(&spool, &payload(9)).await;
    assert_eq!(seg_files(dir.path()), vec![id, id + 1]);
}

#[tokio::test]
async fn a_full_spool_refuses_until_records_are_released() {
    let dir = tempfile::tempdir().expect("tmp");
    let o = options(dir.path(), 8192, 4096);
    let (spool, _) = open(&o);
    let big = vec![1u8; 1800];
    let mut tickets = Vec::new();
    loop {
        match spool.reserve(big.len()) {
            Ok(r) => {
                let t = spool.ticket();
                spool
                    .submit(r, big.clone(), t.clone())
                    .wait()
                    .await
                    .expect("ok");
                tickets.push(t);
            }
            Err(SpoolFull) => break,
        }
        assert!(tickets.len() < 10, "max_bytes must bound the spool");
    }
    assert!(spool.disk_bytes() <= 8192);
    assert_eq!(tickets.len(), 4);
    for t in tickets.drain(..2) {
        t.settle();
    }
    eventually("room again after release", || {
        spool.reserve(big.len()).is_ok()
    });
}
