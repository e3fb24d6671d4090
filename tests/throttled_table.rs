//! The gateway against a provisioned table that is too small for the load
//! (dynamo-sim, in-process): DynamoDB throttles, the rate controller finds the
//! table's capacity, and every acknowledged event is stored.

mod support;

use std::sync::Arc;
use std::time::Duration;

use dynamo_sim::{KeyType, SimConfig, Simulator, TableSpec};
use support::{count, dynamodb, metric, Gateway, Http};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_throttling_table_gets_every_event_and_the_rate_converges_on_its_capacity() {
    let sim = Arc::new(Simulator::new(SimConfig::default()).expect("sim"));
    sim.create_table(
        TableSpec::on_demand(
            "IoTSensorData",
            ("device_id", KeyType::S),
            Some(("timestamp", KeyType::N)),
        )
        .provisioned(400),
    )
    .expect("table");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let endpoint = format!("http://{}", listener.local_addr().expect("addr"));
    let stop = tokio_util::sync::CancellationToken::new();
    let server = tokio::spawn(dynamo_sim::serve(
        listener,
        sim.clone(),
        stop.clone().cancelled_owned(),
    ));

    let mut gw = Gateway::start(
        &endpoint,
        &[("shutdown_grace = \"30s\"", "shutdown_grace = \"60s\"")],
        "",
    );
    let http = Http::default();
    // 4,000 events as fast as possible: ten times what the table takes per second.
    for r in 0..8 {
        let body: String = (0..500)
            .map(|i| format!("{{\"device_id\":\"T{}\",\"n\":{i}}}\n", (r * 500 + i) % 50))
            .collect();
        let resp = http
            .request(
                "POST",
                &gw.url("/v1/streams/sensor/events"),
                Some("application/x-ndjson"),
                body,
            )
            .await;
        assert_eq!(resp.status, 202, "{}", resp.body);
    }
    // The controller learns the table's capacity from what it admits.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    let mut throttled = 0.0;
    while tokio::time::Instant::now() < deadline {
        throttled = metric(
            &http,
            gw.admin,
            "dynamo_ingest_throttled_requests_total",
            "IoTSensorData",
        )
        .await
            + metric(
                &http,
                gw.admin,
                "dynamo_ingest_unprocessed_items_total",
                "IoTSensorData",
            )
            .await;
        if metric(
            &http,
            gw.admin,
            "dynamo_ingest_items_written_total",
            "IoTSensorData",
        )
        .await
            >= 2000.0
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(throttled > 0.0, "the table throttled the gateway");
    let rate = metric(
        &http,
        gw.admin,
        "dynamo_ingest_rate_limit_wcu",
        "IoTSensorData",
    )
    .await;
    assert!(
        (200.0..=800.0).contains(&rate),
        "rate limit {rate} WCU/s should be near the table's 400"
    );

    assert!(gw.shutdown().success(), "{}", gw.log());
    assert!(gw.dead_letters().is_empty());
    let c = dynamodb(&endpoint).await;
    assert_eq!(
        count(&c, "IoTSensorData").await,
        4000,
        "every acknowledged event is stored"
    );
    stop.cancel();
    server.await.expect("sim stops");
}
