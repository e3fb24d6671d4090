//! Scale-out: two gateways share one subscription (`$share/dynamo-ingest/...`)
//! on Debian's mosquitto broker. 20,000 QoS 1 messages are all stored, even
//! though one gateway is killed with SIGKILL mid-run (it comes back with the
//! same client id and its persistent session redelivers what it never
//! acknowledged). Duplicates are possible (at-least-once) and reported.

mod support;

use std::time::Duration;

use rumqttc::QoS;
use support::mqtt::{options, publish_all, Mosquitto};
use support::{count, dynamodb, metric, Dynalite, Gateway, Http};

const PUBLISHERS: usize = 4;
const PER_PUBLISHER: usize = 5_000;

fn start_gateway(db: &Dynalite, broker: &Mosquitto, client_id: &str) -> Gateway {
    let external = format!(
        "[mqtt.external]\nhost = \"127.0.0.1\"\nport = {}\nclient_id = \"{client_id}\"\n",
        broker.addr.port()
    );
    Gateway::start(
        &db.endpoint,
        &[("mode = \"embedded\"", "mode = \"external\"")],
        &external,
    )
}

/// Waits (bounded) until /readyz says the gateway is subscribed.
async fn wait_subscribed(http: &Http, gw: &Gateway) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        let r = http.get(&format!("http://{}/readyz", gw.admin)).await;
        if r.status == 200 {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "not subscribed: {}",
            r.body
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_gateways_share_a_subscription_and_lose_nothing_when_one_is_killed() {
    let db = Dynalite::start();
    let broker = Mosquitto::start();
    let http = Http::default();
    let a = start_gateway(&db, &broker, "gw-a");
    let mut b = start_gateway(&db, &broker, "gw-b");
    assert_eq!(a.mqtt, None, "external mode has no listener of its own");
    wait_subscribed(&http, &a).await;
    wait_subscribed(&http, &b).await;

    let publishers: Vec<_> = (0..PUBLISHERS)
        .map(|p| {
            let messages = (0..PER_PUBLISHER)
                .map(|i| {
                    (
                        format!("sensors/P{p}/telemetry"),
                        format!(r#"{{"timestamp": {i}, "v": {i}}}"#).into_bytes(),
                    )
                })
                .collect();
            tokio::spawn(publish_all(
                options(broker.addr, &format!("pub-{p}")),
                messages,
                QoS::AtLeastOnce,
                Duration::from_secs(180),
            ))
        })
        .collect();

    // Kill B once it has taken part of the stream.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    loop {
        let taken = metric(
            &http,
            b.admin,
            "dynamo_ingest_events_received_total",
            "source=\"mqtt\"",
        )
        .await;
        if taken >= 1_000.0 {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "gateway B never received messages"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    b.kill();
    let b2 = start_gateway(&db, &broker, "gw-b");
    for p in publishers {
        p.await.expect("every message acknowledged by the broker");
    }

    let client = dynamodb(&db.endpoint).await;
    let total = PUBLISHERS * PER_PUBLISHER;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(120);
    let mut stored = 0;
    while tokio::time::Instant::now() < deadline {
        stored = count(&client, "IoTSensorData").await;
        if stored >= total {
            break;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    assert_eq!(stored, total, "messages lost");
    let from_a = metric(
        &http,
        a.admin,
        "dynamo_ingest_events_received_total",
        "source=\"mqtt\"",
    )
    .await;
    let from_b2 = metric(
        &http,
        b2.admin,
        "dynamo_ingest_events_received_total",
        "source=\"mqtt\"",
    )
    .await;
    assert!(
        from_a > 0.0 && from_b2 > 0.0,
        "both replicas took part: {from_a} / {from_b2}"
    );
    // Duplicates: redelivered messages the killed gateway had already queued
    // (its own count died with it, so this is a lower bound).
    eprintln!("external mode: {total} stored; gateway A received {from_a}, restarted B {from_b2}");
    assert!(a.dead_letters().is_empty() && b2.dead_letters().is_empty());
}
