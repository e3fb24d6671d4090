//! dynamo-ingest: an ingestion gateway that takes time-series and activity
//! events over HTTP (and MQTT) and writes them into Amazon DynamoDB with
//! BatchWriteItem, as fast as the table's write capacity allows.
//!
//! # Data flow
//! ```text
//! HTTP ─► sources::http (decode) ─► pipeline::router (event → item, unique sort key, TTL)
//!       ─► pipeline::queue (bounded, per table; ack "queued")
//!       ─► pipeline::batcher (≤ 25 items, ≤ 16 MiB, linger, unique keys)
//!       ─► sink::dynamodb::writer (BatchWriteItem, retries, ack "written")
//!       ─► DynamoDB   ·   refused items ─► sink::dead_letter
//! ```
//!
//! # Delivery promises
//! - An acknowledged event reaches DynamoDB or the dead-letter file with its
//!   reason; never silently dropped (not on throttling, bad items, SIGTERM,
//!   or a full queue — the sender is told 503 instead).
//! - Two distinct events never overwrite each other: a server-assigned sort
//!   key is unique per partition key. A payload-supplied sort key is the
//!   event's identity, so retries are idempotent.
//! - Bad input gets a clear error naming what is wrong and never affects
//!   other clients' data.
//!
//! # Modules
//! - [`config`]: TOML, validation, the one [`config::ValidatedConfig`].
//! - [`event`]: items, key extraction, JSON ↔ attribute values, size rules.
//! - [`sources`]: where events enter (HTTP).
//! - [`pipeline`]: router, queue, batcher, acks.
//! - [`sink`]: DynamoDB writer and the dead-letter file.
//! - [`telemetry`]: metrics, admin listener, logs.
//! - [`app`]: wiring and the shutdown order.
//! - [`local`]: the embedded DynamoDB simulator behind `--local`.

pub mod app;
pub mod config;
pub mod event;
pub mod local;
pub mod pipeline;
pub mod sink;
pub mod sources;
pub mod telemetry;
