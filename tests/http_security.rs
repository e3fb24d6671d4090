//! The HTTP listener's protections, end to end: the real gateway binary
//! against dynalite, real HTTP and TLS clients on loopback.
//!
//! API keys (401/403, nothing stored, per-stream grants), TLS with a CA made
//! in the test and certificate reload on SIGHUP, per-client rate limits
//! (429 for one client while another flows), slowloris and body timeouts,
//! and the connection limit.

mod support;

use std::time::{Duration, Instant};

use rustls::pki_types::{CertificateDer, ServerName};
use support::keys::{hash_key_cli, post, sha256_hex};
use support::tls::TestCa;
use support::{count, dynamodb, metric, Dynalite, Gateway, Http};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Keys used by the tests, and their SHA-256 (what the config holds).
const OPS_KEY: &str = "ops-key-0123456789abcdefghijklmnop";
const FLEET_KEY: &str = "fleet-key-0123456789abcdefghijklmn";

fn auth_toml(seed_routes: &str) -> String {
    format!(
        r#"
[http.auth]
enabled = true
seed_routes = "{seed_routes}"
[[http.auth.keys]]
name = "ops"
sha256 = "{}"
streams = ["*"]
[[http.auth.keys]]
name = "fleet"
sha256 = "{}"
streams = ["sensor"]
"#,
        sha256_hex(OPS_KEY),
        sha256_hex(FLEET_KEY)
    )
}

#[test]
fn hash_key_prints_the_sha256_and_refuses_short_keys() {
    // Known answer: SHA-256 of the key as typed (no trailing newline).
    let (code, out, _) = hash_key_cli("abcdefghijklmnopqrstuvwxyz");
    assert_eq!(code, 0);
    assert_eq!(
        out.trim(),
        "71c480df93d6ae2f1efad1447c66c9525e316218cf51fc8d9ed832f2daf18b73"
    );
    let (code, _, err) = hash_key_cli("short");
    assert_eq!(code, 64);
    assert!(err.contains("at least"), "{err}");
}

#[tokio::test(flavor = "multi_thread")]
async fn missing_or_wrong_keys_are_refused_and_nothing_is_stored() {
    let db = Dynalite::start();
    let mut gw = Gateway::start(&db.endpoint, &[], &auth_toml("key"));
    let http = Http::default();
    let url = |stream: &str| gw.url(&format!("/v1/streams/{stream}/events"));
    let sensor = r#"{"device_id":"D1","temperature":20}"#;
    let activity = r#"{"user_id":"U1","action":"login"}"#;

    // No key: 401 with a Bearer challenge and a JSON error.
    let (status, headers, body) = post(&url("sensor"), None, "application/json", sensor).await;
    assert_eq!(status, 401, "{body}");
    assert_eq!(
        headers["www-authenticate"],
        r#"Bearer realm="dynamo-ingest""#
    );
    assert_eq!(body["error"], "unauthorized");
    // A key nobody configured: 401, invalid_token.
    let (status, headers, body) = post(
        &url("sensor"),
        Some("not-a-configured-key-at-all-0000"),
        "application/json",
        sensor,
    )
    .await;
    assert_eq!(status, 401, "{body}");
    assert!(headers["www-authenticate"]
        .to_str()
        .expect("ascii")
        .contains("invalid_token"));
    // The fleet key may write `sensor` only: 403 on `activity`.
    let (status, headers, body) = post(
        &url("activity"),
        Some(FLEET_KEY),
        "application/json",
        activity,
    )
    .await;
    assert_eq!(status, 403, "{body}");
    assert_eq!(body["error"], "forbidden");
    assert!(body["message"]
        .as_str()
        .expect("message")
        .contains("activity"));
    assert!(headers["www-authenticate"]
        .to_str()
        .expect("ascii")
        .contains("insufficient_scope"));
    // Seed routes are behind a key too (seed_routes = "key").
    let resp = http
        .request(
            "POST",
            &gw.url("/log_activity/?user_id=U2&action=login"),
            None,
            bytes::Bytes::new(),
        )
        .await;
    assert_eq!(resp.status, 401, "{}", resp.body);
    // An unknown stream does not tell a keyless client whether it exists.
    let (status, _, _) = post(&url("nope"), None, "application/json", sensor).await;
    assert_eq!(status, 401);

    // Valid keys on allowed streams are accepted.
    let (status, _, body) = post(&url("sensor"), Some(FLEET_KEY), "application/json", sensor).await;
    assert_eq!(status, 202, "{body}");
    let (status, _, body) = post(
        &url("activity"),
        Some(OPS_KEY),
        "application/json",
        activity,
    )
    .await;
    assert_eq!(status, 202, "{body}");

    assert_eq!(
        metric(
            &http,
            gw.admin,
            "dynamo_ingest_http_requests_rejected_total",
            "reason=\"unauthorized\""
        )
        .await,
        4.0
    );
    assert_eq!(
        metric(
            &http,
            gw.admin,
            "dynamo_ingest_http_requests_rejected_total",
            "reason=\"forbidden\""
        )
        .await,
        1.0
    );

    // SIGTERM flushes the queues: exactly the two accepted events are stored.
    assert!(gw.shutdown().success());
    let client = dynamodb(&db.endpoint).await;
    assert_eq!(count(&client, "IoTSensorData").await, 1);
    assert_eq!(count(&client, "UserActivity").await, 1);
    assert_eq!(count(&client, "ShoppingCart").await, 0);
}

#[tokio::test(flavor = "multi_thread")]
async fn open_seed_routes_need_no_key_while_the_generic_route_does() {
    let db = Dynalite::start();
    let gw = Gateway::start(&db.endpoint, &[], &auth_toml("open"));
    let http = Http::default();
    let resp = http
        .request(
            "POST",
            &gw.url("/log_activity/?user_id=U3&action=login"),
            None,
            bytes::Bytes::new(),
        )
        .await;
    assert_eq!(resp.status, 200, "{}", resp.body);
    let (status, _, _) = post(
        &gw.url("/v1/streams/activity/events"),
        None,
        "application/json",
        r#"{"user_id":"U3","action":"x"}"#,
    )
    .await;
    assert_eq!(status, 401);
}

#[tokio::test(flavor = "multi_thread")]
async fn rate_limit_refuses_one_client_while_another_flows() {
    let db = Dynalite::start();
    let extra = format!(
        "{}\n[http.rate_limit]\nenabled = true\nevents_per_second = 1\nburst = 5\n",
        auth_toml("key")
    );
    let gw = Gateway::start(&db.endpoint, &[], &extra);
    let http = Http::default();
    let url = gw.url("/v1/streams/sensor/events");
    let ndjson = |n: usize| {
        (0..n)
            .map(|i| format!("{{\"device_id\":\"D{i}\",\"t\":1}}\n"))
            .collect::<String>()
    };
    // Events, not requests, are metered: one request of 5 uses the burst.
    let (status, _, body) = post(&url, Some(OPS_KEY), "application/x-ndjson", &ndjson(5)).await;
    assert_eq!(status, 202, "{body}");
    let (status, headers, body) = post(
        &url,
        Some(OPS_KEY),
        "application/json",
        r#"{"device_id":"D9"}"#,
    )
    .await;
    assert_eq!(status, 429, "{body}");
    assert_eq!(body["error"], "rate_limited");
    let retry: u64 = headers["retry-after"]
        .to_str()
        .expect("ascii")
        .parse()
        .expect("whole seconds");
    assert!((1..=2).contains(&retry), "Retry-After {retry}");
    // Another client (another key) still flows.
    let (status, _, body) = post(&url, Some(FLEET_KEY), "application/x-ndjson", &ndjson(3)).await;
    assert_eq!(status, 202, "{body}");
    // More events in one request than the burst could ever allow: 413, not 429.
    let (status, _, body) = post(&url, Some(FLEET_KEY), "application/x-ndjson", &ndjson(6)).await;
    assert_eq!(status, 413, "{body}");
    assert_eq!(body["error"], "too_many_events");
    assert_eq!(
        metric(
            &http,
            gw.admin,
            "dynamo_ingest_http_requests_rejected_total",
            "reason=\"rate_limited\""
        )
        .await,
        1.0
    );
}

/// Sends a raw request head without `Connection: close` handling: returns the
/// bytes read until the server closes the connection (bounded).
async fn read_until_closed(stream: &mut TcpStream, within: Duration) -> Option<Vec<u8>> {
    let mut out = Vec::new();
    let mut buf = [0u8; 4096];
    let deadline = tokio::time::Instant::now() + within;
    loop {
        match tokio::time::timeout_at(deadline, stream.read(&mut buf)).await {
            Err(_) => return None,
            Ok(Ok(0)) | Ok(Err(_)) => return Some(out),
            Ok(Ok(n)) => out.extend_from_slice(&buf[..n]),
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn slowloris_and_slow_bodies_are_cut_while_a_normal_client_is_served() {
    let db = Dynalite::start();
    let gw = Gateway::start(
        &db.endpoint,
        &[
            (
                "header_read_timeout = \"10s\"",
                "header_read_timeout = \"1s\"",
            ),
            ("body_read_timeout = \"30s\"", "body_read_timeout = \"1s\""),
        ],
        "",
    );
    let http = Http::default();

    // A slowloris client: a request head dribbled one byte at a time, never finished.
    let mut slow = TcpStream::connect(gw.http).await.expect("connect");
    slow.write_all(b"POST /v1/streams/sensor/events HTTP/1.1\r\nHost: x\r\n")
        .await
        .expect("write");
    let started = Instant::now();
    let dribble = async {
        // Pacing, not waiting for an event: the client keeps trickling until cut.
        for b in b"X-Slow: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
            .iter()
            .cycle()
            .take(400)
        {
            if slow.write_all(&[*b]).await.is_err() {
                return true;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        false
    };
    // Meanwhile a normal client is served.
    let normal_url = gw.url("/v1/streams/sensor/events");
    let normal = http.post_json(&normal_url, r#"{"device_id":"D1","temperature":1}"#);
    let (cut, resp) = tokio::join!(dribble, normal);
    assert_eq!(resp.status, 202, "{}", resp.body);
    assert!(cut, "the slowloris connection was never cut");
    let elapsed = started.elapsed();
    assert!(
        elapsed >= Duration::from_millis(900) && elapsed < Duration::from_secs(15),
        "cut after {elapsed:?}"
    );
    assert!(
        metric(
            &http,
            gw.admin,
            "dynamo_ingest_http_requests_rejected_total",
            "reason=\"header_timeout\""
        )
        .await
            >= 1.0
    );

    // A body that stops arriving: 408 with a JSON error, and the connection is closed.
    let mut stalled = TcpStream::connect(gw.http).await.expect("connect");
    stalled
        .write_all(
            b"POST /v1/streams/sensor/events HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{\"device_id\":",
        )
        .await
        .expect("write");
    let answer = read_until_closed(&mut stalled, Duration::from_secs(15))
        .await
        .expect("the stalled request was never answered");
    let text = String::from_utf8_lossy(&answer);
    assert!(text.starts_with("HTTP/1.1 408"), "{text}");
    assert!(text.contains("\"error\":\"body_timeout\""), "{text}");
    assert!(
        text.to_ascii_lowercase().contains("connection: close"),
        "{text}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn past_the_connection_limit_clients_wait_until_a_slot_frees() {
    let db = Dynalite::start();
    let gw = Gateway::start(
        &db.endpoint,
        &[
            ("max_connections = 4096", "max_connections = 2"),
            (
                "header_read_timeout = \"10s\"",
                "header_read_timeout = \"60s\"",
            ),
        ],
        "",
    );
    // Two keep-alive connections, each served once, hold both slots.
    let request = b"POST /v1/streams/sensor/events HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 18\r\n\r\n{\"device_id\":\"D1\"}";
    let mut held = Vec::new();
    for _ in 0..2 {
        let mut c = TcpStream::connect(gw.http).await.expect("connect");
        c.write_all(request).await.expect("write");
        let mut buf = [0u8; 1024];
        let n = tokio::time::timeout(Duration::from_secs(10), c.read(&mut buf))
            .await
            .expect("answered")
            .expect("read");
        assert!(buf[..n].starts_with(b"HTTP/1.1 202"));
        held.push(c);
    }
    // A third client connects (the kernel's backlog) but is not served...
    let mut third = TcpStream::connect(gw.http).await.expect("connect");
    third.write_all(request).await.expect("write");
    let mut buf = [0u8; 1024];
    assert!(
        tokio::time::timeout(Duration::from_millis(700), third.read(&mut buf))
            .await
            .is_err(),
        "a third connection was served past max_connections = 2"
    );
    // ...until one of the first two closes.
    drop(held.pop());
    let n = tokio::time::timeout(Duration::from_secs(10), third.read(&mut buf))
        .await
        .expect("served once a slot freed")
        .expect("read");
    assert!(
        buf[..n].starts_with(b"HTTP/1.1 202"),
        "{}",
        String::from_utf8_lossy(&buf[..n])
    );
}

/// One HTTPS request; returns the certificate the server presented and the response text.
async fn https_post(
    ca: &TestCa,
    addr: std::net::SocketAddr,
    body: &str,
) -> (CertificateDer<'static>, String) {
    let tcp = TcpStream::connect(addr).await.expect("connect");
    let name = ServerName::try_from("localhost").expect("name");
    let mut tls = ca.client().connect(name, tcp).await.expect("TLS handshake");
    let presented = tls
        .get_ref()
        .1
        .peer_certificates()
        .and_then(|c| c.first().cloned())
        .expect("server certificate")
        .into_owned();
    let request = format!(
        "POST /v1/streams/sensor/events HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\nConnection: close\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    tls.write_all(request.as_bytes()).await.expect("write");
    let mut out = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), tls.read_to_end(&mut out))
        .await
        .expect("answered")
        .ok();
    (presented, String::from_utf8_lossy(&out).into_owned())
}

#[tokio::test(flavor = "multi_thread")]
async fn tls_with_a_test_ca_and_certificate_reload_on_sighup() {
    let db = Dynalite::start();
    let ca = TestCa::new();
    let dir = tempfile::tempdir().expect("tmp");
    let (cert_path, key_path) = (dir.path().join("cert.pem"), dir.path().join("key.pem"));
    let (pem_a, key_a, der_a) = ca.leaf("first");
    std::fs::write(&cert_path, pem_a).expect("cert");
    std::fs::write(&key_path, key_a).expect("key");
    let extra = format!(
        "[http.tls]\ncert = {:?}\nkey = {:?}\n",
        cert_path.display().to_string(),
        key_path.display().to_string()
    );
    let gw = Gateway::start(&db.endpoint, &[], &extra);

    let (presented, resp) = https_post(&ca, gw.http, r#"{"device_id":"T1","t":1}"#).await;
    assert_eq!(presented, der_a);
    assert!(resp.starts_with("HTTP/1.1 202"), "{resp}");
    // Plain HTTP on the TLS port is not served.
    let plain = Http::default()
        .try_request(
            "GET",
            &gw.url("/v1/streams/sensor/events"),
            None,
            bytes::Bytes::new(),
        )
        .await;
    assert!(plain.is_err(), "{plain:?}");

    // New files + SIGHUP: new handshakes get the new certificate.
    let (pem_b, key_b, der_b) = ca.leaf("second");
    std::fs::write(&cert_path, pem_b).expect("cert");
    std::fs::write(&key_path, key_b).expect("key");
    gw.sighup();
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let (presented, resp) = https_post(&ca, gw.http, r#"{"device_id":"T2","t":1}"#).await;
        assert!(resp.starts_with("HTTP/1.1 202"), "{resp}");
        if presented == der_b {
            break;
        }
        assert_eq!(presented, der_a);
        assert!(
            Instant::now() < deadline,
            "SIGHUP did not switch the certificate"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    // A broken key: the reload fails, is logged, and the second certificate stays.
    std::fs::write(&key_path, "not a key").expect("key");
    gw.sighup();
    let deadline = Instant::now() + Duration::from_secs(10);
    while !gw.log().contains("TLS reload failed") {
        assert!(
            Instant::now() < deadline,
            "no reload error logged\n{}",
            gw.log()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let (presented, resp) = https_post(&ca, gw.http, r#"{"device_id":"T3","t":1}"#).await;
    assert_eq!(presented, der_b);
    assert!(resp.starts_with("HTTP/1.1 202"), "{resp}");
}
