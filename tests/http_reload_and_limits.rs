//! SIGHUP reload of `[http.auth]` API keys and the request-head limits, end
//! to end: the real gateway binary against dynalite, real HTTP on loopback.
//!
//! Keys: a rotated key works and the old one is refused after SIGHUP; a
//! broken file or one changing `http.auth.enabled` is refused, counted and
//! logged, and the keys in force stay. Head limits: a head over
//! `http.max_header_bytes` or `http.max_headers` gets the project's JSON
//! 431; far past hyper's cap (twice the limits) hyper's own bare 431.

mod support;

use std::time::{Duration, Instant};

use support::keys::{post, sha256_hex};
use support::{count, dynamodb, Dynalite, Gateway, Http};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const OLD_KEY: &str = "old-key-0123456789abcdefghijklmnop";
const NEW_KEY: &str = "new-key-0123456789abcdefghijklmnop";

/// `config_reloads_total{what, outcome}` from /metrics.
async fn reloads(gw: &Gateway, what: &str, outcome: &str) -> f64 {
    let body = Http::default()
        .get(&format!("http://{}/metrics", gw.admin))
        .await
        .body;
    let (what, outcome) = (format!("what=\"{what}\""), format!("outcome=\"{outcome}\""));
    body.lines()
        .filter(|l| l.starts_with("dynamo_ingest_config_reloads_total{"))
        .filter(|l| l.contains(&what) && l.contains(&outcome))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

/// Sends SIGHUP and waits until the key reload counted `outcome` once more.
async fn sighup_and_wait(gw: &Gateway, outcome: &str) {
    let before = reloads(gw, "api_keys", outcome).await;
    gw.sighup();
    let deadline = Instant::now() + Duration::from_secs(10);
    while reloads(gw, "api_keys", outcome).await < before + 1.0 {
        assert!(
            Instant::now() < deadline,
            "no api_keys reload counted as {outcome}\n{}",
            gw.log()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn keys_toml(enabled: bool, name: &str, sha256: &str, streams: &str) -> String {
    format!(
        "\n[http.auth]\nenabled = {enabled}\n[[http.auth.keys]]\nname = \"{name}\"\nsha256 = \"{sha256}\"\nstreams = {streams}\n"
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn api_keys_are_reloaded_on_sighup_and_a_bad_file_keeps_them() {
    let db = Dynalite::start();
    let (old_hash, new_hash) = (sha256_hex(OLD_KEY), sha256_hex(NEW_KEY));
    let initial = keys_toml(true, "old", &old_hash, r#"["*"]"#);
    let mut gw = Gateway::start(&db.endpoint, &[], &initial);
    let base = std::fs::read_to_string(gw.config_path()).expect("config");
    let base = base.replace(&initial, "");
    let rewrite = |extra: &str| std::fs::write(gw.config_path(), format!("{base}{extra}"));
    let url = |s: &str| gw.url(&format!("/v1/streams/{s}/events"));
    let json = "application/json";
    let event = |id: &str| format!(r#"{{"device_id":"{id}","timestamp":1}}"#);

    let (status, _, body) = post(&url("sensor"), Some(OLD_KEY), json, &event("D1")).await;
    assert_eq!(status, 202, "{body}");

    // Rotation: the new key (sensor only) replaces the old one.
    rewrite(&keys_toml(true, "new", &new_hash, r#"["sensor"]"#)).expect("write");
    sighup_and_wait(&gw, "ok").await;
    let (status, _, body) = post(&url("sensor"), Some(OLD_KEY), json, &event("D2")).await;
    assert_eq!(
        (status, &body["error"]),
        (401, &"unauthorized".into()),
        "{body}"
    );
    let (status, _, body) = post(&url("sensor"), Some(NEW_KEY), json, &event("D3")).await;
    assert_eq!(status, 202, "{body}");
    let (status, _, body) = post(&url("cart"), Some(NEW_KEY), json, "{}").await;
    assert_eq!(status, 403, "{body}");

    // A key whose hash is not hex: refused, logged with the key's name, counted.
    rewrite(&keys_toml(true, "bad", "not-hex", r#"["*"]"#)).expect("write");
    sighup_and_wait(&gw, "failed").await;
    assert!(
        gw.log().contains("http.auth.keys[0].sha256"),
        "{}",
        gw.log()
    );
    let (status, _, body) = post(&url("sensor"), Some(NEW_KEY), json, &event("D4")).await;
    assert_eq!(status, 202, "{body}");

    // Switching auth off needs a restart: refused, the keys stay in force.
    rewrite(&keys_toml(false, "old", &old_hash, r#"["*"]"#)).expect("write");
    sighup_and_wait(&gw, "failed").await;
    assert!(gw.log().contains("only a restart"), "{}", gw.log());
    let (status, _, _) = post(&url("sensor"), None, json, &event("D5")).await;
    assert_eq!(status, 401);
    let (status, _, _) = post(&url("sensor"), Some(OLD_KEY), json, &event("D6")).await;
    assert_eq!(status, 401);

    assert!(gw.shutdown().success());
    let client = dynamodb(&db.endpoint).await;
    // D1, D3, D4: exactly the requests that were accepted.
    assert_eq!(count(&client, "IoTSensorData").await, 3);
}

/// Sends `head` (and no body) on a new connection; returns everything the
/// server sent before closing. A server that closes with part of the head
/// unread makes the kernel reset the connection: what arrived before the
/// reset is the answer.
async fn raw_request(gw: &Gateway, head: &str) -> String {
    let mut stream = TcpStream::connect(gw.http).await.expect("connect");
    // The server may answer and close before taking every byte.
    let _ = stream.write_all(head.as_bytes()).await;
    let mut out = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match tokio::time::timeout(Duration::from_secs(10), stream.read(&mut buf)).await {
            Ok(Ok(0) | Err(_)) => break,
            Ok(Ok(n)) => out.extend_from_slice(&buf[..n]),
            Err(_) => panic!("the server neither answered nor closed within 10 s"),
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn head_with(headers: &str) -> String {
    format!("POST /v1/streams/sensor/events HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\nContent-Length: 2\r\n{headers}\r\n")
}

fn body_of(response: &str) -> serde_json::Value {
    let (_, body) = response
        .split_once("\r\n\r\n")
        .expect("a complete response");
    serde_json::from_str(body).unwrap_or_else(|e| panic!("not JSON ({e}): {response}"))
}

#[tokio::test(flavor = "multi_thread")]
async fn an_oversized_request_head_gets_a_json_431() {
    let db = Dynalite::start();
    // Defaults: max_header_bytes = 16KiB, max_headers = 64.
    let gw = Gateway::start(&db.endpoint, &[], "");

    let big = format!("X-Big: {}\r\n", "a".repeat(20 * 1024));
    let resp = raw_request(&gw, &head_with(&big)).await;
    assert!(resp.starts_with("HTTP/1.1 431"), "{resp}");
    assert!(
        resp.to_ascii_lowercase()
            .contains("content-type: application/json"),
        "{resp}"
    );
    let body = body_of(&resp);
    assert_eq!(body["error"], "headers_too_large", "{body}");
    let message = body["message"].as_str().expect("message");
    assert!(
        message.contains("http.max_header_bytes") && message.contains("16384"),
        "{message}"
    );

    let many: String = (0..70).map(|i| format!("X-N{i}: {i}\r\n")).collect();
    let body = body_of(&raw_request(&gw, &head_with(&many)).await);
    assert_eq!(body["error"], "headers_too_large", "{body}");
    assert!(
        body["message"]
            .as_str()
            .expect("message")
            .contains("http.max_headers"),
        "{body}"
    );

    // Far past hyper's buffer cap (twice the limit, give or take one read)
    // hyper answers alone: 431, no body.
    let huge = format!("X-Big: {}\r\n", "a".repeat(256 * 1024));
    let resp = raw_request(&gw, &head_with(&huge)).await;
    assert!(resp.starts_with("HTTP/1.1 431"), "{resp}");
    assert!(
        resp.ends_with("\r\n\r\n"),
        "hyper's 431 has no body: {resp}"
    );

    // Counted by reason; a normal request is served.
    let metrics = Http::default()
        .get(&format!("http://{}/metrics", gw.admin))
        .await
        .body;
    assert!(
        metrics
            .contains("dynamo_ingest_http_requests_rejected_total{reason=\"headers_too_large\"} 2"),
        "{metrics}"
    );
    let resp = Http::default()
        .post_json(
            &gw.url("/v1/streams/sensor/events"),
            r#"{"device_id":"D","timestamp":1}"#,
        )
        .await;
    assert_eq!(resp.status, 202, "{}", resp.body);
}
