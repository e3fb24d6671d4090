//! A full spool: during a DynamoDB outage (every write refused) spooled
//! HTTP requests are taken until the spool reaches `max_bytes`, then get
//! 503 `spool_full` with Retry-After; an MQTT device's QoS 1 messages stop
//! being PUBACKed (the broker's front pauses reading its socket) instead of
//! being dropped. Once DynamoDB is back, every HTTP event that got a 202 and
//! every MQTT message (all PUBACKed in the end) is stored.

mod support;

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use aws_sdk_dynamodb::types::AttributeValue;
use rumqttc::{AsyncClient, Event, Packet, QoS};
use support::mqtt::options;
use support::outage::Outage;
use support::{dynamodb, eventually, metric, query, wait_for_count, Gateway, Http};

const MQTT_MESSAGES: usize = 400;
const MAX_POSTS: u64 = 5_000;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_spool_answers_503_and_pauses_mqtt_without_losing_anything() {
    let db = Outage::start().await;
    let spool = tempfile::tempdir().expect("tmp");
    let gw = Gateway::start(
        &db.endpoint,
        &[
            ("queue_max_items = 80000", "queue_max_items = 20"),
            ("overflow_max_bytes = \"64MiB\"", "overflow_max_bytes = \"8KiB\""),
            ("max_payload_bytes = \"1MiB\"", "max_payload_bytes = \"4KiB\""),
        ],
        &format!(
            "[spool]\nenabled = true\npath = {:?}\nmax_bytes = \"64KiB\"\nsegment_bytes = \"8KiB\"\n",
            spool.path().display().to_string()
        ),
    );
    db.set_down(true);
    let http = Http::default();

    // HTTP: 202 until the spool is full, then 503 spool_full + Retry-After.
    let url = gw.url("/v1/streams/sensor/events?ack=spooled");
    let mut acked = Vec::new();
    let mut refused = None;
    for seq in 0..MAX_POSTS {
        let body = format!(r#"{{"device_id":"http","timestamp":{seq},"seq":{seq}}}"#);
        let r = http.post_json(&url, &body).await;
        match r.status {
            202 => acked.push(seq),
            503 => {
                refused = Some(r);
                break;
            }
            s => panic!("unexpected {s}: {}", r.body),
        }
    }
    let refused = refused.expect("the spool must fill within the bounded loop");
    assert_eq!(refused.json()["error"], "spool_full", "{}", refused.body);
    assert!(refused.headers.contains_key("retry-after"));
    assert!(
        acked.len() > 20,
        "the spool took more than the queue's 20 items: {}",
        acked.len()
    );
    assert!(metric(&http, gw.admin, "dynamo_ingest_spool_full_total", "").await > 0.0);
    assert!(gw.log().contains("spool full"), "a log line says so");

    // MQTT: the device's messages stop being acknowledged; the front pauses.
    let (client, mut eventloop) =
        AsyncClient::new(options(gw.mqtt.expect("broker"), "full-dev"), 50);
    let pubacks = Arc::new(AtomicUsize::new(0));
    let events = tokio::spawn({
        let pubacks = pubacks.clone();
        async move {
            loop {
                match eventloop.poll().await {
                    Ok(Event::Incoming(Packet::PubAck(_))) => {
                        if pubacks.fetch_add(1, Ordering::Relaxed) + 1 == MQTT_MESSAGES {
                            return;
                        }
                    }
                    Ok(_) => {}
                    Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
                }
            }
        }
    });
    let publisher = tokio::spawn({
        let client = client.clone();
        async move {
            for i in 0..MQTT_MESSAGES {
                let payload = format!(
                    r#"{{"timestamp":{i},"seq":{i},"pad":"{}"}}"#,
                    "x".repeat(200)
                );
                client
                    .publish(
                        "sensors/mqtt-dev/telemetry",
                        QoS::AtLeastOnce,
                        false,
                        payload,
                    )
                    .await
                    .expect("queue publish");
            }
        }
    });
    eventually("the front pauses", Duration::from_secs(30), || async {
        metric(&http, gw.admin, "dynamo_ingest_mqtt_connections_paused", "").await > 0.0
    })
    .await;
    let during = pubacks.load(Ordering::Relaxed);
    assert!(
        during < MQTT_MESSAGES,
        "PUBACKs stop while the spool is full: {during}"
    );

    // DynamoDB is back: everything drains.
    db.set_down(false);
    tokio::time::timeout(Duration::from_secs(120), events)
        .await
        .expect("every MQTT message PUBACKed once there is room")
        .expect("event loop");
    publisher.await.expect("publisher");
    let client = dynamodb(&db.direct).await;
    let want = acked.len() + MQTT_MESSAGES;
    let stored = wait_for_count(&client, "IoTSensorData", want, Duration::from_secs(120)).await;
    assert_eq!(stored, want, "every acknowledged event stored, once");
    let seqs = |items: Vec<std::collections::HashMap<String, AttributeValue>>| -> BTreeSet<u64> {
        items
            .iter()
            .map(|i| match i.get("seq") {
                Some(AttributeValue::N(n)) => n.parse().expect("seq"),
                other => panic!("seq: {other:?}"),
            })
            .collect()
    };
    let http_seqs = seqs(query(&client, "IoTSensorData", "device_id", "http").await);
    assert_eq!(
        http_seqs,
        acked.iter().copied().collect(),
        "every 202 stored"
    );
    let mqtt_seqs = seqs(query(&client, "IoTSensorData", "device_id", "mqtt-dev").await);
    assert_eq!(
        mqtt_seqs,
        (0..MQTT_MESSAGES as u64).collect(),
        "every PUBACKed message stored"
    );
    assert!(gw.dead_letters().is_empty(), "{:?}", gw.dead_letters());
}
