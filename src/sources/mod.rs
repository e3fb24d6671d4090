//! Sources: where events enter the gateway. [`http`] today; MQTT joins here.

pub mod http;
