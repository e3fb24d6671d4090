//! `ack=spooled` survives SIGKILL: events posted over HTTP while the real
//! gateway is killed at different moments; after a restart on the same spool
//! directory every event that got a 2xx is in the table (dynalite), exactly
//! once, with its content. And an upsert stream (`cart`) ends on the newest
//! value of every key across a SIGKILL, also when new writes of the key
//! arrive while the replay runs.
//!
//! The issue's full scenario (100,000 events, SIGKILL at a random moment,
//! restart, check) is the ignored test `hundred_thousand_events_*`; run it
//! several times (each run kills after another random number of posted
//! events, or set `SPOOL_CRASH_KILL_MS` for a kill by time):
//! `cargo test --test spool_crash -- --ignored --nocapture`.

mod support;

use std::collections::{BTreeMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::Notify;

use aws_sdk_dynamodb::types::AttributeValue;
use support::{count, dynamodb, Dynalite, Gateway, Http};

const CLIENTS: u64 = 16;
const EVENTS_PER_POST: u64 = 10;
/// Events per round of the several-moments test (its kill comes within them).
const MAX_EVENTS_PER_ROUND: u64 = 12_000;

fn spool_toml(dir: &std::path::Path) -> String {
    format!(
        "[spool]\nenabled = true\npath = {:?}\nsegment_bytes = \"1MiB\"\n",
        dir.display().to_string()
    )
}

/// Posts NDJSON batches with `ack=spooled` until the gateway dies or the
/// round's budget is spent; returns the seqs whose request got a 2xx.
/// With `crossing`, the client whose batch reaches that seq notifies it
/// (a kill point by progress, whatever the machine's speed).
async fn post_until_killed(
    url: String,
    next: Arc<AtomicU64>,
    budget_end: u64,
    crossing: Option<(u64, Arc<Notify>)>,
) -> Vec<u64> {
    let acked = Arc::new(Mutex::new(Vec::new()));
    let tasks: Vec<_> = (0..CLIENTS)
        .map(|c| {
            let (url, next, acked) = (url.clone(), next.clone(), acked.clone());
            let crossing = crossing.clone();
            tokio::spawn(async move {
                let http = Http::default();
                loop {
                    let first = next.fetch_add(EVENTS_PER_POST, Ordering::Relaxed);
                    if first >= budget_end {
                        return;
                    }
                    if let Some((at, reached)) = &crossing {
                        if (first..first + EVENTS_PER_POST).contains(at) {
                            reached.notify_one();
                        }
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

/// Waits until every acknowledged seq is in the table, then checks there are
/// no duplicates and spot-checks content; returns the items in the table.
async fn check_all_stored(db: &Dynalite, gw: &Gateway, acked: &[u64]) -> usize {
    let client = dynamodb(&db.endpoint).await;
    let want: HashSet<u64> = acked.iter().copied().collect();
    let deadline = Instant::now() + Duration::from_secs(300);
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
    let mut sorted: Vec<u64> = want.into_iter().collect();
    sorted.sort();
    for s in sorted.iter().step_by((sorted.len() / 50).max(1)) {
        let (device, reading) = &have[s];
        assert!(device.starts_with("crash-"), "{s}: {device}");
        assert_eq!(reading, &format!("r{s}"));
    }
    items
}

/// The issue's scenario: 100,000 events posted with `ack=spooled` by 16
/// clients; the gateway is SIGKILLed at a random moment of the run,
/// restarted on the same spool, and the clients post the rest. Every event
/// that got a 2xx (before or after the kill) is in the table, once. Slow (a
/// minute or more in a debug build), so ignored by default.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[ignore = "the full 100,000-event crash run; see the module docs"]
async fn hundred_thousand_events_sigkill_at_a_random_moment() {
    const EVENTS: u64 = 100_000;
    let db = Dynalite::start();
    let spool_dir = tempfile::tempdir().expect("tmp");
    let extra = spool_toml(spool_dir.path());
    let next = Arc::new(AtomicU64::new(0));
    // The kill comes once a random number of events (1,000 to 99,000) has
    // been handed to the clients, so it lands while they post however fast
    // the machine is (a kill by time, 0.5-40 s, landed after the last post
    // in most runs once the run took 20 s), or after the time asked for.
    let kill_ms: Option<u64> = std::env::var("SPOOL_CRASH_KILL_MS")
        .ok()
        .and_then(|v| v.parse().ok());
    let kill_at = 1_000 + (rand_jitter(0) * 392) % 98_000;
    let reached = Arc::new(Notify::new());
    let mut gw = Gateway::start(&db.endpoint, &[], &extra);
    let url = gw.url("/v1/streams/sensor/events?ack=spooled");
    let crossing = kill_ms.is_none().then(|| (kill_at, reached.clone()));
    let posting = post_until_killed(url, next.clone(), EVENTS, crossing);
    let killer = async {
        match kill_ms {
            Some(ms) => tokio::time::sleep(Duration::from_millis(ms)).await,
            None => reached.notified().await,
        }
        gw.kill();
    };
    let (mut acked, ()) = tokio::join!(posting, killer);
    let at_kill = next.load(Ordering::Relaxed).min(EVENTS);
    let before = acked.len();
    let gw = Gateway::start(&db.endpoint, &[], &extra);
    acked.extend(
        post_until_killed(
            gw.url("/v1/streams/sensor/events?ack=spooled"),
            next.clone(),
            EVENTS,
            None,
        )
        .await,
    );
    let items = check_all_stored(&db, &gw, &acked).await;
    eprintln!(
        "SPOOL_CRASH_RESULT kill={} posted_before_kill={at_kill} acked_before_kill={before} \
         acked_total={} stored={items} lost=0",
        kill_ms.map_or(format!("at_event_{kill_at}"), |ms| format!("at_{ms}_ms")),
        acked.len()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn every_spooled_2xx_survives_sigkill_at_several_moments() {
    let db = Dynalite::start();
    let spool_dir = tempfile::tempdir().expect("tmp");
    let extra = spool_toml(spool_dir.path());
    let next = Arc::new(AtomicU64::new(0));
    let mut acked: Vec<u64> = Vec::new();
    // Kill points by progress, so each lands while the clients post however
    // fast the machine is: early, middle and late in each round's budget,
    // plus a random jitter of up to 250 events.
    for (round, share) in [0.1f64, 0.5, 0.85].into_iter().enumerate() {
        let mut gw = Gateway::start(&db.endpoint, &[], &extra);
        let round_start = next.load(Ordering::Relaxed);
        let budget_end = round_start + MAX_EVENTS_PER_ROUND;
        let kill_at =
            round_start + (share * MAX_EVENTS_PER_ROUND as f64) as u64 + rand_jitter(round);
        let reached = Arc::new(Notify::new());
        let url = gw.url("/v1/streams/sensor/events?ack=spooled");
        let posting = post_until_killed(
            url,
            next.clone(),
            budget_end,
            Some((kill_at, reached.clone())),
        );
        let killer = async {
            reached.notified().await;
            gw.kill();
        };
        let (got, ()) = tokio::join!(posting, killer);
        eprintln!(
            "round {round}: killed once event {kill_at} was handed out, {} events acknowledged",
            got.len()
        );
        assert!(
            (got.len() as u64) < MAX_EVENTS_PER_ROUND,
            "the kill came while the clients posted, so some of the round's events got no 2xx"
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
    let items = check_all_stored(&db, &gw, &acked).await;
    eprintln!(
        "acknowledged {} events, {items} items in the table after restart",
        acked.len()
    );
}

/// One cart line's quantity in the table.
async fn quantity(client: &aws_sdk_dynamodb::Client, user: &str) -> Option<u64> {
    let out = client
        .get_item()
        .table_name("ShoppingCart")
        .key("user_id", AttributeValue::S(user.to_owned()))
        .key("item_id", AttributeValue::S("i1".to_owned()))
        .consistent_read(true)
        .send()
        .await
        .expect("get item");
    match out.item()?.get("quantity") {
        Some(AttributeValue::N(n)) => n.parse().ok(),
        other => panic!("quantity: {other:?}"),
    }
}

/// An upsert stream across SIGKILL: each user updates one cart line again
/// and again (the next update only after the previous 202), the gateway is
/// killed, restarted on the same spool, and half the users write once more
/// right away, while the replay runs. Every line must end on its newest
/// value: the last acknowledged one (or the one in flight at the kill, if
/// it reached the disk), or the write made after the restart.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn cart_upserts_end_on_the_newest_value_across_a_sigkill() {
    const USERS: usize = 8;
    let db = Dynalite::start();
    let spool_dir = tempfile::tempdir().expect("tmp");
    let extra = format!(
        "[spool]\nenabled = true\npath = {:?}\nsegment_bytes = \"4KiB\"\n",
        spool_dir.path().display().to_string()
    );
    let body = |user: usize, q: u64| {
        format!(r#"{{"user_id":"u{user}","item_id":"i1","name":"n","quantity":{q},"price":1}}"#)
    };
    let mut gw = Gateway::start(&db.endpoint, &[], &extra);
    let url = gw.url("/v1/streams/cart/events?ack=spooled");
    let updaters: Vec<_> = (0..USERS)
        .map(|user| {
            let url = url.clone();
            tokio::spawn(async move {
                let http = Http::default();
                let mut last_acked = 0;
                for q in 1..=20_000u64 {
                    match http
                        .try_request("POST", &url, Some("application/json"), body(user, q))
                        .await
                    {
                        Ok(r) if r.status == 202 => last_acked = q,
                        Ok(r) => panic!("unexpected answer {}: {}", r.status, r.body),
                        Err(_) => break, // killed
                    }
                }
                last_acked
            })
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(1500 + rand_jitter(1) * 4)).await;
    gw.kill();
    let mut last = Vec::new();
    for u in updaters {
        last.push(u.await.expect("updater"));
    }
    assert!(
        last.iter().all(|&q| q > 10),
        "updates were acknowledged: {last:?}"
    );

    let gw = Gateway::start(&db.endpoint, &[], &extra);
    let http = Http::default();
    let url = gw.url("/v1/streams/cart/events?ack=spooled");
    const AFTER: u64 = 1_000_000;
    for user in (0..USERS).step_by(2) {
        let r = http
            .request("POST", &url, Some("application/json"), body(user, AFTER))
            .await;
        assert_eq!(r.status, 202, "{}", r.body);
    }
    let client = dynamodb(&db.endpoint).await;
    let deadline = Instant::now() + Duration::from_secs(60);
    while support::metric(&http, gw.admin, "dynamo_ingest_spool_records", "").await > 0.0 {
        assert!(
            Instant::now() < deadline,
            "the replay never finished\n{}",
            gw.log()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    for (user, &acked) in last.iter().enumerate() {
        let got = quantity(&client, &format!("u{user}")).await;
        if user % 2 == 0 {
            assert_eq!(
                got,
                Some(AFTER),
                "u{user}: the write after the restart wins"
            );
        } else {
            assert!(
                got == Some(acked) || got == Some(acked + 1),
                "u{user}: {got:?}, last acknowledged {acked}"
            );
        }
    }
}

fn rand_jitter(round: usize) -> u64 {
    // Different kill points on every run: the clock's nanoseconds pick a
    // number below 250.
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos() as u64)
        .unwrap_or(0);
    (nanos / 1000 + round as u64 * 7919) % 250
}
