//! The embedded MQTT broker end to end: real rumqttc devices publish to the
//! gateway's listener, items land in dynalite (exact types), bad input is
//! refused or dead-lettered with a counted reason while other devices keep
//! being served.

mod support;

use std::time::Duration;

use aws_sdk_dynamodb::types::AttributeValue;
use rumqttc::{ConnectReturnCode, QoS};
use support::mqtt::{connack, options, publish_all, publish_is_refused};
use support::{count, dynamodb, metric, query, Dynalite, Gateway, Http};

/// Polls `table` until it holds `n` items (or panics at the deadline).
async fn wait_for_count(client: &aws_sdk_dynamodb::Client, table: &str, n: usize, limit: Duration) {
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        let c = count(client, table).await;
        if c >= n {
            assert_eq!(c, n, "{table} holds more items than were published");
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{table}: {c} of {n} items after {limit:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_default_topic_lands_in_its_table_with_exact_types() {
    let db = Dynalite::start();
    let gw = Gateway::start(&db.endpoint, &[], "");
    let addr = gw.mqtt.expect("embedded broker listens");
    let messages = vec![
        (
            "sensors/D001/telemetry".to_owned(),
            br#"{"timestamp": 1700000000123, "temperature": 21.5, "humidity": 40, "ok": true}"#.to_vec(),
        ),
        (
            "sensors/D001/telemetry".to_owned(),
            br#"[{"timestamp": 1700000000124, "temperature": -3.25}, {"timestamp": 1700000000125, "reading": 12345678901234567890123}]"#.to_vec(),
        ),
        ("activity/U42".to_owned(), br#"{"action": "login"}"#.to_vec()),
        (
            "carts/U42".to_owned(),
            br#"{"item_id": "I7", "name": "Widget", "quantity": 2, "price": 9.99}"#.to_vec(),
        ),
    ];
    publish_all(
        options(addr, "dev-q1"),
        messages,
        QoS::AtLeastOnce,
        Duration::from_secs(20),
    )
    .await;
    publish_all(
        options(addr, "dev-q0"),
        vec![(
            "activity/U43".to_owned(),
            br#"{"action": "logout"}"#.to_vec(),
        )],
        QoS::AtMostOnce,
        Duration::from_secs(20),
    )
    .await;

    let client = dynamodb(&db.endpoint).await;
    wait_for_count(&client, "IoTSensorData", 3, Duration::from_secs(20)).await;
    wait_for_count(&client, "UserActivity", 2, Duration::from_secs(20)).await;
    wait_for_count(&client, "ShoppingCart", 1, Duration::from_secs(20)).await;

    let sensor = query(&client, "IoTSensorData", "device_id", "D001").await;
    let first = sensor
        .iter()
        .find(|i| i.get("timestamp") == Some(&AttributeValue::N("1700000000123".into())))
        .expect("the first reading, keyed by its own timestamp");
    // The topic segment filled the partition key; numbers keep full precision.
    assert_eq!(
        first.get("device_id"),
        Some(&AttributeValue::S("D001".into()))
    );
    assert_eq!(
        first.get("temperature"),
        Some(&AttributeValue::N("21.5".into()))
    );
    assert_eq!(first.get("humidity"), Some(&AttributeValue::N("40".into())));
    assert_eq!(first.get("ok"), Some(&AttributeValue::Bool(true)));
    assert!(sensor
        .iter()
        .any(|i| i.get("reading") == Some(&AttributeValue::N("12345678901234567890123".into()))));

    let activity = query(&client, "UserActivity", "user_id", "U42").await;
    assert_eq!(activity.len(), 1);
    assert_eq!(
        activity[0].get("action"),
        Some(&AttributeValue::S("login".into()))
    );
    assert!(matches!(
        activity[0].get("timestamp"),
        Some(AttributeValue::N(_))
    ));

    let cart = query(&client, "ShoppingCart", "user_id", "U42").await;
    assert_eq!(
        cart[0].get("item_id"),
        Some(&AttributeValue::S("I7".into()))
    );
    assert_eq!(
        cart[0].get("price"),
        Some(&AttributeValue::N("9.99".into()))
    );

    let http = Http::default();
    assert_eq!(
        metric(
            &http,
            gw.admin,
            "dynamo_ingest_mqtt_messages_received_total",
            "qos=\"1\""
        )
        .await,
        4.0
    );
    assert_eq!(
        metric(
            &http,
            gw.admin,
            "dynamo_ingest_mqtt_messages_received_total",
            "qos=\"0\""
        )
        .await,
        1.0
    );
    assert_eq!(
        metric(
            &http,
            gw.admin,
            "dynamo_ingest_events_received_total",
            "source=\"mqtt\""
        )
        .await,
        6.0
    );
    assert!(gw.dead_letters().is_empty(), "{:?}", gw.dead_letters());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_is_refused_or_dead_lettered_and_other_devices_are_served() {
    let db = Dynalite::start();
    let users = format!(
        "users = {{ \"D1\" = \"{}\", \"D2\" = \"{}\" }}",
        dynamo_ingest::sources::mqtt::auth::digest("pw1"),
        dynamo_ingest::sources::mqtt::auth::digest("pw2"),
    );
    let gw = Gateway::start(
        &db.endpoint,
        &[
            ("# users = { \"D001\" = \"sha256:...\" }", &users),
            (
                "# acl = [\"sensors/{username}/telemetry\", \"activity/{username}\", \"carts/{username}\"]",
                "acl = [\"sensors/{username}/telemetry\", \"junk/{username}\"]",
            ),
            ("max_payload_bytes = \"1MiB\"", "max_payload_bytes = \"4KiB\""),
        ],
        "",
    );
    let addr = gw.mqtt.expect("embedded broker listens");
    let login = |id: &str, user: &str, pass: &str| {
        let mut o = options(addr, id);
        o.set_credentials(user, pass);
        o
    };

    // Wrong credentials and anonymous devices are refused at CONNECT.
    assert_eq!(
        connack(login("x1", "D1", "nope")).await,
        Some(ConnectReturnCode::BadUserNamePassword)
    );
    assert_eq!(
        connack(options(addr, "x2")).await,
        Some(ConnectReturnCode::BadUserNamePassword)
    );
    // Publishing under another device's identity, and an oversize packet:
    // the connection is closed and the message never acknowledged.
    assert!(
        publish_is_refused(
            login("x3", "D1", "pw1"),
            "sensors/D2/telemetry",
            b"{}".to_vec()
        )
        .await
    );
    assert!(
        publish_is_refused(
            login("x4", "D1", "pw1"),
            "sensors/D1/telemetry",
            vec![b' '; 8 * 1024]
        )
        .await
    );

    // Acknowledged but unusable: not JSON, a missing key, an unroutable topic.
    publish_all(
        login("d1", "D1", "pw1"),
        vec![
            ("sensors/D1/telemetry".to_owned(), b"not json".to_vec()),
            (
                "sensors/D1/telemetry".to_owned(),
                br#"[{"timestamp": 1}, {"device_id": 5}]"#.to_vec(),
            ),
            ("junk/D1".to_owned(), br#"{"a": 1}"#.to_vec()),
            (
                "sensors/D1/telemetry".to_owned(),
                br#"{"timestamp": 7, "v": 1}"#.to_vec(),
            ),
        ],
        QoS::AtLeastOnce,
        Duration::from_secs(20),
    )
    .await;
    // Another device is served all along.
    publish_all(
        login("d2", "D2", "pw2"),
        vec![(
            "sensors/D2/telemetry".to_owned(),
            br#"{"timestamp": 8, "v": 2}"#.to_vec(),
        )],
        QoS::AtLeastOnce,
        Duration::from_secs(20),
    )
    .await;

    let client = dynamodb(&db.endpoint).await;
    wait_for_count(&client, "IoTSensorData", 2, Duration::from_secs(20)).await;

    let http = Http::default();
    let rejected = |reason: &'static str| {
        let http = &http;
        let admin = gw.admin;
        async move {
            metric(
                http,
                admin,
                "dynamo_ingest_mqtt_rejected_total",
                &format!("reason=\"{reason}\""),
            )
            .await
        }
    };
    assert_eq!(rejected("auth").await, 2.0);
    assert_eq!(rejected("acl").await, 1.0);
    assert_eq!(rejected("oversize").await, 1.0);
    assert_eq!(
        metric(
            &http,
            gw.admin,
            "dynamo_ingest_mqtt_messages_unroutable_total",
            ""
        )
        .await,
        1.0
    );

    let dead = gw.dead_letters();
    let reasons: Vec<&str> = dead
        .iter()
        .map(|d| d["reason"].as_str().unwrap_or(""))
        .collect();
    assert_eq!(
        reasons,
        ["malformed", "invalid_event", "unroutable"],
        "{dead:?}"
    );
    assert_eq!(dead[0]["payload"], "not json");
    assert_eq!(dead[0]["topic"], "sensors/D1/telemetry");
    assert!(
        dead[1]["message"]
            .as_str()
            .unwrap_or("")
            .contains("event 1"),
        "{}",
        dead[1]
    );
    assert_eq!(dead[2]["topic"], "junk/D1");
}
