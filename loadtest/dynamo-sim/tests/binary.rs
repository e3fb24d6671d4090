//! The `dynamo-sim` binary end to end over raw HTTP: readiness line with the
//! real port, `/__sim/*` endpoints, protocol errors, injected faults, and a
//! snapshot written on SIGTERM and loaded on the next start; a clock moved
//! by `--clock-offset-s` against an AWS SDK client.

mod support;

use std::process::Stdio;
use std::time::Duration;

use serde_json::Value;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;
use tokio::process::{Child, Command};

struct Running {
    child: Child,
    addr: String,
}

async fn start(args: &[&str]) -> Running {
    let mut child = Command::new(env!("CARGO_BIN_EXE_dynamo-sim"))
        .args(["--listen", "127.0.0.1:0"])
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("spawn dynamo-sim");
    let stdout = child.stdout.take().expect("stdout");
    let mut lines = BufReader::new(stdout).lines();
    let line = tokio::time::timeout(Duration::from_secs(30), lines.next_line())
        .await
        .expect("ready in time")
        .expect("read stdout")
        .expect("a line");
    let addr = line
        .strip_prefix("dynamo-sim listening on http://")
        .expect("readiness line format")
        .to_string();
    assert!(!addr.ends_with(":0"), "prints the real port: {addr}");
    Running { child, addr }
}

/// One HTTP/1.1 request; returns (status, body) or None if the server
/// closed the connection without answering.
async fn http(
    addr: &str,
    method: &str,
    target: Option<&str>,
    body: &[u8],
) -> Option<(u16, Vec<u8>)> {
    let mut s = TcpStream::connect(addr).await.expect("connect");
    let mut head = format!(
        "{method} {} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nContent-Type: application/x-amz-json-1.0\r\nContent-Length: {}\r\n",
        if method == "GET" { target.unwrap_or("/") } else { "/" },
        body.len()
    );
    if method == "POST" {
        if let Some(t) = target {
            head.push_str(&format!("X-Amz-Target: {t}\r\n"));
        }
    }
    head.push_str("\r\n");
    s.write_all(head.as_bytes()).await.expect("write head");
    let _ = s.write_all(body).await;
    let mut buf = Vec::new();
    let _ = s.read_to_end(&mut buf).await;
    if buf.is_empty() {
        return None;
    }
    let text = String::from_utf8_lossy(&buf).to_string();
    let status: u16 = text
        .split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .expect("status");
    let split = text.find("\r\n\r\n").expect("header end") + 4;
    Some((status, buf[split..].to_vec()))
}

fn json(body: &[u8]) -> Value {
    serde_json::from_slice(body).expect("json body")
}

#[tokio::test]
async fn serves_protocol_and_sim_endpoints() {
    let r = start(&["--table", "Events:pk:S:sk:N@50"]).await;
    let (status, body) = http(&r.addr, "GET", Some("/__sim/healthz"), b"")
        .await
        .expect("answer");
    assert_eq!((status, body), (200, b"ok\n".to_vec()));

    let put = br#"{"TableName":"Events","Item":{"pk":{"S":"a"},"sk":{"N":"1"}}}"#;
    let (status, _) = http(&r.addr, "POST", Some("DynamoDB_20120810.PutItem"), put)
        .await
        .expect("answer");
    assert_eq!(status, 200);

    let (status, body) = http(
        &r.addr,
        "POST",
        Some("DynamoDB_20120810.NoSuchThing"),
        b"{}",
    )
    .await
    .expect("answer");
    assert_eq!(status, 400);
    assert_eq!(
        json(&body)["__type"],
        "com.amazon.coral.service#UnknownOperationException"
    );

    let (status, body) = http(
        &r.addr,
        "POST",
        Some("DynamoDB_20120810.PutItem"),
        b"{not json",
    )
    .await
    .expect("answer");
    assert_eq!(status, 400);
    assert_eq!(
        json(&body)["__type"],
        "com.amazon.coral.service#SerializationException"
    );

    // BatchWriteItem checks the body's UTF-8 once, before parsing: a bad
    // byte is a SerializationException, as for the other operations.
    for op in ["BatchWriteItem", "PutItem"] {
        let (status, body) = http(
            &r.addr,
            "POST",
            Some(&format!("DynamoDB_20120810.{op}")),
            b"{\"RequestItems\":{\"Events\":[{\"PutRequest\":{\"Item\":{\"pk\":{\"S\":\"\xff\"}}}}]}}",
        )
        .await
        .expect("answer");
        assert_eq!(status, 400, "{op}");
        assert_eq!(
            json(&body)["__type"],
            "com.amazon.coral.service#SerializationException",
            "{op}"
        );
    }

    let (status, body) = http(
        &r.addr,
        "POST",
        Some("DynamoDB_20120810.Scan"),
        br#"{"TableName":"Events","FilterExpression":"a = :b"}"#,
    )
    .await
    .expect("answer");
    assert_eq!(status, 400);
    assert_eq!(
        json(&body)["message"],
        "dynamo-sim does not support the FilterExpression parameter"
    );

    let huge = vec![b' '; 16 * 1024 * 1024 + 1];
    let (status, _) = http(&r.addr, "POST", Some("DynamoDB_20120810.PutItem"), &huge)
        .await
        .expect("answer");
    assert_eq!(status, 413);

    let (status, body) = http(&r.addr, "GET", Some("/__sim/stats"), b"")
        .await
        .expect("answer");
    assert_eq!(status, 200);
    let stats = json(&body);
    let t = &stats["tables"]["Events"];
    assert_eq!(t["items_stored"], 1);
    assert_eq!(t["capacity_wcu_now"].to_string(), "50.0");
    assert_eq!(t["wcu_per_second"].as_array().map(Vec::len), Some(120));
    assert_eq!(t["total_wcu"].to_string(), "1.0");
}

#[tokio::test]
async fn injects_500s_and_dropped_connections() {
    let r = start(&["--table", "F:pk:S", "--error-500-rate", "1"]).await;
    let put = br#"{"TableName":"F","Item":{"pk":{"S":"a"}}}"#;
    let (status, body) = http(&r.addr, "POST", Some("DynamoDB_20120810.PutItem"), put)
        .await
        .expect("answer");
    assert_eq!(status, 500);
    assert_eq!(
        json(&body)["__type"],
        "com.amazonaws.dynamodb.v20120810#InternalServerError"
    );
    // Control plane is not faulted, so setup calls still work.
    let (status, _) = http(
        &r.addr,
        "POST",
        Some("DynamoDB_20120810.DescribeTable"),
        br#"{"TableName":"F"}"#,
    )
    .await
    .expect("answer");
    assert_eq!(status, 200);

    let r = start(&["--table", "F:pk:S", "--error-503-rate", "1"]).await;
    let (status, _) = http(&r.addr, "POST", Some("DynamoDB_20120810.PutItem"), put)
        .await
        .expect("answer");
    assert_eq!(status, 503);

    let r = start(&["--table", "F:pk:S", "--drop-rate", "1"]).await;
    assert!(
        http(&r.addr, "POST", Some("DynamoDB_20120810.PutItem"), put)
            .await
            .is_none()
    );

    let r = start(&[
        "--table",
        "F:pk:S",
        "--latency-ms",
        "150",
        "--jitter-ms",
        "50",
    ])
    .await;
    let started = std::time::Instant::now();
    let (status, _) = http(&r.addr, "POST", Some("DynamoDB_20120810.PutItem"), put)
        .await
        .expect("answer");
    assert_eq!(status, 200);
    assert!(
        started.elapsed() >= Duration::from_millis(150),
        "{:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn requests_signed_five_minutes_off_its_clock_are_refused_and_the_sdk_adjusts() {
    use aws_sdk_dynamodb::error::ProvideErrorMetadata;
    use aws_sdk_dynamodb::types::AttributeValue;
    let r = start(&["--table", "C:pk:S", "--clock-offset-s", "-3600"]).await;
    // Retries off: each call is one attempt.
    let client = support::client_for(&format!("http://{}", r.addr)).await;
    let put = || {
        client
            .put_item()
            .table_name("C")
            .item("pk", AttributeValue::S("a".into()))
            .send()
    };
    let err = put()
        .await
        .expect_err("signed an hour ahead of the simulator");
    assert_eq!(err.code(), Some("InvalidSignatureException"));
    let message = err.message().unwrap_or_default();
    assert!(
        message.starts_with("Signature not yet current: ") && message.ends_with(" + 5 min.)"),
        "{message}"
    );
    // The SDK learnt the simulator's time from the refusal's Date header.
    put().await.expect("signed at the simulator's time");
    let (status, body) = http(&r.addr, "GET", Some("/__sim/stats"), b"")
        .await
        .expect("answer");
    assert_eq!(status, 200);
    assert_eq!(json(&body)["tables"]["C"]["items_stored"], 1);
}

#[tokio::test]
async fn snapshot_survives_restart() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("snap.json");
    let path_s = path.to_str().expect("utf8 path");
    let mut r = start(&["--table", "Snap:pk:S:sk:N", "--snapshot", path_s]).await;
    let put =
        br#"{"TableName":"Snap","Item":{"pk":{"S":"a"},"sk":{"N":"7"},"v":{"SS":["x","y"]}}}"#;
    let (status, _) = http(&r.addr, "POST", Some("DynamoDB_20120810.PutItem"), put)
        .await
        .expect("answer");
    assert_eq!(status, 200);
    let pid = r.child.id().expect("pid").to_string();
    let killed = std::process::Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .expect("kill");
    assert!(killed.success());
    let exit = tokio::time::timeout(Duration::from_secs(30), r.child.wait())
        .await
        .expect("exits after SIGTERM")
        .expect("wait");
    assert!(exit.success(), "{exit:?}");
    assert!(path.exists(), "snapshot written at shutdown");

    let r = start(&["--snapshot", path_s]).await;
    let get = br#"{"TableName":"Snap","Key":{"pk":{"S":"a"},"sk":{"N":"7"}}}"#;
    let (status, body) = http(&r.addr, "POST", Some("DynamoDB_20120810.GetItem"), get)
        .await
        .expect("answer");
    assert_eq!(status, 200);
    assert_eq!(json(&body)["Item"]["v"]["SS"][1], "y");
}
