//! Write order per key with several calls in flight: the writer never runs
//! two BatchWriteItem calls that hold the same primary key, so two writes of
//! one key land in the order they were accepted (last write wins).
//!
//! Keys are tracked by hash; a collision only makes a batch wait for an
//! unrelated one, never reorders writes.

use std::collections::HashMap;
use std::sync::Mutex;

use crate::event::{Item, KeyHasher};

/// Hashed keys of the batches in flight, with how many batches hold each.
#[derive(Debug, Default)]
pub struct KeysInFlight {
    held: Mutex<HashMap<u64, u32, KeyHasher>>,
}

impl KeysInFlight {
    /// The key hashes of a batch.
    pub fn hashes(items: &[Item]) -> Vec<u64> {
        items.iter().map(Item::key_hash).collect()
    }

    /// Whether any of `hashes` is held by a batch in flight.
    pub fn conflicts(&self, hashes: &[u64]) -> bool {
        self.held
            .lock()
            .map(|held| !held.is_empty() && hashes.iter().any(|h| held.contains_key(h)))
            .unwrap_or(false)
    }

    /// A batch with `hashes` starts.
    pub fn hold(&self, hashes: &[u64]) {
        if let Ok(mut held) = self.held.lock() {
            for h in hashes {
                *held.entry(*h).or_default() += 1;
            }
        }
    }

    /// A batch with `hashes` is settled.
    pub fn release(&self, hashes: &[u64]) {
        if let Ok(mut held) = self.held.lock() {
            for h in hashes {
                if let Some(n) = held.get_mut(h) {
                    *n -= 1;
                    if *n == 0 {
                        held.remove(h);
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pipeline::queue::tests::item;

    #[test]
    fn a_key_is_held_until_every_batch_holding_it_is_released() {
        let keys = KeysInFlight::default();
        let a = KeysInFlight::hashes(&[item("k1", 1), item("k2", 1)]);
        let b = KeysInFlight::hashes(&[item("k2", 1), item("k3", 1)]);
        let c = KeysInFlight::hashes(&[item("k4", 1)]);
        assert!(!keys.conflicts(&a));
        keys.hold(&a);
        assert!(keys.conflicts(&b), "k2 is in flight");
        assert!(!keys.conflicts(&c));
        keys.hold(&c);
        keys.release(&a);
        assert!(!keys.conflicts(&b));
        keys.release(&c);
        assert!(keys.held.lock().expect("lock").is_empty());
    }
}
