//! `dynamo-sim`: a DynamoDB-compatible *capacity simulator* for development
//! and load tests. It speaks the DynamoDB JSON 1.0 protocol so the real AWS
//! SDKs work against it unchanged, keeps items in memory (bounded), and —
//! its reason to exist — models write capacity the way DynamoDB does:
//! provisioned WCU with 300 s burst, on-demand doubling of the previous
//! peak, 1000 WCU/s per partition (hot keys), `UnprocessedItems` and typed
//! throttling errors with `ThrottlingReasons`. Faults (latency, 500, 503,
//! dropped connections, capacity schedules) are injectable.
//!
//! It is not a database: no durability beyond an optional JSON snapshot, no
//! indexes, no condition/filter/projection expressions (refused with a
//! ValidationException, never silently ignored).
//!
//! Module map (request path top to bottom):
//! - [`server`]: hyper HTTP/1.1 listener, fault injection, `/__sim/*`.
//! - [`protocol`]: `X-Amz-Target` operations, error wire shape.
//! - [`simulator`]: table registry, clock, storage budget, snapshots.
//! - [`ops`]: one file per operation family (table, item, batch, read).
//! - [`table`]: schema, key extraction with DynamoDB's messages.
//! - [`capacity`]: pure admission model, time passed in.
//! - [`attr`]: compact typed attribute values, parsed once from the wire;
//!   [`attr_json`]: an item's stored wire JSON written from them.
//! - [`storage`], [`size`], [`key`]: items, size rules, key ordering.
//! - [`request_time`]: the clock and the five-minute signature window.
//! - [`stats`], [`faults`], [`config`], [`error`], [`reserved`].
//!
//! Embedding: build a [`SimConfig`], `Arc::new(Simulator::new(cfg)?)`,
//! optionally [`Simulator::create_table`], then spawn
//! [`serve`]`(listener, sim, shutdown)`. The library installs no global
//! logger or metrics recorder; it only emits `tracing` events.

pub mod attr;
pub mod attr_json;
pub mod capacity;
pub mod config;
pub mod error;
pub mod faults;
pub mod key;
pub mod ops;
pub mod protocol;
pub mod request_time;
pub mod reserved;
pub mod server;
pub mod simulator;
pub mod size;
pub mod stats;
pub mod storage;
pub mod table;

pub use capacity::Billing;
pub use config::{
    CapacityConfig, CapacitySchedule, FaultConfig, SimConfig, StorageConfig, TableConfig,
};
pub use error::ApiError;
pub use key::KeyType;
pub use server::serve;
pub use simulator::{Clock, ManualClock, MonotonicClock, SimError, Simulator};
pub use table::{KeySchema, TableSpec};
