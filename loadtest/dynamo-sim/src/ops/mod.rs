//! API operations: one file per family, all pure functions of
//! `(&Simulator, request JSON) -> Result<response JSON, ApiError>`.
//!
//! `dispatch` is the only entry; the HTTP layer never touches tables.

pub mod batch;
mod batch_scan;
pub mod item;
pub mod key_condition;
pub mod read;
pub mod request;
pub mod table;

use serde_json::Value;

use crate::attr::parse_error;
use crate::error::ApiResult;
use crate::protocol::Operation;
use crate::simulator::Simulator;

/// Run `op` on the raw JSON body. BatchWriteItem parses straight into
/// typed items (its hot path); the rest parse a generic JSON tree first.
pub fn dispatch(sim: &Simulator, op: Operation, body: &[u8]) -> ApiResult<Value> {
    if op == Operation::BatchWriteItem {
        return batch::batch_write_item(sim, body);
    }
    let req: Value = serde_json::from_slice(body).map_err(parse_error)?;
    match op {
        Operation::CreateTable => table::create_table(sim, &req),
        Operation::DescribeTable => table::describe_table(sim, &req),
        Operation::DeleteTable => table::delete_table(sim, &req),
        Operation::ListTables => table::list_tables(sim, &req),
        Operation::UpdateTable => table::update_table(sim, &req),
        Operation::UpdateTimeToLive => table::update_ttl(sim, &req),
        Operation::DescribeTimeToLive => table::describe_ttl(sim, &req),
        Operation::PutItem => item::put_item(sim, req),
        Operation::GetItem => item::get_item(sim, &req),
        Operation::DeleteItem => item::delete_item(sim, &req),
        Operation::BatchWriteItem => batch::batch_write_item(sim, body),
        Operation::BatchGetItem => batch::batch_get_item(sim, &req),
        Operation::Query => read::query(sim, &req),
        Operation::Scan => read::scan(sim, &req),
    }
}
