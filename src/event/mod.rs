//! Events and items: what a source hands to the pipeline.
//!
//! A source decodes its input into JSON objects plus context fields (query
//! parameters, path or topic segments); [`map`] turns each into an [`Item`]
//! for one stream's table (keys checked, exact types, size by DynamoDB's
//! rules). Items then flow through the router, the queue and the batcher to
//! the writer; the optional [`crate::pipeline::ack::Ack`] travels with
//! each item so `ack=written` requests learn when DynamoDB confirmed it.

#[cfg(test)]
pub mod attr;
pub mod fields;
pub mod map;
pub mod number;
pub mod size;
pub mod template;
pub mod typed;

use std::sync::Arc;
use std::time::Instant;

use crate::pipeline::ack::Ack;

/// The normalized primary key of an item (`partition \0 sort`), so that two
/// writes of one key are recognised even when numbers are spelled differently.
pub type KeyId = Box<str>;

/// One DynamoDB item on its way to a table.
#[derive(Debug)]
pub struct Item {
    /// The item in DynamoDB's typed JSON, written once at intake ([`typed`]).
    pub json: Box<[u8]>,
    pub key: KeyId,
    /// Size by DynamoDB's rules, in bytes (at most 400 KB).
    pub size: u32,
    /// The stream it came from (a metric label).
    pub stream: Arc<str>,
    /// When the gateway received it (end-to-end latency).
    pub received: Instant,
    /// Senders waiting for DynamoDB (`ack=written`); more than one when the
    /// batcher collapsed several writes of this key into this one.
    pub acks: Vec<Arc<Ack>>,
}

impl Item {
    /// Write capacity units this item costs.
    pub fn wcu(&self) -> u32 {
        size::wcu(self.size as usize)
    }

    /// Hash of the whole primary key.
    pub fn key_hash(&self) -> u64 {
        hash_str(&self.key)
    }

    /// Hash of the partition key alone (the part of `key` before `\0`).
    pub fn partition_hash(&self) -> u64 {
        hash_str(self.key.split('\0').next().unwrap_or_default())
    }
}

/// The hasher of the per-key maps on the hot path (key guard, per-key
/// limiter, sort-key clock, batcher): foldhash, seeded at random per
/// process, several times faster than std's SipHash on short keys.
pub type KeyHasher = foldhash::quality::RandomState;

/// A process-wide hash of a key's text.
pub fn hash_str(s: &str) -> u64 {
    use std::hash::BuildHasher;
    static STATE: std::sync::LazyLock<KeyHasher> = std::sync::LazyLock::new(KeyHasher::default);
    STATE.hash_one(s)
}
