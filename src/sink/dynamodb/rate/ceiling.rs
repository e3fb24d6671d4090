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
    ) -> impl Future<Output = Result<TableCapacity, DescribeError>> + Send;
}

/// Polls the table's capacity every `interval` until `stop`, setting the
/// controller's ceiling and the `rate_ceiling_wcu` gauge.
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
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = stop.cancelled() => return,
        }
        match describer.capacity(&table).await {
            Ok(capacity) => {
                failing = false;
                let ceiling = capacity.ceiling();
                metrics.rate_ceiling.set(ceiling.unwrap_or(0.0));
                if rate.set_ceiling(ceiling) {
                    tracing::info!(table = %table.name, ?capacity, "table write capacity");
                }
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

    struct Scripted(Mutex<VecDeque<Result<TableCapacity, DescribeError>>>);

    impl DescribeCapacity for Scripted {
        async fn capacity(&self, _: &TableSpec) -> Result<TableCapacity, DescribeError> {
            self.0
                .lock()
                .expect("lock")
                .pop_front()
                .unwrap_or(Ok(TableCapacity::Provisioned(300.0)))
        }
    }

    #[tokio::test(start_paused = true)]
    async fn the_polled_capacity_becomes_the_ceiling_and_errors_keep_it() {
        let table = Arc::new(TableSpec::string_keyed("T"));
        let rate = Arc::new(RateControl::unmetered(ControllerConfig::default(), 1000));
        let script = Scripted(Mutex::new(VecDeque::from([
            Ok(TableCapacity::Provisioned(500.0)),
            Err(DescribeError {
                message: "AccessDenied".into(),
            }),
            Ok(TableCapacity::OnDemand(None)),
        ])));
        let stop = CancellationToken::new();
        let task = tokio::spawn(poll(
            Arc::new(script),
            table,
            rate.clone(),
            TableMetrics::register("T", &[]),
            Duration::from_secs(1),
            stop.clone(),
        ));
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
