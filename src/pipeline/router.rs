//! The stream router: decoded events → items of the stream's table → the
//! table's bounded queue.
//!
//! Here a request becomes an all-or-nothing unit: every event is mapped and
//! checked first (the first bad one rejects the request, naming its
//! position); then sort keys and TTL are assigned and the whole set is
//! admitted to the queue or refused as a whole (503). Only after that does
//! the source acknowledge.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use aws_sdk_dynamodb::types::AttributeValue;
use serde_json::Value;

use super::ack::Ack;
use super::clock::SortClock;
use super::queue::{QueueFull, QueueSender};
use crate::config::StreamSpec;
use crate::event::map::{self, MapError};
use crate::event::size::{self, MAX_ITEM_BYTES};
use crate::event::Item;
use crate::telemetry::metrics::StreamMetrics;

/// Why a request was refused.
#[derive(Debug, thiserror::Error)]
pub enum IngestError {
    #[error("unknown stream `{0}`")]
    UnknownStream(String),
    #[error("event {index}: {error}")]
    Invalid { index: usize, error: MapError },
    #[error("the request holds {0} events, more than the queue can ever hold")]
    TooManyEvents(usize),
    #[error("the queue for this stream is full")]
    QueueFull,
}

/// A request the pipeline took.
#[derive(Debug)]
pub struct Accepted {
    pub count: usize,
    /// Present when the request asked for `ack=written`.
    pub ack: Option<Arc<Ack>>,
}

/// One stream's route.
#[derive(Debug)]
pub struct StreamRoute {
    pub spec: StreamSpec,
    queue: Arc<QueueSender>,
    clock: Arc<SortClock>,
    pub metrics: StreamMetrics,
}

/// All streams, by name. Dropping the last clone closes the queues.
#[derive(Debug)]
pub struct Router {
    streams: HashMap<Arc<str>, StreamRoute>,
}

impl Router {
    /// Builds routes; `queues` and `clocks` are per table name.
    pub fn new(
        streams: &[StreamSpec],
        queues: &HashMap<String, Arc<QueueSender>>,
        clocks: &HashMap<String, Arc<SortClock>>,
    ) -> Self {
        let streams = streams
            .iter()
            .filter_map(|s| {
                let route = StreamRoute {
                    spec: s.clone(),
                    queue: queues.get(&s.table.name)?.clone(),
                    clock: clocks.get(&s.table.name)?.clone(),
                    metrics: StreamMetrics::register(&s.name),
                };
                Some((s.name.clone(), route))
            })
            .collect();
        Self { streams }
    }

    pub fn stream(&self, name: &str) -> Option<&StreamRoute> {
        self.streams.get(name)
    }

    pub fn streams(&self) -> impl Iterator<Item = &StreamRoute> {
        self.streams.values()
    }

    /// Maps and enqueues one request's events, all or nothing.
    pub fn ingest(
        &self,
        stream: &str,
        events: Vec<Value>,
        context: &[(String, String)],
        wait_written: bool,
        source: &'static str,
    ) -> Result<Accepted, IngestError> {
        self.ingest_inner(stream, events, context, wait_written, source, false)
    }

    /// Like [`Router::ingest`] for a message the source holds until the
    /// queue takes it (MQTT): a full queue is not counted as a rejection,
    /// the caller retries.
    pub fn offer(
        &self,
        stream: &str,
        events: Vec<Value>,
        context: &[(String, String)],
        wait_written: bool,
        source: &'static str,
    ) -> Result<Accepted, IngestError> {
        self.ingest_inner(stream, events, context, wait_written, source, true)
    }

    fn ingest_inner(
        &self,
        stream: &str,
        events: Vec<Value>,
        context: &[(String, String)],
        wait_written: bool,
        source: &'static str,
        held: bool,
    ) -> Result<Accepted, IngestError> {
        let route = self
            .streams
            .get(stream)
            .ok_or_else(|| IngestError::UnknownStream(stream.to_owned()))?;
        let result = route.ingest(events, context, wait_written);
        if let Err(e) = &result {
            let (reason, n) = match e {
                IngestError::Invalid { error, .. } => (error.reason(), 1),
                // A held message (MQTT) is retried, not rejected.
                IngestError::QueueFull if held => return result,
                IngestError::QueueFull | IngestError::TooManyEvents(_) => ("queue_full", 1),
                IngestError::UnknownStream(_) => return result,
            };
            StreamMetrics::rejected(stream, source, reason, n);
        } else if let Ok(a) = &result {
            route.metrics.received(source, a.count as u64);
        }
        result
    }
}

impl StreamRoute {
    fn ingest(
        &self,
        events: Vec<Value>,
        context: &[(String, String)],
        wait_written: bool,
    ) -> Result<Accepted, IngestError> {
        let count = events.len();
        if count > self.queue.capacity_items() {
            return Err(IngestError::TooManyEvents(count));
        }
        let now = Instant::now();
        let ack = wait_written.then(|| Arc::new(Ack::new(count)));
        let ttl_value = self.spec.ttl.map(|ttl| {
            let now_s = SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map(|d| d.as_secs())
                .unwrap_or(0);
            (now_s + ttl.as_secs()).to_string()
        });
        let mut items = Vec::with_capacity(count);
        for (index, event) in events.into_iter().enumerate() {
            let mapped = map::map_event(&self.spec, event, context)
                .map_err(|error| IngestError::Invalid { index, error })?;
            let mut attrs = mapped.attrs;
            if mapped.needs_sort_key {
                if let Some(sk) = &self.spec.table.sort_key {
                    // Normalized, so `1` and `1.0` share one sequence.
                    let partition = map::key_id(&attrs, &self.spec.partition_key, None);
                    let stamp = self.clock.assign(&partition, now);
                    attrs.insert(sk.name.clone(), AttributeValue::N(stamp.to_string()));
                }
            }
            if let Some(ttl) = &ttl_value {
                attrs
                    .entry(self.spec.ttl_attribute.clone())
                    .or_insert_with(|| AttributeValue::N(ttl.clone()));
            }
            let size = size::item_size(&attrs);
            if size > MAX_ITEM_BYTES {
                return Err(IngestError::Invalid {
                    index,
                    error: MapError::TooLarge(size),
                });
            }
            let key = map::key_id(
                &attrs,
                &self.spec.partition_key,
                self.spec.table.sort_key.as_ref(),
            );
            items.push(Item {
                attrs,
                key,
                size: size as u32,
                stream: self.spec.name.clone(),
                received: now,
                acks: ack.iter().cloned().collect(),
            });
        }
        self.queue
            .try_push(items)
            .map_err(|QueueFull| IngestError::QueueFull)?;
        Ok(Accepted { count, ack })
    }
}
