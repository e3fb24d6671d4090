//! Write-rate control for a table: the adaptive [`controller`] decides how
//! many WCU per second DynamoDB will take. (Being wired into the writer:
//! see the adaptive rate limiting issue.)

pub mod controller;
