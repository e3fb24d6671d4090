//! Write-capacity admission per table: pure logic, time passed in.
//!
//! Every write asks `WriteCapacity::try_admit(key_hash, units, now)`; `now`
//! is seconds on any monotonic scale (the simulator's `Clock`), so tests run
//! the model deterministically without sleeping. The model, after the
//! DynamoDB developer guide:
//! - provisioned: a token bucket refilled at the table's WCU/s holding up to
//!   `burst_seconds` (300) of unused capacity ("burst capacity");
//! - on-demand: the table takes up to `max(warm, 2 × previous peak)` WCU/s
//!   at once ("instantly accommodates up to double the previous peak"), the
//!   peak being the highest admitted WCU in one whole second, capped by
//!   the table's configured maximum and the account's per-table quota;
//! - partitions: the partition key's stable hash picks one of
//!   `max(1, ceil(WCU / 1000))` partitions, each capped at 1000 WCU/s, so a
//!   hot key is throttled while the table still has capacity to spare.
//!
//! Invariant: a write is admitted only if both its partition's and the
//! table's bucket can pay for it; nothing is charged for a refused write.

use crate::config::{CapacityConfig, CapacitySchedule};

/// How the table is billed.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Billing {
    /// PROVISIONED with this many WCU/s.
    Provisioned {
        /// Write capacity units per second.
        wcu: f64,
    },
    /// PAY_PER_REQUEST.
    OnDemand,
}

/// Why a write was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ThrottleCause {
    /// The table's capacity is used up: a provisioned table's WCU, or an
    /// on-demand table's headroom (double its previous peak).
    Table,
    /// An on-demand table's configured maximum (`on_demand_max_wcu`).
    Maximum,
    /// The account's per-table quota for on-demand tables
    /// (`on_demand_account_wcu`).
    Account,
    /// The key's partition exceeded its own limit.
    Partition,
}

/// A token bucket; tokens may go negative only for an item larger than the
/// bucket itself (so a large item on a small table is not refused forever).
#[derive(Debug, Clone)]
struct Bucket {
    tokens: f64,
    last: f64,
}

impl Bucket {
    fn refill(&mut self, now: f64, rate: f64, max: f64) {
        if now > self.last {
            self.tokens = (self.tokens + rate * (now - self.last)).min(max);
            self.last = now;
        } else if self.tokens > max {
            self.tokens = max;
        }
    }

    fn can_pay(&self, units: f64, max: f64) -> bool {
        self.tokens >= units || (self.tokens >= max && max > 0.0)
    }
}

/// Write capacity state of one table.
#[derive(Debug, Clone)]
pub struct WriteCapacity {
    params: CapacityConfig,
    billing: Billing,
    schedule: Option<CapacitySchedule>,
    explicit_partitions: Option<u32>,
    created_at: f64,
    table: Bucket,
    partitions: Vec<Bucket>,
    second: i64,
    second_units: f64,
    peak: f64,
}

impl WriteCapacity {
    /// New state for a table created at `now`.
    pub fn new(
        params: CapacityConfig,
        billing: Billing,
        schedule: Option<CapacitySchedule>,
        explicit_partitions: Option<u32>,
        now: f64,
    ) -> Self {
        let mut cap = WriteCapacity {
            params,
            billing,
            schedule,
            explicit_partitions,
            created_at: now,
            table: Bucket {
                tokens: 0.0,
                last: now,
            },
            partitions: Vec::new(),
            second: now.floor() as i64,
            second_units: 0.0,
            peak: 0.0,
        };
        let rate = cap.rate(now);
        cap.table.tokens = rate * cap.params.initial_burst_seconds.min(cap.burst_window());
        cap.resize_partitions(now);
        cap
    }

    /// Change billing mode or provisioned WCU (UpdateTable).
    pub fn set_billing(&mut self, billing: Billing, now: f64) {
        self.table.refill(now, self.rate(now), self.table_max(now));
        self.billing = billing;
        self.resize_partitions(now);
    }

    /// Current billing.
    pub fn billing(&self) -> Billing {
        self.billing
    }

    /// Number of simulated partitions now.
    pub fn partition_count(&self) -> usize {
        self.partitions.len()
    }

    /// Table write rate (WCU/s) in force at `now`; infinite when unlimited.
    pub fn rate(&self, now: f64) -> f64 {
        self.rate_with_peak(now, self.peak)
    }

    /// [`Self::rate`] for an on-demand table whose previous peak is `peak`.
    fn rate_with_peak(&self, now: f64, peak: f64) -> f64 {
        if self.params.unlimited {
            return f64::INFINITY;
        }
        let scheduled = self
            .schedule
            .as_ref()
            .map(|s| s.wcu_at(now - self.created_at));
        match self.billing {
            Billing::Provisioned { wcu } => scheduled.unwrap_or(wcu),
            Billing::OnDemand => {
                let mut allowed = self.params.on_demand_warm_wcu.max(2.0 * peak);
                for cap in [
                    self.params.on_demand_max_wcu,
                    self.params.on_demand_account_wcu,
                ]
                .into_iter()
                .flatten()
                {
                    allowed = allowed.min(cap);
                }
                if let Some(cap) = scheduled {
                    allowed = allowed.min(cap);
                }
                allowed
            }
        }
    }

    /// What the table serves at once as of `now` (DescribeTable's warm
    /// throughput): [`Self::rate`] with a second that is over counted in
    /// the peak, as the next admission will count it.
    pub fn warm_wcu(&self, now: f64) -> f64 {
        self.rate_with_peak(now, self.peak_at(now))
    }

    /// The highest admitted WCU in one whole second as of `now`: the
    /// completed seconds' peak, and the current second's units once it is
    /// over.
    fn peak_at(&self, now: f64) -> f64 {
        if now.floor() as i64 > self.second {
            self.peak.max(self.second_units)
        } else {
            self.peak
        }
    }

    /// The provisioned WCU in force at `now` as DescribeTable reports it:
    /// the capacity schedule's current step when there is one (a step is
    /// what an UpdateTable does on AWS, and it shows in DescribeTable the
    /// same way), else the table's provisioned WCU. None for on-demand.
    pub fn provisioned_wcu_at(&self, now: f64) -> Option<f64> {
        match self.billing {
            Billing::Provisioned { wcu } => Some(
                self.schedule
                    .as_ref()
                    .map_or(wcu, |s| s.wcu_at(now - self.created_at)),
            ),
            Billing::OnDemand => None,
        }
    }

    /// An on-demand table's configured maximum (MaxWriteRequestUnits), the
    /// one on-demand limit DescribeTable reports.
    pub fn on_demand_max_wcu(&self) -> Option<f64> {
        self.params.on_demand_max_wcu
    }

    /// What holds the table's rate at `now` when its bucket refuses: an
    /// on-demand table's account quota or configured maximum when the rate
    /// is at it (the quota when it is the lower of the two), else the
    /// table's own capacity.
    fn table_cause(&self, now: f64) -> ThrottleCause {
        if !matches!(self.billing, Billing::OnDemand) {
            return ThrottleCause::Table;
        }
        let rate = self.rate(now);
        let max = self.params.on_demand_max_wcu;
        match self.params.on_demand_account_wcu {
            Some(account) if rate >= account && max.is_none_or(|m| account < m) => {
                ThrottleCause::Account
            }
            _ if max.is_some_and(|m| rate >= m) => ThrottleCause::Maximum,
            _ => ThrottleCause::Table,
        }
    }

    /// Highest one-second admitted WCU seen (drives on-demand doubling).
    pub fn peak(&self) -> f64 {
        self.peak
    }

    fn burst_window(&self) -> f64 {
        match self.billing {
            Billing::Provisioned { .. } => self.params.burst_seconds.max(1.0),
            Billing::OnDemand => 1.0,
        }
    }

    fn table_max(&self, now: f64) -> f64 {
        self.rate(now) * self.burst_window()
    }

    fn wanted_partitions(&self, now: f64) -> usize {
        if let Some(n) = self.explicit_partitions.or(self.params.partitions) {
            return n.max(1) as usize;
        }
        let peak_rate = match (self.billing, &self.schedule) {
            (Billing::Provisioned { wcu }, Some(s)) => wcu.max(s.max_wcu()),
            (Billing::Provisioned { wcu }, None) => wcu,
            (Billing::OnDemand, _) => self.rate(now),
        };
        if !peak_rate.is_finite() {
            return 1;
        }
        // Partitions split but never merge, as in DynamoDB.
        ((peak_rate / self.params.partition_wcu).ceil() as usize)
            .max(1)
            .max(self.partitions.len())
    }

    fn resize_partitions(&mut self, now: f64) {
        let want = self.wanted_partitions(now);
        let full = self.params.partition_wcu;
        if want != self.partitions.len() {
            self.partitions.resize(
                want,
                Bucket {
                    tokens: full,
                    last: now,
                },
            );
        }
    }

    fn roll_second(&mut self, now: f64) {
        let sec = now.floor() as i64;
        // Only forward: with several server threads a caller may read the
        // clock just before another that already rolled into the next second.
        if sec > self.second {
            // The peak is taken from completed seconds only.
            self.peak = self.peak_at(now);
            self.second = sec;
            self.second_units = 0.0;
            if self.billing == Billing::OnDemand {
                self.resize_partitions(now);
            }
        }
    }

    /// Try to admit a write of `units` WCU to the partition of `key_hash`.
    pub fn try_admit(&mut self, key_hash: u64, units: u64, now: f64) -> Result<(), ThrottleCause> {
        let units_f = units as f64;
        if self.params.unlimited {
            self.roll_second(now);
            self.second_units += units_f;
            return Ok(());
        }
        self.roll_second(now);
        let rate = self.rate(now);
        let table_max = rate * self.burst_window();
        self.table.refill(now, rate, table_max);
        let pw = self.params.partition_wcu;
        let idx = (key_hash % self.partitions.len().max(1) as u64) as usize;
        if let Some(p) = self.partitions.get_mut(idx) {
            p.refill(now, pw, pw);
            if !p.can_pay(units_f, pw) {
                return Err(ThrottleCause::Partition);
            }
        }
        if !self.table.can_pay(units_f, table_max) {
            return Err(self.table_cause(now));
        }
        self.table.tokens -= units_f;
        if let Some(p) = self.partitions.get_mut(idx) {
            p.tokens -= units_f;
        }
        self.second_units += units_f;
        Ok(())
    }

    /// Tokens left in the table bucket after refilling to `now` (for tests
    /// and stats).
    pub fn available(&mut self, now: f64) -> f64 {
        let rate = self.rate(now);
        let max = rate * self.burst_window();
        self.table.refill(now, rate, max);
        self.table.tokens
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params() -> CapacityConfig {
        CapacityConfig {
            initial_burst_seconds: 0.0,
            ..CapacityConfig::default()
        }
    }

    fn admit_n(cap: &mut WriteCapacity, n: usize, hash: impl Fn(usize) -> u64, now: f64) -> usize {
        (0..n)
            .filter(|i| cap.try_admit(hash(*i), 1, now).is_ok())
            .count()
    }

    #[test]
    fn provisioned_admits_exactly_the_budget() {
        let mut cap = WriteCapacity::new(
            params(),
            Billing::Provisioned { wcu: 100.0 },
            None,
            None,
            0.0,
        );
        assert_eq!(admit_n(&mut cap, 500, |i| i as u64, 1.0), 100);
        assert_eq!(cap.try_admit(1, 1, 1.0), Err(ThrottleCause::Table));
        // Half a second later, half the rate is back.
        assert_eq!(admit_n(&mut cap, 500, |i| i as u64, 1.5), 50);
    }

    #[test]
    fn a_late_clock_reading_does_not_roll_the_second_back() {
        let mut cap = WriteCapacity::new(params(), Billing::OnDemand, None, Some(10), 0.0);
        assert_eq!(admit_n(&mut cap, 1000, |i| i as u64, 1.2), 1000);
        // Second 2 starts; a caller that read the clock a moment earlier
        // (still in second 1) must not reset second 2's count.
        assert_eq!(admit_n(&mut cap, 2000, |i| i as u64, 2.1), 2000);
        assert_eq!(admit_n(&mut cap, 10, |i| i as u64, 1.99), 10);
        assert_eq!(admit_n(&mut cap, 1000, |i| i as u64, 2.2), 1000);
        // Completing second 2 records all its 3,010 units as the peak.
        let _ = cap.try_admit(0, 1, 3.0);
        assert_eq!(cap.peak(), 3010.0);
    }

    #[test]
    fn burst_accumulates_up_to_300_seconds() {
        // Ten partitions so the 1000 WCU/s partition cap does not hide the burst.
        let mut cap = WriteCapacity::new(
            params(),
            Billing::Provisioned { wcu: 10.0 },
            None,
            Some(10),
            0.0,
        );
        assert_eq!(cap.available(100.0), 1000.0);
        assert_eq!(cap.available(300.0), 3000.0);
        // Capped at 300 s of capacity however long the table idles.
        assert_eq!(cap.available(10_000.0), 3000.0);
        assert_eq!(admit_n(&mut cap, 5000, |i| i as u64, 10_000.0), 3000);
        // With one partition the burst is still capped at 1000 WCU/s by it.
        let mut one = WriteCapacity::new(
            params(),
            Billing::Provisioned { wcu: 10.0 },
            None,
            None,
            0.0,
        );
        assert_eq!(admit_n(&mut one, 5000, |i| i as u64, 10_000.0), 1000);
    }

    #[test]
    fn hot_partition_throttles_with_table_capacity_to_spare() {
        let mut cap = WriteCapacity::new(
            params(),
            Billing::Provisioned { wcu: 4000.0 },
            None,
            None,
            0.0,
        );
        assert_eq!(cap.partition_count(), 4);
        let t = 10.0; // table bucket holds 40,000 units by now
        let admitted = admit_n(&mut cap, 3000, |_| 7, t);
        assert_eq!(admitted, 1000, "one key is capped at 1000 WCU/s");
        assert_eq!(cap.try_admit(7, 1, t), Err(ThrottleCause::Partition));
        // Other partitions still take writes at the same instant.
        assert!(cap.try_admit(8, 1, t).is_ok());
        assert!(cap.available(t) > 30_000.0);
    }

    #[test]
    fn explicit_partition_count_wins() {
        let cap = WriteCapacity::new(
            params(),
            Billing::Provisioned { wcu: 100.0 },
            None,
            Some(8),
            0.0,
        );
        assert_eq!(cap.partition_count(), 8);
    }

    #[test]
    fn on_demand_starts_warm_and_doubles_previous_peak() {
        let p = CapacityConfig {
            partitions: Some(1000),
            ..params()
        };
        let mut cap = WriteCapacity::new(p, Billing::OnDemand, None, None, 0.0);
        assert_eq!(cap.rate(0.0), 4000.0);
        // Second 1: the bucket refills to 4000 and all of it is used.
        assert_eq!(admit_n(&mut cap, 10_000, |i| i as u64, 1.0), 4000);
        assert_eq!(
            cap.rate(1.5),
            4000.0,
            "the peak counts once its second is over"
        );
        // Second 2: previous peak 4000, so up to 8000 at once.
        assert_eq!(admit_n(&mut cap, 20_000, |i| i as u64, 2.0), 8000);
        assert_eq!(
            cap.try_admit(1, 1, 2.0),
            Err(ThrottleCause::Table),
            "below the quota: the table's own headroom"
        );
        assert_eq!(cap.peak(), 4000.0);
        assert_eq!(admit_n(&mut cap, 40_000, |i| i as u64, 3.0), 16_000);
        assert_eq!(cap.peak(), 8000.0);
        assert_eq!(admit_n(&mut cap, 40_000, |i| i as u64, 4.0), 32_000);
        // Doubling again would be 64,000: the account's default per-table
        // quota holds it at 40,000, and says so.
        assert_eq!(admit_n(&mut cap, 80_000, |i| i as u64, 5.0), 40_000);
        assert_eq!(cap.try_admit(1, 1, 5.0), Err(ThrottleCause::Account));
        assert_eq!(cap.rate(6.5), 40_000.0);
        // Never below the warm throughput even after idling.
        assert!(cap.rate(100.0) >= 4000.0);
    }

    #[test]
    fn schedule_changes_capacity_over_time() {
        let s: CapacitySchedule = "100, 30s:10".parse().expect("valid");
        let p = CapacityConfig {
            burst_seconds: 0.0,
            ..params()
        };
        let mut cap = WriteCapacity::new(p, Billing::Provisioned { wcu: 5.0 }, Some(s), None, 0.0);
        assert_eq!(cap.rate(1.0), 100.0);
        assert_eq!(admit_n(&mut cap, 500, |i| i as u64, 29.0), 100);
        assert_eq!(cap.rate(31.0), 10.0);
        assert_eq!(
            cap.provisioned_wcu_at(31.0),
            Some(10.0),
            "DescribeTable shows the step"
        );
        assert_eq!(admit_n(&mut cap, 500, |i| i as u64, 40.0), 10);
    }

    #[test]
    fn unlimited_admits_everything() {
        let p = CapacityConfig {
            unlimited: true,
            ..params()
        };
        let mut cap = WriteCapacity::new(p, Billing::Provisioned { wcu: 1.0 }, None, None, 0.0);
        assert_eq!(admit_n(&mut cap, 100_000, |_| 1, 0.0), 100_000);
    }

    #[test]
    fn oversized_item_is_admitted_from_a_full_bucket() {
        let p = CapacityConfig {
            burst_seconds: 0.0,
            ..params()
        };
        let mut cap = WriteCapacity::new(p, Billing::Provisioned { wcu: 5.0 }, None, None, 0.0);
        assert!(cap.try_admit(1, 50, 0.5).is_err());
        assert!(cap.try_admit(1, 50, 1.0).is_ok());
        assert!(cap.try_admit(1, 1, 1.0).is_err());
    }
}
