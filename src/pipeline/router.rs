//! The stream router: decoded events → items of the stream's table → the
//! table's bounded queue.
//!
//! Here a request becomes an all-or-nothing unit: every event is mapped and
//! checked first (the first bad one rejects the request, naming its
//! position); then sort keys and TTL are assigned and the whole set is
//! admitted to the queue or refused as a whole (503). Only after that does
//! the source acknowledge. A `spooled` request is also encoded as one spool
//! record: its bytes are admitted before the queue push (a full spool
//! refuses the request whole), and the record is handed to the spool's
//! appender right after it; the source answers once it is fsynced. When the
//! queue is full, or the table's overflow already holds records, a spooled
//! request's items do not go to the queue at all: its record waits on disk
//! in the table's overflow ([`super::spool::overflow`]) and the feeder
//! brings it in later, so the queue's bound is no longer the request's
//! limit, the spool's is. Other requests are refused as "queue full" while
//! the overflow holds anything (they would overtake it).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use super::ack::Ack;
use super::clock::SortClock;
use super::queue::{QueueFull, QueueSender};
use super::spool::codec;
use super::spool::feeder::Feeder;
use super::spool::overflow::Overflow;
use super::spool::{self, AppendWait, Spool};
use crate::config::{AckLevel, StreamSpec};
use crate::event::fields::Fields;
use crate::event::map::{self, MapError};
use crate::event::{Item, KeyHasher};
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
    #[error("the disk spool is full")]
    SpoolFull,
    #[error("ack=spooled needs the disk spool, which is off ([spool] enabled = false)")]
    SpoolDisabled,
}

/// A request the pipeline took.
#[derive(Debug)]
pub struct Accepted {
    pub count: usize,
    /// Present when the request asked for `ack=written`.
    pub ack: Option<Arc<Ack>>,
    /// Present when the request asked for `ack=spooled`: completes once its
    /// record is fsynced.
    pub spooled: Option<AppendWait>,
}

/// One stream's route.
#[derive(Debug)]
pub struct StreamRoute {
    pub spec: StreamSpec,
    queue: Arc<QueueSender>,
    clock: Arc<SortClock>,
    pub metrics: StreamMetrics,
    spool: Option<Spool>,
    /// The table's overflow (with the spool on).
    overflow: Option<Arc<Overflow>>,
}

/// All streams, by name (hashed with the hot path's foldhash: a request
/// looks its stream up two or three times). Dropping the last clone closes
/// the queues.
#[derive(Debug)]
pub struct Router {
    streams: HashMap<Arc<str>, StreamRoute, KeyHasher>,
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
                    spool: None,
                    overflow: None,
                };
                Some((s.name.clone(), route))
            })
            .collect();
        Self { streams }
    }

    /// Spools `spooled` requests into `spool`, with one overflow per table.
    pub fn with_spool(mut self, spool: Spool) -> Self {
        let mut overflows: HashMap<String, Arc<Overflow>> = HashMap::new();
        for route in self.streams.values_mut() {
            route.spool = Some(spool.clone());
            let overflow = overflows.entry(route.spec.table.name.clone()).or_default();
            route.overflow = Some(overflow.clone());
        }
        self
    }

    /// One feeder per table with an overflow (to be spawned by the caller).
    pub fn feeders(&self, metrics: &crate::telemetry::metrics::SpoolMetrics) -> Vec<Feeder> {
        let mut feeders: HashMap<&str, Feeder> = HashMap::new();
        for route in self.streams.values() {
            let (Some(overflow), Some(spool)) = (&route.overflow, &route.spool) else {
                continue;
            };
            let table = route.spec.table.name.as_str();
            feeders
                .entry(table)
                .or_insert_with(|| Feeder {
                    table: table.to_owned(),
                    overflow: overflow.clone(),
                    queue: route.queue.clone(),
                    streams: HashMap::new(),
                    dir: spool.dir().to_path_buf(),
                    metrics: metrics.clone(),
                })
                .streams
                .insert(route.spec.name.to_string(), route.spec.name.clone());
        }
        feeders.into_values().collect()
    }

    /// The overflow of `stream`'s table (start-up replay).
    pub fn overflow(&self, stream: &str) -> Option<&Arc<Overflow>> {
        self.streams.get(stream)?.overflow.as_ref()
    }

    /// Whether `ack=spooled` is available.
    pub fn has_spool(&self) -> bool {
        self.streams.values().any(|r| r.spool.is_some())
    }

    pub fn stream(&self, name: &str) -> Option<&StreamRoute> {
        self.streams.get(name)
    }

    pub fn streams(&self) -> impl Iterator<Item = &StreamRoute> {
        self.streams.values()
    }

    /// Refuses a request to `stream` whose table queue is full before its
    /// body is decoded (counted like any other `queue_full`); requests
    /// spooled to disk are not refused here.
    pub fn refuse_if_full(
        &self,
        stream: &str,
        ack_level: AckLevel,
        source: &'static str,
    ) -> Result<(), IngestError> {
        let Some(route) = self.streams.get(stream) else {
            return Ok(());
        };
        if ack_level == AckLevel::Spooled || route.queue.has_room(1) {
            return Ok(());
        }
        StreamMetrics::rejected(stream, source, "queue_full", 1);
        Err(IngestError::QueueFull)
    }

    /// Maps and enqueues one request's events, all or nothing.
    pub fn ingest(
        &self,
        stream: &str,
        events: Vec<Fields<'_>>,
        context: &[(&str, &str)],
        ack_level: AckLevel,
        source: &'static str,
    ) -> Result<Accepted, IngestError> {
        self.ingest_inner(stream, events, context, ack_level, source, false)
    }

    /// Like [`Router::ingest`] for a message the source holds until the
    /// queue takes it (MQTT): a full queue is not counted as a rejection,
    /// the caller retries.
    pub fn offer(
        &self,
        stream: &str,
        events: Vec<Fields<'_>>,
        context: &[(&str, &str)],
        ack_level: AckLevel,
        source: &'static str,
    ) -> Result<Accepted, IngestError> {
        self.ingest_inner(stream, events, context, ack_level, source, true)
    }

    fn ingest_inner(
        &self,
        stream: &str,
        events: Vec<Fields<'_>>,
        context: &[(&str, &str)],
        ack_level: AckLevel,
        source: &'static str,
        held: bool,
    ) -> Result<Accepted, IngestError> {
        let route = self
            .streams
            .get(stream)
            .ok_or_else(|| IngestError::UnknownStream(stream.to_owned()))?;
        let result = route.ingest(events, context, ack_level);
        if let Err(e) = &result {
            let (reason, n) = match e {
                IngestError::Invalid { error, .. } => (error.reason(), 1),
                // A held message (MQTT) is retried, not rejected.
                IngestError::QueueFull | IngestError::SpoolFull if held => return result,
                IngestError::QueueFull | IngestError::TooManyEvents(_) => ("queue_full", 1),
                IngestError::SpoolFull => ("spool_full", 1),
                IngestError::UnknownStream(_) | IngestError::SpoolDisabled => return result,
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
        events: Vec<Fields<'_>>,
        context: &[(&str, &str)],
        ack_level: AckLevel,
    ) -> Result<Accepted, IngestError> {
        let count = events.len();
        if count > self.queue.capacity_items() {
            return Err(IngestError::TooManyEvents(count));
        }
        // Spooled or not, a request never overtakes the table's overflow.
        let overflowing = self.overflow.as_ref().is_some_and(|o| o.waiting() > 0);
        if overflowing && ack_level != AckLevel::Spooled {
            return Err(IngestError::QueueFull);
        }
        let now = Instant::now();
        let spool = match (ack_level, &self.spool) {
            (AckLevel::Spooled, None) => return Err(IngestError::SpoolDisabled),
            (AckLevel::Spooled, Some(spool)) if count > 0 => Some(spool),
            _ => None,
        };
        // Refused before any mapping work when it cannot fit anyway (under
        // overload most requests end here, so this is the cheap path).
        if spool.is_none() && !self.queue.has_room(count) {
            return Err(IngestError::QueueFull);
        }
        let ticket = spool.map(|s| s.ticket());
        let ack = match &ticket {
            Some(t) => Some(Arc::new(Ack::spooled(count, t.clone()))),
            None => (ack_level == AckLevel::Written).then(|| Arc::new(Ack::new(count))),
        };
        let ttl_value = self.spec.ttl.map(|ttl| {
            let now_s = SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map(|d| d.as_secs())
                .unwrap_or(0);
            (now_s + ttl.as_secs()).to_string()
        });
        let stamp = |partition_hash: u64| self.clock.assign(partition_hash, now);
        let fill = map::Fill {
            stamp: &stamp,
            ttl: ttl_value
                .as_deref()
                .map(|v| (self.spec.ttl_attribute.as_str(), v)),
        };
        let mut items = Vec::with_capacity(count);
        for (index, event) in events.iter().enumerate() {
            let mapped = map::map_event(&self.spec, event, context, &fill)
                .map_err(|error| IngestError::Invalid { index, error })?;
            items.push(Item {
                text: mapped.text,
                size: mapped.size as u32,
                stream: self.spec.name.clone(),
                received: now,
                acks: ack.iter().cloned().collect(),
            });
        }
        let bytes: usize = items.iter().map(|i| i.size as usize).sum();
        if bytes > self.queue.capacity_bytes() {
            return Err(IngestError::TooManyEvents(count));
        }
        let spooled = match (spool, ticket) {
            (Some(spool), Some(ticket)) => {
                let payload = codec::encode(spool::ledger::now_ms(), &self.spec.name, &items);
                let reservation = spool
                    .reserve(payload.len())
                    .map_err(|_| IngestError::SpoolFull)?;
                let pushed = !overflowing && self.queue.push_or_return(items).is_ok();
                // Not in the queue: the record waits in the overflow.
                let overflow = self.overflow.clone().filter(|_| !pushed);
                if let Some(o) = &overflow {
                    o.admit();
                }
                Some(spool.submit(reservation, payload, ticket, overflow))
            }
            _ => {
                self.queue
                    .try_push(items)
                    .map_err(|QueueFull| IngestError::QueueFull)?;
                None
            }
        };
        let ack = ack.filter(|_| ack_level == AckLevel::Written);
        Ok(Accepted {
            count,
            ack,
            spooled,
        })
    }
}
