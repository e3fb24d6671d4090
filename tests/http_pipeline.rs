//! End-to-end: the real gateway binary against dynalite, driven over real
//! HTTP, items read back with aws-sdk-dynamodb.

mod support;

use std::collections::HashSet;
use std::time::Duration;

use aws_sdk_dynamodb::types::AttributeValue;
use support::{count, dynamodb, query, Dynalite, Gateway, Http};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn seed_requests_work_unchanged_and_land_in_their_tables() {
    let db = Dynalite::start();
    let mut gw = Gateway::start(&db.endpoint, &[], "");
    let http = Http::default();

    // The second with escaped query fields, decoded as the seed app would.
    for (query, body) in [
        (
            "user_id=U123&action=login",
            r#"{"status":"success","user_id":"U123","action":"login"}"#,
        ),
        (
            "user_id=U%20X&action=log+in",
            r#"{"status":"success","user_id":"U X","action":"log in"}"#,
        ),
    ] {
        let r = http
            .request(
                "POST",
                &gw.url(&format!("/log_activity/?{query}")),
                None,
                "",
            )
            .await;
        assert_eq!((r.status, r.body.as_str()), (200, body));
    }

    let r = http
        .post_json(
            &gw.url("/upload_data"),
            r#"{"device_id":"D001","temperature":30.5,"humidity":67}"#,
        )
        .await;
    assert_eq!(r.status, 200);
    assert_eq!(r.body, r#"{"status":"success","device_id":"D001"}"#);

    let r = http
        .get(&gw.url("/add_to_cart/?user_id=U123&item_id=P101&name=Book&quantity=1&price=10"))
        .await;
    assert_eq!(r.status, 200);
    assert_eq!(r.body, r#"{"status":"Item added to cart"}"#);
    let r = http
        .request(
            "POST",
            &gw.url("/add_to_cart/?user_id=U123&item_id=P102&name=Pen&quantity=2&price=2"),
            None,
            "",
        )
        .await;
    assert_eq!(r.body, r#"{"status":"Item added to cart"}"#);

    assert!(gw.shutdown().success(), "exit 0 after SIGTERM");
    let c = dynamodb(&db.endpoint).await;

    let activity = query(&c, "UserActivity", "user_id", "U123").await;
    assert_eq!(activity.len(), 1);
    assert_eq!(activity[0]["action"], AttributeValue::S("login".into()));
    let AttributeValue::N(ts) = &activity[0]["timestamp"] else {
        panic!("timestamp is N")
    };
    assert!(ts.parse::<u64>().expect("epoch ms") > 1_600_000_000_000);

    let sensor = query(&c, "IoTSensorData", "device_id", "D001").await;
    assert_eq!(sensor.len(), 1);
    assert_eq!(
        sensor[0]["temperature"],
        AttributeValue::N("30.5".into()),
        "exact decimal text"
    );
    assert_eq!(sensor[0]["humidity"], AttributeValue::N("67".into()));

    let cart = query(&c, "ShoppingCart", "user_id", "U123").await;
    assert_eq!(cart.len(), 2);
    let book = cart
        .iter()
        .find(|i| i["item_id"] == AttributeValue::S("P101".into()))
        .expect("P101");
    assert_eq!(book["name"], AttributeValue::S("Book".into()));
    assert_eq!(book["quantity"], AttributeValue::N("1".into()));
    assert_eq!(book["price"], AttributeValue::N("10".into()));
    assert!(gw.dead_letters().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ndjson_of_10000_events_gives_exactly_10000_items() {
    let db = Dynalite::start();
    let gw = Gateway::start(&db.endpoint, &[], "");
    let http = Http::default();
    let body: String = (0..10_000)
        .map(|i| {
            format!(
                "{{\"device_id\":\"D{:03}\",\"temperature\":{}.5,\"seq\":{i}}}\n",
                i % 100,
                i % 40
            )
        })
        .collect();
    let r = http
        .request(
            "POST",
            &gw.url("/v1/streams/sensor/events?ack=written"),
            Some("application/x-ndjson"),
            body,
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(
        r.json(),
        serde_json::json!({"accepted": 10000, "written": 10000})
    );
    let c = dynamodb(&db.endpoint).await;
    assert_eq!(count(&c, "IoTSensorData").await, 10_000);
    assert_eq!(
        query(&c, "IoTSensorData", "device_id", "D042").await.len(),
        100
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_burst_of_1000_events_from_one_device_gives_1000_distinct_items() {
    let db = Dynalite::start();
    let mut gw = Gateway::start(&db.endpoint, &[], "");
    let http = Http::default();
    let url = gw.url("/upload_data");
    let mut tasks = tokio::task::JoinSet::new();
    for t in 0..8 {
        let (http, url) = (http.clone(), url.clone());
        tasks.spawn(async move {
            for i in 0..125 {
                let r = http
                    .post_json(
                        &url,
                        &format!(r#"{{"device_id":"HOT","temperature":{t}.{i}}}"#),
                    )
                    .await;
                assert_eq!(r.status, 200, "{}", r.body);
            }
        });
    }
    while let Some(r) = tasks.join_next().await {
        r.expect("client task");
    }
    assert!(gw.shutdown().success());
    let c = dynamodb(&db.endpoint).await;
    let items = query(&c, "IoTSensorData", "device_id", "HOT").await;
    assert_eq!(items.len(), 1000, "no event overwrote another");
    let stamps: HashSet<String> = items
        .iter()
        .map(|i| format!("{:?}", i["timestamp"]))
        .collect();
    assert_eq!(stamps.len(), 1000);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cart_upserts_keep_the_last_write() {
    let db = Dynalite::start();
    let mut gw = Gateway::start(&db.endpoint, &[], "");
    let http = Http::default();
    for q in 1..=60 {
        let body =
            format!(r#"{{"user_id":"U9","item_id":"P1","name":"Book","quantity":{q},"price":10}}"#);
        let r = http
            .post_json(&gw.url("/v1/streams/cart/events"), &body)
            .await;
        assert_eq!(r.status, 202, "{}", r.body);
        assert_eq!(r.json(), serde_json::json!({"accepted": 1}));
    }
    // Several writes of one key inside one request: the last one wins too.
    let body: String = (61..=70)
        .map(|q| format!("{{\"user_id\":\"U9\",\"item_id\":\"P2\",\"quantity\":{q}}}\n"))
        .collect();
    let r = http
        .request(
            "POST",
            &gw.url("/v1/streams/cart/events"),
            Some("application/x-ndjson"),
            body,
        )
        .await;
    assert_eq!(r.status, 202);
    assert!(gw.shutdown().success());
    let c = dynamodb(&db.endpoint).await;
    let items = query(&c, "ShoppingCart", "user_id", "U9").await;
    assert_eq!(items.len(), 2);
    for item in items {
        let expected = if item["item_id"] == AttributeValue::S("P1".into()) {
            "60"
        } else {
            "70"
        };
        assert_eq!(item["quantity"], AttributeValue::N(expected.into()));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ack_written_means_readable_when_the_response_arrives() {
    let db = Dynalite::start();
    let gw = Gateway::start(&db.endpoint, &[], "");
    let http = Http::default();
    let c = dynamodb(&db.endpoint).await;
    for i in 0..5 {
        let user = format!("W{i}");
        let r = http
            .post_json(
                &gw.url("/v1/streams/activity/events?ack=written"),
                &format!(r#"{{"user_id":"{user}","action":"read"}}"#),
            )
            .await;
        assert_eq!(r.status, 200, "{}", r.body);
        assert_eq!(r.json(), serde_json::json!({"accepted": 1, "written": 1}));
        assert_eq!(
            query(&c, "UserActivity", "user_id", &user).await.len(),
            1,
            "readable at once"
        );
    }
    // The seed route honours ?ack=written too.
    let r = http
        .request(
            "POST",
            &gw.url("/log_activity/?user_id=SEEDW&action=x&ack=written"),
            None,
            "",
        )
        .await;
    assert_eq!(r.status, 200);
    assert_eq!(query(&c, "UserActivity", "user_id", "SEEDW").await.len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_gets_a_specific_error_and_stores_nothing() {
    let db = Dynalite::start();
    let mut gw = Gateway::start(
        &db.endpoint,
        &[("max_body_bytes = \"16MiB\"", "max_body_bytes = \"1MiB\"")],
        "",
    );
    let http = Http::default();
    let events = gw.url("/v1/streams/sensor/events");
    let ndjson = Some("application/x-ndjson");

    let r = http
        .post_json(&events, "{\"device_id\":\"B1\",\n \"temperature\": 3x}")
        .await;
    assert_eq!(r.status, 400);
    assert_eq!(r.json()["error"], "malformed_json");
    assert_eq!(r.json()["line"], 2);
    assert!(
        r.json()["message"].as_str().unwrap().contains("column"),
        "{}",
        r.body
    );

    let r = http.post_json(&events, r#"{"temperature":1}"#).await;
    assert_eq!(
        (
            r.status,
            r.json()["error"].clone(),
            r.json()["field"].clone()
        ),
        (400, "missing_key".into(), "device_id".into())
    );

    let r = http.post_json(&events, r#"{"device_id":17}"#).await;
    assert_eq!(
        (r.status, r.json()["error"].clone()),
        (400, "mistyped_key".into())
    );

    let r = http.post_json(&events, r#"{"device_id":""}"#).await;
    assert_eq!(
        (r.status, r.json()["error"].clone()),
        (400, "empty_key".into())
    );

    let r = http
        .post_json(&events, r#"{"device_id":"B1","temperature":1e999}"#)
        .await;
    assert_eq!(
        (r.status, r.json()["field"].clone()),
        (400, "temperature".into()),
        "{}",
        r.body
    );

    // A lone surrogate escape is valid JSON but not a string DynamoDB can
    // store: refused up front, naming the field (and the line in NDJSON).
    let r = http
        .post_json(&events, r#"{"device_id":"B1","note":"x\ud800y"}"#)
        .await;
    assert_eq!(
        (
            r.status,
            r.json()["error"].clone(),
            r.json()["field"].clone()
        ),
        (400, "bad_field".into(), "note".into()),
        "{}",
        r.body
    );
    let r = http
        .request(
            "POST",
            &events,
            ndjson,
            "{\"device_id\":\"B1\"}\n{\"device_id\":\"B2\",\"note\":\"\\udc00\"}\n",
        )
        .await;
    assert_eq!(
        (
            r.status,
            r.json()["line"].clone(),
            r.json()["field"].clone()
        ),
        (400, 2.into(), "note".into()),
        "{}",
        r.body
    );

    // A whole request is rejected when one event is bad: the good lines are not stored.
    let r = http
        .request(
            "POST",
            &events,
            ndjson,
            "{\"device_id\":\"B1\"}\n{\"device_id\":\"B2\"}\n{\"temperature\":5}\n",
        )
        .await;
    assert_eq!(r.status, 400);
    assert_eq!(r.json()["line"], 3);
    assert_eq!(r.json()["field"], "device_id");
    let r = http
        .request("POST", &events, ndjson, "{\"device_id\":\"B1\"}\n{nope\n")
        .await;
    assert_eq!((r.status, r.json()["line"].clone()), (400, 2.into()));
    let r = http.post_json(&events, r#"[{"device_id":"B1"}, 7]"#).await;
    assert_eq!(
        (r.status, r.json()["error"].clone()),
        (400, "not_an_object".into())
    );

    let r = http
        .post_json(&gw.url("/v1/streams/nope/events"), r#"{"a":1}"#)
        .await;
    assert_eq!(
        (r.status, r.json()["error"].clone()),
        (404, "unknown_stream".into())
    );
    let r = http.post_json(&gw.url("/nowhere"), r#"{"a":1}"#).await;
    assert_eq!(r.status, 404);
    let r = http.get(&events).await;
    assert_eq!(r.status, 405);
    assert_eq!(r.headers["allow"], "POST");
    let r = http.get(&gw.url("/upload_data")).await;
    assert_eq!(r.status, 405);

    let r = http
        .request("POST", &events, Some("text/plain"), "device_id=B1")
        .await;
    assert_eq!(
        (r.status, r.json()["error"].clone()),
        (415, "unsupported_media_type".into())
    );

    let big = format!(
        r#"{{"device_id":"B1","blob":"{}"}}"#,
        "x".repeat(2 * 1024 * 1024)
    );
    let r = http.post_json(&events, &big).await;
    assert_eq!(
        (r.status, r.json()["error"].clone()),
        (413, "body_too_large".into())
    );

    let item_over_400k = format!(
        r#"{{"device_id":"B1","blob":"{}"}}"#,
        "x".repeat(401 * 1024)
    );
    let r = http.post_json(&events, &item_over_400k).await;
    assert_eq!(
        (r.status, r.json()["error"].clone()),
        (413, "item_too_large".into())
    );

    let r = http
        .post_json(&format!("{events}?ack=maybe"), r#"{"device_id":"B1"}"#)
        .await;
    assert_eq!((r.status, r.json()["field"].clone()), (400, "ack".into()));

    let r = http
        .get(&gw.url("/add_to_cart/?user_id=U1&item_id=P1&quantity=many"))
        .await;
    assert_eq!(
        (r.status, r.json()["field"].clone()),
        (400, "quantity".into())
    );
    let r = http
        .request("POST", &gw.url("/log_activity/?action=login"), None, "")
        .await;
    assert_eq!(
        (r.status, r.json()["field"].clone()),
        (400, "user_id".into())
    );

    // The gateway still serves after all that.
    let r = http
        .post_json(
            &gw.url("/upload_data"),
            r#"{"device_id":"OK","temperature":1}"#,
        )
        .await;
    assert_eq!(r.status, 200);
    let rejected = support::metric(
        &http,
        gw.admin,
        "dynamo_ingest_events_rejected_total",
        "stream=\"sensor\"",
    )
    .await;
    assert!(rejected >= 11.0, "rejections are counted: {rejected}");

    assert!(gw.shutdown().success());
    let c = dynamodb(&db.endpoint).await;
    assert_eq!(
        count(&c, "IoTSensorData").await,
        1,
        "only the good event is stored"
    );
    assert_eq!(count(&c, "UserActivity").await, 0);
    assert_eq!(count(&c, "ShoppingCart").await, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_during_load_keeps_every_acknowledged_event() {
    let db = Dynalite::start();
    let mut gw = Gateway::start(&db.endpoint, &[], "");
    let http = Http::default();
    let url = gw.url("/v1/streams/sensor/events");
    let (acked_tx, mut acked_rx) = tokio::sync::mpsc::unbounded_channel::<usize>();
    let mut tasks = tokio::task::JoinSet::new();
    // 4 clients × 50 requests × 100 events = 20,000 events.
    for t in 0..4 {
        let (http, url, acked_tx) = (http.clone(), url.clone(), acked_tx.clone());
        tasks.spawn(async move {
            for r in 0..50 {
                let request = t * 50 + r;
                let body: String = (0..100)
                    .map(|i| format!("{{\"device_id\":\"R{request}\",\"n\":{i}}}\n"))
                    .collect();
                match http
                    .try_request("POST", &url, Some("application/x-ndjson"), body)
                    .await
                {
                    Ok(resp) if resp.status == 202 => {
                        let _ = acked_tx.send(request);
                    }
                    Ok(resp) => assert!(
                        resp.status >= 500,
                        "unexpected {}: {}",
                        resp.status,
                        resp.body
                    ),
                    Err(_) => return, // the listener closed
                }
            }
        });
    }
    drop(acked_tx);
    let mut acked = Vec::new();
    while acked.len() < 40 {
        acked.push(
            acked_rx
                .recv()
                .await
                .expect("some requests are acked before SIGTERM"),
        );
    }
    gw.terminate();
    while let Some(r) = acked_rx.recv().await {
        acked.push(r);
    }
    while tasks.join_next().await.is_some() {}
    let status = gw.wait(Duration::from_secs(60));
    assert!(status.success(), "exit 0: {status:?}\n{}", gw.log());
    assert!(gw.dead_letters().is_empty());
    let c = dynamodb(&db.endpoint).await;
    let stored = count(&c, "IoTSensorData").await;
    assert!(
        stored >= acked.len() * 100,
        "stored {stored} < acked {}",
        acked.len() * 100
    );
    for request in acked.iter().step_by(7) {
        assert_eq!(
            query(&c, "IoTSensorData", "device_id", &format!("R{request}"))
                .await
                .len(),
            100,
            "request {request}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stream_http_path_fills_keys_from_the_path() {
    let db = Dynalite::start();
    let gw = Gateway::start(
        &db.endpoint,
        &[(
            "table = \"IoTSensorData\"",
            "table = \"IoTSensorData\"\nhttp_path = \"/devices/{device_id}/readings\"",
        )],
        "",
    );
    let http = Http::default();
    let r = http
        .post_json(
            &gw.url("/devices/D%2F7%20x/readings?ack=written"),
            r#"[{"temperature":1},{"temperature":2}]"#,
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.json(), serde_json::json!({"accepted": 2, "written": 2}));
    let r = http.get(&gw.url("/devices/D1/readings")).await;
    assert_eq!(r.status, 405);
    let r = http
        .post_json(&gw.url("/devices//readings"), r#"{"temperature":1}"#)
        .await;
    assert_eq!(r.status, 404, "an empty capture matches no route");
    let c = dynamodb(&db.endpoint).await;
    assert_eq!(
        query(&c, "IoTSensorData", "device_id", "D/7 x").await.len(),
        2,
        "percent-decoded path segment"
    );
}

/// Sends `chunks` as one chunked request (no Content-Length) and returns
/// the response's status and body. The connection closes after it.
async fn post_chunked(
    url: &str,
    path: &str,
    content_type: &str,
    chunks: Vec<Vec<u8>>,
) -> (u16, String) {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let addr = url
        .strip_prefix("http://")
        .and_then(|rest| rest.split('/').next())
        .expect("gateway URL");
    let stream = tokio::net::TcpStream::connect(addr).await.expect("connect");
    let (mut read, mut write) = stream.into_split();
    let head = format!(
        "POST {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Type: {content_type}\r\n\
         Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
    );
    // Written beside the read: a refused body may be answered before all
    // of it is sent. The write half is handed back, not dropped: dropping
    // it half-closes the connection, and the gateway closes on that.
    let writer = tokio::spawn(async move {
        let sent = async {
            write.write_all(head.as_bytes()).await?;
            for chunk in chunks {
                write
                    .write_all(format!("{:x}\r\n", chunk.len()).as_bytes())
                    .await?;
                write.write_all(&chunk).await?;
                write.write_all(b"\r\n").await?;
                write.flush().await?;
            }
            write.write_all(b"0\r\n\r\n").await?;
            write.flush().await
        }
        .await;
        (write, sent)
    });
    let mut response = Vec::new();
    let _ = read.read_to_end(&mut response).await;
    drop(writer.await);
    let text = String::from_utf8_lossy(&response).into_owned();
    let status = text
        .get(9..12)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no status line in {text:?}"));
    let body = text
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_owned())
        .unwrap_or_default();
    (status, body)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bodies_in_many_frames_and_escaped_names_are_read_whole() {
    let db = Dynalite::start();
    let gw = Gateway::start(
        &db.endpoint,
        &[("max_body_bytes = \"16MiB\"", "max_body_bytes = \"1MiB\"")],
        "",
    );
    let base = gw.url("");
    // 300 events in chunks of 700 bytes, cut mid-line: each chunk is its own
    // frame of the body, and the events only parse when joined in order.
    let ndjson: String = (0..300)
        .map(|i| {
            format!(
                "{{\"device_id\":\"C{:02}\",\"seq\":{i},\"note\":\"chunked\"}}\n",
                i % 30
            )
        })
        .collect();
    let chunks: Vec<Vec<u8>> = ndjson.as_bytes().chunks(700).map(<[u8]>::to_vec).collect();
    assert!(chunks.len() > 10);
    let (status, body) = post_chunked(
        &base,
        "/v1/streams/sensor/events?ack=written",
        "application/x-ndjson",
        chunks,
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        serde_json::from_str::<serde_json::Value>(&body).expect("json"),
        serde_json::json!({"accepted": 300, "written": 300})
    );
    let c = dynamodb(&db.endpoint).await;
    let c07 = query(&c, "IoTSensorData", "device_id", "C07").await;
    assert_eq!(c07.len(), 10);
    let mut seqs: Vec<String> = c07
        .iter()
        .map(|item| match &item["seq"] {
            AttributeValue::N(n) => n.clone(),
            other => panic!("seq is {other:?}"),
        })
        .collect();
    seqs.sort_by_key(|s| s.parse::<u32>().expect("number"));
    let want: Vec<String> = (0..10).map(|k| (7 + 30 * k).to_string()).collect();
    assert_eq!(seqs, want);

    // Without a Content-Length the limit is enforced as the frames come.
    let chunks = vec![vec![b'x'; 64 * 1024]; 24];
    let (status, body) = post_chunked(
        &base,
        "/v1/streams/sensor/events",
        "application/json",
        chunks,
    )
    .await;
    assert_eq!(status, 413, "{body}");
    assert!(body.contains("body_too_large"), "{body}");

    // An escaped stream name (the seed test sends escaped query fields).
    let http = Http::default();
    let r = http
        .post_json(
            &gw.url("/v1/streams/sen%73or/events?ack=written"),
            r#"{"device_id":"ESC1","t":1}"#,
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(
        query(&c, "IoTSensorData", "device_id", "ESC1").await.len(),
        1
    );
}
