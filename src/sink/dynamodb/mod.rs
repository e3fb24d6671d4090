//! The DynamoDB sink: the end of the data flow.
//!
//! [`client`] builds the SDK client (its retries off), [`bootstrap`] makes
//! the tables usable at start-up, [`direct`] (the default) and [`request`]
//! (the SDK) turn batches into BatchWriteItem calls, [`retry`] classifies errors and spaces retries,
//! [`rate`] holds each table to the WCU rate DynamoDB takes, [`key_guard`]
//! keeps the write order per key, [`slots`] count the calls in flight
//! (batches waiting out a hot key range park outside them), and [`writer`] drives each table's batches
//! until every item is written or dead-lettered.

pub mod bootstrap;
pub mod client;
pub mod direct;
pub mod key_guard;
pub mod rate;
pub mod request;
pub mod retry;
pub mod slots;
pub mod writer;
