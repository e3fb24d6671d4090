//! Log output: tracing to stderr, filtered by `RUST_LOG` (default `info`).
//! Stdout is reserved for the one-line readiness announcement. Colours only
//! on a terminal.
//!
//! The embedded broker (rumqttd) opens an ERROR-level span per PUBLISH with
//! the topic as a field; a subscriber that lets it through formats that
//! field for every message (it was a fifth of the broker thread's CPU). Its
//! spans are therefore never enabled; its events (warnings about dropped
//! segments, errors) still are, per `RUST_LOG`.

use std::io::IsTerminal;

use tracing::Metadata;
use tracing_subscriber::filter::{filter_fn, FilterExt, FilterFn};
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{EnvFilter, Layer};

/// Installs the global subscriber (once; later calls are ignored).
pub fn init() {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| {
        EnvFilter::new("info,aws_config=warn,aws_smithy_runtime=warn,rumqttd=warn")
    });
    let layer = tracing_subscriber::fmt::layer()
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .with_target(false)
        .with_filter(filter.and(no_broker_spans()));
    let _ = tracing_subscriber::registry().with(layer).try_init();
}

/// Refuses rumqttd's spans (decided once per call site), lets the rest by.
fn no_broker_spans() -> FilterFn<impl Fn(&Metadata<'_>) -> bool> {
    filter_fn(|m| !(m.is_span() && m.target().starts_with("rumqttd")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;
    use tracing::span;
    use tracing_subscriber::layer::Context;

    #[derive(Default, Clone)]
    struct Count {
        spans: Arc<AtomicUsize>,
        events: Arc<AtomicUsize>,
    }

    impl<S: tracing::Subscriber> Layer<S> for Count {
        fn on_new_span(&self, _: &span::Attributes<'_>, _: &span::Id, _: Context<'_, S>) {
            self.spans.fetch_add(1, Ordering::Relaxed);
        }
        fn on_event(&self, _: &tracing::Event<'_>, _: Context<'_, S>) {
            self.events.fetch_add(1, Ordering::Relaxed);
        }
    }

    #[test]
    fn broker_spans_are_off_and_its_events_and_other_spans_are_on() {
        let count = Count::default();
        let subscriber =
            tracing_subscriber::registry().with(count.clone().with_filter(no_broker_spans()));
        tracing::subscriber::with_default(subscriber, || {
            let s =
                tracing::error_span!(target: "rumqttd::router::routing", "publish", topic = ?"a/b");
            let _g = s.enter();
            tracing::warn!(target: "rumqttd::router::routing", "segment dropped");
            let _ours = tracing::info_span!(target: "dynamo_ingest::app", "ours").entered();
        });
        assert_eq!(count.spans.load(Ordering::Relaxed), 1, "only our own span");
        assert_eq!(
            count.events.load(Ordering::Relaxed),
            1,
            "the broker's warning"
        );
    }
}
