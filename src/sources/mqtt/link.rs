//! The gateway's rumqttd local link, on a thread of its own: every message
//! the broker routes to `#` goes straight into the [`Handoff`]. The thread
//! never waits on the pipeline, so the router never sees a lagging
//! subscriber (which would make it drop log segments of acknowledged
//! messages).

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Instant;

use rumqttd::local::{LinkRx, LinkTx};
use rumqttd::Notification;

use super::handoff::{Handoff, Message};

/// Runs until the router goes away (then `healthy` turns false). `received`
/// counts forwarded publishes. The thread keeps `link_tx` alive with the link.
pub fn spawn(
    link_tx: LinkTx,
    mut link_rx: LinkRx,
    handoff: Arc<Handoff>,
    received: Arc<AtomicU64>,
    healthy: Arc<AtomicBool>,
) -> std::io::Result<()> {
    std::thread::Builder::new()
        .name("mqtt-link".to_owned())
        .spawn(move || {
            let _link_tx = link_tx;
            consume(&mut link_rx, &handoff, &received);
            healthy.store(false, Ordering::Relaxed);
        })
        .map(|_| ())
}

fn consume(link_rx: &mut LinkRx, handoff: &Handoff, received: &AtomicU64) {
    loop {
        match link_rx.recv() {
            Ok(Some(Notification::Forward(forward))) => {
                handoff.push(Message {
                    topic: forward.publish.topic,
                    payload: forward.publish.payload,
                    received: Instant::now(),
                });
                received.fetch_add(1, Ordering::Release);
            }
            // rumqttd parks a link whose outgoing queue it emptied; it
            // must be told we are ready again, or it never forwards
            // another message to us.
            Ok(Some(Notification::Unschedule)) => {
                if let Err(e) = link_rx.ready() {
                    tracing::error!(error = %e, "MQTT link cannot re-arm: broker gone");
                    return;
                }
            }
            Ok(Some(Notification::Disconnect(..))) => {
                tracing::error!("the embedded broker disconnected the gateway's link");
                return;
            }
            Ok(_) => {}
            Err(e) => {
                tracing::error!(error = %e, "MQTT link closed");
                return;
            }
        }
    }
}
