//! Metric handles of the MQTT source (names in `telemetry::metrics`, all
//! registered at zero at start-up).

use metrics::{counter, gauge, Counter, Gauge};

use crate::telemetry::metrics::{
    MQTT_CONNECTIONS, MQTT_DEAD_LETTERS, MQTT_HANDOFF_BYTES, MQTT_HANDOFF_DEPTH, MQTT_LINK_LAG,
    MQTT_MESSAGES, MQTT_PAUSED, MQTT_REJECTED, MQTT_UNROUTABLE,
};

/// Handles, cheap to clone.
#[derive(Debug, Clone)]
pub struct MqttMetrics {
    pub connections: Gauge,
    pub paused: Gauge,
    pub link_lag: Gauge,
    pub handoff_depth: Gauge,
    pub handoff_bytes: Gauge,
    pub unroutable: Counter,
    by_qos: [Counter; 3],
}

impl MqttMetrics {
    pub fn new() -> Self {
        Self {
            connections: gauge!(MQTT_CONNECTIONS),
            paused: gauge!(MQTT_PAUSED),
            link_lag: gauge!(MQTT_LINK_LAG),
            handoff_depth: gauge!(MQTT_HANDOFF_DEPTH),
            handoff_bytes: gauge!(MQTT_HANDOFF_BYTES),
            unroutable: counter!(MQTT_UNROUTABLE),
            by_qos: ["0", "1", "2"].map(|q| counter!(MQTT_MESSAGES, "qos" => q)),
        }
    }

    /// Counts one PUBLISH of QoS `qos` (0..=2).
    pub fn received(&self, qos: u8) {
        if let Some(c) = self.by_qos.get(qos as usize) {
            c.increment(1);
        }
    }

    /// Counts a connection in `mqtt_connections_paused` until the guard drops
    /// (also when the waiting future is cancelled).
    pub fn pause(&self) -> Paused {
        self.paused.increment(1.0);
        Paused(self.paused.clone())
    }

    /// Counts a connection the front closed for `reason`.
    pub fn rejected(&self, reason: &'static str) {
        counter!(MQTT_REJECTED, "reason" => reason).increment(1);
    }

    /// Counts an acknowledged message dead-lettered for `reason`.
    pub fn dead_lettered(&self, reason: &'static str) {
        counter!(MQTT_DEAD_LETTERS, "reason" => reason).increment(1);
    }
}

/// A connection counted as paused while this lives.
#[derive(Debug)]
pub struct Paused(Gauge);

impl Drop for Paused {
    fn drop(&mut self) {
        self.0.decrement(1.0);
    }
}

impl Default for MqttMetrics {
    fn default() -> Self {
        Self::new()
    }
}
