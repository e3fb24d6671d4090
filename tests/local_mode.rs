//! `--local`: the gateway with its embedded simulator, end to end — the
//! README's run command, then the seed requests, then the items read back
//! from the simulator with aws-sdk-dynamodb.

mod support;

use std::process::{Command, Stdio};

use aws_sdk_dynamodb::types::AttributeValue;
use support::{count, dynamodb, query, Http};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn local_mode_takes_the_seed_requests_and_serves_them_back() {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_dynamo-ingest"));
    cmd.args([
        "--local",
        "--local-listen",
        "127.0.0.1:0",
        "--http-listen",
        "127.0.0.1:0",
        "--admin-listen",
        "127.0.0.1:0",
        "--mqtt-listen",
        "127.0.0.1:0",
    ]);
    let mut gw = support::Gateway::spawn(cmd, Stdio::null()).expect("gateway starts with --local");
    let endpoint = gw.dynamodb.clone();
    assert!(endpoint.starts_with("http://127.0.0.1:"), "{endpoint}");
    let http = Http::default();
    let r = http
        .request(
            "POST",
            &gw.url("/log_activity/?user_id=U123&action=login&ack=written"),
            None,
            "",
        )
        .await;
    assert_eq!(
        r.body,
        r#"{"status":"success","user_id":"U123","action":"login"}"#
    );
    let r = http
        .post_json(
            &gw.url("/upload_data?ack=written"),
            r#"{"device_id":"D001","temperature":30.5,"humidity":67}"#,
        )
        .await;
    assert_eq!(r.body, r#"{"status":"success","device_id":"D001"}"#);
    let r = http
        .get(&gw.url(
            "/add_to_cart/?user_id=U123&item_id=P101&name=Book&quantity=1&price=10&ack=written",
        ))
        .await;
    assert_eq!(r.body, r#"{"status":"Item added to cart"}"#);

    // While the gateway runs, the simulator answers any DynamoDB client.
    let c = dynamodb(&endpoint).await;
    let tables = c.list_tables().send().await.expect("ListTables");
    let mut names = tables.table_names().to_vec();
    names.sort();
    assert_eq!(names, ["IoTSensorData", "ShoppingCart", "UserActivity"]);
    let activity = query(&c, "UserActivity", "user_id", "U123").await;
    assert_eq!(activity.len(), 1);
    assert_eq!(activity[0]["action"], AttributeValue::S("login".into()));
    let sensor = query(&c, "IoTSensorData", "device_id", "D001").await;
    assert_eq!(sensor[0]["temperature"], AttributeValue::N("30.5".into()));
    assert_eq!(count(&c, "ShoppingCart").await, 1);
    assert!(gw.shutdown().success());
}
