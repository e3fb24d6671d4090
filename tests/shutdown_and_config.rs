//! Process-level behaviour: configuration errors and their exit code,
//! table bootstrap, a full queue, and the shutdown deadline.

mod support;

use aws_sdk_dynamodb::types::{
    AttributeDefinition, BillingMode, KeySchemaElement, KeyType, ScalarAttributeType,
};
use support::{dynamodb, run_binary, Dynalite, Gateway, Http};

#[test]
fn check_config_prints_the_effective_config() {
    let (code, out, err) = run_binary(&["check-config", "--region", "eu-west-1"]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("region = \"eu-west-1\""), "{out}");
    assert!(out.contains("[streams.cart]"), "{out}");
}

#[test]
fn a_bad_config_exits_64_naming_the_key() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bad.toml");
    std::fs::write(&path, "[pipeline]\nlinger = \"soon\"\n").unwrap();
    let (code, _, err) = run_binary(&["check-config", "--config", path.to_str().unwrap()]);
    assert_eq!(code, 64);
    assert!(err.contains("linger"), "{err}");
    std::fs::write(&path, "[streams.x]\ntable = \"T1x\"\npartition_key = { name = \"k\", type = \"S\" }\nsort_key = { name = \"t\", type = \"S\", source = \"server_time\" }\n").unwrap();
    let (code, _, err) = run_binary(&["--config", path.to_str().unwrap()]);
    assert_eq!(code, 64);
    assert!(err.contains("streams.x.sort_key.type"), "{err}");
    let (code, _, err) = run_binary(&["--config", "/does/not/exist.toml"]);
    assert_eq!(code, 64);
    assert!(err.contains("/does/not/exist.toml"), "{err}");
}

#[test]
fn check_config_loads_the_tls_files_and_names_the_key_and_file_at_fault() {
    let ca = support::tls::TestCa::new();
    let dir = tempfile::tempdir().unwrap();
    let file = |name: &str, text: &str| {
        let p = dir.path().join(name);
        std::fs::write(&p, text).unwrap();
        p.display().to_string()
    };
    let (cert_a, key_a, _) = ca.leaf("a");
    let (_, key_b, _) = ca.leaf("b");
    let (cert, key, other_key) = (
        file("cert.pem", &cert_a),
        file("key.pem", &key_a),
        file("other-key.pem", &key_b),
    );
    let junk = file("junk.pem", "not PEM at all\n");
    let default =
        std::fs::read_to_string(support::repo_root().join("config/default.toml")).unwrap();
    let check = |toml: String| {
        let path = file("config.toml", &format!("{default}\n{toml}"));
        run_binary(&["check-config", "--config", &path])
    };
    let tls = |section: &str, cert: &str, key: &str| {
        format!("[{section}]\ncert = {cert:?}\nkey = {key:?}\n")
    };

    let (code, out, err) = check(tls("http.tls", &cert, &key) + &tls("mqtt.tls", &cert, &key));
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("[http.tls]"), "{out}");

    let missing = dir.path().join("missing.pem").display().to_string();
    for (toml, key_name, file_name) in [
        (tls("http.tls", &missing, &key), "http.tls.cert", &missing),
        (tls("http.tls", &junk, &key), "http.tls.cert", &junk),
        (tls("http.tls", &cert, &junk), "http.tls.key", &junk),
        (
            tls("http.tls", &cert, &other_key),
            "http.tls.key",
            &other_key,
        ),
        (tls("mqtt.tls", &cert, &missing), "mqtt.tls.key", &missing),
    ] {
        let (code, _, err) = check(toml);
        assert_eq!(code, 64, "{key_name} {file_name}: {err}");
        assert!(
            err.contains(&format!("`{key_name}`")) && err.contains(file_name.as_str()),
            "expected {key_name} and {file_name} in: {err}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_table_with_other_keys_exits_64() {
    let db = Dynalite::start();
    let c = dynamodb(&db.endpoint).await;
    c.create_table()
        .table_name("ShoppingCart")
        .billing_mode(BillingMode::PayPerRequest)
        .key_schema(
            KeySchemaElement::builder()
                .attribute_name("cart_id")
                .key_type(KeyType::Hash)
                .build()
                .unwrap(),
        )
        .attribute_definitions(
            AttributeDefinition::builder()
                .attribute_name("cart_id")
                .attribute_type(ScalarAttributeType::S)
                .build()
                .unwrap(),
        )
        .send()
        .await
        .unwrap();
    let Err((msg, log)) = Gateway::try_start(&db.endpoint, &[], "") else {
        panic!("started despite the schema mismatch")
    };
    assert!(msg.contains("exit"), "{msg}");
    assert!(
        log.contains("ShoppingCart") && log.contains("cart_id"),
        "{log}"
    );
    let (code, _, err) = {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_dynamo-ingest"))
            .args([
                "--dynamodb-endpoint",
                &db.endpoint,
                "--http-listen",
                "127.0.0.1:0",
                "--admin-listen",
                "127.0.0.1:0",
                "--mqtt-listen",
                "127.0.0.1:0",
            ])
            .output()
            .unwrap();
        (
            out.status.code(),
            out.stdout,
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    assert_eq!(code, Some(64), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_queue_answers_503_before_decoding_and_the_deadline_dead_letters_what_was_acked() {
    let mut db = Dynalite::start();
    let mut gw = Gateway::start(
        &db.endpoint,
        &[
            ("queue_max_items = 80000", "queue_max_items = 50"),
            ("max_in_flight = 8", "max_in_flight = 1"),
            ("request_timeout = \"10s\"", "request_timeout = \"500ms\""),
            ("shutdown_grace = \"30s\"", "shutdown_grace = \"2s\""),
        ],
        "",
    );
    let http = Http::default();
    // Tables are ready; now DynamoDB goes away and writes cannot succeed.
    db.stop();
    let url = gw.url("/v1/streams/sensor/events");
    let mut acked = 0;
    let mut refused = None;
    for r in 0..40 {
        let body: String = (0..10)
            .map(|i| format!("{{\"device_id\":\"Q{r}\",\"n\":{i}}}\n"))
            .collect();
        let resp = http
            .request("POST", &url, Some("application/x-ndjson"), body)
            .await;
        match resp.status {
            202 => acked += 10,
            503 => {
                refused = Some(resp);
                break;
            }
            s => panic!("unexpected {s}: {}", resp.body),
        }
    }
    let refused = refused.expect("the queue filled up");
    assert_eq!(refused.json()["error"], "queue_full");
    assert_eq!(refused.headers["retry-after"], "1");
    // A queue without room for one event refuses before decoding: a body
    // that would be a 400 gets the 503 (nothing is parsed that could not be
    // queued). Single events fill what room is left first. The batcher may
    // still take a batch out of the queue between the fill and the bad body
    // (its first call has not failed yet), and then the body is decoded and
    // refused with 400: fill again, a bounded number of times. Without the
    // check before decoding the answer is always 400 and this fails.
    let mut n = 0;
    let mut refused_before_decoding = None;
    for _ in 0..20 {
        loop {
            assert!(n < 500, "the queue holds 50 items at most");
            let one = format!("{{\"device_id\":\"Q-one\",\"n\":{n}}}\n");
            n += 1;
            match http.post_ndjson(&url, one).await.status {
                202 => acked += 1,
                503 => break,
                s => panic!("unexpected {s}"),
            }
        }
        let bad = http
            .post_ndjson(&url, "{\"device_id\": not json\n".to_owned())
            .await;
        match bad.status {
            503 => {
                refused_before_decoding = Some(bad);
                break;
            }
            400 => assert_eq!(bad.json()["error"], "malformed_json"),
            s => panic!("unexpected {s}: {}", bad.body),
        }
    }
    let bad = refused_before_decoding.expect("a full queue refused a malformed body with 503");
    assert_eq!(bad.json()["error"], "queue_full");
    // The first failed call marks DynamoDB unreachable; the queue can fill
    // before it completes, so wait (bounded) for /readyz to say so.
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(10);
    let readyz = loop {
        let r = http.get(&format!("http://{}/readyz", gw.admin)).await;
        if r.status == 503 || tokio::time::Instant::now() >= deadline {
            break r;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    };
    assert_eq!(
        readyz.status, 503,
        "not ready while DynamoDB is unreachable: {}",
        readyz.body
    );
    assert!(readyz.json()["dynamodb_unreachable"]
        .as_array()
        .is_some_and(|t| t.iter().any(|t| t == "IoTSensorData")));

    let status = gw.shutdown();
    assert!(status.success(), "{status:?}");
    let dead = gw.dead_letters();
    assert_eq!(
        dead.len(),
        acked,
        "every acknowledged event is in the dead-letter file"
    );
    assert!(dead
        .iter()
        .all(|d| d["reason"] == "shutdown_deadline" && d["table"] == "IoTSensorData"));
    assert!(dead[0]["item"]["device_id"]["S"]
        .as_str()
        .unwrap()
        .starts_with('Q'));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_metric_family_is_on_metrics_before_the_first_event() {
    let db = Dynalite::start();
    let gw = Gateway::start(&db.endpoint, &[], "");
    let http = Http::default();
    let body = http.get(&format!("http://{}/metrics", gw.admin)).await.body;
    // (family, labels): each must have a series carrying all those labels.
    let families: [(&str, &[&str]); 22] = [
        (
            "events_received_total",
            &["source=\"http\"", "stream=\"sensor\""],
        ),
        (
            "events_received_total",
            &["source=\"mqtt\"", "stream=\"cart\""],
        ),
        (
            "events_rejected_total",
            &[
                "reason=\"queue_full\"",
                "source=\"http\"",
                "stream=\"activity\"",
            ],
        ),
        ("queue_depth", &["table=\"IoTSensorData\""]),
        ("queue_bytes", &["table=\"UserActivity\""]),
        (
            "batches_total",
            &["outcome=\"partial\"", "table=\"ShoppingCart\""],
        ),
        ("batch_collapsed_items_total", &["table=\"ShoppingCart\""]),
        ("items_written_total", &["table=\"IoTSensorData\""]),
        ("wcu_consumed_total", &["table=\"IoTSensorData\""]),
        ("unprocessed_items_total", &["table=\"IoTSensorData\""]),
        (
            "throttled_requests_total",
            &["reason=\"key_range\"", "table=\"IoTSensorData\""],
        ),
        (
            "retries_total",
            &["cause=\"unprocessed\"", "table=\"IoTSensorData\""],
        ),
        (
            "dead_letter_items_total",
            &["reason=\"validation\"", "table=\"IoTSensorData\""],
        ),
        ("rate_limit_wcu", &["table=\"IoTSensorData\""]),
        (
            "rate_limit_wait_microseconds_total",
            &["table=\"IoTSensorData\""],
        ),
        ("rate_ceiling_wcu", &["table=\"IoTSensorData\""]),
        ("items_sent_total", &["table=\"IoTSensorData\""]),
        ("concurrency_limit", &["table=\"IoTSensorData\""]),
        ("requests_in_flight", &["table=\"IoTSensorData\""]),
        ("http_requests_total", &["class=\"5xx\""]),
        ("mqtt_connections", &[]),
        ("mqtt_messages_unroutable_total", &[]),
    ];
    let present = |name: &str, labels: &[&str]| {
        body.lines().any(|l| {
            let series = format!("dynamo_ingest_{name}");
            (l.starts_with(&format!("{series}{{")) || l.starts_with(&format!("{series} ")))
                && labels.iter().all(|lab| l.contains(lab))
        })
    };
    let missing: Vec<_> = families.iter().filter(|(n, l)| !present(n, l)).collect();
    assert!(missing.is_empty(), "missing {missing:?} in\n{body}");
    assert!(
        body.lines()
            .any(|l| l == "dynamo_ingest_rate_limit_wcu{table=\"IoTSensorData\"} 4000"),
        "cold start at initial_wcu"
    );
}
