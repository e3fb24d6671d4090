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

/// The normalized primary key of an item (`partition \0 sort`), so that two
/// writes of one key are recognised even when numbers are spelled
/// differently. Hashed when it is made, while its text is in the CPU's
/// cache: downstream the batcher, the key guard and the per-key limiter
/// use the hashes and do not read the text again (under NDJSON load that
/// read was a cache miss per item, about 5 % of the gateway's CPU). Equal
/// ids have equal text (compared after the hash).
#[derive(Debug, Clone)]
pub struct KeyId {
    text: Box<str>,
    hash: u64,
    partition_hash: u64,
}

impl KeyId {
    pub fn new(text: Box<str>) -> Self {
        let hash = hash_str(&text);
        let partition = text.bytes().position(|b| b == 0).unwrap_or(text.len());
        let partition_hash = hash_str(&text[..partition]);
        Self {
            text,
            hash,
            partition_hash,
        }
    }

    /// [`hash_str`] of the text, computed once.
    pub fn hash(&self) -> u64 {
        self.hash
    }

    /// [`hash_str`] of the partition key alone (the text before `\0`).
    pub fn partition_hash(&self) -> u64 {
        self.partition_hash
    }

    /// An id with a chosen hash, to test what a hash collision does.
    #[cfg(test)]
    pub fn with_hash(text: &str, hash: u64) -> Self {
        Self {
            text: text.into(),
            hash,
            partition_hash: hash,
        }
    }
}

impl std::ops::Deref for KeyId {
    type Target = str;
    fn deref(&self) -> &str {
        &self.text
    }
}

impl PartialEq for KeyId {
    fn eq(&self, other: &Self) -> bool {
        self.hash == other.hash && self.text == other.text
    }
}

impl Eq for KeyId {}

impl std::hash::Hash for KeyId {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        state.write_u64(self.hash);
    }
}

impl From<Box<str>> for KeyId {
    fn from(text: Box<str>) -> Self {
        Self::new(text)
    }
}

impl From<String> for KeyId {
    fn from(text: String) -> Self {
        Self::new(text.into_boxed_str())
    }
}

impl From<&str> for KeyId {
    fn from(text: &str) -> Self {
        Self::new(text.into())
    }
}

/// The acks an item carries (see [`Item::acks`]).
pub type Acks = smallvec::SmallVec<[Arc<Ack>; 1]>;

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
    /// batcher collapsed several writes of this key into this one. One is
    /// held inline: an acknowledged item costs no allocation for it.
    pub acks: Acks,
}

impl Item {
    /// Write capacity units this item costs.
    pub fn wcu(&self) -> u32 {
        size::wcu(self.size as usize)
    }

    /// Hash of the whole primary key (computed when the key was made).
    pub fn key_hash(&self) -> u64 {
        self.key.hash()
    }

    /// Hash of the partition key alone (the part of `key` before `\0`,
    /// computed when the key was made).
    pub fn partition_hash(&self) -> u64 {
        self.key.partition_hash()
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
    fn a_key_id_is_hashed_once_with_the_process_wide_hash_and_compares_by_text() {
        let a = KeyId::from("dev-1\u{0}17");
        assert_eq!(a.hash(), hash_str("dev-1\u{0}17"));
        assert_eq!(a.partition_hash(), hash_str("dev-1"));
        assert_eq!(KeyId::from("dev-1").partition_hash(), hash_str("dev-1"));
        assert_eq!(a, KeyId::from(String::from("dev-1\u{0}17")));
        assert_ne!(a, KeyId::from("dev-1\u{0}18"));
        assert_ne!(
            a,
            KeyId::with_hash("other", a.hash()),
            "same hash, other text"
        );
        assert_eq!(&*a, "dev-1\u{0}17");
    }
}
