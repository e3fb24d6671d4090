//! Fuzzes the HTTP body path up to the queue: decode (JSON object, JSON
//! array or NDJSON) → map every event through a stream of the shipped
//! config (keys, attribute types, size rules).
//!
//! Input: byte 0 picks the format and the stream, the rest is the body.
//! Invariants checked beyond "never panics": the one-pass object reader
//! reads the body exactly as serde_json does (same fields, or the same
//! error), every decoded event is an object with a describable position,
//! and a mapped event holds its partition key.
use std::sync::OnceLock;

use dynamo_ingest::config::{Overrides, ValidatedConfig, DEFAULT_TOML};
use dynamo_ingest::event::fields::Fields;
use dynamo_ingest::event::{map, size, typed};
use dynamo_ingest::sources::http::decode::{self, Format, Positions};

fn config() -> &'static ValidatedConfig {
    static CONFIG: OnceLock<ValidatedConfig> = OnceLock::new();
    CONFIG.get_or_init(|| {
        ValidatedConfig::from_toml("fuzz", DEFAULT_TOML, &Overrides::default())
            .expect("the shipped config validates")
    })
}

/// One input: panics (an assertion) when an invariant breaks.
pub fn check(data: &[u8]) {
    let Some((&selector, body)) = data.split_first() else {
        return;
    };
    let format = if selector & 1 == 0 {
        Format::Json
    } else {
        Format::Ndjson
    };
    assert_eq!(
        Fields::parse(body).map_err(|e| e.to_string()),
        Fields::parse_by_serde(body).map_err(|e| e.to_string()),
        "the one-pass reader and serde_json disagree"
    );
    let streams = &config().streams;
    let spec = &streams[usize::from(selector >> 1) % streams.len()];
    let Ok((events, positions)) = decode::decode(body, format) else {
        return;
    };
    assert!(!events.is_empty());
    if let Positions::Lines(lines) = &positions {
        assert_eq!(lines.len(), events.len());
    }
    // Context as a query string would give it: one field the body may lack.
    let context = [("user_id", "U1")];
    let stamp = |_: u64| 1_700_000_000_000;
    let fill = map::Fill {
        stamp: &stamp,
        ttl: None,
    };
    for (index, event) in events.iter().enumerate() {
        if positions != Positions::Single {
            assert!(positions.describe(index).is_some());
        }
        if let Ok(mapped) = map::map_event(spec, event, &context, &fill) {
            // The typed JSON written at intake reads back, holds the key,
            // and its size was counted by DynamoDB's rules.
            let attrs = typed::parse_item(mapped.text.json()).expect("typed JSON reads back");
            assert!(attrs.contains_key(&spec.partition_key.name));
            assert_eq!(mapped.size, size::item_size(&attrs));
        }
    }
}
