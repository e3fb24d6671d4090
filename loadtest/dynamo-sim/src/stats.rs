//! Per-table write counters behind `GET /__sim/stats`.
//!
//! Updated under the table's lock on every write decision; the admitted WCU
//! are kept in a ring of the last 120 one-second buckets keyed by absolute
//! second, so a reader sees a per-second history without any timer task.

use serde::Serialize;

/// Seconds of per-second history kept.
pub const HISTORY_SECONDS: usize = 120;

/// Write statistics of one table.
#[derive(Debug, Clone)]
pub struct WriteStats {
    ring: [f64; HISTORY_SECONDS],
    /// Absolute second of the newest bucket.
    head: i64,
    total_wcu: f64,
    admitted_items: u64,
    throttled_calls: u64,
    throttled_items: u64,
    unprocessed_items: u64,
}

impl Default for WriteStats {
    fn default() -> Self {
        WriteStats {
            ring: [0.0; HISTORY_SECONDS],
            head: 0,
            total_wcu: 0.0,
            admitted_items: 0,
            throttled_calls: 0,
            throttled_items: 0,
            unprocessed_items: 0,
        }
    }
}

/// JSON view of one table's statistics.
#[derive(Debug, Clone, Serialize)]
pub struct TableStatsView {
    /// WCU admitted in the last complete second.
    pub wcu_last_second: f64,
    /// WCU admitted per second, oldest first, newest (current, partial) last.
    pub wcu_per_second: Vec<f64>,
    /// WCU admitted since the table was created.
    pub total_wcu: f64,
    /// Write requests (items) admitted.
    pub admitted_items: u64,
    /// Calls refused entirely with a throttling error.
    pub throttled_calls: u64,
    /// Items refused by capacity (in throttled calls or as unprocessed).
    pub throttled_items: u64,
    /// Items returned in BatchWriteItem's UnprocessedItems.
    pub unprocessed_items: u64,
    /// Items stored now.
    pub items_stored: u64,
    /// Bytes stored now (DynamoDB size rules).
    pub bytes_stored: u64,
    /// Table write capacity in force now (WCU/s; null when unlimited).
    pub capacity_wcu_now: Option<f64>,
    /// Simulated partitions.
    pub partitions: usize,
    /// Billing mode.
    pub billing_mode: &'static str,
}

impl WriteStats {
    fn advance(&mut self, sec: i64) {
        if sec <= self.head {
            return;
        }
        let gap = (sec - self.head).min(HISTORY_SECONDS as i64);
        for i in 1..=gap {
            let idx = (self.head + i).rem_euclid(HISTORY_SECONDS as i64) as usize;
            self.ring[idx] = 0.0;
        }
        self.head = sec;
    }

    /// Record `units` admitted at `now` for `items` items.
    pub fn admitted(&mut self, units: f64, items: u64, now: f64) {
        let sec = now.floor() as i64;
        self.advance(sec);
        if sec > self.head - HISTORY_SECONDS as i64 {
            let idx = sec.rem_euclid(HISTORY_SECONDS as i64) as usize;
            self.ring[idx] += units;
        }
        self.total_wcu += units;
        self.admitted_items += items;
    }

    /// Record a call refused entirely.
    pub fn throttled_call(&mut self, items: u64) {
        self.throttled_calls += 1;
        self.throttled_items += items;
    }

    /// Record items handed back as unprocessed.
    pub fn unprocessed(&mut self, items: u64) {
        self.unprocessed_items += items;
        self.throttled_items += items;
    }

    /// Per-second history as of `now`, oldest first.
    pub fn history(&mut self, now: f64) -> Vec<f64> {
        self.advance(now.floor() as i64);
        (0..HISTORY_SECONDS as i64)
            .map(|i| {
                let sec = self.head - (HISTORY_SECONDS as i64 - 1) + i;
                self.ring[sec.rem_euclid(HISTORY_SECONDS as i64) as usize]
            })
            .collect()
    }

    /// Fill the counter part of a view.
    pub fn view(&mut self, now: f64) -> TableStatsView {
        let history = self.history(now);
        TableStatsView {
            wcu_last_second: history
                .get(HISTORY_SECONDS.saturating_sub(2))
                .copied()
                .unwrap_or(0.0),
            wcu_per_second: history,
            total_wcu: self.total_wcu,
            admitted_items: self.admitted_items,
            throttled_calls: self.throttled_calls,
            throttled_items: self.throttled_items,
            unprocessed_items: self.unprocessed_items,
            items_stored: 0,
            bytes_stored: 0,
            capacity_wcu_now: None,
            partitions: 0,
            billing_mode: "",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn history_buckets_by_second_and_forgets_old_seconds() {
        let mut s = WriteStats::default();
        s.admitted(5.0, 5, 10.2);
        s.admitted(3.0, 3, 10.9);
        s.admitted(7.0, 7, 11.1);
        let v = s.view(11.5);
        assert_eq!(v.wcu_last_second, 8.0);
        assert_eq!(v.wcu_per_second[HISTORY_SECONDS - 1], 7.0);
        assert_eq!(v.total_wcu, 15.0);
        let later = s.history(11.0 + HISTORY_SECONDS as f64);
        assert!(later.iter().all(|u| *u == 0.0), "old seconds roll out");
    }
}
