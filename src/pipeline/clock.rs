//! Server-assigned sort keys: epoch milliseconds, unique per partition key.
//!
//! Two events of one partition key in the same millisecond would overwrite
//! each other in DynamoDB (the seed app's `int(time.time())` kept 16 of
//! 10,478 events of one user). The clock hands out `max(now, last + 1)` per
//! key instead, so a burst runs ahead of wall time by at most its length
//! in ms. Time is monotonic (anchored to the wall clock once at start).
//! One clock per table, shared by every stream writing it.
//!
//! Keys are remembered by their 64-bit hash, which the mapper computes once
//! for the clock and the item's key identity (no copy of the text, no
//! comparison with a stored key that is no longer in the CPU's cache). Two
//! partition keys whose hashes collide share one counter: each still gets
//! stamps that only go up, so none of its events overwrite each other.

use crate::event::KeyHasher;
use std::collections::hash_map::Entry;
use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

const SHARDS: usize = 16;
/// Above this many remembered keys a shard forgets the ones in the past.
const PRUNE_AT: usize = 4096;

/// Unique-per-key millisecond timestamps.
#[derive(Debug)]
pub struct SortClock {
    origin: Instant,
    origin_epoch_ms: u64,
    shards: Vec<Mutex<HashMap<u64, u64, KeyHasher>>>,
}

impl Default for SortClock {
    fn default() -> Self {
        Self::new()
    }
}

impl SortClock {
    pub fn new() -> Self {
        let epoch_ms = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_millis() as u64)
            .unwrap_or(0);
        Self::starting_at(Instant::now(), epoch_ms)
    }

    /// A clock whose `origin` instant is `epoch_ms` (tests inject time this way).
    pub fn starting_at(origin: Instant, epoch_ms: u64) -> Self {
        Self {
            origin,
            origin_epoch_ms: epoch_ms,
            shards: (0..SHARDS)
                .map(|_| Mutex::new(HashMap::default()))
                .collect(),
        }
    }

    /// Epoch milliseconds at `now`.
    pub fn epoch_ms(&self, now: Instant) -> u64 {
        self.origin_epoch_ms + now.saturating_duration_since(self.origin).as_millis() as u64
    }

    /// A timestamp at `now` for the partition key whose [`hash_str`] is
    /// `partition_hash` (the mapper has it already), greater than any
    /// earlier one for that key.
    pub fn assign(&self, partition_hash: u64, now: Instant) -> u64 {
        let now_ms = self.epoch_ms(now);
        let shard = &self.shards[(partition_hash as usize) % SHARDS];
        let Ok(mut map) = shard.lock() else {
            return now_ms;
        };
        if map.len() >= PRUNE_AT {
            // Keys whose last stamp is in the past get `now_ms` anyway.
            map.retain(|_, last| *last >= now_ms);
        }
        match map.entry(partition_hash) {
            Entry::Occupied(mut seen) => {
                let last = seen.get_mut();
                *last = (*last + 1).max(now_ms);
                *last
            }
            Entry::Vacant(new) => *new.insert(now_ms),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::hash_str;
    use std::collections::HashSet;
    use std::time::Duration;

    #[test]
    fn a_burst_in_one_millisecond_gets_distinct_stamps() {
        let t0 = Instant::now();
        let clock = SortClock::starting_at(t0, 1_000_000);
        let stamps: HashSet<u64> = (0..1000)
            .map(|_| clock.assign(hash_str("U123"), t0))
            .collect();
        assert_eq!(stamps.len(), 1000);
        assert_eq!(
            clock.assign(hash_str("other"), t0),
            1_000_000,
            "other keys are independent"
        );
        // Wall time catching up: a later call never goes backwards.
        assert_eq!(
            clock.assign(hash_str("U123"), t0 + Duration::from_millis(5)),
            1_001_000
        );
        assert_eq!(
            clock.assign(hash_str("U123"), t0 + Duration::from_secs(10)),
            1_010_000
        );
    }

    #[test]
    fn pruning_never_reissues_a_stamp() {
        let t0 = Instant::now();
        let clock = SortClock::starting_at(t0, 0);
        let hot = clock.assign(hash_str("hot"), t0);
        let hot2 = clock.assign(hash_str("hot"), t0);
        for i in 0..(PRUNE_AT * SHARDS * 2) {
            clock.assign(hash_str(&format!("k{i}")), t0);
        }
        assert!(clock.assign(hash_str("hot"), t0) > hot2.max(hot));
    }
}
