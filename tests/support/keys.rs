//! API-key helpers for the HTTP tests: the `hash-key` subcommand of the
//! real binary (what an operator runs to fill `[[http.auth.keys]] sha256`)
//! and a POST that can carry `Authorization: Bearer`.
#![allow(dead_code)]

use std::process::{Command, Stdio};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;

pub type Headers = hyper::HeaderMap;

/// The SHA-256 `hash-key` prints for `key`.
pub fn sha256_hex(key: &str) -> String {
    let (code, out, err) = hash_key_cli(key);
    assert_eq!(code, 0, "hash-key failed: {err}");
    out.trim().to_owned()
}

/// Runs `dynamo-ingest hash-key` with `key` on stdin.
pub fn hash_key_cli(key: &str) -> (i32, String, String) {
    use std::io::Write;
    let mut child = Command::new(env!("CARGO_BIN_EXE_dynamo-ingest"))
        .arg("hash-key")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn hash-key");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(format!("{key}\n").as_bytes())
        .expect("write key");
    let out = child.wait_with_output().expect("hash-key output");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into(),
        String::from_utf8_lossy(&out.stderr).into(),
    )
}

/// POST with an optional bearer key; returns (status, headers, JSON body).
/// (The shared harness client sends only Content-Type.)
pub async fn post(
    url: &str,
    key: Option<&str>,
    content_type: &str,
    body: &str,
) -> (u16, Headers, serde_json::Value) {
    let client: Client<_, Full<Bytes>> = Client::builder(TokioExecutor::new()).build_http();
    let mut req = hyper::Request::post(url).header("content-type", content_type);
    if let Some(k) = key {
        req = req.header("authorization", format!("Bearer {k}"));
    }
    let req = req
        .body(Full::new(Bytes::from(body.to_owned())))
        .expect("request");
    let resp = client.request(req).await.expect("response");
    let status = resp.status().as_u16();
    let headers = resp.headers().clone();
    let body = resp.into_body().collect().await.expect("body").to_bytes();
    let json = serde_json::from_slice(&body)
        .unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(&body)));
    (status, headers, json)
}
