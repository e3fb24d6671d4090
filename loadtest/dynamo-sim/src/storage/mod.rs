//! In-memory item storage of one table, bounded by a shared budget.
//!
//! Layout: partition key → (sort key → item). A write finds its partition
//! in a hash map (a lookup down a B-tree of a thousand partitions was 7 %
//! of the simulator's instructions per item); the same partition keys are
//! also kept in a `BTreeSet` in the order of their stable hash (as
//! DynamoDB's Scan order is by its internal hash), so Scan resumes after
//! any key. Each [`partition`] is a B-tree plus a sorted tail of its
//! newest keys, so Query walks it in sort-key order and an append does not
//! descend a tree. Every map holds [`StoredKey`]s, 32 bytes with an inline
//! rank: a search compares (and the hash map hashes) integers and reads a
//! key's heap bytes only on a tie (the pointer chasing otherwise dominated
//! the cost of a put).
//! The `StorageBudget` is shared by all tables; a write that would take the
//! simulator past `max_items` / `max_bytes` fails with a clear error instead
//! of growing without bound.

use std::collections::hash_map::Entry;
use std::collections::{BTreeSet, HashMap};
use std::ops::Bound;
use std::sync::atomic::{AtomicU64, Ordering};

use crate::attr::AttrMap;
use crate::error::{ApiError, ApiResult};
use crate::key::KeyValue;

mod partition;
mod stored_key;

use partition::Partition;
pub use stored_key::StoredKey;

/// A stored item with its DynamoDB size.
///
/// Kept as its wire JSON text, one allocation of about the item's size
/// instead of one per attribute name and value: with sensor items the
/// simulator's RSS grows by ~390 bytes per item instead of ~900, and the
/// kernel clears that many fewer pages as the table grows. Items are only
/// ever read back as wire JSON. (Serializing a validated `AttrMap` and
/// parsing JSON this type wrote cannot fail; the fallbacks are unreachable.)
#[derive(Debug, Clone)]
pub struct Item {
    json: Box<str>,
    /// Size by DynamoDB's rules.
    pub size: usize,
}

impl Item {
    /// An item of `size` bytes (by DynamoDB's rules).
    pub fn new(attrs: &AttrMap, size: usize) -> Self {
        Item {
            json: crate::attr_json::item_json(attrs),
            size,
        }
    }

    /// An item stored as `json`: the text of a request's item whose
    /// attributes were read and checked from that same text.
    pub fn from_text(json: &str, size: usize) -> Self {
        Item {
            json: Box::from(json),
            size,
        }
    }

    /// Wire JSON (`{"name": {"S": ".."}, ..}`).
    pub fn to_json(&self) -> serde_json::Value {
        serde_json::from_str(&self.json).unwrap_or(serde_json::Value::Null)
    }
}

/// Sort key of an item; `None` for tables without a sort key.
pub type SortKey = Option<KeyValue>;

fn stored_bound(b: Bound<SortKey>) -> Bound<StoredKey> {
    b.map(StoredKey::sort)
}

/// Items of one table.
#[derive(Debug, Default)]
pub struct TableStore {
    /// Partitions by their key.
    parts: HashMap<StoredKey, Partition<Item>, foldhash::fast::FixedState>,
    /// The keys of `parts`, in Scan order.
    order: BTreeSet<StoredKey>,
    items: u64,
    bytes: u64,
}

/// Shared bound on stored items and bytes.
#[derive(Debug)]
pub struct StorageBudget {
    max_items: u64,
    max_bytes: u64,
    items: AtomicU64,
    bytes: AtomicU64,
}

impl StorageBudget {
    /// A budget of at most `max_items` and `max_bytes`.
    pub fn new(max_items: u64, max_bytes: u64) -> Self {
        StorageBudget {
            max_items,
            max_bytes,
            items: AtomicU64::new(0),
            bytes: AtomicU64::new(0),
        }
    }

    fn reserve(&self, items: i64, bytes: i64) -> ApiResult<()> {
        let cur_items = self.items.load(Ordering::Relaxed) as i64;
        let cur_bytes = self.bytes.load(Ordering::Relaxed) as i64;
        if (items > 0 && cur_items + items > self.max_items as i64)
            || (bytes > 0 && cur_bytes + bytes > self.max_bytes as i64)
        {
            return Err(ApiError::Internal(format!(
                "dynamo-sim storage is full ({cur_items} items, {cur_bytes} bytes; limits storage.max_items={}, storage.max_bytes={}); raise the limits or set storage.retain = false",
                self.max_items, self.max_bytes
            )));
        }
        self.adjust(items, bytes);
        Ok(())
    }

    fn adjust(&self, items: i64, bytes: i64) {
        if items >= 0 {
            self.items.fetch_add(items as u64, Ordering::Relaxed);
        } else {
            self.items
                .fetch_sub(items.unsigned_abs(), Ordering::Relaxed);
        }
        if bytes >= 0 {
            self.bytes.fetch_add(bytes as u64, Ordering::Relaxed);
        } else {
            self.bytes
                .fetch_sub(bytes.unsigned_abs(), Ordering::Relaxed);
        }
    }
}

impl TableStore {
    /// Items stored.
    pub fn item_count(&self) -> u64 {
        self.items
    }

    /// Bytes stored.
    pub fn byte_count(&self) -> u64 {
        self.bytes
    }

    /// Insert or replace; returns the old item.
    pub fn put(
        &mut self,
        budget: &StorageBudget,
        pk: KeyValue,
        sk: SortKey,
        item: Item,
    ) -> ApiResult<Option<Item>> {
        let hash = pk.stable_hash();
        self.put_hashed(budget, pk, hash, sk, item)
    }

    /// [`Self::put`] with the partition key's [`KeyValue::stable_hash`]
    /// already known (BatchWriteItem hashed it for the capacity check).
    pub fn put_hashed(
        &mut self,
        budget: &StorageBudget,
        pk: KeyValue,
        pk_hash: u64,
        sk: SortKey,
        item: Item,
    ) -> ApiResult<Option<Item>> {
        let part = match self.parts.entry(StoredKey::partition_hashed(pk, pk_hash)) {
            Entry::Occupied(found) => found.into_mut(),
            Entry::Vacant(new) => {
                self.order.insert(new.key().clone());
                new.insert(Partition::default())
            }
        };
        let sk = StoredKey::sort(sk);
        let (d_items, d_bytes) = match part.get(&sk) {
            Some(old) => (0, item.size as i64 - old.size as i64),
            None => (1, item.size as i64),
        };
        budget.reserve(d_items, d_bytes)?;
        self.items = (self.items as i64 + d_items) as u64;
        self.bytes = (self.bytes as i64 + d_bytes) as u64;
        Ok(part.insert(sk, item))
    }

    /// The item under a key.
    pub fn get(&self, pk: &KeyValue, sk: &SortKey) -> Option<&Item> {
        self.parts
            .get(&StoredKey::partition(pk.clone()))
            .and_then(|p| p.get(&StoredKey::sort(sk.clone())))
    }

    /// Remove and return the item under a key.
    pub fn delete(&mut self, budget: &StorageBudget, pk: &KeyValue, sk: &SortKey) -> Option<Item> {
        let pk = StoredKey::partition(pk.clone());
        let part = self.parts.get_mut(&pk)?;
        let old = part.remove(&StoredKey::sort(sk.clone()))?;
        if part.is_empty() {
            self.parts.remove(&pk);
            self.order.remove(&pk);
        }
        self.items -= 1;
        self.bytes -= old.size as u64;
        budget.adjust(-1, -(old.size as i64));
        Some(old)
    }

    /// Release this table's share of the budget (DeleteTable).
    pub fn release(&self, budget: &StorageBudget) {
        budget.adjust(-(self.items as i64), -(self.bytes as i64));
    }

    /// Items of one partition within sort-key bounds, in order.
    pub fn range<'a>(
        &'a self,
        pk: &KeyValue,
        lower: Bound<SortKey>,
        upper: Bound<SortKey>,
        forward: bool,
    ) -> Box<dyn Iterator<Item = (&'a StoredKey, &'a Item)> + 'a> {
        let Some(part) = self.parts.get(&StoredKey::partition(pk.clone())) else {
            return Box::new(std::iter::empty());
        };
        if let (Bound::Included(l) | Bound::Excluded(l), Bound::Included(u) | Bound::Excluded(u)) =
            (&lower, &upper)
        {
            if l > u {
                return Box::new(std::iter::empty());
            }
            if l == u
                && !(matches!(lower, Bound::Included(_)) && matches!(upper, Bound::Included(_)))
            {
                return Box::new(std::iter::empty());
            }
        }
        let r = part.range(stored_bound(lower), stored_bound(upper));
        if forward {
            Box::new(r)
        } else {
            Box::new(r.rev())
        }
    }

    /// All items in storage order, starting after `after` (exclusive).
    pub fn scan_from<'a>(
        &'a self,
        after: Option<(KeyValue, SortKey)>,
    ) -> Box<dyn Iterator<Item = (&'a StoredKey, &'a StoredKey, &'a Item)> + 'a> {
        match after {
            None => Box::new(
                self.in_order(self.order.iter())
                    .flat_map(|(pk, p)| p.iter().map(move |(sk, i)| (pk, sk, i))),
            ),
            Some((start_pk, start_sk)) => {
                let start_pk = StoredKey::partition(start_pk);
                let start_sk = StoredKey::sort(start_sk);
                let rest_of_first =
                    self.parts
                        .get_key_value(&start_pk)
                        .into_iter()
                        .flat_map(move |(pk, p)| {
                            p.range(Bound::Excluded(start_sk.clone()), Bound::Unbounded)
                                .map(move |(sk, i)| (pk, sk, i))
                        });
                let later = self
                    .in_order(
                        self.order
                            .range((Bound::Excluded(start_pk), Bound::Unbounded)),
                    )
                    .flat_map(|(pk, p)| p.iter().map(move |(sk, i)| (pk, sk, i)));
                Box::new(rest_of_first.chain(later))
            }
        }
    }

    /// Every item, for snapshots (in Scan order).
    pub fn all_items(&self) -> impl Iterator<Item = &Item> {
        self.in_order(self.order.iter())
            .flat_map(|(_, p)| p.iter().map(|(_, item)| item))
    }

    /// The partitions of `keys` (keys of `order`, so each is in `parts`).
    fn in_order<'a>(
        &'a self,
        keys: impl Iterator<Item = &'a StoredKey> + 'a,
    ) -> impl Iterator<Item = (&'a StoredKey, &'a Partition<Item>)> + 'a {
        keys.filter_map(|pk| self.parts.get_key_value(pk))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_table_without_sort_key_holds_one_item_per_partition() {
        let budget = StorageBudget::new(10, 1 << 20);
        let mut store = TableStore::default();
        let pk = || KeyValue::S("run-1764340000-device-000042".into());
        let attrs = AttrMap::default();
        assert!(store
            .put(&budget, pk(), None, Item::new(&attrs, 10))
            .expect("put")
            .is_none());
        let old = store
            .put(&budget, pk(), None, Item::new(&attrs, 12))
            .expect("put");
        assert_eq!(old.map(|i| i.size), Some(10));
        assert_eq!((store.item_count(), store.byte_count()), (1, 12));
        assert_eq!(store.get(&pk(), &None).map(|i| i.size), Some(12));
    }

    #[test]
    fn partitions_scan_in_hash_order_resume_anywhere_and_leave_with_their_last_item() {
        let budget = StorageBudget::new(100, 1 << 20);
        let mut store = TableStore::default();
        let attrs = AttrMap::default();
        let keys: Vec<KeyValue> = (0..20)
            .map(|i| KeyValue::S(format!("device-{i}")))
            .collect();
        for k in &keys {
            store
                .put(&budget, k.clone(), None, Item::new(&attrs, 1))
                .expect("put");
        }
        let scanned = |store: &TableStore, after: Option<(KeyValue, SortKey)>| {
            store
                .scan_from(after)
                .map(|(pk, _, _)| pk.to_key())
                .collect::<Vec<_>>()
        };
        let all = scanned(&store, None);
        assert_eq!(all.len(), keys.len());
        let hashes: Vec<u64> = all.iter().map(KeyValue::stable_hash).collect();
        assert!(hashes.windows(2).all(|w| w[0] < w[1]), "hash order");
        for (i, k) in all.iter().enumerate() {
            assert_eq!(scanned(&store, Some((k.clone(), None))), all[i + 1..]);
        }
        // A partition whose last item goes leaves the scan and the map.
        let gone = &all[7];
        assert!(store.delete(&budget, gone, &None).is_some());
        let left = scanned(&store, None);
        assert_eq!(left.len(), keys.len() - 1);
        assert!(!left.contains(gone));
        assert_eq!(store.all_items().count(), keys.len() - 1);
        assert!(store.get(gone, &None).is_none());
        assert_eq!(store.order.len(), store.parts.len(), "no key left behind");
        // ... and comes back with a new one.
        store
            .put(&budget, gone.clone(), None, Item::new(&attrs, 1))
            .expect("put");
        assert_eq!(scanned(&store, None), all);
    }
}
