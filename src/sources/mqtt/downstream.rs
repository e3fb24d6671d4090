//! rumqttd → device: the second half of a front connection. The broker's
//! bytes (CONNACK, SUBACK, PINGRESP, acks of forwarded packets, PUBLISHes to
//! subscribers) are passed on as whole packets, so the front's own PUBACKs
//! ([`super::take`]) can be written between them on the same socket. The
//! PINGRESPs answering the PINGREQs the front injected to keep rumqttd's
//! keep-alive timer fed are swallowed: the device never asked for them.

use std::sync::atomic::{AtomicU32, Ordering};

use bytes::{Buf, BytesMut};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::sync::Mutex;

use super::packet::{self, CONNACK, PINGRESP};

/// Passes rumqttd's CONNACK on, before the front writes anything itself (a
/// PUBACK must not reach a device before its CONNACK). Returns whether the
/// broker accepted the session; bytes read past the CONNACK stay in `buf`.
pub async fn connack<R, W>(
    broker: &mut R,
    device: &mut W,
    buf: &mut BytesMut,
) -> std::io::Result<bool>
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    loop {
        if let Ok(Some(h)) = packet::header(buf) {
            if h.kind != CONNACK || h.remaining != 2 {
                return Err(std::io::ErrorKind::InvalidData.into());
            }
            if buf.len() >= h.total() {
                let code = buf[h.total() - 1];
                device.write_all(&buf[..h.total()]).await?;
                device.flush().await?;
                buf.advance(h.total());
                return Ok(code == 0);
            }
        }
        if broker.read_buf(buf).await? == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
    }
}

/// Relays until the broker closes the connection or sends bytes that are
/// not MQTT; `buf` may already hold bytes read from the broker.
pub async fn relay<R, W>(
    mut broker: R,
    device: &Mutex<W>,
    injected_pings: &AtomicU32,
    mut buf: BytesMut,
) where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    loop {
        // Whole packets first; a partial one waits for its remaining bytes.
        let mut complete = 0usize;
        let mut swallowed: Vec<(usize, usize)> = Vec::new();
        loop {
            match packet::header(&buf[complete..]) {
                Ok(Some(h)) if buf.len() - complete >= h.total() => {
                    if h.kind == PINGRESP && take_one(injected_pings) {
                        swallowed.push((complete, h.total()));
                    }
                    complete += h.total();
                }
                Ok(Some(h)) => {
                    buf.reserve(h.total() - (buf.len() - complete));
                    break;
                }
                Ok(None) => break,
                Err(_) => return,
            }
        }
        if complete == 0 {
            match broker.read_buf(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(_) => continue,
            }
        }
        let mut device = device.lock().await;
        let mut from = 0usize;
        for (at, len) in swallowed {
            if device.write_all(&buf[from..at]).await.is_err() {
                return;
            }
            from = at + len;
        }
        if device.write_all(&buf[from..complete]).await.is_err() || device.flush().await.is_err() {
            return;
        }
        drop(device);
        buf.advance(complete);
    }
}

/// Counts down one injected PINGREQ; false when none is outstanding.
fn take_one(injected: &AtomicU32) -> bool {
    injected
        .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| n.checked_sub(1))
        .is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Broker bytes split at every position arrive as the same whole packets,
    /// minus one injected PINGRESP.
    #[tokio::test]
    async fn packets_pass_whole_and_injected_pingresps_are_swallowed() {
        let connack = [0x20u8, 2, 0, 0];
        let pingresp = [0xd0u8, 0];
        let puback = [0x40u8, 2, 0, 9];
        let publish = [&[0x30u8, 7, 0, 3][..], b"a/b", b"{}"].concat();
        let stream = [&connack[..], &pingresp, &puback, &publish, &pingresp].concat();
        for split in 1..stream.len() {
            let (mut tx, rx) = tokio::io::duplex(64);
            let (out_rx, out_tx) = tokio::io::duplex(256);
            let out = Mutex::new(out_tx);
            let injected = AtomicU32::new(1);
            let bytes = stream.clone();
            let writer = async move {
                tx.write_all(&bytes[..split]).await.expect("write");
                tx.flush().await.expect("flush");
                tokio::task::yield_now().await;
                tx.write_all(&bytes[split..]).await.expect("write");
            };
            tokio::join!(writer, relay(rx, &out, &injected, BytesMut::new()));
            drop(out);
            let mut got = Vec::new();
            let mut out_rx = out_rx;
            out_rx.read_to_end(&mut got).await.expect("read");
            let want = [&connack[..], &puback, &publish, &pingresp].concat();
            assert_eq!(got, want, "split at {split}");
            assert_eq!(injected.load(Ordering::Acquire), 0);
        }
    }
}
