//! loadgen: drives dynamo-ingest (or any HTTP/MQTT endpoint shaped like it)
//! with the seed's event shapes, and measures what happened.
//!
//! Where it sits: outside the gateway, on the client side of the data flow
//! (apps ──HTTP──► gateway, devices ──MQTT──► broker) and, for `--verify`,
//! on the DynamoDB side (reads the tables back).
//!
//! Module map:
//! - [`spec`]: what one load run does (shared by the CLI and scenario files)
//! - [`keys`], [`events`]: partition-key distributions and event bodies
//! - [`pacing`]: open-loop schedule (target rate) or closed loop (max)
//! - [`recorder`]: per-worker counters and latency histograms, merged at the end
//! - [`http`], [`mqtt`]: the two load drivers
//! - [`verify`]: counts what reached the tables (Query with `Select: COUNT`)
//! - [`summary`]: the end-of-run table and JSON summary
//! - [`scenario`], [`harness`], [`sampler`], [`prom`], [`charts`], [`report`]:
//!   `loadgen run SCENARIO` (start dynamo-sim and the gateway, sample them
//!   every second, write a report directory)
//!
//! Invariant that makes `--verify` exact: every run has a unique run id that
//! prefixes every partition key it writes, every event gets a server-assigned
//! (unique) sort key or a unique one of its own (cart `item_id`), so the
//! number of items stored under the run's keys equals the number of events
//! the gateway acknowledged, unless one was lost.

pub mod charts;
pub mod events;
pub mod harness;
pub mod http;
pub mod keys;
pub mod mqtt;
pub mod pacing;
pub mod prom;
pub mod recorder;
pub mod report;
pub mod sampler;
pub mod scenario;
pub mod spec;
pub mod summary;
pub mod verify;

use std::future::Future;
use std::time::Duration;

use spec::{LoadSpec, Mode};
use summary::Summary;

/// Live view of a running load, for the progress bar and the sampler.
pub use recorder::Live;

/// Runs one load as described by `spec` against its target, then verifies
/// if asked. `live` is updated while it runs.
pub async fn run_load(spec: &LoadSpec, live: &Live) -> anyhow::Result<Summary> {
    let mut summary = match spec.mode {
        Mode::Http => http::run(spec, live).await?,
        Mode::Mqtt => mqtt::run(spec, live).await?,
    };
    if spec.verify {
        let endpoint = spec
            .dynamodb_endpoint
            .as_deref()
            .ok_or_else(|| anyhow::anyhow!("--verify needs --dynamodb-endpoint"))?;
        summary.verify = Some(verify::verify(spec, endpoint, summary.acked).await?);
    }
    Ok(summary)
}

/// Polls `probe` every `every` until it returns `Some` or `deadline` passes.
pub async fn poll_until<T, F, Fut>(deadline: Duration, every: Duration, mut probe: F) -> Option<T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let end = tokio::time::Instant::now() + deadline;
    loop {
        if let Some(v) = probe().await {
            return Some(v);
        }
        if tokio::time::Instant::now() + every > end {
            return None;
        }
        tokio::time::sleep(every).await;
    }
}

/// An indicatif bar over the run's duration showing live counts, refreshed
/// by a background task until the bar is finished (None when `quiet`).
pub fn progress_bar(spec: &LoadSpec, live: &Live) -> Option<indicatif::ProgressBar> {
    if spec.quiet {
        return None;
    }
    let total = spec.duration.as_millis() as u64;
    let bar = indicatif::ProgressBar::new(total);
    if let Ok(style) =
        indicatif::ProgressStyle::with_template("{elapsed_precise} [{bar:30}] {percent:>3}% {msg}")
    {
        bar.set_style(style.progress_chars("=> "));
    }
    let (b, l) = (bar.clone(), live.clone());
    tokio::spawn(async move {
        let start = tokio::time::Instant::now();
        let mut last = (0u64, start);
        while !b.is_finished() {
            tokio::time::sleep(Duration::from_millis(250)).await;
            let s = l.snapshot();
            let now = tokio::time::Instant::now();
            let rate = (s.acked - last.0) as f64 / (now - last.1).as_secs_f64().max(1e-3);
            last = (s.acked, now);
            b.set_position((now - start).as_millis() as u64);
            b.set_message(format!(
                "sent {}  acked {}  errors {}  {:.0} ev/s",
                s.sent, s.acked, s.errors, rate
            ));
        }
    });
    Some(bar)
}
