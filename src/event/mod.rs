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
mod scan;
pub mod size;
pub mod template;
pub mod typed;

use std::sync::Arc;
use std::time::Instant;

use crate::pipeline::ack::Ack;

/// An item's typed JSON and its normalized primary key (`partition \0
/// sort`), in one allocation: the JSON, then the key's text. One block per
/// item instead of two halves the allocations at intake and the frees
/// after the write (the frees mostly on another thread than the
/// allocations, the costlier kind).
///
/// The key is normalized so that two writes of one key are recognised even
/// when numbers are spelled differently. It is hashed when it is made,
/// while its text is in the CPU's cache: downstream the batcher, the key
/// guard and the per-key limiter use the hashes and do not read the text
/// again (under NDJSON load that read was a cache miss per item, about 5 %
/// of the gateway's CPU). Equal keys have equal text (compared after the
/// hash).
#[derive(Clone)]
pub struct ItemText {
    bytes: Box<[u8]>,
    json_len: usize,
    hash: u64,
    partition_hash: u64,
}

impl ItemText {
    /// Copies `json` and `key` into one block.
    pub fn new(json: &[u8], key: &str) -> Self {
        let partition = key.bytes().position(|b| b == 0);
        let part = &key[..partition.unwrap_or(key.len())];
        Self::build(json, key, hash_str(part), partition.is_none())
    }

    /// As [`new`](Self::new), given the [`hash_str`] of the key's partition
    /// part (before its first NUL), which the mapper has already computed.
    pub fn keyed(json: &[u8], key: &str, partition_hash: u64) -> Self {
        debug_assert_eq!(
            partition_hash,
            hash_str(key.split('\0').next().unwrap_or_default())
        );
        Self::build(json, key, partition_hash, !key.as_bytes().contains(&0))
    }

    /// `whole`: the key has no sort part (no NUL).
    fn build(json: &[u8], key: &str, partition_hash: u64, whole: bool) -> Self {
        let mut bytes = Vec::with_capacity(json.len() + key.len());
        bytes.extend_from_slice(json);
        bytes.extend_from_slice(key.as_bytes());
        Self {
            bytes: bytes.into_boxed_slice(),
            json_len: json.len(),
            // A key without a sort part is its partition part.
            hash: if whole { partition_hash } else { hash_str(key) },
            partition_hash,
        }
    }

    /// The item in DynamoDB's typed JSON ([`typed`]).
    pub fn json(&self) -> &[u8] {
        &self.bytes[..self.json_len]
    }

    /// The normalized primary key.
    pub fn key(&self) -> &str {
        // Only `build` fills `bytes`, with a `&str` after the JSON.
        std::str::from_utf8(&self.bytes[self.json_len..]).unwrap_or_default()
    }

    /// [`hash_str`] of the key, computed once.
    pub fn hash(&self) -> u64 {
        self.hash
    }

    /// [`hash_str`] of the partition key alone (the key before `\0`).
    pub fn partition_hash(&self) -> u64 {
        self.partition_hash
    }

    /// Whether both hold the same key (hash first, then text).
    pub fn same_key(&self, other: &Self) -> bool {
        self.hash == other.hash && self.key() == other.key()
    }

    /// A key with a chosen hash, to test what a hash collision does.
    #[cfg(test)]
    pub fn with_hash(json: &[u8], key: &str, hash: u64) -> Self {
        Self {
            hash,
            partition_hash: hash,
            ..Self::new(json, key)
        }
    }
}

impl std::fmt::Debug for ItemText {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ItemText")
            .field("json", &String::from_utf8_lossy(self.json()))
            .field("key", &self.key())
            .finish()
    }
}

impl PartialEq for ItemText {
    fn eq(&self, other: &Self) -> bool {
        self.same_key(other) && self.json() == other.json()
    }
}

/// The acks an item carries (see [`Item::acks`]).
pub type Acks = smallvec::SmallVec<[Arc<Ack>; 1]>;

/// One DynamoDB item on its way to a table.
#[derive(Debug)]
pub struct Item {
    /// Its typed JSON (written once at intake, [`typed`]) and its key.
    pub text: ItemText,
    /// Size by DynamoDB's rules, in bytes (at most 400 KB).
    pub size: u32,
    /// The stream it came from (a metric label).
    pub stream: Arc<str>,
    /// When the gateway received it (end-to-end latency).
    pub received: Instant,
    /// Senders waiting for DynamoDB (`ack=written`); more than one when the
    /// batcher collapsed several writes of this key into this one. One is
    /// held inline: an acknowledged item costs no allocation for it.
    pub acks: Acks,
}

impl Item {
    /// Write capacity units this item costs.
    pub fn wcu(&self) -> u32 {
        size::wcu(self.size as usize)
    }

    /// The item in DynamoDB's typed JSON.
    pub fn json(&self) -> &[u8] {
        self.text.json()
    }

    /// The normalized primary key (`partition \0 sort`).
    pub fn key(&self) -> &str {
        self.text.key()
    }

    /// Hash of the whole primary key (computed when the key was made).
    pub fn key_hash(&self) -> u64 {
        self.text.hash()
    }

    /// Hash of the partition key alone (the part of `key` before `\0`,
    /// computed when the key was made).
    pub fn partition_hash(&self) -> u64 {
        self.text.partition_hash()
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn item_text_keeps_json_and_key_apart_and_hashes_the_key_once() {
        let a = ItemText::new(br#"{"d":{"S":"dev-1"}}"#, "dev-1\u{0}17");
        assert_eq!(a.json(), br#"{"d":{"S":"dev-1"}}"#);
        assert_eq!(a.key(), "dev-1\u{0}17");
        assert_eq!(a.hash(), hash_str("dev-1\u{0}17"));
        assert_eq!(a.partition_hash(), hash_str("dev-1"));
        let whole = ItemText::new(b"{}", "dev-1");
        assert_eq!(
            (whole.partition_hash(), whole.hash()),
            (hash_str("dev-1"), hash_str("dev-1")),
            "a key without a sort part"
        );
        let keyed = ItemText::keyed(br#"{"d":{"S":"dev-1"}}"#, "dev-1\u{0}17", hash_str("dev-1"));
        assert_eq!(
            (
                keyed.json(),
                keyed.key(),
                keyed.hash(),
                keyed.partition_hash()
            ),
            (a.json(), a.key(), a.hash(), a.partition_hash())
        );
        // The split is by length, not by content: a key or JSON that
        // looks like the other's end stays whole.
        let b = ItemText::new(b"{}dev", "-1");
        assert_eq!((b.json(), b.key()), (&b"{}dev"[..], "-1"));
        assert_eq!(
            (ItemText::new(b"", "").json(), ItemText::new(b"", "").key()),
            (&b""[..], "")
        );
        assert!(
            a.same_key(&ItemText::new(b"{}", "dev-1\u{0}17")),
            "same key, other JSON"
        );
        assert!(!a.same_key(&ItemText::new(br#"{"d":{"S":"dev-1"}}"#, "dev-1\u{0}18")));
        assert!(
            !a.same_key(&ItemText::with_hash(b"{}", "other", a.hash())),
            "same hash, other text"
        );
    }
}
