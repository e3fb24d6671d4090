//! MQTT messages → stream router. Shared by the embedded broker's front
//! (the PUBLISHes it takes itself), its link (retained and QoS 2 messages,
//! wills, from the hand-off) and the external-broker mode (messages from
//! rumqttc).
//!
//! A message's topic picks the stream (`mqtt_topic` templates; captured
//! segments fill key attributes); its payload is one JSON event or an array
//! of them, accepted or refused as a whole. A full queue (or a full spool)
//! never drops a message: it is held and offered again (`Outcome::Full`).
//! With `[spool] enabled` every message is spooled: the front PUBACKs once
//! the record is fsynced; for messages from the link, which rumqttd already
//! acknowledged, the append is not waited for. Messages that can never
//! become items are counted and written to the dead-letter file with the
//! reason.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use tokio_util::sync::CancellationToken;

use crate::pipeline::spool::AppendWait;

use crate::config::{AckLevel, StreamSpec};
use crate::event::template::{Captures, PathTemplate};
use crate::pipeline::ack::Ack;
use crate::pipeline::router::{IngestError, Router};
use crate::sink::dead_letter::{DeadLetter, RawDeadLetter};
use crate::sources::http::decode::{self, Format};
use crate::telemetry::metrics::StreamMetrics;

use super::handoff::Handoff;
use super::metrics::MqttMetrics;

/// Longest pause between two offers of a message to a full queue.
const MAX_HOLD_BACKOFF: Duration = Duration::from_millis(50);

/// The stream and the topic's captured segments (name, text), borrowed:
/// routing a message allocates nothing (up to four captures are inline).
pub type Route<'r, 't> = (&'r Arc<str>, Captures<'r, 't>);

/// Topic templates → stream names.
#[derive(Debug, Clone, Default)]
pub struct TopicRoutes {
    routes: Vec<(PathTemplate, Arc<str>)>,
}

impl TopicRoutes {
    pub fn new(streams: &[StreamSpec]) -> Self {
        Self {
            routes: streams
                .iter()
                .filter_map(|s| Some((s.mqtt_topic.clone()?, s.name.clone())))
                .collect(),
        }
    }

    /// Subscription filters covering every route (`sensors/+/telemetry`).
    pub fn filters(&self) -> Vec<String> {
        self.routes
            .iter()
            .map(|(t, _)| t.to_mqtt_filter())
            .collect()
    }

    /// The stream for `topic` and the captured segments.
    pub fn route<'t>(&self, topic: &'t str) -> Option<Route<'_, 't>> {
        self.routes
            .iter()
            .find_map(|(t, stream)| Some((stream, t.matches(topic)?)))
    }
}

/// What became of one message.
#[derive(Debug)]
pub enum Outcome {
    /// Queued. `written`: the handle that completes when DynamoDB confirmed
    /// its items (when asked for) and their count; `spooled`: completes
    /// once its spool record is fsynced (when the spool is on).
    Accepted {
        written: Option<(Arc<Ack>, usize)>,
        spooled: Option<AppendWait>,
    },
    /// Written to the dead-letter file (or logged if even that failed).
    DeadLettered,
    /// The stream's queue is full: offer it again later.
    Full,
}

/// Routes, decodes and offers messages to the router.
#[derive(Debug, Clone)]
pub struct MqttIngest {
    pub router: Arc<Router>,
    pub routes: TopicRoutes,
    pub dead_letter: DeadLetter,
    pub metrics: MqttMetrics,
}

impl MqttIngest {
    /// Offers one message once; `wait_written` asks for a handle that
    /// completes when DynamoDB confirmed its items.
    pub async fn offer(&self, topic: &str, payload: &[u8], wait_written: bool) -> Outcome {
        let Some((stream, context)) = self.routes.route(topic) else {
            self.metrics.unroutable.increment(1);
            return self
                .dead_letter(
                    topic,
                    None,
                    "unroutable",
                    "no stream's mqtt_topic matches".to_owned(),
                    payload,
                )
                .await;
        };
        let events = match decode::decode(payload, Format::Json) {
            Ok((events, _)) => events,
            Err(e) => {
                let reason = e.reason();
                StreamMetrics::rejected(stream, "mqtt", reason, 1);
                return self
                    .dead_letter(topic, Some(stream), reason, e.to_string(), payload)
                    .await;
            }
        };
        // With the spool on, every message is spooled: the disk is what
        // lets it survive a crash.
        let ack_level = if wait_written {
            AckLevel::Written
        } else if self.router.has_spool() {
            AckLevel::Spooled
        } else {
            AckLevel::Queued
        };
        match self
            .router
            .offer(stream, events, &context, ack_level, "mqtt")
        {
            Ok(a) => Outcome::Accepted {
                written: a.ack.map(|ack| (ack, a.count)),
                spooled: a.spooled,
            },
            Err(IngestError::QueueFull | IngestError::SpoolFull) => Outcome::Full,
            Err(e @ IngestError::TooManyEvents(_)) => {
                self.dead_letter(
                    topic,
                    Some(stream),
                    "too_many_events",
                    e.to_string(),
                    payload,
                )
                .await
            }
            Err(e) => {
                self.dead_letter(topic, Some(stream), "invalid_event", e.to_string(), payload)
                    .await
            }
        }
    }

    /// Offers one message until the pipeline takes it (or it is dead-lettered).
    pub async fn offer_until_taken(
        &self,
        topic: &str,
        payload: &[u8],
        wait_written: bool,
    ) -> Outcome {
        let mut backoff = Duration::from_millis(1);
        loop {
            match self.offer(topic, payload, wait_written).await {
                Outcome::Full => {
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(MAX_HOLD_BACKOFF);
                }
                done => return done,
            }
        }
    }

    async fn dead_letter(
        &self,
        topic: &str,
        stream: Option<&Arc<str>>,
        reason: &'static str,
        message: String,
        payload: &[u8],
    ) -> Outcome {
        self.metrics.dead_lettered(reason);
        let raw = RawDeadLetter {
            source: "mqtt",
            topic: topic.to_owned(),
            stream: stream.map(|s| s.to_string()),
            reason,
            message,
            payload: Bytes::copy_from_slice(payload),
        };
        // A failed write is logged loudly by `write_raw`; nothing else can be done.
        let _ = self.dead_letter.write_raw(raw).await;
        Outcome::DeadLettered
    }
}

/// Drains the hand-off into the pipeline until it is closed and empty. At
/// `abort` (the shutdown deadline) what is still held goes to the
/// dead-letter file instead.
pub async fn run(handoff: Arc<Handoff>, ingest: MqttIngest, abort: CancellationToken) {
    while let Some(batch) = handoff.peek(256).await {
        let mut late = Vec::new();
        for msg in &batch {
            let topic = String::from_utf8_lossy(&msg.topic);
            if !abort.is_cancelled() {
                tokio::select! {
                    _ = ingest.offer_until_taken(&topic, &msg.payload, false) => {
                        handoff.consume(1);
                        continue;
                    }
                    _ = abort.cancelled() => {}
                }
            }
            let topic = topic.into_owned();
            let stream = ingest.routes.route(&topic).map(|(s, _)| s.to_string());
            late.push(RawDeadLetter {
                source: "mqtt",
                topic,
                stream,
                reason: "shutdown_deadline",
                message: "still waiting for a full queue at the shutdown deadline".to_owned(),
                payload: msg.payload.clone(),
            });
        }
        if !late.is_empty() {
            // One append and fsync per hand-off batch, not per message.
            for _ in &late {
                ingest.metrics.dead_lettered("shutdown_deadline");
            }
            let _ = ingest.dead_letter.write_raw_many(&late).await;
            handoff.consume(late.len());
        }
    }
}
