//! Conformance: the same aws-sdk-dynamodb calls against dynalite and
//! dynamo-sim must give the same results and the same typed errors.
//! Where dynalite lacks a feature (UpdateTimeToLive) only the simulator runs.

mod support;

use aws_sdk_dynamodb::error::ProvideErrorMetadata;
use aws_sdk_dynamodb::types::{
    AttributeDefinition, AttributeValue, BillingMode, KeySchemaElement, KeyType,
    ProvisionedThroughput, PutRequest, ReturnConsumedCapacity, ScalarAttributeType, Select,
    TimeToLiveSpecification, TimeToLiveStatus, WriteRequest,
};
use aws_sdk_dynamodb::Client;
use std::collections::HashMap;
use support::{Backend, Kind};

type Item = HashMap<String, AttributeValue>;

fn s(v: &str) -> AttributeValue {
    AttributeValue::S(v.to_string())
}

fn n(v: &str) -> AttributeValue {
    AttributeValue::N(v.to_string())
}

async fn create(c: &Client, name: &str, sk_type: Option<ScalarAttributeType>, wcu: Option<i64>) {
    let mut req = c
        .create_table()
        .table_name(name)
        .attribute_definitions(
            AttributeDefinition::builder()
                .attribute_name("pk")
                .attribute_type(ScalarAttributeType::S)
                .build()
                .expect("attr"),
        )
        .key_schema(
            KeySchemaElement::builder()
                .attribute_name("pk")
                .key_type(KeyType::Hash)
                .build()
                .expect("key"),
        );
    if let Some(t) = sk_type {
        req = req
            .attribute_definitions(
                AttributeDefinition::builder()
                    .attribute_name("sk")
                    .attribute_type(t)
                    .build()
                    .expect("attr"),
            )
            .key_schema(
                KeySchemaElement::builder()
                    .attribute_name("sk")
                    .key_type(KeyType::Range)
                    .build()
                    .expect("key"),
            );
    }
    req = match wcu {
        Some(w) => req
            .billing_mode(BillingMode::Provisioned)
            .provisioned_throughput(
                ProvisionedThroughput::builder()
                    .read_capacity_units(w)
                    .write_capacity_units(w)
                    .build()
                    .expect("pt"),
            ),
        None => req.billing_mode(BillingMode::PayPerRequest),
    };
    req.send().await.expect("create table");
    wait_active(c, name).await;
}

/// dynalite flips CREATING/UPDATING -> ACTIVE on a later tick (as DynamoDB
/// does, asynchronously); poll DescribeTable (bounded) until it is ACTIVE.
async fn wait_active(c: &Client, name: &str) {
    for _ in 0..500 {
        let d = c
            .describe_table()
            .table_name(name)
            .send()
            .await
            .expect("describe");
        if d.table().and_then(|t| t.table_status()).map(|s| s.as_str()) == Some("ACTIVE") {
            return;
        }
        tokio::task::yield_now().await;
    }
    panic!("table {name} never became ACTIVE");
}

fn item(pk: &str, sk: AttributeValue) -> Item {
    HashMap::from([
        ("pk".to_string(), s(pk)),
        ("sk".to_string(), sk),
        ("v".to_string(), s("payload")),
    ])
}

async fn put_all(c: &Client, table: &str, items: Vec<Item>) {
    for chunk in items.chunks(25) {
        let writes: Vec<WriteRequest> = chunk
            .iter()
            .map(|i| {
                WriteRequest::builder()
                    .put_request(
                        PutRequest::builder()
                            .set_item(Some(i.clone()))
                            .build()
                            .expect("put"),
                    )
                    .build()
            })
            .collect();
        let out = c
            .batch_write_item()
            .request_items(table, writes)
            .send()
            .await
            .expect("batch write");
        assert!(out.unprocessed_items().is_none_or(|u| u.is_empty()));
    }
}

fn code_and_message<E: ProvideErrorMetadata>(e: &E) -> (String, String) {
    (
        e.code().unwrap_or_default().to_string(),
        e.message().unwrap_or_default().to_string(),
    )
}

#[tokio::test]
async fn validation_errors_match_dynalite() {
    for b in support::both().await {
        let c = &b.client;
        let who = format!("{:?}", b.kind);
        create(c, "Val", Some(ScalarAttributeType::N), None).await;

        let e = c
            .put_item()
            .table_name("Missing")
            .set_item(Some(item("a", n("1"))))
            .send()
            .await;
        let e = e.expect_err("missing table");
        assert!(
            e.as_service_error()
                .is_some_and(|s| s.is_resource_not_found_exception()),
            "{who}"
        );
        assert_eq!(
            code_and_message(&e).1,
            "Requested resource not found",
            "{who}"
        );

        let e = c
            .describe_table()
            .table_name("Missing")
            .send()
            .await
            .expect_err("missing");
        assert_eq!(
            code_and_message(&e),
            (
                "ResourceNotFoundException".into(),
                "Requested resource not found: Table: Missing not found".into()
            ),
            "{who}"
        );

        let dup = c
            .create_table()
            .table_name("Val")
            .attribute_definitions(
                AttributeDefinition::builder()
                    .attribute_name("pk")
                    .attribute_type(ScalarAttributeType::S)
                    .build()
                    .expect("attr"),
            )
            .key_schema(
                KeySchemaElement::builder()
                    .attribute_name("pk")
                    .key_type(KeyType::Hash)
                    .build()
                    .expect("key"),
            )
            .billing_mode(BillingMode::PayPerRequest)
            .send()
            .await
            .expect_err("duplicate table");
        assert!(
            dup.as_service_error()
                .is_some_and(|s| s.is_resource_in_use_exception()),
            "{who}"
        );
        if b.kind == Kind::Sim {
            assert_eq!(code_and_message(&dup).1, "Table already exists: Val");
        }

        let cases: Vec<(Item, &str)> = vec![
            (
                HashMap::from([("pk".to_string(), s("a"))]),
                "One or more parameter values were invalid: Missing the key sk in the item",
            ),
            (
                HashMap::from([("pk".to_string(), n("1")), ("sk".to_string(), n("1"))]),
                "One or more parameter values were invalid: Type mismatch for key pk expected: S actual: N",
            ),
            (
                item("", n("1")),
                "One or more parameter values are not valid. The AttributeValue for a key attribute cannot contain an empty string value. Key: pk",
            ),
        ];
        for (bad, want) in cases {
            let e = c
                .put_item()
                .table_name("Val")
                .set_item(Some(bad))
                .send()
                .await
                .expect_err("invalid");
            assert_eq!(
                code_and_message(&e),
                ("ValidationException".into(), want.into()),
                "{who}"
            );
        }

        let mut big = item("a", n("1"));
        big.insert("blob".into(), s(&"x".repeat(400 * 1024)));
        let e = c
            .put_item()
            .table_name("Val")
            .set_item(Some(big))
            .send()
            .await
            .expect_err("too big");
        assert_eq!(
            code_and_message(&e),
            (
                "ValidationException".into(),
                "Item size has exceeded the maximum allowed size".into()
            ),
            "{who}"
        );

        let e = c
            .get_item()
            .table_name("Val")
            .key("pk", s("a"))
            .send()
            .await
            .expect_err("short key");
        assert_eq!(
            code_and_message(&e),
            (
                "ValidationException".into(),
                "The provided key element does not match the schema".into()
            ),
            "{who}"
        );

        let w = |sk: &str| {
            WriteRequest::builder()
                .put_request(
                    PutRequest::builder()
                        .set_item(Some(item("a", n(sk))))
                        .build()
                        .expect("put"),
                )
                .build()
        };
        let e = c
            .batch_write_item()
            .request_items("Val", vec![w("1"), w("1.0")])
            .send()
            .await
            .expect_err("duplicates");
        assert_eq!(
            code_and_message(&e),
            (
                "ValidationException".into(),
                "Provided list of item keys contains duplicates".into()
            ),
            "{who}"
        );

        let many: Vec<WriteRequest> = (0..26).map(|i| w(&i.to_string())).collect();
        let e = c
            .batch_write_item()
            .request_items("Val", many)
            .send()
            .await
            .expect_err("26 items");
        let (code, msg) = code_and_message(&e);
        assert_eq!(code, "ValidationException", "{who}");
        if b.kind == Kind::Sim {
            assert_eq!(msg, "Too many items requested for the BatchWriteItem call");
        }
    }
}

async fn query_sks(
    c: &Client,
    table: &str,
    cond: &str,
    values: Vec<(&str, AttributeValue)>,
    forward: bool,
    limit: Option<i32>,
) -> Vec<Vec<String>> {
    let mut pages = Vec::new();
    let mut start: Option<Item> = None;
    loop {
        let mut q = c
            .query()
            .table_name(table)
            .key_condition_expression(cond)
            .expression_attribute_names("#p", "pk")
            .scan_index_forward(forward)
            .set_limit(limit)
            .set_exclusive_start_key(start.take());
        if cond.contains("#s") {
            q = q.expression_attribute_names("#s", "sk");
        }
        for (k, v) in &values {
            q = q.expression_attribute_values(*k, v.clone());
        }
        let out = q.send().await.expect("query");
        let sks: Vec<String> = out
            .items()
            .iter()
            .map(|i| match i.get("sk") {
                Some(AttributeValue::N(v)) | Some(AttributeValue::S(v)) => v.clone(),
                other => panic!("unexpected sort key {other:?}"),
            })
            .collect();
        assert_eq!(out.count() as usize, sks.len());
        pages.push(sks);
        match out.last_evaluated_key() {
            Some(k) => start = Some(k.clone()),
            None => break,
        }
        assert!(pages.len() < 50, "pagination does not end");
    }
    pages
}

fn flat(pages: Vec<Vec<String>>) -> Vec<String> {
    pages.into_iter().flatten().collect()
}

#[tokio::test]
async fn query_semantics_match_dynalite() {
    for b in support::both().await {
        let c = &b.client;
        let who = format!("{:?}", b.kind);
        create(c, "QueryN", Some(ScalarAttributeType::N), None).await;
        create(c, "QueryS", Some(ScalarAttributeType::S), None).await;
        let nums = ["100", "-3", "2", "1.5", "10"];
        let mut items: Vec<Item> = nums.iter().map(|v| item("a", n(v))).collect();
        items.push(item("b", n("5")));
        put_all(c, "QueryN", items).await;
        let strs = ["abc", "b", "B", "ab", "a"];
        put_all(c, "QueryS", strs.iter().map(|v| item("a", s(v))).collect()).await;

        let pa = (":p", s("a"));
        let q = |cond: &'static str, extra: Vec<(&'static str, AttributeValue)>| {
            let mut v = vec![pa.clone()];
            v.extend(extra);
            (cond, v)
        };
        let cases = vec![
            (q("#p = :p", vec![]), vec!["-3", "1.5", "2", "10", "100"]),
            (q("#p = :p AND #s = :x", vec![(":x", n("2"))]), vec!["2"]),
            (
                q("#p = :p AND #s < :x", vec![(":x", n("10"))]),
                vec!["-3", "1.5", "2"],
            ),
            (
                q("#p = :p AND #s <= :x", vec![(":x", n("10"))]),
                vec!["-3", "1.5", "2", "10"],
            ),
            (
                q("#p = :p AND #s > :x", vec![(":x", n("2"))]),
                vec!["10", "100"],
            ),
            (
                q("#p = :p AND #s >= :x", vec![(":x", n("2"))]),
                vec!["2", "10", "100"],
            ),
            (
                q(
                    "#p = :p AND #s BETWEEN :x AND :y",
                    vec![(":x", n("1.5")), (":y", n("10"))],
                ),
                vec!["1.5", "2", "10"],
            ),
        ];
        for ((cond, values), want) in cases {
            let got = flat(query_sks(c, "QueryN", cond, values, true, None).await);
            assert_eq!(got, want, "{who}: {cond}");
        }
        let got = flat(query_sks(c, "QueryN", "#p = :p", vec![pa.clone()], false, None).await);
        assert_eq!(got, ["100", "10", "2", "1.5", "-3"], "{who}: reverse");

        let pages = query_sks(c, "QueryN", "#p = :p", vec![pa.clone()], true, Some(2)).await;
        assert_eq!(
            pages,
            [vec!["-3", "1.5"], vec!["2", "10"], vec!["100"]],
            "{who}: pages"
        );
        let pages = query_sks(c, "QueryN", "#p = :p", vec![pa.clone()], false, Some(2)).await;
        assert_eq!(
            pages,
            [vec!["100", "10"], vec!["2", "1.5"], vec!["-3"]],
            "{who}: reverse pages"
        );
        // A page that ends exactly at the limit still carries LastEvaluatedKey.
        let pages = query_sks(c, "QueryN", "#p = :p", vec![pa.clone()], true, Some(5)).await;
        assert_eq!(pages.len(), 2, "{who}: exact-limit page");
        assert!(pages[1].is_empty(), "{who}");

        let got = flat(
            query_sks(
                c,
                "QueryS",
                "#p = :p AND begins_with(#s, :x)",
                vec![pa.clone(), (":x", s("ab"))],
                true,
                None,
            )
            .await,
        );
        assert_eq!(got, ["ab", "abc"], "{who}: begins_with");
        let got = flat(query_sks(c, "QueryS", "#p = :p", vec![pa.clone()], true, None).await);
        assert_eq!(got, ["B", "a", "ab", "abc", "b"], "{who}: byte order");

        let out = c
            .query()
            .table_name("QueryN")
            .key_condition_expression("pk = :p")
            .expression_attribute_values(":p", s("a"))
            .select(Select::Count)
            .send()
            .await
            .expect("count");
        assert_eq!((out.count(), out.scanned_count()), (5, 5), "{who}");
        assert!(out.items().is_empty(), "{who}");

        let e = c
            .query()
            .table_name("QueryN")
            .key_condition_expression("pk = :p")
            .expression_attribute_values(":p", s("a"))
            .expression_attribute_values(":x", s("unused"))
            .send()
            .await
            .expect_err("unused value");
        assert_eq!(
            code_and_message(&e),
            (
                "ValidationException".into(),
                "Value provided in ExpressionAttributeValues unused in expressions: keys: {:x}"
                    .into()
            ),
            "{who}"
        );
        let e = c
            .query()
            .table_name("QueryN")
            .key_condition_expression("sk = :x")
            .expression_attribute_values(":x", n("1"))
            .send()
            .await
            .expect_err("no hash condition");
        assert_eq!(
            code_and_message(&e),
            (
                "ValidationException".into(),
                "Query condition missed key schema element: pk".into()
            ),
            "{who}"
        );
        let e = c
            .query()
            .table_name("QueryN")
            .key_condition_expression("pk = :p AND begins_with(sk, :x)")
            .expression_attribute_values(":p", s("a"))
            .expression_attribute_values(":x", n("1"))
            .send()
            .await
            .expect_err("begins_with on N");
        assert_eq!(code_and_message(&e).0, "ValidationException", "{who}");
        let e = c
            .query()
            .table_name("QueryN")
            .key_condition_expression("pk = :p")
            .expression_attribute_values(":p", n("1"))
            .send()
            .await
            .expect_err("type mismatch");
        assert_eq!(
            code_and_message(&e),
            (
                "ValidationException".into(),
                "One or more parameter values were invalid: Condition parameter type does not match schema type".into()
            ),
            "{who}"
        );
    }
}

#[tokio::test]
async fn scan_pagination_matches_dynalite() {
    for b in support::both().await {
        let c = &b.client;
        let who = format!("{:?}", b.kind);
        create(c, "ScanT", Some(ScalarAttributeType::N), None).await;
        let items: Vec<Item> = (0..7)
            .map(|i| item(&format!("p{}", i % 3), n(&i.to_string())))
            .collect();
        put_all(c, "ScanT", items.clone()).await;
        let mut seen = Vec::new();
        let mut sizes = Vec::new();
        let mut start = None;
        loop {
            let out = c
                .scan()
                .table_name("ScanT")
                .limit(3)
                .set_exclusive_start_key(start.take())
                .send()
                .await
                .expect("scan");
            sizes.push(out.items().len());
            seen.extend(out.items().iter().cloned());
            match out.last_evaluated_key() {
                Some(k) => start = Some(k.clone()),
                None => break,
            }
        }
        assert_eq!(sizes, [3, 3, 1], "{who}");
        let key = |i: &Item| format!("{:?}{:?}", i.get("pk"), i.get("sk"));
        let mut got: Vec<String> = seen.iter().map(key).collect();
        let mut want: Vec<String> = items.iter().map(key).collect();
        got.sort();
        want.sort();
        assert_eq!(got, want, "{who}: every item exactly once");
        let out = c
            .scan()
            .table_name("ScanT")
            .select(Select::Count)
            .send()
            .await
            .expect("count");
        assert_eq!(out.count(), 7, "{who}");
    }
}

#[tokio::test]
async fn items_tables_and_capacity_reporting_match_dynalite() {
    for b in support::both().await {
        let c = &b.client;
        let who = format!("{:?}", b.kind);
        create(c, "Prov", Some(ScalarAttributeType::N), Some(5)).await;
        let d = c
            .describe_table()
            .table_name("Prov")
            .send()
            .await
            .expect("describe");
        let t = d.table().expect("table");
        assert_eq!(
            t.table_status().map(|s| s.as_str()),
            Some("ACTIVE"),
            "{who}"
        );
        assert_eq!(
            t.provisioned_throughput()
                .and_then(|p| p.write_capacity_units()),
            Some(5),
            "{who}"
        );
        assert_eq!(t.key_schema().len(), 2, "{who}");

        c.put_item()
            .table_name("Prov")
            .set_item(Some(item("k", n("1"))))
            .send()
            .await
            .expect("put");
        let got = c
            .get_item()
            .table_name("Prov")
            .key("pk", s("k"))
            .key("sk", n("1.0"))
            .send()
            .await
            .expect("get");
        assert_eq!(
            got.item().and_then(|i| i.get("v")),
            Some(&s("payload")),
            "{who}: 1.0 == 1"
        );
        let old = c
            .delete_item()
            .table_name("Prov")
            .key("pk", s("k"))
            .key("sk", n("1"))
            .return_values(aws_sdk_dynamodb::types::ReturnValue::AllOld)
            .send()
            .await
            .expect("delete");
        assert_eq!(
            old.attributes().and_then(|a| a.get("v")),
            Some(&s("payload")),
            "{who}"
        );
        let gone = c
            .get_item()
            .table_name("Prov")
            .key("pk", s("k"))
            .key("sk", n("1"))
            .send()
            .await
            .expect("get");
        assert!(gone.item().is_none(), "{who}");

        let writes: Vec<WriteRequest> = (0..3)
            .map(|i| {
                WriteRequest::builder()
                    .put_request(
                        PutRequest::builder()
                            .set_item(Some(item("k", n(&i.to_string()))))
                            .build()
                            .expect("put"),
                    )
                    .build()
            })
            .collect();
        let out = c
            .batch_write_item()
            .request_items("Prov", writes)
            .return_consumed_capacity(ReturnConsumedCapacity::Total)
            .send()
            .await
            .expect("batch");
        let cc = out.consumed_capacity();
        assert_eq!(cc.len(), 1, "{who}");
        assert_eq!(cc[0].table_name(), Some("Prov"), "{who}");
        assert_eq!(cc[0].capacity_units(), Some(3.0), "{who}");

        c.update_table()
            .table_name("Prov")
            .provisioned_throughput(
                ProvisionedThroughput::builder()
                    .read_capacity_units(7)
                    .write_capacity_units(9)
                    .build()
                    .expect("pt"),
            )
            .send()
            .await
            .expect("update");
        wait_active(c, "Prov").await;
        let d = c
            .describe_table()
            .table_name("Prov")
            .send()
            .await
            .expect("describe");
        assert_eq!(
            d.table()
                .and_then(|t| t.provisioned_throughput())
                .and_then(|p| p.write_capacity_units()),
            Some(9),
            "{who}"
        );
        let names = c.list_tables().send().await.expect("list");
        assert!(names.table_names().contains(&"Prov".to_string()), "{who}");
        c.delete_table()
            .table_name("Prov")
            .send()
            .await
            .expect("delete table");
        // Gone, or (dynalite, like DynamoDB) still visible as DELETING.
        match c.describe_table().table_name("Prov").send().await {
            Err(e) => assert_eq!(code_and_message(&e).0, "ResourceNotFoundException", "{who}"),
            Ok(d) => assert_eq!(
                d.table().and_then(|t| t.table_status()).map(|s| s.as_str()),
                Some("DELETING"),
                "{who}"
            ),
        }
        if b.kind == Kind::Sim {
            let e = c
                .describe_table()
                .table_name("Prov")
                .send()
                .await
                .expect_err("deleted");
            assert_eq!(code_and_message(&e).0, "ResourceNotFoundException");
        }
    }
}

#[tokio::test]
async fn time_to_live_settings() {
    for b in support::both().await {
        let c = &b.client;
        let who = format!("{:?}", b.kind);
        create(c, "TTL", None, None).await;
        let d = c
            .describe_time_to_live()
            .table_name("TTL")
            .send()
            .await
            .expect("describe ttl");
        assert_eq!(
            d.time_to_live_description()
                .and_then(|t| t.time_to_live_status()),
            Some(&TimeToLiveStatus::Disabled),
            "{who}"
        );
        if b.kind == Kind::Dynalite {
            continue; // dynalite has no UpdateTimeToLive
        }
        let spec = TimeToLiveSpecification::builder()
            .attribute_name("expires_at")
            .enabled(true)
            .build()
            .expect("spec");
        let out = c
            .update_time_to_live()
            .table_name("TTL")
            .time_to_live_specification(spec.clone())
            .send()
            .await
            .expect("enable ttl");
        assert_eq!(
            out.time_to_live_specification().map(|s| s.enabled()),
            Some(true)
        );
        let d = c
            .describe_time_to_live()
            .table_name("TTL")
            .send()
            .await
            .expect("describe ttl");
        let desc = d.time_to_live_description().expect("description");
        assert_eq!(desc.time_to_live_status(), Some(&TimeToLiveStatus::Enabled));
        assert_eq!(desc.attribute_name(), Some("expires_at"));
        let e = c
            .update_time_to_live()
            .table_name("TTL")
            .time_to_live_specification(spec)
            .send()
            .await
            .expect_err("already enabled");
        assert_eq!(
            code_and_message(&e),
            (
                "ValidationException".into(),
                "TimeToLive is already enabled".into()
            )
        );
    }
}

#[tokio::test]
async fn simulator_throttles_through_the_sdk_with_typed_errors() {
    let cfg = dynamo_sim::SimConfig {
        capacity: dynamo_sim::CapacityConfig {
            initial_burst_seconds: 1.0,
            burst_seconds: 1.0,
            ..Default::default()
        },
        ..Default::default()
    };
    let b: Backend = support::sim(cfg).await;
    let c = &b.client;
    create(c, "Small", Some(ScalarAttributeType::N), Some(1)).await;
    // One unit per second: the first put passes, an immediate second one may
    // only pass if a full unit refilled in between, so try a few.
    c.put_item()
        .table_name("Small")
        .set_item(Some(item("a", n("1"))))
        .send()
        .await
        .expect("first put");
    let mut throttled = None;
    for i in 2..50 {
        if let Err(e) = c
            .put_item()
            .table_name("Small")
            .set_item(Some(item("a", n(&i.to_string()))))
            .send()
            .await
        {
            throttled = Some(e);
            break;
        }
    }
    let e = throttled.expect("a put is throttled at 1 WCU/s");
    let svc = e.as_service_error().expect("service error");
    assert!(
        svc.is_provisioned_throughput_exceeded_exception(),
        "{svc:?}"
    );
    if let aws_sdk_dynamodb::operation::put_item::PutItemError::ProvisionedThroughputExceededException(p) = svc {
        let reasons = p.throttling_reasons();
        assert_eq!(reasons.len(), 1);
        assert_eq!(reasons[0].reason(), Some("TableWriteProvisionedThroughputExceeded"));
        assert_eq!(reasons[0].resource(), Some("arn:aws:dynamodb:us-east-1:000000000000:table/Small"));
    }
}
