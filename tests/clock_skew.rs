//! A gateway whose clock is an hour off DynamoDB's (dynamo-sim with its
//! clock moved, in-process; it refuses requests signed more than five
//! minutes off its clock, as DynamoDB does): start-up, the direct request
//! path and the SDK path all learn the offset from the responses' `Date`
//! header, and every acknowledged event is stored — none dead-lettered.

mod support;

use std::sync::Arc;

use dynamo_sim::{FaultConfig, SimConfig, Simulator};
use support::sim::SimServer;
use support::{count, dynamodb, metric, Gateway, Http};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_gateway_an_hour_off_dynamodbs_clock_still_writes_every_event() {
    for (path, offset_s) in [
        ("direct", 3_600),
        ("direct", -3_600),
        ("sdk", 3_600),
        ("sdk", -3_600),
    ] {
        let sim = Arc::new(
            Simulator::new(SimConfig {
                faults: FaultConfig {
                    clock_offset_s: offset_s,
                    ..FaultConfig::default()
                },
                ..SimConfig::default()
            })
            .expect("sim"),
        );
        let server = SimServer::start(sim).await;
        let endpoint = server.endpoint.clone();
        let case = format!("{path} path, DynamoDB's clock {offset_s:+} s");

        // Start-up (table creation, DescribeTable) goes through the SDK.
        let mut gw = Gateway::start(
            &endpoint,
            &[(
                "request_path = \"direct\"",
                &format!("request_path = \"{path}\""),
            )],
            "",
        );
        let http = Http::default();
        for round in 0..4 {
            let body: String = (0..250)
                .map(|i| format!("{{\"device_id\":\"D{}\",\"seq\":{i}}}\n", round * 250 + i))
                .collect();
            let r = http
                .post_ndjson(&gw.url("/v1/streams/sensor/events?ack=written"), body)
                .await;
            assert_eq!(r.status, 200, "{case}: {}", r.body);
            assert_eq!(
                r.json(),
                serde_json::json!({"accepted": 250, "written": 250}),
                "{case}"
            );
        }
        assert_eq!(
            count(&dynamodb(&endpoint).await, "IoTSensorData").await,
            1_000,
            "{case}"
        );
        assert!(gw.dead_letters().is_empty(), "{case}");
        let fatal = metric(
            &http,
            gw.admin,
            "dynamo_ingest_batches_total",
            "outcome=\"fatal\"",
        )
        .await;
        // The batches sent before the first answer (at most max_in_flight
        // = 8) may be refused, signed an hour off; once the offset is
        // known every batch is signed right.
        assert!(fatal <= 8.0, "{case}: {fatal} batches refused");
        if path == "direct" {
            let behind_or_ahead = if offset_s > 0 { "behind" } else { "ahead of" };
            // `Date` has whole seconds: the offset reads 3599 or 3600 s.
            let log = gw.log();
            assert!(
                ["3599", "3600"]
                    .iter()
                    .any(|s| log.contains(&format!("clock is {s} s {behind_or_ahead} DynamoDB's"))),
                "{case}: the offset is logged\n{log}"
            );
        }
        assert!(gw.shutdown().success(), "{case}: {}", gw.log());
        server.stop().await;
    }
}
