//! Every metric name, defined once, and the pre-resolved handles the hot
//! paths use (no registry lookup per event).
//!
//! All families are registered at start-up with their label sets at zero,
//! so dashboards and alerts see them before the first event. Labels have
//! bounded cardinality: stream, table, source, and fixed reason/outcome/cause
//! sets, never a device id or a topic.

use std::collections::HashMap;
use std::sync::Arc;

use metrics::{
    counter, describe_counter, describe_gauge, describe_histogram, gauge, histogram, Counter,
    Gauge, Histogram, Unit,
};

pub const EVENTS_RECEIVED: &str = "dynamo_ingest_events_received_total";
pub const EVENTS_REJECTED: &str = "dynamo_ingest_events_rejected_total";
pub const QUEUE_DEPTH: &str = "dynamo_ingest_queue_depth";
pub const QUEUE_BYTES: &str = "dynamo_ingest_queue_bytes";
pub const BATCHES: &str = "dynamo_ingest_batches_total";
pub const BATCH_ITEMS: &str = "dynamo_ingest_batch_items";
pub const BATCH_COLLAPSED: &str = "dynamo_ingest_batch_collapsed_items_total";
pub const ITEMS_WRITTEN: &str = "dynamo_ingest_items_written_total";
pub const WCU_CONSUMED: &str = "dynamo_ingest_wcu_consumed_total";
pub const UNPROCESSED_ITEMS: &str = "dynamo_ingest_unprocessed_items_total";
pub const THROTTLED_REQUESTS: &str = "dynamo_ingest_throttled_requests_total";
pub const RETRIES: &str = "dynamo_ingest_retries_total";
pub const DEAD_LETTER_ITEMS: &str = "dynamo_ingest_dead_letter_items_total";
pub const RATE_LIMIT_WCU: &str = "dynamo_ingest_rate_limit_wcu";
pub const RATE_LIMIT_WAIT: &str = "dynamo_ingest_rate_limit_wait_microseconds_total";
pub const RATE_CEILING_WCU: &str = "dynamo_ingest_rate_ceiling_wcu";
pub const ITEMS_SENT: &str = "dynamo_ingest_items_sent_total";
pub const WRITE_LATENCY: &str = "dynamo_ingest_write_latency_seconds";
pub const END_TO_END_LATENCY: &str = "dynamo_ingest_end_to_end_latency_seconds";
pub const IN_FLIGHT: &str = "dynamo_ingest_requests_in_flight";
pub const CONCURRENCY_LIMIT: &str = "dynamo_ingest_concurrency_limit";
pub const PARKED_ITEMS: &str = "dynamo_ingest_writer_parked_items";
pub const HTTP_REQUESTS: &str = "dynamo_ingest_http_requests_total";
pub const HTTP_REJECTED: &str = "dynamo_ingest_http_requests_rejected_total";
pub const HTTP_CONNECTIONS: &str = "dynamo_ingest_http_connections";
pub const CONFIG_RELOADS: &str = "dynamo_ingest_config_reloads_total";
pub const MQTT_CONNECTIONS: &str = "dynamo_ingest_mqtt_connections";
pub const MQTT_UNROUTABLE: &str = "dynamo_ingest_mqtt_messages_unroutable_total";
pub const MQTT_MESSAGES: &str = "dynamo_ingest_mqtt_messages_received_total";
pub const MQTT_REJECTED: &str = "dynamo_ingest_mqtt_rejected_total";
pub const MQTT_LINK_LAG: &str = "dynamo_ingest_mqtt_link_lag_messages";
pub const MQTT_HANDOFF_DEPTH: &str = "dynamo_ingest_mqtt_handoff_messages";
pub const MQTT_HANDOFF_BYTES: &str = "dynamo_ingest_mqtt_handoff_bytes";
pub const MQTT_PAUSED: &str = "dynamo_ingest_mqtt_connections_paused";
pub const MQTT_DEAD_LETTERS: &str = "dynamo_ingest_mqtt_dead_letters_total";

pub const SPOOL_BYTES: &str = "dynamo_ingest_spool_bytes";
pub const SPOOL_RECORDS: &str = "dynamo_ingest_spool_records";
pub const SPOOL_OLDEST_AGE: &str = "dynamo_ingest_spool_oldest_record_age_seconds";
pub const SPOOL_FSYNC: &str = "dynamo_ingest_spool_fsync_seconds";
pub const SPOOL_APPENDED: &str = "dynamo_ingest_spool_appended_bytes_total";
pub const SPOOL_REPLAYED: &str = "dynamo_ingest_spool_replayed_records_total";
pub const SPOOL_DAMAGED: &str = "dynamo_ingest_spool_damaged_records_total";
pub const SPOOL_FULL: &str = "dynamo_ingest_spool_full_total";
/// What recovery found wrong with a record (`spool_damaged_records_total{kind}`):
/// a bad checksum skipped alone, or a torn/unparsable tail cut off.
pub const SPOOL_DAMAGE_KINDS: [&str; 2] = ["corrupted", "torn_tail"];

/// Sources of events (the `source` label).
pub const SOURCES: [&str; 2] = ["http", "mqtt"];
/// Reasons an event is rejected before it is acknowledged.
pub const REJECT_REASONS: [&str; 12] = [
    "malformed",
    "not_an_object",
    "missing_key",
    "mistyped_key",
    "empty_key",
    "key_too_long",
    "bad_field",
    "item_too_large",
    "body_too_large",
    "unsupported_media_type",
    "queue_full",
    "spool_full",
];
/// Why the MQTT front closed a device connection (`mqtt_rejected_total{reason}`).
pub const MQTT_REJECT_REASONS: [&str; 11] = [
    "auth",
    "acl",
    "oversize",
    "bad_topic",
    "reserved_topic",
    "malformed_packet",
    "protocol",
    "connect_timeout",
    "connection_limit",
    "tls_handshake",
    "spool_unavailable",
];
/// Why an acknowledged MQTT message went to the dead-letter file.
pub const MQTT_DEAD_LETTER_REASONS: [&str; 6] = [
    "unroutable",
    "shutdown_deadline",
    "malformed",
    "not_an_object",
    "invalid_event",
    "too_many_events",
];
/// Why the HTTP listener refused a request or cut a connection (the
/// `reason` label of `http_requests_rejected_total`): counted per request
/// or connection, since a refused body is never decoded into events.
/// `spool_unavailable` is the exception: a `spooled` request whose record
/// could not be fsynced (its events are queued and likely written, but it
/// was answered 503).
pub const HTTP_REJECT_REASONS: [&str; 9] = [
    "unauthorized",
    "forbidden",
    "rate_limited",
    "too_many_events",
    "body_timeout",
    "header_timeout",
    "tls_handshake",
    "headers_too_large",
    "spool_unavailable",
];
/// What SIGHUP re-reads (the `what` label of `config_reloads_total`).
pub const RELOAD_TARGETS: [&str; 3] = ["http_tls", "mqtt_tls", "api_keys"];
/// How a reload ended (the `outcome` label of `config_reloads_total`).
pub const RELOAD_OUTCOMES: [&str; 2] = ["ok", "failed"];
/// Outcomes of one BatchWriteItem call.
pub const BATCH_OUTCOMES: [&str; 6] = [
    "ok",
    "partial",
    "throttled",
    "retriable",
    "validation",
    "fatal",
];
/// Throttling signals.
pub const THROTTLE_REASONS: [&str; 4] = [
    "provisioned_throughput_exceeded",
    "throttling",
    "request_limit_exceeded",
    "key_range",
];
/// Why a write was retried.
pub const RETRY_CAUSES: [&str; 6] = [
    "unprocessed",
    "throttled",
    "server_error",
    "timeout",
    "connection",
    "fatal",
];
/// Why an item went to the dead-letter file.
pub const DEAD_LETTER_REASONS: [&str; 3] = ["validation", "fatal", "shutdown_deadline"];

/// Latency buckets (seconds) for the histograms: sub-millisecond for the
/// request path, up to 5 minutes for end-to-end latency through a full
/// queue or spool (finer between 10 s and 60 s, where a throttled table's
/// backlog puts it).
pub const LATENCY_BUCKETS: [f64; 20] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 15.0,
    20.0, 30.0, 45.0, 60.0, 300.0,
];

/// Describes every family and registers the label-less ones.
pub fn describe() {
    describe_counter!(
        EVENTS_RECEIVED,
        "Events accepted (acknowledged) per stream and source."
    );
    describe_counter!(
        EVENTS_REJECTED,
        "Events refused before acknowledgement, by reason."
    );
    describe_gauge!(
        QUEUE_DEPTH,
        "Items accepted and not yet handed to the writer."
    );
    describe_gauge!(
        QUEUE_BYTES,
        Unit::Bytes,
        "Bytes accepted and not yet handed to the writer."
    );
    describe_counter!(BATCHES, "BatchWriteItem calls by outcome.");
    describe_histogram!(BATCH_ITEMS, "Items per BatchWriteItem call (batch fill).");
    describe_counter!(
        BATCH_COLLAPSED,
        "Writes replaced by a later write of the same key in one batch."
    );
    describe_counter!(ITEMS_WRITTEN, "Items DynamoDB confirmed.");
    describe_counter!(
        WCU_CONSUMED,
        "Write capacity units DynamoDB reported as consumed."
    );
    describe_counter!(
        UNPROCESSED_ITEMS,
        "Items DynamoDB returned in UnprocessedItems."
    );
    describe_counter!(
        THROTTLED_REQUESTS,
        "BatchWriteItem calls refused for throttling, by reason."
    );
    describe_counter!(RETRIES, "Writes retried, by cause.");
    describe_counter!(
        DEAD_LETTER_ITEMS,
        "Items written to the dead-letter file, by reason."
    );
    describe_gauge!(
        RATE_LIMIT_WCU,
        "Current write rate limit in WCU/s (0 = unlimited)."
    );
    describe_counter!(
        RATE_LIMIT_WAIT,
        "Time BatchWriteItem calls waited for WCU tokens, microseconds (summed over calls)."
    );
    describe_gauge!(
        RATE_CEILING_WCU,
        "The table's provisioned WCU as DescribeTable last reported it (0 = on-demand or unknown)."
    );
    describe_counter!(
        ITEMS_SENT,
        "Items sent in BatchWriteItem calls, re-sends included (unprocessed share = unprocessed_items_total / this)."
    );
    describe_histogram!(WRITE_LATENCY, Unit::Seconds, "BatchWriteItem call latency.");
    describe_histogram!(
        END_TO_END_LATENCY,
        Unit::Seconds,
        "From receipt of an event to DynamoDB's confirmation."
    );
    describe_gauge!(IN_FLIGHT, "BatchWriteItem calls in flight.");
    describe_gauge!(
        CONCURRENCY_LIMIT,
        "Learned limit of BatchWriteItem calls in flight."
    );
    describe_gauge!(
        PARKED_ITEMS,
        "Items of batches backing off from unprocessed items or throttling outside the in-flight slots (bounded by max_parked_items)."
    );
    describe_counter!(HTTP_REQUESTS, "HTTP requests by status class.");
    describe_counter!(
        HTTP_REJECTED,
        "HTTP requests refused (auth, client rate limit) or connections cut (timeouts, TLS), by reason."
    );
    describe_gauge!(HTTP_CONNECTIONS, "Open HTTP connections.");
    describe_gauge!(MQTT_CONNECTIONS, "Connected MQTT clients.");
    describe_counter!(
        MQTT_UNROUTABLE,
        "MQTT messages whose topic matches no stream."
    );
    describe_counter!(
        MQTT_MESSAGES,
        "PUBLISH packets the MQTT front forwarded to the broker, by QoS."
    );
    describe_counter!(
        MQTT_REJECTED,
        "MQTT connections the front closed, by reason (the offending packet is never acknowledged)."
    );
    describe_gauge!(
        MQTT_LINK_LAG,
        "Messages forwarded to the embedded broker but not yet received by the gateway's link."
    );
    describe_gauge!(
        MQTT_HANDOFF_DEPTH,
        "Acknowledged MQTT messages waiting for the pipeline."
    );
    describe_gauge!(
        MQTT_HANDOFF_BYTES,
        "Bytes of acknowledged MQTT messages waiting for the pipeline (reads pause above mqtt.overflow_max_bytes)."
    );
    describe_gauge!(
        MQTT_PAUSED,
        "MQTT connections not being read because the pipeline is saturated."
    );
    describe_counter!(
        MQTT_DEAD_LETTERS,
        "Acknowledged MQTT messages written to the dead-letter file, by reason."
    );
    gauge!(MQTT_CONNECTIONS).set(0.0);
    counter!(MQTT_UNROUTABLE).increment(0);
    for qos in ["0", "1", "2"] {
        counter!(MQTT_MESSAGES, "qos" => qos).increment(0);
    }
    for reason in MQTT_REJECT_REASONS {
        counter!(MQTT_REJECTED, "reason" => reason).increment(0);
    }
    for reason in MQTT_DEAD_LETTER_REASONS {
        counter!(MQTT_DEAD_LETTERS, "reason" => reason).increment(0);
    }
    gauge!(MQTT_LINK_LAG).set(0.0);
    gauge!(MQTT_HANDOFF_DEPTH).set(0.0);
    gauge!(MQTT_HANDOFF_BYTES).set(0.0);
    gauge!(MQTT_PAUSED).set(0.0);
    gauge!(HTTP_CONNECTIONS).set(0.0);
    for reason in HTTP_REJECT_REASONS {
        counter!(HTTP_REJECTED, "reason" => reason).increment(0);
    }
    for class in ["2xx", "4xx", "5xx"] {
        counter!(HTTP_REQUESTS, "class" => class).increment(0);
    }
    describe_counter!(
        CONFIG_RELOADS,
        "SIGHUP reloads of TLS certificates and API keys, by what and outcome (a failed one keeps the previous)."
    );
    for what in RELOAD_TARGETS {
        for outcome in RELOAD_OUTCOMES {
            counter!(CONFIG_RELOADS, "what" => what, "outcome" => outcome).increment(0);
        }
    }
}

/// Counts one SIGHUP reload of `what` (one of [`RELOAD_TARGETS`]).
pub fn count_reload(what: &'static str, ok: bool) {
    let outcome = if ok { "ok" } else { "failed" };
    counter!(CONFIG_RELOADS, "what" => what, "outcome" => outcome).increment(1);
}

/// Handles for one stream.
#[derive(Debug, Clone)]
pub struct StreamMetrics {
    /// `events_received_total`, one per entry of [`SOURCES`].
    received: [Counter; SOURCES.len()],
}

impl StreamMetrics {
    pub fn register(stream: &str) -> Self {
        for source in SOURCES {
            for reason in REJECT_REASONS {
                counter!(EVENTS_REJECTED, "stream" => stream.to_owned(), "source" => source, "reason" => reason).increment(0);
            }
        }
        let received = SOURCES.map(
            |source| counter!(EVENTS_RECEIVED, "stream" => stream.to_owned(), "source" => source),
        );
        for c in &received {
            c.increment(0);
        }
        // The stream's end-to-end latency histogram lives with its table's
        // handles (the writer records it).
        Self { received }
    }

    /// Counts `n` events of this stream acknowledged from `source`.
    pub fn received(&self, source: &str, n: u64) {
        if let Some(i) = SOURCES.iter().position(|s| *s == source) {
            self.received[i].increment(n);
        }
    }

    /// Counts `n` events of this stream refused for `reason`.
    pub fn rejected(stream: &str, source: &'static str, reason: &'static str, n: u64) {
        counter!(EVENTS_REJECTED, "stream" => stream.to_owned(), "source" => source, "reason" => reason).increment(n);
    }
}

/// Handles for one table.
#[derive(Debug, Clone)]
pub struct TableMetrics {
    pub table: String,
    pub queue_depth: Gauge,
    pub queue_bytes: Gauge,
    pub batch_items: Histogram,
    pub collapsed: Counter,
    pub written: Counter,
    pub wcu: Counter,
    pub unprocessed: Counter,
    pub write_latency: Histogram,
    pub in_flight: Gauge,
    pub rate_limit: Gauge,
    pub concurrency_limit: Gauge,
    pub parked_items: Gauge,
    pub rate_wait: Counter,
    pub rate_ceiling: Gauge,
    pub items_sent: Counter,
    end_to_end: HashMap<Arc<str>, Histogram>,
}

impl TableMetrics {
    /// Registers the table's families; `streams` are the streams writing it.
    pub fn register(table: &str, streams: &[Arc<str>]) -> Self {
        let t = || table.to_owned();
        for outcome in BATCH_OUTCOMES {
            counter!(BATCHES, "table" => t(), "outcome" => outcome).increment(0);
        }
        for reason in THROTTLE_REASONS {
            counter!(THROTTLED_REQUESTS, "table" => t(), "reason" => reason).increment(0);
        }
        for cause in RETRY_CAUSES {
            counter!(RETRIES, "table" => t(), "cause" => cause).increment(0);
        }
        for reason in DEAD_LETTER_REASONS {
            counter!(DEAD_LETTER_ITEMS, "table" => t(), "reason" => reason).increment(0);
        }
        gauge!(RATE_LIMIT_WCU, "table" => t()).set(0.0);
        let m = Self {
            table: t(),
            queue_depth: gauge!(QUEUE_DEPTH, "table" => t()),
            queue_bytes: gauge!(QUEUE_BYTES, "table" => t()),
            batch_items: histogram!(BATCH_ITEMS, "table" => t()),
            collapsed: counter!(BATCH_COLLAPSED, "table" => t()),
            written: counter!(ITEMS_WRITTEN, "table" => t()),
            wcu: counter!(WCU_CONSUMED, "table" => t()),
            unprocessed: counter!(UNPROCESSED_ITEMS, "table" => t()),
            write_latency: histogram!(WRITE_LATENCY, "table" => t()),
            in_flight: gauge!(IN_FLIGHT, "table" => t()),
            rate_limit: gauge!(RATE_LIMIT_WCU, "table" => t()),
            concurrency_limit: gauge!(CONCURRENCY_LIMIT, "table" => t()),
            parked_items: gauge!(PARKED_ITEMS, "table" => t()),
            rate_wait: counter!(RATE_LIMIT_WAIT, "table" => t()),
            rate_ceiling: gauge!(RATE_CEILING_WCU, "table" => t()),
            items_sent: counter!(ITEMS_SENT, "table" => t()),
            end_to_end: streams
                .iter()
                .map(|s| {
                    (
                        s.clone(),
                        histogram!(END_TO_END_LATENCY, "stream" => s.to_string()),
                    )
                })
                .collect(),
        };
        m.queue_depth.set(0.0);
        m.queue_bytes.set(0.0);
        m.collapsed.increment(0);
        m.written.increment(0);
        m.wcu.increment(0);
        m.unprocessed.increment(0);
        m.in_flight.set(0.0);
        m.rate_wait.increment(0);
        m.concurrency_limit.set(0.0);
        m.parked_items.set(0.0);
        m.rate_ceiling.set(0.0);
        m.items_sent.increment(0);
        m
    }

    /// Records the end-to-end latencies of written items (see
    /// [`LatencyRecorder`]).
    pub fn latency_recorder(&self) -> LatencyRecorder<'_> {
        LatencyRecorder {
            metrics: self,
            last: None,
        }
    }

    /// The end-to-end latency histogram of `stream`.
    fn end_to_end_for(&self, stream: &str) -> Histogram {
        self.end_to_end
            .get(stream)
            .cloned()
            .unwrap_or_else(|| histogram!(END_TO_END_LATENCY, "stream" => stream.to_owned()))
    }

    pub fn batch(&self, outcome: &'static str) {
        counter!(BATCHES, "table" => self.table.clone(), "outcome" => outcome).increment(1);
    }

    pub fn throttled(&self, reason: &'static str) {
        counter!(THROTTLED_REQUESTS, "table" => self.table.clone(), "reason" => reason)
            .increment(1);
    }

    pub fn retry(&self, cause: &'static str) {
        counter!(RETRIES, "table" => self.table.clone(), "cause" => cause).increment(1);
    }

    pub fn dead_lettered(&self, reason: &'static str, n: u64) {
        counter!(DEAD_LETTER_ITEMS, "table" => self.table.clone(), "reason" => reason).increment(n);
    }
}

/// Handles of the disk spool (registered at zero even when it is off).
#[derive(Debug, Clone)]
pub struct SpoolMetrics {
    pub bytes: Gauge,
    pub records: Gauge,
    pub oldest_age: Gauge,
    pub fsync: Histogram,
    pub appended_bytes: Counter,
    pub replayed: Counter,
    pub full: Counter,
    pub corrupted: Counter,
    pub torn_tail: Counter,
}

impl SpoolMetrics {
    pub fn register() -> Self {
        describe_gauge!(
            SPOOL_BYTES,
            Unit::Bytes,
            "Disk bytes of the spool's segment files."
        );
        describe_gauge!(
            SPOOL_RECORDS,
            "Spool records not yet released (written or dead-lettered)."
        );
        describe_gauge!(
            SPOOL_OLDEST_AGE,
            Unit::Seconds,
            "Age of the oldest segment holding an unreleased record."
        );
        describe_histogram!(
            SPOOL_FSYNC,
            Unit::Seconds,
            "Spool fsync latency (one per group of appends)."
        );
        describe_counter!(
            SPOOL_APPENDED,
            Unit::Bytes,
            "Bytes appended to the spool (frames)."
        );
        describe_counter!(
            SPOOL_REPLAYED,
            "Spool records replayed into the queues at start-up."
        );
        describe_counter!(
            SPOOL_DAMAGED,
            "Spool records found damaged at start-up, by kind."
        );
        describe_counter!(
            SPOOL_FULL,
            "Appends refused because the spool was at max_bytes."
        );
        let m = Self {
            bytes: gauge!(SPOOL_BYTES),
            records: gauge!(SPOOL_RECORDS),
            oldest_age: gauge!(SPOOL_OLDEST_AGE),
            fsync: histogram!(SPOOL_FSYNC),
            appended_bytes: counter!(SPOOL_APPENDED),
            replayed: counter!(SPOOL_REPLAYED),
            full: counter!(SPOOL_FULL),
            corrupted: counter!(SPOOL_DAMAGED, "kind" => SPOOL_DAMAGE_KINDS[0]),
            torn_tail: counter!(SPOOL_DAMAGED, "kind" => SPOOL_DAMAGE_KINDS[1]),
        };
        m.bytes.set(0.0);
        m.records.set(0.0);
        m.oldest_age.set(0.0);
        for c in [
            &m.appended_bytes,
            &m.replayed,
            &m.full,
            &m.corrupted,
            &m.torn_tail,
        ] {
            c.increment(0);
        }
        m
    }
}

/// Records items' end-to-end latencies into their stream's histogram,
/// looking the histogram up once per run of items of one stream (a batch
/// usually holds one stream), not once per item: the lookup hashed the
/// stream name and cloned the handle, ≈ 190 instructions per item.
pub struct LatencyRecorder<'a> {
    metrics: &'a TableMetrics,
    last: Option<(Arc<str>, Histogram)>,
}

impl LatencyRecorder<'_> {
    pub fn record(&mut self, stream: &Arc<str>, seconds: f64) {
        if self.last.as_ref().is_none_or(|(s, _)| s != stream) {
            self.last = Some((stream.clone(), self.metrics.end_to_end_for(stream)));
        }
        if let Some((_, histogram)) = &self.last {
            histogram.record(seconds);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn latencies_go_to_their_streams_histogram_in_runs_and_alone() {
        let recorder = metrics_exporter_prometheus::PrometheusBuilder::new().build_recorder();
        let handle = recorder.handle();
        metrics::with_local_recorder(&recorder, || {
            let (a, b, c): (Arc<str>, Arc<str>, Arc<str>) = ("a".into(), "b".into(), "c".into());
            let table = TableMetrics::register("T", &[a.clone(), b.clone()]);
            let mut latencies = table.latency_recorder();
            // Runs, a stream coming back, one not registered, and an equal
            // name in another allocation (a replayed item's).
            let other_a: Arc<str> = "a".into();
            for stream in [&a, &a, &b, &a, &c, &other_a, &b] {
                latencies.record(stream, 0.25);
            }
        });
        let text = handle.render();
        let count = |stream: &str| {
            let prefix = format!("{END_TO_END_LATENCY}_count{{stream=\"{stream}\"}} ");
            text.lines()
                .find_map(|l| l.strip_prefix(prefix.as_str()))
                .map(str::to_owned)
        };
        assert_eq!(count("a").as_deref(), Some("4"), "{text}");
        assert_eq!(count("b").as_deref(), Some("2"), "{text}");
        assert_eq!(count("c").as_deref(), Some("1"), "{text}");
    }
}
