//! The pipeline between sources and sink:
//! router (event → item, unique sort key, TTL) → bounded per-table queue
//! (ack `queued`) → batcher (≤ 25 items, unique keys) → writer.
//! [`ack`] carries `ack=written` completions back to the sources; [`spool`]
//! makes `ack=spooled` requests durable on disk.

pub mod ack;
pub mod batcher;
pub mod clock;
pub mod queue;
pub mod router;
pub mod spool;
