//! The table's provisioned write capacity as DynamoDB describes it, polled
//! with DescribeTable and handed to the rate controller as its ceiling.
//!
//! Place in the data flow: beside the writer of one table, off the hot
//! path. Why: the adaptive controller alone has to probe above the capacity
//! to find it, and every probe costs throttled calls; a provisioned table
//! says its capacity outright (`ProvisionedThroughput.WriteCapacityUnits`,
//! which follows UpdateTable), so the gateway writes at exactly that and
//! only the controller's decreases (other writers, burst or account limits)
//! take it lower. On-demand tables report their `MaxWriteRequestUnits` when
//! one is set; otherwise there is no ceiling and the controller probes.
//! Every table also reports its warm throughput (`WarmThroughput`, what it
//! serves at once: 4,000 WCU/s for a new on-demand table, more after a peak
//! or a pre-warm), which lifts the controller's growth cap to that value,
//! so the writer starts there instead of climbing from `initial_wcu`.
//!
//! Invariants: a failed poll keeps the last known ceiling (a transient
//! DescribeTable error must not unleash the writer); the poll stops when
//! the writer does.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use super::RateControl;
use crate::config::TableSpec;
use crate::telemetry::metrics::TableMetrics;

/// Why DescribeTable gave no answer.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("DescribeTable failed: {message}")]
pub struct DescribeError {
    /// The SDK's error, for the log.
    pub message: String,
}

/// A table's write capacity as DescribeTable reports it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum TableCapacity {
    /// PROVISIONED with this many WCU/s.
    Provisioned(f64),
    /// PAY_PER_REQUEST, with the table's `MaxWriteRequestUnits` if set.
    OnDemand(Option<f64>),
}

/// What DescribeTable says about a table's writes.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Described {
    pub capacity: TableCapacity,
    /// `WarmThroughput.WriteUnitsPerSecond`, when reported.
    pub warm_wcu: Option<f64>,
}

impl From<TableCapacity> for Described {
    fn from(capacity: TableCapacity) -> Self {
        Described {
            capacity,
            warm_wcu: None,
        }
    }
}

impl TableCapacity {
    /// The ceiling for the controller: WCU/s the table takes at most.
    pub fn ceiling(self) -> Option<f64> {
        match self {
            TableCapacity::Provisioned(wcu) => Some(wcu),
            TableCapacity::OnDemand(max) => max,
        }
        .filter(|w| w.is_finite() && *w > 0.0)
    }
}

/// DescribeTable for one table. The SDK implements it in production
/// (`request::SdkWriter`); unit tests script it.
pub trait DescribeCapacity: Send + Sync + 'static {
    fn capacity(
        &self,
        table: &TableSpec,
    ) -> impl Future<Output = Result<Described, DescribeError>> + Send;
}

/// Polls the table's capacity every `interval` until `stop`, setting the
/// controller's ceiling and warm throughput and the `rate_ceiling_wcu`
/// gauge.
pub async fn poll<D: DescribeCapacity>(
    describer: Arc<D>,
    table: Arc<TableSpec>,
    rate: Arc<RateControl>,
    metrics: TableMetrics,
    interval: Duration,
    stop: CancellationToken,
) {
    let mut tick = tokio::time::interval(interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut failing = false;
    let mut warm_reported = false;
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = stop.cancelled() => return,
        }
        match describer.capacity(&table).await {
            Ok(Described { capacity, warm_wcu }) => {
                failing = false;
                let ceiling = capacity.ceiling();
                // Both at once, whichever changed; the ceiling's gauge
                // after the rate's, so whoever sees the new ceiling also
                // sees the rate it brought.
                let (ceiling_changed, warm_changed) = rate.set_described(ceiling, warm_wcu);
                metrics.rate_ceiling.set(ceiling.unwrap_or(0.0));
                // An on-demand table's warm throughput follows its peaks
                // (it can change every second while a load grows): its
                // first value and the ceiling's changes are news, the rest
                // is detail.
                if ceiling_changed || warm_reported != warm_wcu.is_some() {
                    tracing::info!(table = %table.name, ?capacity, ?warm_wcu, "table write capacity");
                } else if warm_changed {
                    tracing::debug!(table = %table.name, ?warm_wcu, "table warm throughput");
                }
                warm_reported = warm_wcu.is_some();
            }
            Err(e) if !failing => {
                // Once per failure streak: a missing dynamodb:DescribeTable
                // permission would otherwise log every interval.
                failing = true;
                tracing::warn!(table = %table.name, error = %e, "cannot read the table's capacity; keeping the last ceiling, the controller adapts alone");
            }
            Err(_) => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sink::dynamodb::rate::controller::ControllerConfig;
    use std::collections::VecDeque;
    use std::sync::Mutex;

    struct Scripted(Mutex<VecDeque<Result<Described, DescribeError>>>);

    impl DescribeCapacity for Scripted {
        async fn capacity(&self, _: &TableSpec) -> Result<Described, DescribeError> {
            self.0
                .lock()
                .expect("lock")
                .pop_front()
                .unwrap_or(Ok(TableCapacity::Provisioned(300.0).into()))
        }
    }

    /// The poll of table "T" against `script`, every second until stopped.
    fn start(
        script: Scripted,
        rate: &Arc<RateControl>,
    ) -> (CancellationToken, tokio::task::JoinHandle<()>) {
        let stop = CancellationToken::new();
        let task = tokio::spawn(poll(
            Arc::new(script),
            Arc::new(TableSpec::string_keyed("T")),
            rate.clone(),
            TableMetrics::register("T", &[]),
            Duration::from_secs(1),
            stop.clone(),
        ));
        (stop, task)
    }

    #[tokio::test(start_paused = true)]
    async fn the_polled_capacity_becomes_the_ceiling_and_errors_keep_it() {
        let rate = Arc::new(RateControl::unmetered(ControllerConfig::default(), 1000));
        let script = Scripted(Mutex::new(VecDeque::from([
            Ok(TableCapacity::Provisioned(500.0).into()),
            Err(DescribeError {
                message: "AccessDenied".into(),
            }),
            Ok(TableCapacity::OnDemand(None).into()),
        ])));
        let (stop, task) = start(script, &rate);
        // The first poll is immediate.
        tokio::time::sleep(Duration::from_millis(10)).await;
        assert_eq!(rate.ceiling(), Some(500.0));
        tokio::time::sleep(Duration::from_secs(1)).await;
        assert_eq!(rate.ceiling(), Some(500.0), "a failed poll keeps it");
        tokio::time::sleep(Duration::from_secs(1)).await;
        assert_eq!(rate.ceiling(), None, "on-demand without a maximum");
        tokio::time::sleep(Duration::from_secs(1)).await;
        assert_eq!(rate.ceiling(), Some(300.0));
        stop.cancel();
        task.await.expect("the poll ends when told");
    }

    #[tokio::test(start_paused = true)]
    async fn a_polled_warm_throughput_lifts_the_starting_rate() {
        let config = ControllerConfig {
            initial_wcu: 4000.0,
            ..ControllerConfig::default()
        };
        let rate = Arc::new(RateControl::unmetered(config, 1000));
        let script = Scripted(Mutex::new(VecDeque::from([
            Ok(Described {
                capacity: TableCapacity::OnDemand(None),
                warm_wcu: Some(40_000.0),
            }),
            Ok(TableCapacity::OnDemand(None).into()),
        ])));
        let (stop, task) = start(script, &rate);
        assert_eq!(rate.current(), 4000.0, "before the first poll");
        tokio::time::sleep(Duration::from_millis(10)).await;
        assert_eq!(rate.current(), 40_000.0, "the table serves this at once");
        tokio::time::sleep(Duration::from_secs(1)).await;
        assert_eq!(rate.current(), 4000.0, "no longer reported");
        stop.cancel();
        task.await.expect("the poll ends when told");
    }

    #[test]
    fn a_ceiling_and_a_warm_throughput_described_together_apply_at_once() {
        let config = ControllerConfig {
            initial_wcu: 500.0,
            ..ControllerConfig::default()
        };
        let rate = RateControl::unmetered(config, 1000);
        // An on-demand maximum of 3,000 on a table warm for 40,000: the
        // warm throughput lifts the start, the maximum caps it.
        assert_eq!(
            rate.set_described(Some(3000.0), Some(40_000.0)),
            (true, true)
        );
        assert_eq!(rate.current(), 3000.0);
        assert_eq!(rate.ceiling(), Some(3000.0));
        assert_eq!(
            rate.set_described(Some(3000.0), Some(40_000.0)),
            (false, false),
            "unchanged"
        );
        assert_eq!(rate.set_described(None, Some(40_000.0)), (true, false));
        assert_eq!(rate.current(), 40_000.0, "no maximum: the warm throughput");
        assert_eq!(rate.set_described(None, None), (false, true));
        assert_eq!(rate.current(), 500.0, "neither: the configured start");
    }

    #[test]
    fn on_demand_maximum_is_a_ceiling_zero_is_none() {
        assert_eq!(TableCapacity::Provisioned(1000.0).ceiling(), Some(1000.0));
        assert_eq!(
            TableCapacity::OnDemand(Some(4000.0)).ceiling(),
            Some(4000.0)
        );
        assert_eq!(TableCapacity::OnDemand(None).ceiling(), None);
        assert_eq!(TableCapacity::Provisioned(0.0).ceiling(), None);
    }
}
