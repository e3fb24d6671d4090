//! Criterion benches of the per-event hot paths, in events per second:
//! decode (NDJSON → each event's fields, borrowed), decode + map (→ the item's typed JSON with keys,
//! sort key and size), the BatchWriteItem body of the direct request path,
//! the SDK path's request building, and batching.
//!
//! Run: `cargo bench --bench hot_paths` (add `-- --quick` for a short run).

use std::hint::black_box;
use std::sync::Arc;
use std::time::Instant;

use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use dynamo_ingest::config::{Overrides, StreamSpec, ValidatedConfig, DEFAULT_TOML};
use dynamo_ingest::event::map::{map_event, Fill};
use dynamo_ingest::event::Item;
use dynamo_ingest::pipeline::batcher::BatchBuilder;
use dynamo_ingest::sink::dynamodb::direct::wire::request_body;
use dynamo_ingest::sink::dynamodb::request::write_requests;
use dynamo_ingest::sources::http::decode::{decode, Format};

const EVENTS: usize = 1000;

fn sensor_stream() -> StreamSpec {
    let config = ValidatedConfig::from_toml("bench", DEFAULT_TOML, &Overrides::default())
        .expect("default config");
    config
        .streams
        .into_iter()
        .find(|s| &*s.name == "sensor")
        .expect("sensor stream")
}

fn ndjson() -> Vec<u8> {
    (0..EVENTS)
        .map(|i| {
            format!(
                "{{\"device_id\":\"D{:04}\",\"temperature\":{}.{},\"humidity\":{},\"status\":\"ok\",\"meta\":{{\"fw\":\"1.2.3\",\"rssi\":-67}}}}\n",
                i % 500,
                20 + i % 15,
                i % 10,
                40 + i % 50
            )
        })
        .collect::<String>()
        .into_bytes()
}

/// Server-time sort keys, as the router's clock would assign them.
fn stamps() -> impl Fn(u64) -> u64 {
    let next = std::cell::Cell::new(1_700_000_000_000u64);
    move |_| {
        next.set(next.get() + 1);
        next.get()
    }
}

fn items(stream: &StreamSpec) -> Vec<Item> {
    let body = ndjson();
    let (events, _) = decode(&body, Format::Ndjson).expect("decode");
    let stamp = stamps();
    let fill = Fill {
        stamp: &stamp,
        ttl: None,
    };
    events
        .iter()
        .map(|e| {
            let m = map_event(stream, e, &[], &fill).expect("map");
            Item {
                text: m.text,
                size: m.size as u32,
                stream: Arc::from("sensor"),
                received: Instant::now(),
                acks: Default::default(),
            }
        })
        .collect()
}

fn benches(c: &mut Criterion) {
    let stream = sensor_stream();
    let body = ndjson();
    let stamp = stamps();
    let fill = Fill {
        stamp: &stamp,
        ttl: None,
    };
    let mut g = c.benchmark_group("hot_paths");
    g.throughput(Throughput::Elements(EVENTS as u64));
    g.bench_function("decode_ndjson", |b| {
        b.iter(|| decode(black_box(&body), Format::Ndjson).expect("decode"))
    });
    g.bench_function("decode_and_map", |b| {
        b.iter(|| {
            let (events, _) = decode(black_box(&body), Format::Ndjson).expect("decode");
            for e in &events {
                black_box(map_event(&stream, e, &[], &fill).expect("map"));
            }
        })
    });
    let items = items(&stream);
    g.bench_function("request_body", |b| {
        b.iter(|| {
            items
                .chunks(25)
                .map(|c| request_body("IoTSensorData", black_box(c)).len())
                .sum::<usize>()
        })
    });
    g.bench_function("build_requests_sdk", |b| {
        b.iter(|| {
            items
                .chunks(25)
                .map(|c| write_requests(black_box(c)).expect("requests").len())
                .sum::<usize>()
        })
    });
    g.bench_function("batcher", |b| {
        b.iter_batched(
            || {
                items
                    .iter()
                    .map(|i| Item {
                        text: i.text.clone(),
                        size: i.size,
                        stream: i.stream.clone(),
                        received: i.received,
                        acks: Default::default(),
                    })
                    .collect::<Vec<_>>()
            },
            |batch_items| {
                let mut builder = BatchBuilder::new(25, 16 << 20);
                let mut n = 0;
                for it in batch_items {
                    n += builder.push(it).map_or(0, |b| b.items.len());
                }
                n + builder.take().items.len()
            },
            BatchSize::SmallInput,
        )
    });
    g.finish();
}

criterion_group!(hot_paths, benches);
criterion_main!(hot_paths);
