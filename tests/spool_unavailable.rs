//! A spool that cannot take a record: its directory is removed under the
//! running gateway, so the appender cannot create a segment. A spooled
//! HTTP request gets 503 `spool_unavailable` with Retry-After, a spooled
//! MQTT QoS 1 message gets no PUBACK (the connection is closed, so the
//! device sends it again), and both are counted. Their events were already
//! queued and are still written (docs/SPOOL.md, "Known limits"). Once the
//! directory is back, the next append opens a new segment and spooled
//! requests are answered 202 again.

mod support;

use std::time::Duration;

use rumqttc::{AsyncClient, Event, Packet, QoS};
use support::mqtt::options;
use support::{dynamodb, metric, wait_for_count, Dynalite, Gateway, Http};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unwritable_spool_refuses_both_sources_and_recovers() {
    let db = Dynalite::start();
    let tmp = tempfile::tempdir().expect("tmp");
    let dir = tmp.path().join("spool");
    let gw = Gateway::start(
        &db.endpoint,
        &[],
        &format!(
            "[spool]\nenabled = true\npath = {:?}\n",
            dir.display().to_string()
        ),
    );
    // The gateway made the directory at start; no segment exists until the
    // first append.
    assert!(dir.is_dir());
    std::fs::remove_dir_all(&dir).expect("remove the spool directory");
    let http = Http::default();
    let url = gw.url("/v1/streams/sensor/events?ack=spooled");

    let r = http
        .post_json(&url, r#"{"device_id":"lost-dir","seq":1}"#)
        .await;
    assert_eq!(r.status, 503, "{}", r.body);
    assert_eq!(r.json()["error"], "spool_unavailable", "{}", r.body);
    assert!(
        r.json()["message"]
            .as_str()
            .is_some_and(|m| m.contains("fsynced to the spool")),
        "{}",
        r.body
    );
    assert!(r.headers.contains_key("retry-after"));
    assert_eq!(refused_requests(&http, &gw).await, 1.0);
    assert!(gw.log().contains("spool append failed"), "{}", gw.log());

    // MQTT: the message is not acknowledged; the gateway closes the
    // connection instead.
    let (client, mut eventloop) =
        AsyncClient::new(options(gw.mqtt.expect("broker"), "lost-dir-dev"), 10);
    client
        .publish(
            "sensors/lost-dir-dev/telemetry",
            QoS::AtLeastOnce,
            false,
            r#"{"seq":2}"#,
        )
        .await
        .expect("queue publish");
    let closed = tokio::time::timeout(Duration::from_secs(30), async {
        loop {
            match eventloop.poll().await {
                Ok(Event::Incoming(Packet::PubAck(_))) => panic!("PUBACK without a spool"),
                Ok(_) => {}
                Err(e) => return e,
            }
        }
    })
    .await
    .expect("the gateway closes the connection");
    drop(eventloop);
    assert_eq!(
        metric(
            &http,
            gw.admin,
            "dynamo_ingest_mqtt_rejected_total",
            r#"reason="spool_unavailable""#
        )
        .await,
        1.0,
        "closed with {closed}"
    );

    // Both events were queued before the append failed: they are written.
    let dynamo = dynamodb(&db.endpoint).await;
    assert_eq!(
        wait_for_count(&dynamo, "IoTSensorData", 2, Duration::from_secs(30)).await,
        2
    );

    // The directory is back: the next append opens a segment in it.
    std::fs::create_dir(&dir).expect("recreate the spool directory");
    let r = http
        .post_json(&url, r#"{"device_id":"lost-dir","seq":3}"#)
        .await;
    assert_eq!(r.status, 202, "{}", r.body);
    let segments = std::fs::read_dir(&dir).expect("spool dir").count();
    assert!(segments >= 1, "a new segment was created");
    assert_eq!(refused_requests(&http, &gw).await, 1.0, "not counted again");
}

async fn refused_requests(http: &Http, gw: &Gateway) -> f64 {
    metric(
        http,
        gw.admin,
        "dynamo_ingest_http_requests_rejected_total",
        r#"reason="spool_unavailable""#,
    )
    .await
}
