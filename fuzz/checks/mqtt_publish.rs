//! Fuzzes the MQTT side up to the router: the front's packet parser
//! (fixed header, CONNECT, PUBLISH topic and payload bounds, the parts of a
//! PUBLISH the front takes itself) over a stream
//! of packets, then for every complete PUBLISH the ingest mapper: topic →
//! stream (`TopicRoutes` of the shipped config) → JSON payload → one item
//! per event, with the topic's captured segments as context.
//!
//! Input: raw bytes as a device would send them (several packets back to
//! back; CONNECT is not required first, so the fuzzer reaches PUBLISH
//! quickly). Invariants beyond "never panics": a header's length fits the
//! MQTT limit, a PUBLISH's topic and payload fit in its packet, a routed
//! topic captures non-empty slash-free segments, and a mapped event holds
//! its partition key.
use std::sync::OnceLock;

use dynamo_ingest::config::{Overrides, ValidatedConfig, DEFAULT_TOML};
use dynamo_ingest::event::{map, size, typed};
use dynamo_ingest::sources::http::decode::{self, Format};
use dynamo_ingest::sources::mqtt::ingest::TopicRoutes;
use dynamo_ingest::sources::mqtt::packet::{self, CONNECT, MAX_REMAINING, PUBLISH};

struct Setup {
    config: ValidatedConfig,
    routes: TopicRoutes,
}

fn setup() -> &'static Setup {
    static SETUP: OnceLock<Setup> = OnceLock::new();
    SETUP.get_or_init(|| {
        let config = ValidatedConfig::from_toml("fuzz", DEFAULT_TOML, &Overrides::default())
            .expect("the shipped config validates");
        let routes = TopicRoutes::new(&config.streams);
        Setup { config, routes }
    })
}

/// One input: panics (an assertion) when an invariant breaks.
pub fn check(data: &[u8]) {
    let setup = setup();
    let mut rest = data;
    while let Ok(Some(h)) = packet::header(rest) {
        assert!(h.remaining <= MAX_REMAINING);
        assert!((2..=5).contains(&h.header_len));
        let body = &rest[h.header_len.min(rest.len())..];
        let complete = body.len() >= h.remaining;
        let body = &body[..h.remaining.min(body.len())];
        match h.kind {
            CONNECT if complete => {
                let _ = packet::connect(body);
            }
            PUBLISH => {
                // As the front does: only the topic's bytes need to be there.
                let Some(need) = packet::publish_topic_bytes(body) else {
                    return;
                };
                let Ok(info) = packet::publish(h.flags, &body[..need.min(body.len())], h.remaining)
                else {
                    return;
                };
                let id_len = if info.qos > 0 { 2 } else { 0 };
                assert_eq!(
                    2 + info.topic.len() + id_len + info.payload_len,
                    h.remaining
                );
                if complete {
                    let payload = &body[h.remaining - info.payload_len..];
                    if info.qos < 2 {
                        // As the front does with a PUBLISH it takes itself.
                        let parts = packet::publish_parts(info.qos, body)
                            .expect("a checked, complete PUBLISH has its parts");
                        assert_eq!(&body[parts.topic.clone()], info.topic.as_bytes());
                        assert_eq!(&body[parts.payload.clone()], payload);
                        assert_eq!(parts.packet_id.is_some(), info.qos == 1);
                    }
                    ingest(setup, info.topic, payload);
                }
            }
            _ => {}
        }
        if !complete {
            return;
        }
        rest = &rest[h.total()..];
    }
}

/// What `MqttIngest::offer` does before the router: route, decode, map.
fn ingest(setup: &Setup, topic: &str, payload: &[u8]) {
    let Some((stream, context)) = setup.routes.route(topic) else {
        return;
    };
    for (_, value) in &context {
        assert!(!value.is_empty() && !value.contains('/'));
    }
    let spec = setup
        .config
        .streams
        .iter()
        .find(|s| s.name == *stream)
        .expect("a routed stream is configured");
    let Ok((events, _)) = decode::decode(payload, Format::Json) else {
        return;
    };
    let stamp = |_: u64| 1_700_000_000_000;
    let fill = map::Fill {
        stamp: &stamp,
        ttl: None,
    };
    for event in &events {
        if let Ok(mapped) = map::map_event(spec, event, &context, &fill) {
            let attrs = typed::parse_item(mapped.text.json()).expect("typed JSON reads back");
            assert!(attrs.contains_key(&spec.partition_key.name));
            assert_eq!(mapped.size, size::item_size(&attrs));
        }
    }
}
