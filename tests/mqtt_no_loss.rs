//! No acknowledged MQTT message is lost while DynamoDB throttles: 50,000
//! QoS 1 messages from 10 devices against a table provisioned at a tenth of
//! the arrival rate for 30 s (dynamo-sim, in-process). The gateway's queue
//! and hand-off fill, the front stops reading device sockets (TCP
//! backpressure), and once capacity returns every message is stored.

mod support;

use std::sync::Arc;
use std::time::Duration;

use aws_sdk_dynamodb::types::ProvisionedThroughput;
use dynamo_sim::{KeyType, SimConfig, Simulator, TableSpec};
use support::mqtt::spawn_sensor_fleet;
use support::sim::SimServer;
use support::{count, dynamodb, metric, wait_for_count, Gateway, Http};

const DEVICES: usize = 10;
const PER_DEVICE: usize = 5_000;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fifty_thousand_qos1_messages_survive_a_throttled_table() {
    let sim = Arc::new(Simulator::new(SimConfig::default()).expect("sim"));
    sim.create_table(
        TableSpec::on_demand(
            "IoTSensorData",
            ("device_id", KeyType::S),
            Some(("timestamp", KeyType::N)),
        )
        .provisioned(200),
    )
    .expect("table");
    let server = SimServer::start(sim).await;
    let endpoint = server.endpoint.clone();

    // Small buffers, so the backpressure path is what carries the load.
    let gw = Gateway::start(
        &endpoint,
        &[
            ("queue_max_items = 80000", "queue_max_items = 2000"),
            (
                "overflow_max_bytes = \"64MiB\"",
                "overflow_max_bytes = \"256KiB\"",
            ),
            (
                "max_payload_bytes = \"1MiB\"",
                "max_payload_bytes = \"64KiB\"",
            ),
        ],
        "",
    );
    let addr = gw.mqtt.expect("embedded broker listens");
    let started = tokio::time::Instant::now();
    let publishers = spawn_sensor_fleet(addr, DEVICES, PER_DEVICE, 100, Duration::from_secs(240));

    // The front pauses device reads while the pipeline is saturated.
    let http = Http::default();
    let deadline = started + Duration::from_secs(30);
    let mut paused_seen = false;
    while tokio::time::Instant::now() < deadline {
        if metric(&http, gw.admin, "dynamo_ingest_mqtt_connections_paused", "").await > 0.0 {
            paused_seen = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(paused_seen, "the front never applied backpressure");
    tokio::time::sleep_until(started + Duration::from_secs(30)).await;
    let client = dynamodb(&endpoint).await;
    let during = count(&client, "IoTSensorData").await;
    assert!(
        during < DEVICES * PER_DEVICE / 2,
        "the table was not the bottleneck: {during} items after 30 s"
    );
    assert!(
        metric(
            &http,
            gw.admin,
            "dynamo_ingest_throttled_requests_total",
            ""
        )
        .await
            > 0.0
    );

    // Capacity returns.
    client
        .update_table()
        .table_name("IoTSensorData")
        .provisioned_throughput(
            ProvisionedThroughput::builder()
                .read_capacity_units(100)
                .write_capacity_units(100_000)
                .build()
                .expect("throughput"),
        )
        .send()
        .await
        .expect("update table");
    for p in publishers {
        p.await.expect("every message acknowledged");
    }
    let want = DEVICES * PER_DEVICE;
    let stored = wait_for_count(&client, "IoTSensorData", want, Duration::from_secs(120)).await;
    assert_eq!(
        stored,
        DEVICES * PER_DEVICE,
        "acknowledged messages missing"
    );
    assert!(gw.dead_letters().is_empty(), "{:?}", gw.dead_letters());
    assert_eq!(
        metric(
            &http,
            gw.admin,
            "dynamo_ingest_mqtt_messages_received_total",
            "qos=\"1\""
        )
        .await,
        metric(
            &http,
            gw.admin,
            "dynamo_ingest_events_received_total",
            "source=\"mqtt\""
        )
        .await,
    );
    server.stop().await;
}
