//! `--verify`: counts the run's items in its table and reports
//! lost = acked − stored. One Query with `Select: COUNT` per partition key
//! the run could have written (keys carry the run id, so nothing else is
//! counted), paged, 16 keys at a time.
//!
//! With ack=queued the gateway may still be writing when the load ends, so
//! the count is repeated (bounded by `--verify-timeout`) until it reaches
//! the acknowledged count or stops growing for three passes.

use std::time::Duration;

use aws_credential_types::Credentials;
use aws_sdk_dynamodb::config::{BehaviorVersion, Region};
use aws_sdk_dynamodb::types::{AttributeValue, Select};
use aws_sdk_dynamodb::Client;
use serde::{Deserialize, Serialize};

use crate::keys::key_name;
use crate::spec::{LoadSpec, Mode};

/// What `--verify` found.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct VerifyResult {
    /// Table counted.
    pub table: String,
    /// Partition keys queried.
    pub keys: u64,
    /// Items stored under the run's keys.
    pub stored: u64,
    /// Acknowledged but not stored: max(0, acked − stored).
    pub lost: u64,
    /// Stored beyond the acknowledged count (events whose answer the client
    /// never got, e.g. a timeout): max(0, stored − acked).
    pub extra: u64,
    /// Count passes made while waiting for the gateway to finish writing.
    pub passes: u32,
}

/// Keys counted at once.
const PARALLEL: u64 = 16;
/// Passes without growth after which the count is final.
const STABLE_PASSES: u32 = 3;

/// A DynamoDB client for a local, unauthenticated endpoint.
pub fn client(endpoint: &str) -> Client {
    let config = aws_sdk_dynamodb::Config::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new("us-east-1"))
        .endpoint_url(endpoint)
        .credentials_provider(Credentials::new(
            "loadgen", "loadgen", None, None, "loadgen",
        ))
        .build();
    Client::from_conf(config)
}

/// Counts the run's items until they match `acked` or stop changing.
pub async fn verify(spec: &LoadSpec, endpoint: &str, acked: u64) -> anyhow::Result<VerifyResult> {
    let client = client(endpoint);
    let run_id = spec.run_id.clone().unwrap_or_default();
    // MQTT devices each publish under their own keys.
    let keys = match spec.mode {
        Mode::Http => spec.keys.get(),
        Mode::Mqtt => spec.concurrency.get() * spec.topics_per_device.get(),
    };
    let table = spec.shape.table().to_owned();
    let deadline = tokio::time::Instant::now() + spec.verify_timeout;
    let (mut last, mut stable, mut passes) = (u64::MAX, 0u32, 0u32);
    let stored = loop {
        let n = count(
            &client,
            &table,
            spec.shape.key_attribute(),
            &run_id,
            spec.shape.key_prefix(),
            keys,
        )
        .await?;
        passes += 1;
        if n >= acked || tokio::time::Instant::now() >= deadline {
            break n;
        }
        stable = if n == last { stable + 1 } else { 0 };
        if stable >= STABLE_PASSES {
            break n;
        }
        last = n;
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    Ok(VerifyResult {
        table,
        keys,
        stored,
        lost: acked.saturating_sub(stored),
        extra: stored.saturating_sub(acked),
        passes,
    })
}

async fn count(
    client: &Client,
    table: &str,
    attr: &str,
    run_id: &str,
    prefix: &str,
    keys: u64,
) -> anyhow::Result<u64> {
    let mut set = tokio::task::JoinSet::new();
    for lane in 0..PARALLEL.min(keys) {
        let (client, table, attr) = (client.clone(), table.to_owned(), attr.to_owned());
        let names: Vec<String> = (lane..keys)
            .step_by(PARALLEL as usize)
            .map(|i| key_name(run_id, prefix, i))
            .collect();
        set.spawn(async move {
            let mut total = 0u64;
            for key in names {
                total += count_key(&client, &table, &attr, &key).await?;
            }
            anyhow::Ok(total)
        });
    }
    let mut total = 0;
    while let Some(r) = set.join_next().await {
        total += r??;
    }
    Ok(total)
}

async fn count_key(client: &Client, table: &str, attr: &str, key: &str) -> anyhow::Result<u64> {
    let mut total = 0u64;
    let mut start = None;
    loop {
        let out = client
            .query()
            .table_name(table)
            .key_condition_expression("#k = :v")
            .expression_attribute_names("#k", attr)
            .expression_attribute_values(":v", AttributeValue::S(key.to_owned()))
            .select(Select::Count)
            .set_exclusive_start_key(start)
            .send()
            .await
            .map_err(|e| {
                anyhow::anyhow!(
                    "Query {table} {attr}={key}: {}",
                    aws_sdk_dynamodb::error::DisplayErrorContext(e)
                )
            })?;
        total += out.count() as u64;
        start = out.last_evaluated_key;
        if start.is_none() {
            return Ok(total);
        }
    }
}
