//! Capacity behaviour through the public API with a hand-moved clock: what
//! BatchWriteItem / PutItem admit, what they hand back, and the exact error
//! bodies when nothing is admitted. No sleeps: time only moves when a test
//! says so.

use std::collections::BTreeSet;
use std::sync::Arc;

use dynamo_sim::{ApiError, CapacityConfig, KeyType, ManualClock, SimConfig, Simulator, TableSpec};
use serde_json::{json, Value};

fn sim_with(capacity: CapacityConfig) -> (Simulator, Arc<ManualClock>) {
    let clock = Arc::new(ManualClock::default());
    let cfg = SimConfig {
        capacity,
        ..SimConfig::default()
    };
    let sim = Simulator::with_clock(cfg, clock.clone()).expect("simulator");
    (sim, clock)
}

fn strict() -> CapacityConfig {
    CapacityConfig {
        initial_burst_seconds: 1.0,
        burst_seconds: 1.0,
        ..CapacityConfig::default()
    }
}

fn table(sim: &Simulator, name: &str, wcu: Option<u64>) {
    let spec = TableSpec::on_demand(name, ("pk", KeyType::S), Some(("sk", KeyType::N)));
    let spec = match wcu {
        Some(w) => spec.provisioned(w),
        None => spec,
    };
    sim.create_table(spec).expect("create table");
}

fn put_request(pk: &str, sk: u32, pad: usize) -> Value {
    json!({"PutRequest": {"Item": {
        "pk": {"S": pk}, "sk": {"N": sk.to_string()}, "pad": {"S": "x".repeat(pad)}
    }}})
}

fn batch(table: &str, writes: Vec<Value>) -> Value {
    json!({"RequestItems": {table: writes}, "ReturnConsumedCapacity": "TOTAL"})
}

fn call(sim: &Simulator, op: &str, body: Value) -> Result<Value, ApiError> {
    sim.handle_value(&format!("DynamoDB_20120810.{op}"), body)
}

fn scan_all(sim: &Simulator, table: &str) -> Vec<Value> {
    let out = call(sim, "Scan", json!({"TableName": table})).expect("scan");
    out["Items"].as_array().cloned().unwrap_or_default()
}

#[test]
fn unprocessed_items_are_exactly_the_items_not_stored() {
    let (sim, clock) = sim_with(strict());
    table(&sim, "T", Some(10));
    clock.set(0.0);
    let writes: Vec<Value> = (0..25).map(|i| put_request("a", i, 10)).collect();
    let out = call(&sim, "BatchWriteItem", batch("T", writes.clone())).expect("batch");

    let unprocessed = out["UnprocessedItems"]["T"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    assert_eq!(unprocessed.len(), 15, "10 WCU admits 10 one-unit items");
    assert_eq!(
        out["ConsumedCapacity"][0]["CapacityUnits"].to_string(),
        "10.0"
    );
    assert_eq!(out["ConsumedCapacity"][0]["TableName"], "T");

    let stored: BTreeSet<String> = scan_all(&sim, "T")
        .into_iter()
        .map(|i| json!({"PutRequest": {"Item": i}}).to_string())
        .collect();
    let returned: BTreeSet<String> = unprocessed.iter().map(Value::to_string).collect();
    let sent: BTreeSet<String> = writes.iter().map(Value::to_string).collect();
    assert_eq!(stored.len(), 10);
    assert!(stored.is_disjoint(&returned));
    let union: BTreeSet<String> = stored.union(&returned).cloned().collect();
    assert_eq!(
        union, sent,
        "every write is either stored or handed back verbatim"
    );
}

#[test]
fn without_retain_throttled_writes_are_still_handed_back_verbatim() {
    let clock = Arc::new(ManualClock::default());
    let mut cfg = SimConfig {
        capacity: strict(),
        ..SimConfig::default()
    };
    cfg.storage.retain = false;
    let sim = Simulator::with_clock(cfg, clock.clone()).expect("simulator");
    table(&sim, "T", Some(10));
    clock.set(0.0);
    let writes: Vec<Value> = (0..25).map(|i| put_request("a", i, 10)).collect();
    let out = call(&sim, "BatchWriteItem", batch("T", writes.clone())).expect("batch");
    let returned: Vec<Value> = out["UnprocessedItems"]["T"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    assert_eq!(
        returned,
        writes[10..],
        "the 15 writes past 10 WCU, in order"
    );
    assert!(scan_all(&sim, "T").is_empty(), "nothing is stored");
    assert_eq!(sim.stats()["tables"]["T"]["admitted_items"], 10);
}

#[test]
fn batch_that_admits_nothing_is_throttled_with_reasons() {
    let (sim, clock) = sim_with(strict());
    table(&sim, "T", Some(5));
    clock.set(0.0);
    let first: Vec<Value> = (0..5).map(|i| put_request("a", i, 1)).collect();
    let out = call(&sim, "BatchWriteItem", batch("T", first)).expect("fits");
    assert_eq!(out["UnprocessedItems"], json!({}));

    let second: Vec<Value> = (5..8).map(|i| put_request("a", i, 1)).collect();
    let err = call(&sim, "BatchWriteItem", batch("T", second.clone())).expect_err("throttled");
    let body = err.body();
    assert_eq!(
        body["__type"],
        "com.amazonaws.dynamodb.v20120810#ProvisionedThroughputExceededException"
    );
    assert_eq!(
        body["ThrottlingReasons"],
        json!([{
            "reason": "TableWriteProvisionedThroughputExceeded",
            "resource": "arn:aws:dynamodb:us-east-1:000000000000:table/T"
        }])
    );
    assert!(body["message"]
        .as_str()
        .is_some_and(|m| m.starts_with("The level of configured provisioned throughput")));
    assert_eq!(err.status(), 400);

    // A second later the bucket has refilled by 5 units.
    clock.advance(1.0);
    let out = call(&sim, "BatchWriteItem", batch("T", second)).expect("refilled");
    assert_eq!(out["UnprocessedItems"], json!({}));
    assert_eq!(scan_all(&sim, "T").len(), 8);

    let stats = sim.stats();
    assert_eq!(stats["tables"]["T"]["throttled_calls"], 1);
    assert_eq!(stats["tables"]["T"]["total_wcu"].to_string(), "8.0");
    assert_eq!(stats["tables"]["T"]["items_stored"], 8);
}

#[test]
fn consumed_capacity_counts_item_size_and_only_admitted_items() {
    let (sim, clock) = sim_with(strict());
    table(&sim, "T", Some(7));
    clock.set(0.0);
    // Each item is just over 2 KB: 3 WCU. 7 units admit two of them.
    let writes: Vec<Value> = (0..4).map(|i| put_request("a", i, 2100)).collect();
    let out = call(&sim, "BatchWriteItem", batch("T", writes)).expect("batch");
    assert_eq!(
        out["ConsumedCapacity"][0]["CapacityUnits"].to_string(),
        "6.0"
    );
    assert_eq!(
        out["UnprocessedItems"]["T"].as_array().map(Vec::len),
        Some(2)
    );
}

#[test]
fn hot_key_throttles_while_the_table_has_capacity() {
    let (sim, clock) = sim_with(CapacityConfig::default());
    table(&sim, "Hot", Some(4000));
    clock.set(100.0); // plenty of burst in the table bucket
    let put = |pk: &str, sk: u32| {
        call(
            &sim,
            "PutItem",
            json!({"TableName": "Hot", "Item": {"pk": {"S": pk}, "sk": {"N": sk.to_string()}}}),
        )
    };
    let admitted = (0..1500).filter(|i| put("hot", *i).is_ok()).count();
    assert_eq!(admitted, 1000, "one partition takes 1000 WCU/s");
    let err = put("hot", 5000).expect_err("hot key throttled");
    assert_eq!(
        err.body()["ThrottlingReasons"][0]["reason"],
        "TableWriteKeyRangeThroughputExceeded"
    );
    // Some other key lands on another partition and is admitted at once.
    assert!((0..20).any(|i| put(&format!("cold-{i}"), 1).is_ok()));
}

/// An on-demand table `OD` (one second of burst) under `capacity` at
/// second 0: `fits` one-unit writes admitted in one call, then one more
/// refused. The simulator, its clock and the refusal's body.
fn on_demand_refusal(capacity: CapacityConfig, fits: u32) -> (Simulator, Arc<ManualClock>, Value) {
    let (sim, clock) = sim_with(CapacityConfig {
        initial_burst_seconds: 1.0,
        ..capacity
    });
    table(&sim, "OD", None);
    clock.set(0.0);
    let writes: Vec<Value> = (0..fits).map(|i| put_request("a", i, 1)).collect();
    call(&sim, "BatchWriteItem", batch("OD", writes)).expect("within capacity");
    let err = call(
        &sim,
        "BatchWriteItem",
        batch("OD", vec![put_request("a", fits, 1)]),
    )
    .expect_err("throttled");
    (sim, clock, err.body())
}

#[test]
fn on_demand_throttles_with_throttling_exception() {
    let (sim, clock, body) = on_demand_refusal(
        CapacityConfig {
            on_demand_warm_wcu: 3.0,
            ..CapacityConfig::default()
        },
        3,
    );
    assert_eq!(
        body["__type"],
        "com.amazonaws.dynamodb.v20120810#ThrottlingException"
    );
    assert_eq!(
        body["throttlingReasons"][0]["reason"],
        "TableWriteMaxOnDemandThroughputExceeded"
    );
    // After a full second at peak 3, six units are allowed at once.
    clock.set(1.0);
    let writes: Vec<Value> = (10..20).map(|i| put_request("a", i, 1)).collect();
    let out = call(&sim, "BatchWriteItem", batch("OD", writes)).expect("doubled");
    assert_eq!(
        out["ConsumedCapacity"][0]["CapacityUnits"].to_string(),
        "6.0"
    );
}

#[test]
fn describe_table_reports_what_the_table_serves_at_once() {
    let warm = |sim: &Simulator, t: &str| {
        let out = call(sim, "DescribeTable", json!({"TableName": t})).expect("describe");
        let w = &out["Table"]["WarmThroughput"];
        assert_eq!(w["Status"], "ACTIVE");
        (
            w["ReadUnitsPerSecond"].as_u64().expect("read units"),
            w["WriteUnitsPerSecond"].as_u64().expect("write units"),
        )
    };
    let (sim, clock) = sim_with(CapacityConfig {
        on_demand_warm_wcu: 3.0,
        initial_burst_seconds: 1.0,
        ..CapacityConfig::default()
    });
    table(&sim, "OD", None);
    table(&sim, "P", Some(250));
    clock.set(0.0);
    assert_eq!(
        warm(&sim, "OD"),
        (9, 3),
        "a new on-demand table: its warm rate"
    );
    assert_eq!(warm(&sim, "P").1, 250, "provisioned: its capacity");
    // A whole second at 3 WCU: twice that peak is served at once.
    let writes: Vec<Value> = (0..3).map(|i| put_request("a", i, 1)).collect();
    call(&sim, "BatchWriteItem", batch("OD", writes)).expect("warm capacity");
    clock.set(1.0);
    assert_eq!(warm(&sim, "OD"), (18, 6));
    let (unlimited, _) = sim_with(CapacityConfig {
        unlimited: true,
        ..CapacityConfig::default()
    });
    table(&unlimited, "U", None);
    assert_eq!(
        warm(&unlimited, "U").1,
        dynamo_sim::table::UNLIMITED_WARM_WCU
    );
}

#[test]
fn an_on_demand_maximum_is_described_and_an_account_quota_is_not() {
    // Two units at once: each quota holds the table below its warm rate.
    let refusal = |capacity: CapacityConfig| {
        let (sim, _, body) = on_demand_refusal(
            CapacityConfig {
                on_demand_warm_wcu: 100.0,
                ..capacity
            },
            2,
        );
        let described = call(&sim, "DescribeTable", json!({"TableName": "OD"})).expect("describe");
        (
            described["Table"].clone(),
            body["throttlingReasons"][0]["reason"].clone(),
        )
    };
    let (table_desc, reason) = refusal(CapacityConfig {
        on_demand_max_wcu: Some(2.0),
        ..CapacityConfig::default()
    });
    assert_eq!(
        table_desc["OnDemandThroughput"],
        json!({"MaxReadRequestUnits": -1, "MaxWriteRequestUnits": 2}),
        "the configured maximum (MaxWriteRequestUnits)"
    );
    assert_eq!(reason, "TableWriteMaxOnDemandThroughputExceeded");

    let (table_desc, reason) = refusal(CapacityConfig {
        on_demand_account_wcu: Some(2.0),
        ..CapacityConfig::default()
    });
    assert!(
        table_desc.get("OnDemandThroughput").is_none(),
        "the account's quota is not part of the table: {table_desc}"
    );
    assert_eq!(reason, "TableWriteAccountLimitExceeded");

    // Both: the lower one refuses.
    let (table_desc, reason) = refusal(CapacityConfig {
        on_demand_max_wcu: Some(50.0),
        on_demand_account_wcu: Some(2.0),
        ..CapacityConfig::default()
    });
    assert_eq!(table_desc["OnDemandThroughput"]["MaxWriteRequestUnits"], 50);
    assert_eq!(reason, "TableWriteAccountLimitExceeded");
}

#[test]
fn batch_validation_messages() {
    let (sim, _clock) = sim_with(CapacityConfig::default());
    table(&sim, "T", Some(100));
    let msg = |body: Value| match call(&sim, "BatchWriteItem", body) {
        Err(ApiError::Validation(m)) => m,
        other => panic!("expected validation error, got {other:?}"),
    };
    let many: Vec<Value> = (0..26).map(|i| put_request("a", i, 1)).collect();
    assert_eq!(
        msg(batch("T", many)),
        "Too many items requested for the BatchWriteItem call"
    );
    let dup = vec![put_request("a", 1, 1), put_request("a", 1, 2)];
    assert_eq!(
        msg(batch("T", dup)),
        "Provided list of item keys contains duplicates"
    );
    let big = vec![put_request("a", 1, 400 * 1024)];
    assert_eq!(
        msg(batch("T", big)),
        "Item size has exceeded the maximum allowed size"
    );
    let no_key = vec![json!({"PutRequest": {"Item": {"pk": {"S": "a"}}}})];
    assert_eq!(
        msg(batch("T", no_key)),
        "The provided key element does not match the schema"
    );
    // Nothing of an invalid batch is written.
    let mixed = vec![
        put_request("a", 1, 1),
        json!({"PutRequest": {"Item": {"pk": {"S": "a"}}}}),
    ];
    msg(batch("T", mixed));
    assert!(scan_all(&sim, "T").is_empty());
    let err = call(
        &sim,
        "BatchWriteItem",
        batch("Nope", vec![put_request("a", 1, 1)]),
    )
    .expect_err("missing table");
    assert!(matches!(err, ApiError::ResourceNotFound(m) if m == "Requested resource not found"));
}

#[test]
fn capacity_schedule_applies_per_table() {
    let clock = Arc::new(ManualClock::default());
    let cfg: SimConfig = toml::from_str(
        r#"
        [capacity]
        burst_seconds = 1.0
        initial_burst_seconds = 1.0
        [[tables]]
        name = "S"
        partition_key = "pk"
        sort_key = "sk"
        sort_key_type = "N"
        wcu = 1000
        schedule = "20, 30s:4"
        "#,
    )
    .expect("config");
    let sim = Simulator::with_clock(cfg, clock.clone()).expect("simulator");
    let writes = |from: u32| {
        (from..from + 25)
            .map(|i| put_request("p", i, 1))
            .collect::<Vec<_>>()
    };
    let out = call(&sim, "BatchWriteItem", batch("S", writes(0))).expect("batch");
    assert_eq!(
        out["ConsumedCapacity"][0]["CapacityUnits"].to_string(),
        "20.0"
    );
    clock.set(40.0);
    let out = call(&sim, "BatchWriteItem", batch("S", writes(100))).expect("batch");
    assert_eq!(
        out["ConsumedCapacity"][0]["CapacityUnits"].to_string(),
        "4.0"
    );
    assert_eq!(
        sim.stats()["tables"]["S"]["capacity_wcu_now"].to_string(),
        "4.0"
    );
}

#[test]
fn storage_bounds_fail_clearly_and_retain_false_stores_nothing() {
    let clock = Arc::new(ManualClock::default());
    let mut cfg = SimConfig::default();
    cfg.storage.max_items = 3;
    let sim = Simulator::with_clock(cfg, clock.clone()).expect("simulator");
    table(&sim, "T", None);
    let writes: Vec<Value> = (0..3).map(|i| put_request("a", i, 1)).collect();
    call(&sim, "BatchWriteItem", batch("T", writes)).expect("fits");
    // Overwriting an existing item needs no new room.
    call(
        &sim,
        "BatchWriteItem",
        batch("T", vec![put_request("a", 0, 5)]),
    )
    .expect("overwrite");
    let err = call(
        &sim,
        "BatchWriteItem",
        batch("T", vec![put_request("a", 9, 1)]),
    )
    .expect_err("full");
    assert_eq!(err.status(), 500);
    assert!(
        matches!(&err, ApiError::Internal(m) if m.contains("storage.max_items=3")),
        "{err:?}"
    );
    // Deleting frees room again.
    let del = json!({"TableName": "T", "Key": {"pk": {"S": "a"}, "sk": {"N": "1"}}});
    call(&sim, "DeleteItem", del).expect("delete");
    call(
        &sim,
        "BatchWriteItem",
        batch("T", vec![put_request("a", 9, 1)]),
    )
    .expect("room again");

    let mut cfg = SimConfig::default();
    cfg.storage.retain = false;
    let sim = Simulator::with_clock(cfg, clock).expect("simulator");
    table(&sim, "T", None);
    let writes: Vec<Value> = (0..25).map(|i| put_request("a", i, 1)).collect();
    let out = call(&sim, "BatchWriteItem", batch("T", writes)).expect("counted");
    assert_eq!(
        out["ConsumedCapacity"][0]["CapacityUnits"].to_string(),
        "25.0"
    );
    assert!(scan_all(&sim, "T").is_empty());
    assert_eq!(sim.stats()["tables"]["T"]["admitted_items"], 25);
}
