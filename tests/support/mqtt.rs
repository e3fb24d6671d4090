//! MQTT test clients (rumqttc): publish a set of messages and wait until the
//! broker acknowledged each QoS 1 message, reconnecting as a real device
//! would (persistent session: unacknowledged messages are re-sent).
#![allow(dead_code)]

use std::net::SocketAddr;
use std::time::Duration;

use rumqttc::{AsyncClient, ConnectReturnCode, Event, MqttOptions, Packet, QoS};

/// Options for a test device.
pub fn options(addr: SocketAddr, client_id: &str) -> MqttOptions {
    let mut o = MqttOptions::new(client_id, addr.ip().to_string(), addr.port());
    o.set_keep_alive(Duration::from_secs(60))
        .set_clean_session(false)
        .set_inflight(100)
        .set_max_packet_size(4 << 20, 4 << 20);
    o
}

/// Publishes every `(topic, payload)` with `qos` and returns once all are
/// acknowledged (QoS 1) or written to the socket (QoS 0). Panics after `limit`.
pub async fn publish_all(
    opts: MqttOptions,
    messages: Vec<(String, Vec<u8>)>,
    qos: QoS,
    limit: Duration,
) {
    publish_all_with(opts, messages, qos, false, limit).await
}

/// [`publish_all`] with the retain flag set as given.
pub async fn publish_all_with(
    opts: MqttOptions,
    messages: Vec<(String, Vec<u8>)>,
    qos: QoS,
    retain: bool,
    limit: Duration,
) {
    let total = messages.len();
    let (client, mut eventloop) = AsyncClient::new(opts, 200);
    let publisher = tokio::spawn({
        let client = client.clone();
        async move {
            for (topic, payload) in messages {
                client
                    .publish(topic, qos, retain, payload)
                    .await
                    .expect("queue publish");
            }
        }
    });
    let wait = async {
        let mut done = 0usize;
        while done < total {
            match eventloop.poll().await {
                Ok(Event::Incoming(Packet::PubAck(_))) if qos == QoS::AtLeastOnce => done += 1,
                Ok(Event::Outgoing(rumqttc::Outgoing::Publish(_))) if qos == QoS::AtMostOnce => {
                    done += 1
                }
                Ok(_) => {}
                // Disconnected (e.g. a long backpressure pause): reconnect on the next poll.
                Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
            }
        }
        // Flush: one more round trip so QoS 0 packets left the socket.
        let _ = client.disconnect().await;
        while let Ok(ev) = eventloop.poll().await {
            if let Event::Outgoing(rumqttc::Outgoing::Disconnect) = ev {
                break;
            }
        }
    };
    tokio::time::timeout(limit, wait)
        .await
        .unwrap_or_else(|_| panic!("{total} messages not acknowledged within {limit:?}"));
    publisher.await.expect("publisher");
}

/// Connects and returns the CONNACK code, or None if the connection was closed first.
pub async fn connack(opts: MqttOptions) -> Option<ConnectReturnCode> {
    let (_client, mut eventloop) = AsyncClient::new(opts, 10);
    match tokio::time::timeout(Duration::from_secs(10), eventloop.poll()).await {
        Ok(Ok(Event::Incoming(Packet::ConnAck(ack)))) => Some(ack.code),
        Ok(Err(rumqttc::ConnectionError::ConnectionRefused(code))) => Some(code),
        _ => None,
    }
}

/// Connects, publishes one message, and reports whether the connection was
/// closed before a PUBACK arrived.
pub async fn publish_is_refused(opts: MqttOptions, topic: &str, payload: Vec<u8>) -> bool {
    let (client, mut eventloop) = AsyncClient::new(opts, 10);
    client
        .publish(topic, QoS::AtLeastOnce, false, payload)
        .await
        .expect("queue publish");
    let outcome = tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            match eventloop.poll().await {
                Ok(Event::Incoming(Packet::PubAck(_))) => return false,
                Ok(_) => {}
                Err(_) => return true,
            }
        }
    })
    .await;
    outcome.expect("the gateway neither acknowledged nor closed the connection")
}

/// Debian's mosquitto broker on a free loopback port, killed on drop.
pub struct Mosquitto {
    child: std::process::Child,
    pub addr: SocketAddr,
    _dir: tempfile::TempDir,
}

impl Mosquitto {
    /// Starts mosquitto with no limit on queued messages per session (its
    /// default of 1000 would drop messages for a disconnected subscriber).
    pub fn start() -> Self {
        let which = std::process::Command::new("sh")
            .args(["-c", "command -v mosquitto || ls /usr/sbin/mosquitto"])
            .output()
            .expect("sh");
        let bin = String::from_utf8_lossy(&which.stdout)
            .lines()
            .next()
            .unwrap_or("")
            .trim()
            .to_owned();
        assert!(
            !bin.is_empty(),
            "mosquitto is not installed (.ci/run installs it)"
        );
        let dir = tempfile::tempdir().expect("tmp");
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("free port")
            .port();
        let conf = dir.path().join("mosquitto.conf");
        std::fs::write(
            &conf,
            format!(
                "listener {port} 127.0.0.1\nallow_anonymous true\npersistence false\nmax_queued_messages 0\nmax_inflight_messages 1000\nlog_dest stderr\n"
            ),
        )
        .expect("write conf");
        let child = std::process::Command::new(bin)
            .arg("-c")
            .arg(&conf)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("spawn mosquitto");
        let addr: SocketAddr = format!("127.0.0.1:{port}").parse().expect("addr");
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(addr).is_err() {
            assert!(
                std::time::Instant::now() < deadline,
                "mosquitto did not listen"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        Self {
            child,
            addr,
            _dir: dir,
        }
    }
}

impl Drop for Mosquitto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `devices` sensor devices (`DEV{d}`, client id `dev-{d}`), each publishing
/// `per_device` QoS 1 telemetry messages with `timestamp` = `seq` = i and a
/// `pad` of `pad` bytes; each task ends when all its messages are PUBACKed.
pub fn spawn_sensor_fleet(
    addr: SocketAddr,
    devices: usize,
    per_device: usize,
    pad: usize,
    limit: Duration,
) -> Vec<tokio::task::JoinHandle<()>> {
    (0..devices)
        .map(|d| {
            let messages = (0..per_device)
                .map(|i| {
                    (
                        format!("sensors/DEV{d}/telemetry"),
                        format!(
                            r#"{{"timestamp": {i}, "seq": {i}, "temperature": 20.5, "pad": "{}"}}"#,
                            "x".repeat(pad)
                        )
                        .into_bytes(),
                    )
                })
                .collect();
            tokio::spawn(publish_all(
                options(addr, &format!("dev-{d}")),
                messages,
                QoS::AtLeastOnce,
                limit,
            ))
        })
        .collect()
}
