//! A DynamoDB outage is buffered by the spool, not by memory: 30,000 MQTT
//! QoS 1 messages from 10 real devices (rumqttc) arrive while every write
//! fails (dynamo-sim behind a proxy that refuses all connections) for 60 s.
//! The in-memory queue holds 2,000 items; everything beyond it spills into
//! the spool's overflow on disk, so every message is PUBACKed during the
//! outage. Then capacity returns and every message is stored (count, and
//! one device's items read back whole).

mod support;

use std::collections::BTreeSet;
use std::time::Duration;

use aws_sdk_dynamodb::types::AttributeValue;
use support::mqtt::spawn_sensor_fleet;
use support::outage::Outage;
use support::{count, dynamodb, eventually, metric, query, wait_for_count, Gateway, Http};

const DEVICES: usize = 10;
const PER_DEVICE: usize = 3_000;
const OUTAGE: Duration = Duration::from_secs(60);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn thirty_thousand_qos1_messages_survive_a_sixty_second_outage() {
    let db = Outage::start().await;
    let spool = tempfile::tempdir().expect("tmp");
    let gw = Gateway::start(
        &db.endpoint,
        &[("queue_max_items = 80000", "queue_max_items = 2000")],
        &format!(
            "[spool]\nenabled = true\npath = {:?}\nsegment_bytes = \"1MiB\"\n",
            spool.path().display().to_string()
        ),
    );
    let addr = gw.mqtt.expect("embedded broker listens");
    db.set_down(true);
    let started = tokio::time::Instant::now();
    let publishers = spawn_sensor_fleet(addr, DEVICES, PER_DEVICE, 0, OUTAGE);
    // Every message is PUBACKed while DynamoDB refuses every write
    // (`publish_all` panics if not within the outage's length).
    for p in publishers {
        p.await
            .expect("every message acknowledged during the outage");
    }
    let client = dynamodb(&db.direct).await;
    assert_eq!(
        count(&client, "IoTSensorData").await,
        0,
        "nothing got through"
    );
    let http = Http::default();
    let on_disk = metric(&http, gw.admin, "dynamo_ingest_spool_records", "").await;
    assert!(
        on_disk > 2_000.0,
        "beyond the queue's 2,000 items the records wait on disk: {on_disk}"
    );
    assert!(started.elapsed() < OUTAGE, "the outage lasted throughout");
    tokio::time::sleep_until(started + OUTAGE).await;

    // Capacity returns.
    db.set_down(false);
    let want = DEVICES * PER_DEVICE;
    let stored = wait_for_count(&client, "IoTSensorData", want, Duration::from_secs(180)).await;
    assert_eq!(
        stored,
        DEVICES * PER_DEVICE,
        "acknowledged messages missing"
    );
    let items = query(&client, "IoTSensorData", "device_id", "DEV3").await;
    let seqs: BTreeSet<u64> = items
        .iter()
        .map(|i| match i.get("seq") {
            Some(AttributeValue::N(n)) => n.parse().expect("seq"),
            other => panic!("seq: {other:?}"),
        })
        .collect();
    assert_eq!(
        seqs,
        (0..PER_DEVICE as u64).collect(),
        "DEV3's messages, each once"
    );
    assert!(items
        .iter()
        .all(|i| i.get("temperature") == Some(&AttributeValue::N("20.5".into()))));
    assert!(gw.dead_letters().is_empty(), "{:?}", gw.dead_letters());
    // Everything written is released, so the spool empties.
    eventually(
        "spool records released",
        Duration::from_secs(30),
        || async { metric(&http, gw.admin, "dynamo_ingest_spool_records", "").await == 0.0 },
    )
    .await;
}
