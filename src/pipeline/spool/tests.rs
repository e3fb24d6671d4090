//! Unit tests of the spool as a whole: append, recovery, release and
//! segment deletion, damage, full. Real files in a temporary directory.

use std::time::{Duration, Instant};

use super::*;

fn options(dir: &Path, max_bytes: u64, segment_bytes: u64) -> SpoolOptions {
    SpoolOptions {
        path: dir.to_path_buf(),
        max_bytes,
        segment_bytes,
        release_tick: RELEASE_TICK,
    }
}

/// Releases persisted only by `sync_releases`: the test decides when.
fn manual(mut o: SpoolOptions) -> SpoolOptions {
    o.release_tick = Duration::from_secs(3600);
    o
}

fn open(o: &SpoolOptions) -> (Spool, Vec<Recovered>) {
    Spool::open(o, SpoolMetrics::register()).expect("opens")
}

async fn append(spool: &Spool, payload: &[u8]) -> Arc<Ticket> {
    let ticket = spool.ticket();
    let r = spool.reserve(payload.len()).expect("room");
    spool
        .submit(r, payload.to_vec(), ticket.clone(), None)
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
    let mut got = payloads(dir.path(), &recovered);
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
    // The flush that deleted the closed segments persisted every release
    // before it: the released record sharing the live segment stays too.
    assert_eq!(recovered.len(), 1, "only the unreleased record is replayed");
    assert_eq!(payloads(dir.path(), &recovered), vec![big]);
}

/// What a kill -9 would leave: a copy of the directory's files now.
fn crash_image(dir: &Path) -> tempfile::TempDir {
    let image = tempfile::tempdir().expect("tmp");
    for entry in std::fs::read_dir(dir).expect("list") {
        let path = entry.expect("entry").path();
        let name = path.file_name().expect("name");
        std::fs::copy(&path, image.path().join(name)).expect("copy");
    }
    image
}

/// The recovered records' payloads, read back from `dir`.
fn payloads(dir: &Path, recovered: &[Recovered]) -> Vec<Vec<u8>> {
    recovered
        .iter()
        .map(|r| {
            feeder::read_payload(dir, &r.at)
                .expect("readable")
                .expect("intact")
        })
        .collect()
}

#[tokio::test]
async fn a_persisted_release_is_never_replayed_an_unpersisted_one_may_be() {
    let dir = tempfile::tempdir().expect("tmp");
    let o = manual(options(dir.path(), 1 << 20, 1 << 16));
    let (spool, _) = open(&o);
    let a = append(&spool, &payload(0)).await;
    let b = append(&spool, &payload(1)).await;
    let c = append(&spool, &payload(2)).await;
    b.settle();
    spool.sync_releases();
    c.settle();
    let image = crash_image(dir.path());
    let (_s, recovered) = open(&options(image.path(), 1 << 20, 1 << 16));
    assert_eq!(
        payloads(image.path(), &recovered),
        vec![payload(0), payload(2)],
        "b's release was persisted, c's not yet"
    );
    // After the next flush c is not replayed either.
    spool.sync_releases();
    let image = crash_image(dir.path());
    let (_s, recovered) = open(&options(image.path(), 1 << 20, 1 << 16));
    assert_eq!(payloads(image.path(), &recovered), vec![payload(0)]);
    drop(a);
}

/// The upsert case: an old value of a key in a segment pinned by another
/// record, the new value in a later segment deleted once released. Before
/// release marks were persisted, a crash replayed the old value over the
/// new one (the new one's segment was gone).
#[tokio::test]
async fn an_older_upsert_is_never_replayed_over_a_newer_one() {
    let dir = tempfile::tempdir().expect("tmp");
    let o = manual(options(dir.path(), 1 << 20, 4096));
    let (spool, _) = open(&o);
    let pad = |tag: &str| {
        let mut p = tag.as_bytes().to_vec();
        p.resize(1500, b'.');
        p
    };
    let pin = append(&spool, &pad("pin")).await;
    let old = append(&spool, &pad("cart:u1/i1 quantity=1")).await;
    let new = append(&spool, &pad("cart:u1/i1 quantity=2")).await;
    let other = append(&spool, &pad("other")).await;
    append(&spool, &pad("tail")).await;
    let first = seg_files(dir.path())[0];
    assert_eq!(
        seg_files(dir.path()).len(),
        3,
        "two 1.5 KiB records per segment"
    );
    // DynamoDB confirms the old value, then the new one.
    old.settle();
    new.settle();
    other.settle();
    // Every crash image from here on: the old value is replayed only if
    // the new one is too (after it).
    let check = |when: &str| {
        let image = crash_image(dir.path());
        let (_s, recovered) = open(&options(image.path(), 1 << 20, 4096));
        let got: Vec<String> = payloads(image.path(), &recovered)
            .iter()
            .map(|p| String::from_utf8_lossy(p).trim_end_matches('.').to_owned())
            .filter(|p| p.starts_with("cart:"))
            .collect();
        assert!(
            got.is_empty() || got.last().map(String::as_str) == Some("cart:u1/i1 quantity=2"),
            "{when}: replay would end on an older value: {got:?}"
        );
    };
    check("before any flush");
    spool.sync_releases();
    assert!(
        !seg_files(dir.path()).contains(&(first + 1)),
        "the new value's segment is deleted"
    );
    assert!(seg_files(dir.path()).contains(&first), "pinned");
    check("after the flush and deletion");
    drop(pin);
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
    let got = payloads(dir.path(), &recovered);
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
                    .submit(r, big.clone(), t.clone(), None)
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
