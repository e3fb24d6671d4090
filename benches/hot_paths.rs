//! Criterion benches of the per-event hot paths, in events per second:
//! decode (NDJSON → JSON), decode + map (→ item with keys, sort key, size),
//! item size alone, BatchWriteItem request building, and batching.
//!
//! Run: `cargo bench --bench hot_paths` (add `-- --quick` for a short run).

use std::collections::HashMap;
use std::hint::black_box;
use std::sync::Arc;
use std::time::Instant;

use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use dynamo_ingest::config::{Overrides, StreamSpec, ValidatedConfig, DEFAULT_TOML};
use dynamo_ingest::event::map::{key_id, map_event};
use dynamo_ingest::event::size::item_size;
use dynamo_ingest::event::Item;
use dynamo_ingest::pipeline::batcher::BatchBuilder;
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

fn items(stream: &StreamSpec) -> Vec<Item> {
    let (events, _) = decode(&ndjson(), Format::Ndjson).expect("decode");
    events
        .into_iter()
        .enumerate()
        .map(|(i, e)| {
            let mut attrs = map_event(stream, e, &[]).expect("map").attrs;
            attrs.insert(
                "timestamp".into(),
                aws_sdk_dynamodb::types::AttributeValue::N(
                    (1_700_000_000_000u64 + i as u64).to_string(),
                ),
            );
            let size = item_size(&attrs) as u32;
            let key = key_id(&attrs, &stream.partition_key, None);
            Item {
                attrs,
                key,
                size,
                stream: Arc::from("sensor"),
                received: Instant::now(),
                acks: Vec::new(),
            }
        })
        .collect()
}

fn benches(c: &mut Criterion) {
    let stream = sensor_stream();
    let body = ndjson();
    let mut g = c.benchmark_group("hot_paths");
    g.throughput(Throughput::Elements(EVENTS as u64));
    g.bench_function("decode_ndjson", |b| {
        b.iter(|| decode(black_box(&body), Format::Ndjson).expect("decode"))
    });
    g.bench_function("decode_and_map", |b| {
        b.iter(|| {
            let (events, _) = decode(black_box(&body), Format::Ndjson).expect("decode");
            for e in events {
                let m = map_event(&stream, e, &[]).expect("map");
                black_box(item_size(&m.attrs));
            }
        })
    });
    let items = items(&stream);
    g.bench_function("item_size", |b| {
        b.iter(|| {
            items
                .iter()
                .map(|i| item_size(black_box(&i.attrs)))
                .sum::<usize>()
        })
    });
    g.bench_function("build_requests", |b| {
        b.iter(|| {
            items
                .chunks(25)
                .map(|c| write_requests(black_box(c)).len())
                .sum::<usize>()
        })
    });
    g.bench_function("batcher", |b| {
        b.iter_batched(
            || {
                items
                    .iter()
                    .map(|i| Item {
                        attrs: HashMap::new(),
                        key: i.key.clone(),
                        size: i.size,
                        stream: i.stream.clone(),
                        received: i.received,
                        acks: Vec::new(),
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
