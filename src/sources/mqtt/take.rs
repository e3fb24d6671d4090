//! The PUBLISHes the front takes itself: QoS 0 and 1, not retained (the
//! bulk of device traffic). Each goes straight from the connection's read
//! buffer to the stream router (topic → stream, JSON → events: the same
//! [`MqttIngest::offer`] the link's messages go through), and a QoS 1
//! message is PUBACKed only once the queue holds it: with the spool on,
//! once its record is fsynced; for a message that can never become items,
//! once it is in the dead-letter file. A full queue holds the message and
//! the connection is not read meanwhile: the device sees its PUBACKs slow
//! down and TCP backpressure, never a drop. Retained and QoS 2 messages
//! still go through rumqttd, which keeps their state, and reach the
//! pipeline by the link.

use std::ops::Range;

use tokio::io::{AsyncWrite, AsyncWriteExt};
use tokio::sync::Mutex;

use crate::pipeline::spool::AppendWait;

use super::front::{Front, Reject};
use super::ingest::Outcome;
use super::packet;

/// A complete PUBLISH in the connection's read buffer (absolute ranges).
#[derive(Debug, Clone)]
pub struct Taken {
    pub qos: u8,
    pub packet_id: Option<u16>,
    pub topic: Range<usize>,
    pub payload: Range<usize>,
}

/// PUBACKs not yet written, and the spool appends they wait for.
#[derive(Debug, Default)]
pub struct Pending {
    acks: Vec<u8>,
    spooled: Vec<AppendWait>,
}

impl Pending {
    /// Writes the PUBACKs once every message they acknowledge is spooled
    /// (when the spool is on); one write for all of them.
    pub async fn flush<W: AsyncWrite + Unpin>(&mut self, device: &Mutex<W>) -> Result<(), Reject> {
        for wait in self.spooled.drain(..) {
            if let Err(e) = wait.wait().await {
                // Not acknowledged: the device sends the message again.
                tracing::warn!(error = %e, "MQTT message not spooled: connection closed unacknowledged");
                return Err(Reject::Reason("spool_unavailable"));
            }
        }
        if !self.acks.is_empty() {
            let mut device = device.lock().await;
            device.write_all(&self.acks).await?;
            device.flush().await?;
            self.acks.clear();
        }
        Ok(())
    }
}

/// Offers every taken message to the pipeline in order, holding on a full
/// queue, and writes their PUBACKs.
pub async fn take_all<W: AsyncWrite + Unpin>(
    buf: &[u8],
    taken: &mut Vec<Taken>,
    pending: &mut Pending,
    front: &Front,
    device: &Mutex<W>,
) -> Result<(), Reject> {
    for t in taken.drain(..) {
        // `packet::publish` checked the topic is UTF-8; this only re-reads it
        // as text (the read buffer may move between the check and here).
        let topic = std::str::from_utf8(&buf[t.topic])
            .map_err(|_| Reject::from(packet::PacketError::BadTopic))?;
        let payload = &buf[t.payload];
        let mut outcome = front.ingest.offer(topic, payload, false).await;
        if let Outcome::Full = outcome {
            // What is already taken gets its PUBACKs before the wait.
            pending.flush(device).await?;
            let _paused = front.metrics.pause();
            outcome = front.ingest.offer_until_taken(topic, payload, false).await;
        }
        // Counted once the pipeline has it (queued or dead-lettered).
        front.metrics.received(t.qos);
        if let Outcome::Accepted {
            spooled: Some(wait),
            ..
        } = outcome
        {
            pending.spooled.push(wait);
        }
        if let Some(id) = t.packet_id {
            pending.acks.extend_from_slice(&packet::puback(id));
        }
    }
    pending.flush(device).await
}
