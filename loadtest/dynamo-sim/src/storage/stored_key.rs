//! The key form the storage maps hold (see [`StoredKey`]): made from a
//! [`KeyValue`] when a write reaches the table, turned back into one only for
//! the keys a read answers with (`LastEvaluatedKey`).

use std::cmp::Ordering;

use crate::key::{Decimal, KeyType, KeyValue};

use super::SortKey;

/// A key as the maps hold it: 32 bytes, so that the eleven keys of a B-tree
/// node span 6 cache lines instead of 14 (a put's search down a partition's
/// tree reads every key of each node it passes, and those reads missed the
/// cache). `rank` decides first, inline: its top byte is 0 for "no sort
/// key", else the key type + 1. For a sort key the rest is
/// [`KeyValue::rank`], which orders like the key. For a partition key it is
/// the key's [`KeyValue::stable_hash`]: partitions are kept in hash order,
/// as DynamoDB keeps them, so the partition map compares 64-bit hashes, not
/// long shared prefixes such as `run-id-device-0042` (those ties read the
/// key bytes on the heap at every step). `bytes` decide ties: an S key's
/// UTF-8, a B key's bytes, an N key's text as the client sent it (compared
/// as a decimal; an N sort key's rank only ties past 25 digits).
#[derive(Debug, Clone)]
pub struct StoredKey {
    rank: u128,
    bytes: Box<[u8]>,
}

const TYPE_SHIFT: u32 = 120;
const HASH_SHIFT: u32 = 56;

impl StoredKey {
    /// A partition key (ordered by its stable hash).
    pub fn partition(key: KeyValue) -> Self {
        let hash = key.stable_hash();
        StoredKey::partition_hashed(key, hash)
    }

    /// A partition key whose [`KeyValue::stable_hash`] the caller has.
    pub fn partition_hashed(key: KeyValue, stable_hash: u64) -> Self {
        debug_assert_eq!(stable_hash, key.stable_hash());
        StoredKey::ranked(key, u128::from(stable_hash) << HASH_SHIFT)
    }

    /// A sort key (`None`: the table has none), ordered like the key.
    pub fn sort(key: SortKey) -> Self {
        match key {
            Some(k) => {
                let rank = k.rank();
                StoredKey::ranked(k, rank)
            }
            None => StoredKey {
                rank: 0,
                bytes: Box::default(),
            },
        }
    }

    /// `rank` below the type byte, which this sets.
    fn ranked(key: KeyValue, rank: u128) -> Self {
        let tag = u128::from(key.key_type() as u8 + 1) << TYPE_SHIFT;
        let bytes = match key {
            KeyValue::S(s) => s.into_bytes(),
            KeyValue::N(_, text) => text.into_bytes(),
            KeyValue::B(b) => b,
        };
        StoredKey {
            rank: tag | (rank & ((1 << TYPE_SHIFT) - 1)),
            bytes: bytes.into_boxed_slice(),
        }
    }

    /// The inline part of the order: a greater rank is a greater key.
    pub fn rank(&self) -> u128 {
        self.rank
    }

    /// A partition key's [`KeyValue::stable_hash`] (Scan segments).
    pub fn partition_hash(&self) -> u64 {
        (self.rank >> HASH_SHIFT) as u64
    }

    fn key_type(&self) -> Option<KeyType> {
        match self.rank >> TYPE_SHIFT {
            1 => Some(KeyType::S),
            2 => Some(KeyType::N),
            3 => Some(KeyType::B),
            _ => None,
        }
    }

    fn text(&self) -> &str {
        std::str::from_utf8(&self.bytes).unwrap_or_default()
    }

    fn decimal(&self) -> Option<Decimal> {
        Decimal::parse(self.text())
    }

    /// The sort key this was made from.
    pub fn to_sort(&self) -> SortKey {
        Some(match self.key_type()? {
            KeyType::S => KeyValue::S(self.text().to_owned()),
            KeyType::B => KeyValue::B(self.bytes.to_vec()),
            // Stored N keys were valid decimals; the zero fallback is unreachable.
            KeyType::N => KeyValue::N(self.decimal().unwrap_or_default(), self.text().to_owned()),
        })
    }

    /// The partition key this was made from (partition keys are never `None`).
    pub fn to_key(&self) -> KeyValue {
        self.to_sort().unwrap_or_else(|| KeyValue::S(String::new()))
    }

    /// begins_with on S and B keys.
    pub fn begins_with(&self, prefix: &KeyValue) -> bool {
        match (self.key_type(), prefix) {
            (Some(KeyType::S), KeyValue::S(p)) => self.bytes.starts_with(p.as_bytes()),
            (Some(KeyType::B), KeyValue::B(p)) => self.bytes.starts_with(p),
            _ => false,
        }
    }
}

impl Ord for StoredKey {
    fn cmp(&self, other: &Self) -> Ordering {
        self.rank.cmp(&other.rank).then_with(|| {
            // A found key ties with itself: the same text is the same
            // number without parsing either.
            if self.key_type() == Some(KeyType::N) && self.bytes != other.bytes {
                self.decimal().cmp(&other.decimal())
            } else {
                self.bytes.cmp(&other.bytes)
            }
        })
    }
}

impl PartialOrd for StoredKey {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl PartialEq for StoredKey {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other).is_eq()
    }
}

impl Eq for StoredKey {}

/// Hashes the rank alone: equal keys have equal ranks (an N key's rank is
/// its decimal's, so `1` and `1.0` agree), which is all `Hash` requires.
impl std::hash::Hash for StoredKey {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        state.write_u128(self.rank);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::key::tests::key_value;
    use proptest::prelude::*;

    fn same(a: &KeyValue, b: &KeyValue) -> bool {
        a.to_json() == b.to_json()
    }

    proptest! {
        /// Stored sort keys order exactly like the keys, and give them back.
        #[test]
        fn sort_keys_order_like_the_keys(
            a in proptest::option::of(key_value()),
            b in proptest::option::of(key_value()),
        ) {
            let (sa, sb) = (StoredKey::sort(a.clone()), StoredKey::sort(b.clone()));
            prop_assert_eq!(sa.cmp(&sb), a.cmp(&b), "{:?} vs {:?}", a, b);
            let back = sa.to_sort();
            prop_assert!(match (&back, &a) {
                (Some(x), Some(y)) => same(x, y),
                (None, None) => true,
                _ => false,
            }, "{:?} came back as {:?}", a, back);
        }

        /// Partition keys: equal exactly when the keys are, hash as the keys
        /// do (Scan segments), and give the key back.
        #[test]
        fn partition_keys_are_equal_exactly_when_the_keys_are(a in key_value(), b in key_value()) {
            let (pa, pb) = (StoredKey::partition(a.clone()), StoredKey::partition(b.clone()));
            prop_assert_eq!(pa == pb, a == b, "{:?} vs {:?}", a, b);
            prop_assert_eq!(pa.partition_hash(), a.stable_hash());
            prop_assert!(same(&pa.to_key(), &a));
        }

        /// Keys that tie on their rank (a shared 15-byte prefix) still
        /// order and compare by their full bytes.
        #[test]
        fn keys_past_the_rank_order_by_their_bytes(
            prefix in "[ab]{15,18}",
            x in "[ab\\x00]{0,4}",
            y in "[ab\\x00]{0,4}",
        ) {
            let (a, b) = (KeyValue::S(format!("{prefix}{x}")), KeyValue::S(format!("{prefix}{y}")));
            let (sa, sb) = (StoredKey::sort(Some(a.clone())), StoredKey::sort(Some(b.clone())));
            prop_assert_eq!(sa.cmp(&sb), a.cmp(&b));
            let (pa, pb) = (StoredKey::partition(a.clone()), StoredKey::partition(b.clone()));
            prop_assert_eq!(pa == pb, a == b);
        }

        #[test]
        fn begins_with_agrees_with_the_key(a in key_value(), p in key_value()) {
            prop_assert_eq!(StoredKey::sort(Some(a.clone())).begins_with(&p), a.begins_with(&p));
        }
    }
}
