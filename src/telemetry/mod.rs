//! Telemetry: metric names and handles ([`metrics`]), the admin listener
//! ([`admin`]) and log set-up ([`logging`]). The gateway owns the one global
//! metrics recorder, installed by [`install_recorder`].

pub mod admin;
pub mod logging;
pub mod metrics;

use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

/// Installs the Prometheus recorder and describes every metric family.
pub fn install_recorder() -> anyhow::Result<PrometheusHandle> {
    let handle = PrometheusBuilder::new()
        .set_buckets_for_metric(
            Matcher::Suffix("_seconds".to_owned()),
            &metrics::LATENCY_BUCKETS,
        )?
        .set_buckets_for_metric(
            Matcher::Full(metrics::BATCH_ITEMS.to_owned()),
            &[1.0, 2.0, 5.0, 10.0, 15.0, 20.0, 24.0, 25.0],
        )?
        .install_recorder()?;
    metrics::describe();
    Ok(handle)
}
