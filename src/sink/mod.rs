//! Sinks: where batches end up. [`dynamodb`] writes them with
//! BatchWriteItem; [`dead_letter`] keeps what DynamoDB refused.

pub mod dead_letter;
pub mod dynamodb;
