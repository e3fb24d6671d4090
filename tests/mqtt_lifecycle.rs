//! The MQTT source's edges with real clients: Debian's `mosquitto_pub`
//! publishing to the embedded broker, the connection limit, and SIGTERM
//! draining every acknowledged message into the table before exit.

mod support;

use std::process::Command;
use std::time::Duration;

use aws_sdk_dynamodb::types::AttributeValue;
use rumqttc::QoS;
use support::mqtt::{options, publish_all, publish_all_with};
use support::{count, dynamodb, metric, query, Dynalite, Gateway, Http};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mosquitto_pub_messages_are_stored() {
    let db = Dynalite::start();
    let gw = Gateway::start(&db.endpoint, &[], "");
    let addr = gw.mqtt.expect("embedded broker listens");
    for (topic, payload) in [
        (
            "sensors/CLI1/telemetry",
            r#"{"timestamp": 1700000000001, "temperature": 19.5}"#,
        ),
        (
            "carts/CLI-U",
            r#"{"item_id": "A1", "name": "Mug", "quantity": 1, "price": 4.5}"#,
        ),
    ] {
        let out = Command::new("mosquitto_pub")
            .args(["-h", "127.0.0.1", "-p", &addr.port().to_string()])
            .args(["-q", "1", "-i", "cli-test", "-t", topic, "-m", payload])
            .output()
            .expect("mosquitto_pub is installed (.ci/run installs mosquitto-clients)");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let client = dynamodb(&db.endpoint).await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while count(&client, "IoTSensorData").await + count(&client, "ShoppingCart").await < 2 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "mosquitto_pub messages not stored"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let items = query(&client, "IoTSensorData", "device_id", "CLI1").await;
    assert_eq!(
        items[0].get("temperature"),
        Some(&AttributeValue::N("19.5".into()))
    );
    let cart = query(&client, "ShoppingCart", "user_id", "CLI-U").await;
    assert_eq!(
        cart[0].get("quantity"),
        Some(&AttributeValue::N("1".into()))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_past_the_limit_are_closed_and_counted() {
    let db = Dynalite::start();
    let gw = Gateway::start(
        &db.endpoint,
        &[("max_connections = 10000", "max_connections = 2")],
        "",
    );
    let addr = gw.mqtt.expect("embedded broker listens");
    let mut held = Vec::new();
    for i in 0..2 {
        let (client, mut eventloop) =
            rumqttc::AsyncClient::new(options(addr, &format!("hold-{i}")), 10);
        match eventloop.poll().await {
            Ok(rumqttc::Event::Incoming(rumqttc::Packet::ConnAck(_))) => {}
            other => panic!("connection {i} within the limit failed: {other:?}"),
        }
        held.push((client, eventloop));
    }
    let (_c, mut third) = rumqttc::AsyncClient::new(options(addr, "third"), 10);
    assert!(third.poll().await.is_err(), "a third connection was served");
    let http = Http::default();
    assert_eq!(
        metric(
            &http,
            gw.admin,
            "dynamo_ingest_mqtt_rejected_total",
            "reason=\"connection_limit\""
        )
        .await,
        1.0
    );
    assert_eq!(
        metric(&http, gw.admin, "dynamo_ingest_mqtt_connections", "").await,
        2.0
    );
    // The limit frees up when a device leaves.
    drop(held.pop());
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while metric(&http, gw.admin, "dynamo_ingest_mqtt_connections", "").await > 1.0 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "closed connection still counted"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    publish_all(
        options(addr, "after"),
        vec![("activity/U1".to_owned(), br#"{"action":"x"}"#.to_vec())],
        QoS::AtLeastOnce,
        Duration::from_secs(10),
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_drains_every_acknowledged_message_into_the_table() {
    let db = Dynalite::start();
    let mut gw = Gateway::start(&db.endpoint, &[], "");
    let addr = gw.mqtt.expect("embedded broker listens");
    let total = 10_000;
    publish_numbered(addr, "burst", total, false).await;
    // Every message is acknowledged; most are still between the broker and DynamoDB.
    gw.terminate();
    let status = gw.wait(Duration::from_secs(60));
    assert!(status.success(), "{status:?}\n{}", gw.log());
    let client = dynamodb(&db.endpoint).await;
    assert_eq!(count(&client, "IoTSensorData").await, total);
    assert!(gw.dead_letters().is_empty());
}

/// Publishes `total` QoS 1 sensor readings numbered `v` = 0.. over 20
/// devices' topics and waits for every PUBACK. Retained messages go through
/// rumqttd and the link; the others are taken by the front.
async fn publish_numbered(addr: std::net::SocketAddr, client_id: &str, total: usize, retain: bool) {
    let messages = (0..total)
        .map(|i| {
            (
                format!("sensors/S{}/telemetry", i % 20),
                format!(r#"{{"timestamp": {i}, "v": {i}}}"#).into_bytes(),
            )
        })
        .collect();
    publish_all_with(
        options(addr, client_id),
        messages,
        QoS::AtLeastOnce,
        retain,
        Duration::from_secs(60),
    )
    .await;
}

/// An MQTT 3.1.1 CONNECT with a client id.
fn connect_packet(client_id: &str) -> Vec<u8> {
    let mut body = vec![0, 4, b'M', b'Q', b'T', b'T', 4, 0x02, 0, 60];
    body.extend((client_id.len() as u16).to_be_bytes());
    body.extend(client_id.as_bytes());
    let mut p = vec![0x10, body.len() as u8];
    p.extend(body);
    p
}

/// A QoS 1 PUBLISH with packet id 1.
fn publish_packet(topic: &str, payload: &[u8]) -> Vec<u8> {
    let mut body = Vec::new();
    body.extend((topic.len() as u16).to_be_bytes());
    body.extend(topic.as_bytes());
    body.extend([0, 1]);
    body.extend(payload);
    let mut p = vec![0x32, body.len() as u8];
    p.extend(body);
    p
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn devices_connect_over_tls_with_a_test_ca() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let db = Dynalite::start();
    let ca = support::tls::TestCa::new();
    let dir = tempfile::tempdir().expect("tmp");
    let (cert_path, key_path) = (dir.path().join("cert.pem"), dir.path().join("key.pem"));
    let (pem, key, der) = ca.leaf("mqtt");
    std::fs::write(&cert_path, pem).expect("cert");
    std::fs::write(&key_path, key).expect("key");
    let extra = format!(
        "[mqtt.tls]\ncert = {:?}\nkey = {:?}\n",
        cert_path.display().to_string(),
        key_path.display().to_string()
    );
    let gw = Gateway::start(&db.endpoint, &[], &extra);
    let addr = gw.mqtt.expect("embedded broker listens");

    let tcp = tokio::net::TcpStream::connect(addr).await.expect("connect");
    let name = rustls::pki_types::ServerName::try_from("localhost").expect("name");
    let mut tls = ca.client().connect(name, tcp).await.expect("TLS handshake");
    let presented = tls
        .get_ref()
        .1
        .peer_certificates()
        .and_then(|c| c.first().cloned());
    assert_eq!(presented.map(|c| c.into_owned()), Some(der));
    tls.write_all(&connect_packet("tls-dev"))
        .await
        .expect("CONNECT");
    let mut connack = [0u8; 4];
    tls.read_exact(&mut connack).await.expect("CONNACK");
    assert_eq!(connack, [0x20, 0x02, 0x00, 0x00], "connection accepted");
    tls.write_all(&publish_packet(
        "sensors/TLS1/telemetry",
        br#"{"timestamp": 5, "v": 1}"#,
    ))
    .await
    .expect("PUBLISH");
    let mut puback = [0u8; 4];
    tls.read_exact(&mut puback).await.expect("PUBACK");
    assert_eq!(puback, [0x40, 0x02, 0x00, 0x01]);

    // Plain MQTT on the TLS port is refused at the handshake.
    let (_c, mut plain) = rumqttc::AsyncClient::new(options(addr, "plain"), 10);
    assert!(plain.poll().await.is_err());

    let client = dynamodb(&db.endpoint).await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while query(&client, "IoTSensorData", "device_id", "TLS1")
        .await
        .is_empty()
    {
        assert!(
            tokio::time::Instant::now() < deadline,
            "TLS message not stored"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let http = Http::default();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while metric(
        &http,
        gw.admin,
        "dynamo_ingest_mqtt_rejected_total",
        "reason=\"tls_handshake\"",
    )
    .await
        < 1.0
    {
        assert!(
            tokio::time::Instant::now() < deadline,
            "plain connection not counted"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// DynamoDB gone, a queue of 10 items and a 2 s grace: at the deadline,
/// every acknowledged message is in the dead-letter file exactly once,
/// either as an item (it had reached the queue) or raw (it was still held
/// between the broker and the queue), and the gateway exits promptly (the
/// raw ones are written in batches, not one fsync per message). Retained
/// messages take the broker's path: rumqttd acknowledges them on receipt.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn at_the_shutdown_deadline_held_messages_are_dead_lettered_once_each() {
    let (_db, mut gw, addr) = doomed_gateway();
    let total = 2_000;
    publish_numbered(addr, "doomed", total, true).await;
    gw.terminate();
    let status = gw.wait(Duration::from_secs(30));
    assert!(status.success(), "{status:?}\n{}", gw.log());
    let lines = gw.dead_letters();
    let mut seen = std::collections::BTreeSet::new();
    let (mut raw, mut items) = (0, 0);
    for l in &lines {
        assert_eq!(l["reason"], "shutdown_deadline", "{l}");
        let v = if let Some(p) = l["payload"].as_str() {
            raw += 1;
            assert_eq!(l["source"], "mqtt", "{l}");
            let p: serde_json::Value = serde_json::from_str(p).expect("payload is the JSON sent");
            p["v"].as_u64().expect("v")
        } else {
            items += 1;
            l["item"]["v"]["N"]
                .as_str()
                .and_then(|n| n.parse().ok())
                .expect("typed item with v")
        };
        assert!(seen.insert(v), "message {v} dead-lettered twice");
    }
    assert_eq!(seen.len(), total, "raw {raw} + items {items}");
    assert!(raw > 0, "most messages were still held: {items} items");
}

/// A PUBACK from the front means the message is queued. DynamoDB gone and a
/// queue of 10 items: a device's QoS 1 messages stop being acknowledged once
/// the queue is full (the connection is paused, not dropped), and at the
/// shutdown deadline every acknowledged message is in the dead-letter file.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_queue_withholds_pubacks_and_keeps_every_acknowledged_message() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    let (_db, mut gw, addr) = doomed_gateway();
    let total: u16 = 200;
    let mut device = connected(addr, &connect_packet("withheld")).await;
    let mut burst = Vec::new();
    for id in 1..=total {
        let payload = format!(r#"{{"timestamp": {id}, "v": {id}}}"#);
        burst.extend(publish_packet_id(
            "sensors/W1/telemetry",
            payload.as_bytes(),
            id,
        ));
    }
    device.write_all(&burst).await.expect("PUBLISH burst");
    let (mut rx, _tx) = device.into_split();
    let reader = tokio::spawn(async move {
        let mut acks = Vec::new();
        let mut packet = [0u8; 4];
        while rx.read_exact(&mut packet).await.is_ok() {
            assert_eq!(&packet[..2], &[0x40, 2], "only PUBACKs are expected");
            acks.push(u16::from_be_bytes([packet[2], packet[3]]));
        }
        acks
    });
    let http = Http::default();
    support::eventually(
        "the front pauses the device",
        Duration::from_secs(30),
        || async {
            metric(&http, gw.admin, "dynamo_ingest_mqtt_connections_paused", "").await > 0.0
        },
    )
    .await;
    gw.terminate();
    let status = gw.wait(Duration::from_secs(30));
    assert!(status.success(), "{status:?}\n{}", gw.log());
    let acked = tokio::time::timeout(Duration::from_secs(10), reader)
        .await
        .expect("the connection was closed")
        .expect("reader");
    assert!(
        !acked.is_empty() && acked.len() < usize::from(total),
        "{} of {total} acknowledged",
        acked.len()
    );
    let kept: std::collections::BTreeSet<u64> = gw
        .dead_letters()
        .iter()
        .map(|l| {
            assert_eq!(l["reason"], "shutdown_deadline", "{l}");
            l["item"]["v"]["N"]
                .as_str()
                .and_then(|n| n.parse().ok())
                .expect("a queued item with v")
        })
        .collect();
    for id in &acked {
        assert!(
            kept.contains(&u64::from(*id)),
            "acknowledged message {id} lost"
        );
    }
}

/// A gateway with a 10-item queue and a 2 s shutdown grace whose DynamoDB
/// is gone.
fn doomed_gateway() -> (Dynalite, Gateway, std::net::SocketAddr) {
    let mut db = Dynalite::start();
    let gw = Gateway::start(
        &db.endpoint,
        &[
            ("queue_max_items = 80000", "queue_max_items = 10"),
            ("shutdown_grace = \"30s\"", "shutdown_grace = \"2s\""),
        ],
        "",
    );
    let addr = gw.mqtt.expect("embedded broker listens");
    db.stop();
    (db, gw, addr)
}

/// A raw device connection whose CONNECT (`connect`) was accepted.
async fn connected(addr: std::net::SocketAddr, connect: &[u8]) -> tokio::net::TcpStream {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    let mut device = tokio::net::TcpStream::connect(addr).await.expect("connect");
    device.write_all(connect).await.expect("CONNECT");
    let mut connack = [0u8; 4];
    device.read_exact(&mut connack).await.expect("CONNACK");
    assert_eq!(connack, [0x20, 2, 0, 0]);
    device
}

/// A QoS 1 PUBLISH with packet id `id`.
fn publish_packet_id(topic: &str, payload: &[u8], id: u16) -> Vec<u8> {
    let mut p = publish_packet(topic, payload);
    let at = 2 + 2 + topic.len();
    p[at..at + 2].copy_from_slice(&id.to_be_bytes());
    p
}

/// rumqttd drops a connection that sent it nothing for 1.5 × its
/// keep-alive; the front takes a publishing device's PUBLISHes itself, so it
/// keeps that timer fed. A device with a 1 s keep-alive that publishes every
/// 100 ms for 3 s (and never pings) keeps its connection, gets a PUBACK for
/// each message and nothing else (no PINGRESP it did not ask for).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_device_that_only_publishes_outlives_its_keep_alive() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    let db = Dynalite::start();
    let gw = Gateway::start(&db.endpoint, &[], "");
    let addr = gw.mqtt.expect("embedded broker listens");
    let mut connect = connect_packet("chatty");
    connect[10..12].copy_from_slice(&1u16.to_be_bytes());
    let mut device = connected(addr, &connect).await;
    let mut packet = [0u8; 4];
    let mut tick = tokio::time::interval(Duration::from_millis(100));
    for id in 1..=30u16 {
        tick.tick().await;
        let payload = format!(r#"{{"timestamp": {id}, "v": {id}}}"#);
        device
            .write_all(&publish_packet_id(
                "sensors/K1/telemetry",
                payload.as_bytes(),
                id,
            ))
            .await
            .expect("PUBLISH");
        tokio::time::timeout(Duration::from_secs(5), device.read_exact(&mut packet))
            .await
            .expect("a PUBACK within 5 s")
            .unwrap_or_else(|e| panic!("connection closed after {} messages: {e}", id - 1));
        assert_eq!(packet, [0x40, 2, 0, id as u8], "message {id}");
    }
    let client = dynamodb(&db.endpoint).await;
    let stored =
        support::wait_for_count(&client, "IoTSensorData", 30, Duration::from_secs(20)).await;
    assert_eq!(stored, 30);
}

/// A device may send its first PUBLISH right behind CONNECT, in the same
/// segment. The front takes that PUBLISH itself, but its PUBACK must not
/// overtake rumqttd's CONNACK.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connack_comes_before_the_puback_of_a_pipelined_publish() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    let db = Dynalite::start();
    let gw = Gateway::start(&db.endpoint, &[], "");
    let addr = gw.mqtt.expect("embedded broker listens");
    for round in 0..5u16 {
        let mut device = tokio::net::TcpStream::connect(addr).await.expect("connect");
        let payload = format!(r#"{{"timestamp": {round}, "v": {round}}}"#);
        let first = [
            connect_packet(&format!("eager-{round}")),
            publish_packet_id("sensors/E1/telemetry", payload.as_bytes(), 7),
        ]
        .concat();
        device.write_all(&first).await.expect("CONNECT + PUBLISH");
        let mut answer = [0u8; 8];
        tokio::time::timeout(Duration::from_secs(5), device.read_exact(&mut answer))
            .await
            .expect("answers within 5 s")
            .expect("CONNACK and PUBACK");
        assert_eq!(answer, [0x20, 2, 0, 0, 0x40, 2, 0, 7], "round {round}");
    }
}
