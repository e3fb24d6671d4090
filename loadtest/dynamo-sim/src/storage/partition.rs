//! The items of one partition in sort-key order: a B-tree plus a short
//! sorted tail of the newest keys.
//!
//! Why the tail: time-series and activity writes mostly append, each new
//! sort key above every stored one. A B-tree put descends from the root and
//! reads every key of each node it passes; with thousands of partitions in
//! turn, each level is a cache miss (the node loads were three quarters of a
//! put's own time in the simulator's profile). Here an append compares with
//! the tail's first and last keys and pushes; when the tail reaches
//! [`TAIL_MAX`] keys its oldest [`TAIL_FLUSH`] move into the tree together,
//! down a right spine that stays in cache across the move. A key below the
//! tail takes the tree's path after one comparison; a key within the tail's
//! range a binary search and a move of at most 63 entries.
//!
//! Before any of that, an append is recognised without reading the tail:
//! `top_rank` is at least the [`StoredKey::rank`] of every key held, and a
//! key of a greater rank is greater than all of them. The tail's first and
//! last keys live on the heap, one or two cache misses per put with
//! thousands of partitions in turn; `top_rank` sits beside the tail's
//! pointer.
//!
//! Invariant: every key in `tail` is greater than every key in `tree`, and
//! `tail` is sorted; so the partition in order is `tree` then `tail`.

use std::collections::BTreeMap;
use std::ops::Bound;

use super::stored_key::StoredKey;

/// Keys in the tail when its oldest move into the tree (the `Vec` never
/// grows past this capacity: 64 × 56 bytes per partition).
const TAIL_MAX: usize = 64;
/// Keys moved per flush; the newest `TAIL_MAX - TAIL_FLUSH` stay, so the
/// tail is not left empty (an empty tail sends the next append down the tree).
const TAIL_FLUSH: usize = 48;

/// One partition: sort key → value.
#[derive(Debug)]
pub struct Partition<V> {
    tree: BTreeMap<StoredKey, V>,
    tail: Vec<(StoredKey, V)>,
    /// At least the rank of every key held (raised by inserts, left as it
    /// is by removals: an upper bound is all the append check needs).
    top_rank: u128,
}

impl<V> Default for Partition<V> {
    fn default() -> Self {
        Partition {
            tree: BTreeMap::new(),
            tail: Vec::new(),
            top_rank: 0,
        }
    }
}

/// Where a key lives, or would be inserted.
enum Slot {
    /// In the tail at this index (`Ok`: present, `Err`: insert there).
    Tail(Result<usize, usize>),
    /// In the tree's range.
    Tree,
}

impl<V> Partition<V> {
    fn slot(&self, key: &StoredKey) -> Slot {
        if key.rank() > self.top_rank {
            // Above every key held: an append, nothing on the heap read.
            return Slot::Tail(Err(self.tail.len()));
        }
        match self.tail.first() {
            Some((first, _)) if key >= first => {
                // The common case, an append, costs one comparison.
                if self.tail.last().is_some_and(|(last, _)| key > last) {
                    return Slot::Tail(Err(self.tail.len()));
                }
                Slot::Tail(self.tail.binary_search_by(|(k, _)| k.cmp(key)))
            }
            Some(_) => Slot::Tree,
            None => match self.tree.last_key_value() {
                Some((last, _)) if key <= last => Slot::Tree,
                _ => Slot::Tail(Err(0)),
            },
        }
    }

    /// Insert or replace; returns the replaced value.
    pub fn insert(&mut self, key: StoredKey, value: V) -> Option<V> {
        let slot = self.slot(&key);
        self.top_rank = self.top_rank.max(key.rank());
        match slot {
            Slot::Tail(Ok(i)) => Some(std::mem::replace(&mut self.tail[i].1, value)),
            Slot::Tail(Err(i)) => {
                self.tail.insert(i, (key, value));
                if self.tail.len() >= TAIL_MAX {
                    self.tree.extend(self.tail.drain(..TAIL_FLUSH));
                }
                None
            }
            Slot::Tree => self.tree.insert(key, value),
        }
    }

    /// The value under `key`.
    pub fn get(&self, key: &StoredKey) -> Option<&V> {
        match self.slot(key) {
            Slot::Tail(Ok(i)) => Some(&self.tail[i].1),
            Slot::Tail(Err(_)) => None,
            Slot::Tree => self.tree.get(key),
        }
    }

    /// Remove and return the value under `key`.
    pub fn remove(&mut self, key: &StoredKey) -> Option<V> {
        match self.slot(key) {
            Slot::Tail(Ok(i)) => Some(self.tail.remove(i).1),
            Slot::Tail(Err(_)) => None,
            Slot::Tree => self.tree.remove(key),
        }
    }

    /// No items.
    pub fn is_empty(&self) -> bool {
        self.tree.is_empty() && self.tail.is_empty()
    }

    /// Items in key order.
    pub fn iter(&self) -> impl DoubleEndedIterator<Item = (&StoredKey, &V)> {
        self.tree
            .iter()
            .chain(self.tail.iter().map(|(k, v)| (k, v)))
    }

    /// Items within bounds, in key order. Like `BTreeMap::range`, the
    /// caller must not pass a start above the end, nor equal excluded ends.
    pub fn range(
        &self,
        lower: Bound<StoredKey>,
        upper: Bound<StoredKey>,
    ) -> impl DoubleEndedIterator<Item = (&StoredKey, &V)> {
        let start = match &lower {
            Bound::Included(l) => self.tail.partition_point(|(k, _)| k < l),
            Bound::Excluded(l) => self.tail.partition_point(|(k, _)| k <= l),
            Bound::Unbounded => 0,
        };
        let end = match &upper {
            Bound::Included(u) => self.tail.partition_point(|(k, _)| k <= u),
            Bound::Excluded(u) => self.tail.partition_point(|(k, _)| k < u),
            Bound::Unbounded => self.tail.len(),
        };
        let tail = &self.tail[start..end.max(start)];
        self.tree
            .range((lower, upper))
            .chain(tail.iter().map(|(k, v)| (k, v)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::key::KeyValue;
    use proptest::prelude::*;

    fn key(n: u32) -> StoredKey {
        StoredKey::sort(Some(KeyValue::S(format!("{n:05}"))))
    }

    #[derive(Debug, Clone)]
    enum Op {
        Put(u32, u32),
        Remove(u32),
    }

    /// Mostly appends (as time series write), some out of order, some
    /// replacements and removals.
    fn ops() -> impl Strategy<Value = Vec<Op>> {
        proptest::collection::vec(
            prop_oneof![
                6 => (0u32..40, any::<u32>()).prop_map(|(step, v)| Op::Put(step, v)),
                2 => (0u32..400, any::<u32>()).prop_map(|(k, v)| Op::Put(k + 10_000, v)),
                1 => (0u32..400).prop_map(Op::Remove),
            ],
            0..400,
        )
    }

    fn bound(b: Option<(bool, u32)>) -> Bound<u32> {
        match b {
            None => Bound::Unbounded,
            Some((true, k)) => Bound::Included(k),
            Some((false, k)) => Bound::Excluded(k),
        }
    }

    fn valid(lo: &Bound<u32>, hi: &Bound<u32>) -> bool {
        match (lo, hi) {
            (Bound::Included(l), Bound::Included(u)) => l <= u,
            (Bound::Included(l) | Bound::Excluded(l), Bound::Included(u) | Bound::Excluded(u)) => {
                l < u
            }
            _ => true,
        }
    }

    proptest! {
        /// The partition answers every read as a plain ordered map given
        /// the same writes would.
        #[test]
        fn behaves_like_an_ordered_map(
            ops in ops(),
            probes in proptest::collection::vec(0u32..600, 10),
            ranges in proptest::collection::vec(
                (proptest::option::of((any::<bool>(), 0u32..600)),
                 proptest::option::of((any::<bool>(), 0u32..600))),
                10,
            ),
        ) {
            let mut part = Partition::default();
            let mut model = BTreeMap::new();
            // Appends advance a clock, so most puts are above every key so far.
            let mut clock = 0u32;
            for op in ops {
                match op {
                    Op::Put(k, v) if k >= 10_000 => {
                        let k = (k - 10_000) % (clock + 1);
                        prop_assert_eq!(part.insert(key(k), v), model.insert(k, v));
                    }
                    Op::Put(step, v) => {
                        clock += step;
                        prop_assert_eq!(part.insert(key(clock), v), model.insert(clock, v));
                    }
                    Op::Remove(k) => {
                        prop_assert_eq!(part.remove(&key(k)), model.remove(&k));
                    }
                }
                prop_assert_eq!(part.is_empty(), model.is_empty());
            }
            let all: Vec<(StoredKey, u32)> = part.iter().map(|(k, v)| (k.clone(), *v)).collect();
            let want: Vec<(StoredKey, u32)> = model.iter().map(|(k, v)| (key(*k), *v)).collect();
            prop_assert_eq!(all, want);
            for p in probes {
                prop_assert_eq!(part.get(&key(p)), model.get(&p));
            }
            for (lo, hi) in ranges {
                let (lo, hi) = (bound(lo), bound(hi));
                if !valid(&lo, &hi) {
                    continue;
                }
                let got: Vec<u32> = part.range(lo.map(key), hi.map(key)).map(|(_, v)| *v).collect();
                let want: Vec<u32> = model.range((lo, hi)).map(|(_, v)| *v).collect();
                prop_assert_eq!(&got, &want);
                let back: Vec<u32> = part.range(lo.map(key), hi.map(key)).rev().map(|(_, v)| *v).collect();
                prop_assert_eq!(back, want.into_iter().rev().collect::<Vec<_>>());
            }
        }
    }

    #[test]
    fn appends_stay_in_the_tail_until_it_is_full() {
        let mut part = Partition::default();
        for k in 0..TAIL_MAX as u32 - 1 {
            part.insert(key(k), k);
        }
        assert!(part.tree.is_empty());
        part.insert(key(TAIL_MAX as u32 - 1), 0);
        assert_eq!(part.tree.len(), TAIL_FLUSH);
        assert_eq!(part.tail.len(), TAIL_MAX - TAIL_FLUSH);
        assert!(part.tail.capacity() <= TAIL_MAX);
        // A key below the tail goes to the tree.
        part.insert(key(1), 99);
        assert_eq!(part.tree.get(&key(1)), Some(&99));
        // With the tail emptied by removals, the tree's last key is still
        // found (replaced, not added again), and a greater key starts a tail.
        for k in TAIL_FLUSH as u32..TAIL_MAX as u32 {
            assert!(part.remove(&key(k)).is_some());
        }
        assert!(part.tail.is_empty());
        let last = TAIL_FLUSH as u32 - 1;
        assert_eq!(part.insert(key(last), 7), Some(last));
        assert_eq!(part.insert(key(500), 8), None);
        assert_eq!(part.tail.len(), 1);
        let keys: Vec<StoredKey> = part.iter().map(|(k, _)| k.clone()).collect();
        assert_eq!(keys.len(), TAIL_FLUSH + 1);
        assert!(keys.windows(2).all(|w| w[0] < w[1]));
    }
}
