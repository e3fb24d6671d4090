//! The dead-letter file: where an acknowledged item goes when DynamoDB will
//! not take it (a ValidationException isolated to that item, a persistent
//! fatal error) or when it is still unwritten at the shutdown deadline.
//!
//! NDJSON, one line per item: `{"time", "table", "stream", "reason",
//! "message", "item"}` with `item` in DynamoDB's typed JSON, so it can be
//! replayed with `aws dynamodb put-item --item`. Appended and fsynced before
//! the item counts as settled: nothing acknowledged vanishes.

use std::io::Write;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{SystemTime, UNIX_EPOCH};

use serde_json::json;

use crate::event::Item;
use crate::telemetry::metrics::TableMetrics;

/// Why an item was dead-lettered (a metric label).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeadLetterReason {
    /// DynamoDB rejected the item itself (ValidationException).
    Validation,
    /// A non-retriable error persisted past `max_fatal_attempts`.
    Fatal,
    /// Still unwritten when the shutdown grace period ended.
    ShutdownDeadline,
}

impl DeadLetterReason {
    pub fn label(self) -> &'static str {
        match self {
            DeadLetterReason::Validation => "validation",
            DeadLetterReason::Fatal => "fatal",
            DeadLetterReason::ShutdownDeadline => "shutdown_deadline",
        }
    }
}

/// A source message that could not become items.
#[derive(Debug, Clone)]
pub struct RawDeadLetter {
    pub source: &'static str,
    pub topic: String,
    pub stream: Option<String>,
    pub reason: &'static str,
    pub message: String,
    pub payload: bytes::Bytes,
}

/// Appends dead letters; cheap to clone.
#[derive(Debug, Clone)]
pub struct DeadLetter {
    path: Arc<PathBuf>,
    lock: Arc<Mutex<()>>,
}

/// One dead-letter line of a source message: the payload as text when it
/// is UTF-8, else as `payload_base64`.
fn raw_line(raw: &RawDeadLetter, time: u64) -> std::io::Result<Vec<u8>> {
    use base64::Engine as _;
    let mut line = json!({
        "time_ms": time,
        "source": raw.source,
        "topic": raw.topic,
        "stream": raw.stream,
        "reason": raw.reason,
        "message": raw.message,
    });
    match std::str::from_utf8(&raw.payload) {
        Ok(text) => line["payload"] = json!(text),
        Err(_) => {
            line["payload_base64"] =
                json!(base64::engine::general_purpose::STANDARD.encode(&raw.payload))
        }
    }
    let mut buf = serde_json::to_vec(&line).map_err(std::io::Error::other)?;
    buf.push(b'\n');
    Ok(buf)
}

impl DeadLetter {
    pub fn new(path: PathBuf) -> Self {
        Self {
            path: Arc::new(path),
            lock: Arc::new(Mutex::new(())),
        }
    }

    pub fn path(&self) -> &std::path::Path {
        &self.path
    }

    /// Writes one acknowledged source message that never became an item
    /// (an MQTT payload on an unroutable topic, or one that is not valid
    /// events): `{"time_ms", "source", "topic", "stream", "reason",
    /// "message", "payload"}`, the payload as text when it is UTF-8, else as
    /// `payload_base64`.
    pub async fn write_raw(&self, raw: RawDeadLetter) -> std::io::Result<()> {
        let buf = raw_line(&raw, now_ms())?;
        let written = self.append(buf).await;
        match &written {
            Ok(()) => {
                tracing::warn!(source = raw.source, topic = %raw.topic, reason = raw.reason, message = %raw.message, "message dead-lettered")
            }
            Err(e) => {
                tracing::error!(source = raw.source, topic = %raw.topic, error = %e, "CANNOT WRITE DEAD-LETTER FILE: message lost")
            }
        }
        written
    }

    /// Writes many source messages (as [`Self::write_raw`]) with one append,
    /// one fsync and one log line: what a shutdown deadline leaves behind
    /// can be hundreds of thousands of messages.
    pub async fn write_raw_many(&self, raws: &[RawDeadLetter]) -> std::io::Result<()> {
        let Some(first) = raws.first() else {
            return Ok(());
        };
        let time = now_ms();
        let mut buf = Vec::with_capacity(raws.len() * 256);
        for raw in raws {
            buf.extend(raw_line(raw, time)?);
        }
        let written = self.append(buf).await;
        match &written {
            Ok(()) => {
                tracing::warn!(source = first.source, messages = raws.len(), reason = first.reason, message = %first.message, "messages dead-lettered")
            }
            Err(e) => {
                tracing::error!(source = first.source, messages = raws.len(), error = %e, "CANNOT WRITE DEAD-LETTER FILE: messages lost")
            }
        }
        written
    }

    /// Appends NDJSON lines and fsyncs them, off the async threads; one
    /// writer at a time so lines never interleave.
    async fn append(&self, buf: Vec<u8>) -> std::io::Result<()> {
        let path = self.path.clone();
        let lock = self.lock.clone();
        tokio::task::spawn_blocking(move || -> std::io::Result<()> {
            let _guard = lock
                .lock()
                .map_err(|_| std::io::Error::other("dead-letter lock poisoned"))?;
            let mut f = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(&*path)?;
            f.write_all(&buf)?;
            f.sync_data()
        })
        .await
        .map_err(|e| std::io::Error::other(format!("dead-letter task failed: {e}")))?
    }

    /// Writes `items` with their reason, then settles their acks as failed.
    pub async fn write(
        &self,
        metrics: &TableMetrics,
        reason: DeadLetterReason,
        message: &str,
        items: Vec<Item>,
    ) {
        if items.is_empty() {
            return;
        }
        let time = now_ms();
        let mut buf = Vec::with_capacity(items.len() * 256);
        for item in &items {
            let line = json!({
                "time_ms": time,
                "table": metrics.table,
                "stream": &*item.stream,
                "reason": reason.label(),
                "message": message,
                // Typed JSON written by the gateway itself: it parses.
                "item": serde_json::from_slice::<serde_json::Value>(item.json())
                    .unwrap_or_else(|e| json!({ "unreadable": e.to_string() })),
            });
            // Writing JSON into a Vec cannot fail.
            let _ = serde_json::to_writer(&mut buf, &line);
            buf.push(b'\n');
        }
        match self.append(buf).await {
            Ok(()) => {
                tracing::warn!(table = %metrics.table, reason = reason.label(), items = items.len(), %message, path = %self.path.display(), "items dead-lettered")
            }
            Err(e) => {
                tracing::error!(table = %metrics.table, items = items.len(), error = %e, path = %self.path.display(), "CANNOT WRITE DEAD-LETTER FILE: items lost")
            }
        }
        metrics.dead_lettered(reason.label(), items.len() as u64);
        let why = format!("{}: {message}", reason.label());
        for item in items {
            for ack in item.acks {
                ack.failed(&why);
            }
        }
    }
}

/// Wall-clock epoch milliseconds for the `time_ms` field.
fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}
