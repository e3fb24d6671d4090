//! `ack=spooled` survives SIGKILL: events posted over HTTP while the real
//! gateway is killed at different moments; after a restart on the same spool
//! directory every event that got a 2xx is in the table (dynalite), exactly
//! once, with its content.

mod support;

use std::collections::{BTreeMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use aws_sdk_dynamodb::types::AttributeValue;
use support::{count, dynamodb, Dynalite, Gateway, Http};

const CLIENTS: u64 = 16;
const EVENTS_PER_POST: u64 = 10;
/// Bounds each round whatever the kill delay.
const MAX_EVENTS_PER_ROUND: u64 = 12_000;

fn spool_toml(dir: &std::path::Path) -> String {
    format!(
        "[spool]\nenabled = true\npath = {:?}\nsegment_bytes = \"1MiB\"\n",
        dir.display().to_string()
    )
}

/// Posts NDJSON batches with `ack=spooled` until the gateway dies or the
/// round's budget is spent; returns the seqs whose request got a 2xx.
async fn post_until_killed(url: String, next: Arc<AtomicU64>, budget_end: u64) -> Vec<u64> {
    let acked = Arc::new(Mutex::new(Vec::new()));
    let tasks: Vec<_> = (0..CLIENTS)
        .map(|c| {
            let (url, next, acked) = (url.clone(), next.clone(), acked.clone());
            tokio::spawn(async move {
                let http = Http::default();
                loop {
                    let first = next.fetch_add(EVENTS_PER_POST, Ordering::Relaxed);
                    if first >= budget_end {
                        return;
                    }
                    let seqs: Vec<u64> = (first..first + EVENTS_PER_POST).collect();
                    let body: String = seqs
                        .iter()
                        .map(|s| format!("{{\"device_id\":\"crash-{c}\",\"seq\":{s},\"reading\":\"r{s}\"}}\n"))
                        .collect();
                    match http
                        .try_request("POST", &url, Some("application/x-ndjson"), body)
                        .await
                    {
                        Ok(r) if r.status == 202 => acked.lock().expect("lock").extend(seqs),
                        Ok(r) if r.status == 503 => {}
                        Ok(r) => panic!("unexpected answer {}: {}", r.status, r.body),
                        Err(_) => return, // killed
                    }
                }
            })
        })
        .collect();
    for t in tasks {
        t.await.expect("client task");
    }
    let v = acked.lock().expect("lock").clone();
    v
}

/// Every item of the table: seq → (device_id, reading), counting duplicates.
async fn table_seqs(client: &aws_sdk_dynamodb::Client) -> (BTreeMap<u64, (String, String)>, usize) {
    let mut out = BTreeMap::new();
    let mut items = 0;
    let mut start = None;
    loop {
        let page = client
            .scan()
            .table_name("IoTSensorData")
            .set_exclusive_start_key(start)
            .send()
            .await
            .expect("scan");
        for item in page.items() {
            items += 1;
            let seq = match item.get("seq") {
                Some(AttributeValue::N(n)) => n.parse::<u64>().expect("seq"),
                other => panic!("item without seq: {other:?}"),
            };
            let s = |k: &str| match item.get(k) {
                Some(AttributeValue::S(v)) => v.clone(),
                other => panic!("{k}: {other:?}"),
            };
            out.insert(seq, (s("device_id"), s("reading")));
        }
        match page.last_evaluated_key() {
            Some(k) if !k.is_empty() => start = Some(k.clone()),
            _ => return (out, items),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn every_spooled_2xx_survives_sigkill_at_several_moments() {
    let db = Dynalite::start();
    let spool_dir = tempfile::tempdir().expect("tmp");
    let extra = spool_toml(spool_dir.path());
    let next = Arc::new(AtomicU64::new(0));
    let mut acked: Vec<u64> = Vec::new();
    // Kill points: early, middle, late (~20k events in all), plus a random jitter.
    for (round, base_ms) in [300u64, 2500, 4500].into_iter().enumerate() {
        let mut gw = Gateway::start(&db.endpoint, &[], &extra);
        let delay = Duration::from_millis(base_ms + rand_jitter(round));
        let budget_end = next.load(Ordering::Relaxed) + MAX_EVENTS_PER_ROUND;
        let url = gw.url("/v1/streams/sensor/events?ack=spooled");
        let posting = post_until_killed(url, next.clone(), budget_end);
        let killer = async {
            tokio::time::sleep(delay).await;
            gw.kill();
        };
        let (got, ()) = tokio::join!(posting, killer);
        eprintln!(
            "round {round}: killed after {delay:?}, {} events acknowledged",
            got.len()
        );
        acked.extend(got);
    }
    assert!(
        acked.len() >= 1000,
        "the test must acknowledge a meaningful number of events, got {}",
        acked.len()
    );

    // Restart on the same spool: unreleased records are replayed.
    let gw = Gateway::start(&db.endpoint, &[], &extra);
    let client = dynamodb(&db.endpoint).await;
    let want: HashSet<u64> = acked.iter().copied().collect();
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let (have, _) = table_seqs(&client).await;
        if want.iter().all(|s| have.contains_key(s)) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "{} acknowledged events missing after restart\n{}",
            want.iter().filter(|s| !have.contains_key(s)).count(),
            gw.log()
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    let (have, items) = table_seqs(&client).await;
    assert_eq!(
        items,
        have.len(),
        "a replay rewrote items, it never duplicated one"
    );
    assert_eq!(items, count(&client, "IoTSensorData").await);
    // Spot-check content of a spread of acknowledged events.
    let mut sorted: Vec<u64> = want.into_iter().collect();
    sorted.sort();
    for s in sorted.iter().step_by((sorted.len() / 50).max(1)) {
        let (device, reading) = &have[s];
        assert!(device.starts_with("crash-"), "{s}: {device}");
        assert_eq!(reading, &format!("r{s}"));
    }
    eprintln!(
        "acknowledged {} events, {} items in the table after restart",
        sorted.len(),
        items
    );
}

fn rand_jitter(round: usize) -> u64 {
    // Different kill points on every run without a sleep-based guess: the
    // clock's nanoseconds pick a jitter of up to 250 ms.
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos() as u64)
        .unwrap_or(0);
    (nanos / 1000 + round as u64 * 7919) % 250
}
