//! Sources: where events enter the gateway: [`http`] and [`mqtt`].

pub mod http;
pub mod mqtt;
