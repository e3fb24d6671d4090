//! Plain aws-sdk-dynamodb writers (`sdk-standard`, `sdk-adaptive`): a
//! generator pushes the offered load into a bounded in-process queue; a few
//! tasks take up to 25 items each, call BatchWriteItem, and re-send the
//! UnprocessedItems at once until the batch is done (boto3 `batch_writer`
//! style). Throttling errors are retried by the SDK's own retry strategy
//! (`RetryConfig::standard()` or `adaptive()`); a call that still fails after
//! the SDK gave up is re-sent too.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::Result;
use aws_credential_types::Credentials;
use aws_sdk_dynamodb::config::retry::RetryConfig;
use aws_sdk_dynamodb::config::{BehaviorVersion, Region};
use aws_sdk_dynamodb::types::{AttributeValue, PutRequest, WriteRequest};
use aws_sdk_dynamodb::Client;
use tokio::sync::mpsc;

use crate::{device_of, device_prefix, Args, Ctx, WriterOutcome, TABLE};

/// One queued event: sequence number (sort key), device, enqueue time.
struct Event {
    seq: u64,
    device: u64,
    at: Instant,
}

#[derive(Default)]
struct Counters {
    ok_calls: AtomicU64,
    partial_calls: AtomicU64,
    sdk_errors: AtomicU64,
    written: AtomicU64,
}

/// Runs SDK writer instance `instance` of `instances` (its own client,
/// queue and tasks, its share of the load) for `args.seconds`, then lets it
/// finish its batches.
pub async fn run(
    args: &Args,
    ctx: &Ctx,
    adaptive: bool,
    instance: usize,
    instances: usize,
) -> Result<WriterOutcome> {
    let prefix = device_prefix(instance);
    let retry = if adaptive {
        RetryConfig::adaptive()
    } else {
        RetryConfig::standard()
    };
    let conf = aws_sdk_dynamodb::Config::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new("us-east-1"))
        .endpoint_url(&ctx.endpoint)
        .credentials_provider(Credentials::new("test", "test", None, None, "static"))
        .retry_config(retry)
        .build();
    let client = Client::from_conf(conf);

    let (tx, rx) = mpsc::channel::<Event>(args.queue_max_items.max(1) as usize);
    let rx = Arc::new(tokio::sync::Mutex::new(rx));
    let stop = Arc::new(AtomicBool::new(false));
    let counters = Arc::new(Counters::default());
    let latencies = Arc::new(Mutex::new(Vec::<f64>::new()));
    let payload = Arc::new(ctx.payload.clone());

    // Generator: every 10 ms, rate/100 events.
    let per_tick = args.wcu as f64 * args.offer / 100.0 / instances.max(1) as f64;
    let hot_share = args.scenario.hot_share();
    let seconds = args.seconds;
    let devices = args.devices.max(1);
    let generator = tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_millis(10));
        let end = Instant::now() + Duration::from_secs(seconds);
        let (mut seq, mut owed, mut rejected) = (0u64, 0.0f64, 0u64);
        while Instant::now() < end {
            tick.tick().await;
            owed += per_tick;
            while owed >= 1.0 {
                owed -= 1.0;
                let ev = Event {
                    seq,
                    device: device_of(seq, devices, hot_share),
                    at: Instant::now(),
                };
                seq += 1;
                if tx.try_send(ev).is_err() {
                    rejected += 1;
                }
            }
        }
        (seq, rejected)
    });

    let hard_deadline = Instant::now() + Duration::from_secs(args.seconds + args.drain_timeout);
    let mut tasks = Vec::new();
    for _ in 0..args.sdk_tasks.max(1) {
        let (client, rx, stop, counters, latencies, payload) = (
            client.clone(),
            rx.clone(),
            stop.clone(),
            counters.clone(),
            latencies.clone(),
            payload.clone(),
        );
        tasks.push(tokio::spawn(async move {
            let mut my_lat = Vec::new();
            while !stop.load(Ordering::Relaxed) {
                // Take up to 25 events.
                let mut events = Vec::with_capacity(25);
                {
                    let mut rx = rx.lock().await;
                    match tokio::time::timeout(Duration::from_millis(50), rx.recv()).await {
                        Ok(Some(ev)) => events.push(ev),
                        Ok(None) => break,
                        Err(_) => continue,
                    }
                    while events.len() < 25 {
                        match rx.try_recv() {
                            Ok(ev) => events.push(ev),
                            Err(_) => break,
                        }
                    }
                }
                let mut pending_at: HashMap<u64, Instant> = HashMap::new();
                let mut requests = Vec::with_capacity(events.len());
                for ev in &events {
                    pending_at.insert(ev.seq, ev.at);
                    let put = PutRequest::builder()
                        .item(
                            "device_id",
                            AttributeValue::S(format!("{prefix}{}", ev.device)),
                        )
                        .item("timestamp", AttributeValue::N(ev.seq.to_string()))
                        .item("payload", AttributeValue::S(payload.as_str().to_owned()))
                        .build();
                    if let Ok(put) = put {
                        requests.push(WriteRequest::builder().put_request(put).build());
                    }
                }
                while !requests.is_empty() && Instant::now() < hard_deadline {
                    let result = client
                        .batch_write_item()
                        .request_items(TABLE, requests.clone())
                        .send()
                        .await;
                    match result {
                        Ok(out) => {
                            counters.ok_calls.fetch_add(1, Ordering::Relaxed);
                            let left: Vec<WriteRequest> = out
                                .unprocessed_items
                                .and_then(|mut m| m.remove(TABLE))
                                .unwrap_or_default();
                            let left_seqs: HashSet<u64> = left
                                .iter()
                                .filter_map(|w| w.put_request.as_ref())
                                .filter_map(|p| p.item.get("timestamp"))
                                .filter_map(|v| v.as_n().ok())
                                .filter_map(|n| n.parse().ok())
                                .collect();
                            let now = Instant::now();
                            pending_at.retain(|seq, at| {
                                if left_seqs.contains(seq) {
                                    true
                                } else {
                                    my_lat.push(now.duration_since(*at).as_secs_f64());
                                    false
                                }
                            });
                            counters
                                .written
                                .fetch_add((requests.len() - left.len()) as u64, Ordering::Relaxed);
                            if !left.is_empty() {
                                counters.partial_calls.fetch_add(1, Ordering::Relaxed);
                            }
                            requests = left;
                        }
                        Err(_) => {
                            // The SDK's retries gave up: send the same batch again.
                            counters.sdk_errors.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                }
            }
            if let Ok(mut l) = latencies.lock() {
                l.extend(my_lat);
            }
        }));
    }

    let (offered, rejected) = generator.await?;
    // The load is over: writers finish the batch in hand and stop.
    stop.store(true, Ordering::Relaxed);
    for t in tasks {
        let _ = t.await;
    }
    let left_in_queue = rx.lock().await.len() as u64;

    let lat = latencies.lock().map(|l| l.clone()).unwrap_or_default();
    let c = &counters;
    let mut notes = vec![format!(
        "offered {offered}, left unsent in the queue at the end {left_in_queue}, calls that failed after the SDK's retries {}",
        c.sdk_errors.load(Ordering::Relaxed)
    )];
    if Instant::now() >= hard_deadline {
        notes.push("hit the drain deadline".to_string());
    }
    Ok(WriterOutcome {
        acked: c.written.load(Ordering::Relaxed),
        rejected,
        ok_calls: c.ok_calls.load(Ordering::Relaxed),
        partial_calls: c.partial_calls.load(Ordering::Relaxed),
        total_calls: None,
        p50: None,
        p99: None,
        rate_limit: Default::default(),
        latencies: lat,
        metrics_text: String::new(),
        notes,
    })
}
