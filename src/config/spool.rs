//! `[spool]`: the durable disk spool between the stream router and the
//! per-table queues (ack level `spooled`).
//!
//! Off by default: the spool costs an fsync per group of requests and disk
//! space, and only requests (or streams) asking for `ack=spooled`, plus the
//! embedded MQTT broker's messages, use it. A stream configured with
//! `ack = "spooled"` while the spool is off is a configuration error
//! (checked in [`super::validate`]).

use std::path::PathBuf;

use bytesize::ByteSize;
use serde::{Deserialize, Serialize};

/// `[spool]`.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct SpoolSection {
    /// Whether the spool exists at all.
    #[serde(default)]
    pub enabled: bool,
    /// Directory of the segment files (created if missing). One gateway
    /// process per directory.
    #[serde(default = "defaults::path")]
    pub path: PathBuf,
    /// Disk bytes the segment files may take; above it spooled requests
    /// get 503 with Retry-After and MQTT messages are held.
    #[serde(default = "defaults::max_bytes")]
    pub max_bytes: ByteSize,
    /// Size at which the active segment file is closed and a new one begun.
    /// A segment is deleted once every record in it is released.
    #[serde(default = "defaults::segment_bytes")]
    pub segment_bytes: ByteSize,
}

impl Default for SpoolSection {
    fn default() -> Self {
        Self {
            enabled: false,
            path: defaults::path(),
            max_bytes: defaults::max_bytes(),
            segment_bytes: defaults::segment_bytes(),
        }
    }
}

mod defaults {
    use super::*;

    pub fn path() -> PathBuf {
        PathBuf::from("spool")
    }
    pub fn max_bytes() -> ByteSize {
        ByteSize::gib(1)
    }
    pub fn segment_bytes() -> ByteSize {
        ByteSize::mib(64)
    }
}
