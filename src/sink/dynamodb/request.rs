//! BatchWriteItem requests from a batch, and the response mapped back to
//! the batch's items (which ones DynamoDB left in UnprocessedItems, and how
//! many WCUs it reports as consumed), and DescribeTable's write capacity
//! for the rate controller's ceiling.

use std::collections::HashMap;

use aws_sdk_dynamodb::operation::batch_write_item::BatchWriteItemOutput;
use aws_sdk_dynamodb::types::{BillingMode, PutRequest, ReturnConsumedCapacity, WriteRequest};
use aws_sdk_dynamodb::Client;

use super::rate::ceiling::{DescribeCapacity, DescribeError, Described, TableCapacity};
use super::retry::{classify, WriteError};
use super::writer::{BatchWrite, WriteOutcome};
use crate::config::TableSpec;
use crate::event::map::key_id;
use crate::event::typed;
use crate::event::Item;

/// PutRequests for `items`, in order (each item's typed JSON read back
/// into the SDK's attribute values).
pub fn write_requests(items: &[Item]) -> Result<Vec<WriteRequest>, WriteError> {
    items
        .iter()
        .map(|item| {
            let invalid = |message: String| WriteError::Validation { message };
            let attrs = typed::parse_item(item.json()).map_err(|e| invalid(e.to_string()))?;
            let put = PutRequest::builder()
                .set_item(Some(attrs))
                .build()
                .map_err(|e| invalid(e.to_string()))?;
            Ok(WriteRequest::builder().put_request(put).build())
        })
        .collect()
}

/// Indexes of `items` that `output` returned as unprocessed for `table`.
pub fn unprocessed_indexes(
    table: &TableSpec,
    items: &[Item],
    output: &BatchWriteItemOutput,
) -> Vec<usize> {
    let Some(returned) = output.unprocessed_items().and_then(|u| u.get(&table.name)) else {
        return Vec::new();
    };
    match_unprocessed(
        table,
        items,
        returned.iter().map(|w| {
            w.put_request()
                .map(|p| key_id(p.item(), &table.partition_key, table.sort_key.as_ref()))
        }),
    )
}

/// Indexes of `items` whose keys (as [`key_id`] text) DynamoDB returned as
/// unprocessed (`None`: an entry without a readable key), for both request
/// paths. An entry that matches no item must not count as written: then the
/// whole batch is re-sent (puts of the same items are idempotent).
pub fn match_unprocessed(
    table: &TableSpec,
    items: &[Item],
    returned: impl Iterator<Item = Option<Box<str>>>,
) -> Vec<usize> {
    let by_key: HashMap<&str, usize> = items
        .iter()
        .enumerate()
        .map(|(i, it)| (it.key(), i))
        .collect();
    let mut out = Vec::new();
    for id in returned {
        match id.and_then(|id| by_key.get(&*id).copied()) {
            Some(i) => out.push(i),
            None => {
                tracing::warn!(table = %table.name, "UnprocessedItems entry not matched to the batch; re-sending all of it");
                return (0..items.len()).collect();
            }
        }
    }
    out.sort_unstable();
    out.dedup();
    out
}

/// Capacity units DynamoDB reported for `table`.
pub fn consumed_wcu(table: &str, output: &BatchWriteItemOutput) -> Option<f64> {
    let units: Vec<f64> = output
        .consumed_capacity()
        .iter()
        .filter(|c| c.table_name() == Some(table))
        .filter_map(|c| c.capacity_units())
        .collect();
    (!units.is_empty()).then(|| units.iter().sum())
}

/// The production writer: aws-sdk-dynamodb with its retries disabled.
#[derive(Debug, Clone)]
pub struct SdkWriter {
    client: Client,
}

impl SdkWriter {
    pub fn new(client: Client) -> Self {
        Self { client }
    }
}

impl BatchWrite for SdkWriter {
    async fn write(&self, table: &TableSpec, items: &[Item]) -> Result<WriteOutcome, WriteError> {
        let output = self
            .client
            .batch_write_item()
            .request_items(table.name.clone(), write_requests(items)?)
            .return_consumed_capacity(ReturnConsumedCapacity::Total)
            .send()
            .await
            .map_err(|e| classify(&e))?;
        Ok(WriteOutcome {
            unprocessed: unprocessed_indexes(table, items, &output),
            consumed_wcu: consumed_wcu(&table.name, &output),
        })
    }
}

impl DescribeCapacity for SdkWriter {
    async fn capacity(&self, table: &TableSpec) -> Result<Described, DescribeError> {
        let output = self
            .client
            .describe_table()
            .table_name(table.name.clone())
            .send()
            .await
            .map_err(|e| DescribeError {
                message: aws_sdk_dynamodb::error::DisplayErrorContext(&e).to_string(),
            })?;
        let Some(desc) = output.table() else {
            return Err(DescribeError {
                message: "no Table in the response".to_owned(),
            });
        };
        let on_demand = desc
            .billing_mode_summary()
            .and_then(|b| b.billing_mode())
            .is_some_and(|m| *m == BillingMode::PayPerRequest);
        // Counts, not floats, on the wire: i64 → f64 is exact for any real WCU.
        #[allow(clippy::cast_precision_loss)]
        let warm_wcu = desc
            .warm_throughput()
            .and_then(|w| w.write_units_per_second())
            .filter(|w| *w > 0)
            .map(|w| w as f64);
        #[allow(clippy::cast_precision_loss)]
        let capacity = if on_demand {
            TableCapacity::OnDemand(
                desc.on_demand_throughput()
                    .and_then(|o| o.max_write_request_units())
                    .filter(|m| *m > 0)
                    .map(|m| m as f64),
            )
        } else {
            TableCapacity::Provisioned(
                desc.provisioned_throughput()
                    .and_then(|p| p.write_capacity_units())
                    .unwrap_or(0) as f64,
            )
        };
        Ok(Described { capacity, warm_wcu })
    }
}
