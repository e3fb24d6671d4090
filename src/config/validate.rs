//! Cross-field checks that turn a parsed [`FileConfig`] into the one
//! [`ValidatedConfig`] the gateway runs with. Everything that can be wrong
//! in a config is found here, before any port is bound.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use super::file::{
    AuthSection, FileConfig, HttpSection, KeyType, ScalarType, SortKeySource, StreamSection,
};
use super::{
    ApiKey, ConfigError, KeySpec, SortKeySpec, StreamGrant, StreamSpec, TableSpec, ValidatedConfig,
};
use crate::event::template::PathTemplate;

/// DynamoDB's BatchWriteItem request limit.
const MAX_BATCH_BYTES: u64 = 16 * 1024 * 1024;
/// DynamoDB's item size limit.
const MAX_ITEM_BYTES: u64 = 400 * 1024;

pub(super) fn validate(file: FileConfig) -> Result<ValidatedConfig, ConfigError> {
    let p = &file.pipeline;
    if p.batch_max_bytes.as_u64() > MAX_BATCH_BYTES || p.batch_max_bytes.as_u64() < MAX_ITEM_BYTES {
        return Err(err(
            "pipeline.batch_max_bytes",
            "must be between 400KiB and 16MiB (DynamoDB's item and request limits)",
        ));
    }
    if p.queue_max_bytes.as_u64() < MAX_ITEM_BYTES {
        return Err(err(
            "pipeline.queue_max_bytes",
            "must hold at least one 400KiB item",
        ));
    }
    if p.linger > Duration::from_secs(60) {
        return Err(err("pipeline.linger", "must be at most 60s"));
    }
    if p.retry_after < Duration::from_secs(1) {
        return Err(err(
            "pipeline.retry_after",
            "must be at least 1s (Retry-After has whole seconds)",
        ));
    }
    if file.http.max_body_bytes.as_u64() < 1024 {
        return Err(err("http.max_body_bytes", "must be at least 1KiB"));
    }
    if file.http.ack_timeout.is_zero() {
        return Err(err("http.ack_timeout", "must be greater than zero"));
    }
    http_limits(&file.http)?;
    let d = &file.dynamodb;
    if d.region.trim().is_empty() {
        return Err(err("dynamodb.region", "must not be empty"));
    }
    if let Some(endpoint) = &d.endpoint {
        let ok = (endpoint.starts_with("http://") || endpoint.starts_with("https://"))
            && endpoint
                .parse::<hyper::Uri>()
                .is_ok_and(|u| u.host().is_some());
        if !ok {
            return Err(err(
                "dynamodb.endpoint",
                format!("`{endpoint}` is not an http:// or https:// URL"),
            ));
        }
    }
    if d.request_timeout.is_zero() {
        return Err(err("dynamodb.request_timeout", "must be greater than zero"));
    }
    if d.retry.base_delay.is_zero() || d.retry.base_delay > d.retry.max_delay {
        return Err(err(
            "dynamodb.retry.base_delay",
            "must be greater than zero and at most dynamodb.retry.max_delay",
        ));
    }
    let r = &d.rate;
    if !(r.decrease_factor > 0.0 && r.decrease_factor < 1.0) {
        return Err(err(
            "dynamodb.rate.decrease_factor",
            "must be between 0 and 1 (exclusive)",
        ));
    }
    if !(r.min_wcu >= 1.0 && r.initial_wcu >= r.min_wcu && r.initial_wcu.is_finite()) {
        return Err(err(
            "dynamodb.rate.initial_wcu",
            "must be finite and at least dynamodb.rate.min_wcu, which must be at least 1",
        ));
    }
    if !(0.0..1.0).contains(&r.unprocessed_threshold) {
        return Err(err(
            "dynamodb.rate.unprocessed_threshold",
            "must be in [0, 1)",
        ));
    }
    if r.recovery.is_zero() || r.probe_doubling.is_zero() {
        return Err(err(
            "dynamodb.rate.recovery",
            "recovery and probe_doubling must be greater than zero",
        ));
    }
    super::mqtt_check::check(&file.mqtt)?;
    if file.streams.is_empty() {
        return Err(err("streams", "at least one stream must be configured"));
    }

    let mut streams = Vec::with_capacity(file.streams.len());
    let mut tables: BTreeMap<String, Arc<TableSpec>> = BTreeMap::new();
    let mut http_paths: BTreeMap<String, String> = BTreeMap::new();
    let mut topics: Vec<(PathTemplate, String)> = Vec::new();
    check_spool(&file)?;
    for (name, section) in &file.streams {
        let spec = stream(name, section)?;
        if let Some(topic) = &spec.mqtt_topic {
            if let Some((_, other)) = topics.iter().find(|(t, _)| t.overlaps(topic)) {
                return Err(err(
                    format!("streams.{name}.mqtt_topic"),
                    format!(
                        "`{}` can match the same topics as stream `{other}`'s",
                        topic.pattern()
                    ),
                ));
            }
            topics.push((topic.clone(), name.clone()));
        }
        if let Some(path) = &spec.http_path {
            if let Some(other) = http_paths.insert(path.pattern().to_owned(), name.clone()) {
                return Err(err(
                    format!("streams.{name}.http_path"),
                    format!(
                        "`{}` is already the route of stream `{other}`",
                        path.pattern()
                    ),
                ));
            }
        }
        let table = tables.entry(section.table.clone()).or_insert_with(|| {
            Arc::new(TableSpec {
                name: section.table.clone(),
                partition_key: spec.partition_key.clone(),
                sort_key: spec.sort_key.as_ref().map(|s| KeySpec {
                    name: s.name.clone(),
                    kind: s.kind,
                }),
                ttl_attribute: None,
                wcu_budget: file
                    .tables
                    .get(&section.table)
                    .and_then(|t| t.wcu_budget)
                    .map(|b| b.get() as f64),
            })
        });
        let sort = spec.sort_key.as_ref().map(|s| KeySpec {
            name: s.name.clone(),
            kind: s.kind,
        });
        if table.partition_key != spec.partition_key || table.sort_key != sort {
            return Err(err(
                format!("streams.{name}.partition_key"),
                format!(
                    "table `{}` is used by another stream with a different key schema",
                    section.table
                ),
            ));
        }
        if let Some(ttl_attr) = spec.ttl.map(|_| section.ttl_attribute.clone()) {
            match &table.ttl_attribute {
                Some(existing) if *existing != ttl_attr => {
                    return Err(err(
                        format!("streams.{name}.ttl_attribute"),
                        format!(
                            "table `{}` already has TTL attribute `{existing}`",
                            section.table
                        ),
                    ))
                }
                _ => {
                    let mut t = (**table).clone();
                    t.ttl_attribute = Some(ttl_attr);
                    *table = Arc::new(t);
                }
            }
        }
        streams.push(spec);
    }
    if let Some(unknown) = file.tables.keys().find(|t| !tables.contains_key(*t)) {
        return Err(err(
            format!("tables.{unknown}"),
            "no stream writes to this table",
        ));
    }
    // Streams hold the final table spec (with TTL merged across streams).
    for s in &mut streams {
        s.table = tables[&s.table.name].clone();
    }
    let api_keys = api_keys(&file.http.auth, &streams)?;
    Ok(ValidatedConfig {
        file,
        streams,
        tables: tables.into_values().collect(),
        api_keys,
        source: None,
        overrides: super::Overrides::default(),
    })
}

/// hyper refuses a read buffer below 8 KiB; above 1 MiB a head is an attack, not a request.
const MIN_HEADER_BYTES: u64 = 8 * 1024;
const MAX_HEADER_BYTES: u64 = 1024 * 1024;

fn http_limits(h: &HttpSection) -> Result<(), ConfigError> {
    if h.header_read_timeout.is_zero() {
        return Err(err("http.header_read_timeout", "must be greater than zero"));
    }
    if h.body_read_timeout.is_zero() {
        return Err(err("http.body_read_timeout", "must be greater than zero"));
    }
    if !(MIN_HEADER_BYTES..=MAX_HEADER_BYTES).contains(&h.max_header_bytes.as_u64()) {
        return Err(err(
            "http.max_header_bytes",
            "must be between 8KiB (hyper's smallest buffer) and 1MiB",
        ));
    }
    Ok(())
}

fn api_keys(auth: &AuthSection, streams: &[StreamSpec]) -> Result<Vec<ApiKey>, ConfigError> {
    if auth.enabled && auth.keys.is_empty() {
        return Err(err(
            "http.auth.keys",
            "auth is enabled but no key is configured: every request would be refused",
        ));
    }
    let mut keys: Vec<ApiKey> = Vec::with_capacity(auth.keys.len());
    for (i, k) in auth.keys.iter().enumerate() {
        let at = |field: &str| format!("http.auth.keys[{i}].{field}");
        let name_ok = !k.name.is_empty()
            && k.name.len() <= 64
            && k.name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'));
        if !name_ok {
            return Err(err(
                at("name"),
                "1-64 characters of ASCII letters, digits, '_', '-', '.'",
            ));
        }
        if keys.iter().any(|o| *o.name == *k.name) {
            return Err(err(at("name"), format!("`{}` names two keys", k.name)));
        }
        let mut sha256 = [0u8; 32];
        if k.sha256.len() != 64 || hex::decode_to_slice(&k.sha256, &mut sha256).is_err() {
            return Err(err(
                at("sha256"),
                "must be the 64 hex digits of the key's SHA-256 (see `dynamo-ingest hash-key`), not the key itself",
            ));
        }
        if let Some(o) = keys.iter().find(|o| o.sha256 == sha256) {
            return Err(err(
                at("sha256"),
                format!("the same key is already configured as `{}`", o.name),
            ));
        }
        let grant = if k.streams.iter().any(|s| s == "*") {
            if k.streams.len() > 1 {
                return Err(err(at("streams"), "`*` (all streams) stands alone"));
            }
            StreamGrant::All
        } else {
            if k.streams.is_empty() {
                return Err(err(
                    at("streams"),
                    "must list at least one stream, or `*` for all",
                ));
            }
            let mut list = Vec::with_capacity(k.streams.len());
            for s in &k.streams {
                let Some(spec) = streams.iter().find(|spec| *spec.name == **s) else {
                    return Err(err(at("streams"), format!("no stream named `{s}`")));
                };
                list.push(spec.name.clone());
            }
            StreamGrant::Only(list)
        };
        keys.push(ApiKey {
            name: Arc::from(k.name.as_str()),
            sha256,
            streams: grant,
        });
    }
    Ok(keys)
}

fn stream(name: &str, s: &StreamSection) -> Result<StreamSpec, ConfigError> {
    let at = |key: &str| format!("streams.{name}.{key}");
    if name.is_empty()
        || !name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
    {
        return Err(err(
            format!("streams.{name}"),
            "stream names may use only ASCII letters, digits, '_' and '-'",
        ));
    }
    let table_ok = (3..=255).contains(&s.table.len())
        && s.table
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'));
    if !table_ok {
        return Err(err(
            at("table"),
            "DynamoDB table names are 3-255 characters of a-z, A-Z, 0-9, '_', '-', '.'",
        ));
    }
    if s.partition_key.name.is_empty() {
        return Err(err(at("partition_key.name"), "must not be empty"));
    }
    let partition_key = KeySpec {
        name: s.partition_key.name.clone(),
        kind: s.partition_key.kind,
    };
    let sort_key = match &s.sort_key {
        None => None,
        Some(sk) => {
            if sk.name.is_empty() {
                return Err(err(at("sort_key.name"), "must not be empty"));
            }
            if sk.name == partition_key.name {
                return Err(err(
                    at("sort_key.name"),
                    "must differ from the partition key",
                ));
            }
            if sk.source != SortKeySource::Field && sk.kind != KeyType::N {
                return Err(err(at("sort_key.type"), "a server-assigned sort key (source \"server_time\" or \"auto\") must have type \"N\""));
            }
            Some(SortKeySpec {
                name: sk.name.clone(),
                kind: sk.kind,
                source: sk.source,
            })
        }
    };
    if let Some(ttl) = s.ttl {
        if ttl < Duration::from_secs(1) {
            return Err(err(at("ttl"), "must be at least 1s"));
        }
        let key_names = [
            Some(&partition_key.name),
            sort_key.as_ref().map(|k| &k.name),
        ];
        if s.ttl_attribute.is_empty() || key_names.contains(&Some(&s.ttl_attribute)) {
            return Err(err(
                at("ttl_attribute"),
                "must be a non-empty, non-key attribute name",
            ));
        }
    }
    for (attr, ty) in &s.attribute_types {
        let key_kind = if *attr == partition_key.name {
            Some(partition_key.kind)
        } else {
            sort_key
                .as_ref()
                .filter(|k| k.name == *attr)
                .map(|k| k.kind)
        };
        let matches = matches!(
            (key_kind, ty),
            (None, _) | (Some(KeyType::S), ScalarType::S) | (Some(KeyType::N), ScalarType::N)
        );
        if !matches {
            return Err(err(
                format!("streams.{name}.attribute_types.{attr}"),
                "differs from the key attribute's type",
            ));
        }
    }
    let http_path = match &s.http_path {
        None => None,
        Some(p) => Some(PathTemplate::parse(p).map_err(|e| err(at("http_path"), e))?),
    };
    if let Some(p) = &http_path {
        if p.pattern().starts_with("/v1/")
            || ["/log_activity/", "/upload_data", "/add_to_cart/"].contains(&p.pattern())
        {
            return Err(err(at("http_path"), "collides with a built-in route"));
        }
    }
    let mqtt_topic = match &s.mqtt_topic {
        None => None,
        Some(t) => {
            if t.starts_with('$') || t.contains(['+', '#']) || t.starts_with('/') {
                return Err(err(
                    at("mqtt_topic"),
                    "must be a topic template without wildcards or a leading `/` or `$` (captures are `{name}` segments)",
                ));
            }
            Some(PathTemplate::parse(t).map_err(|e| err(at("mqtt_topic"), e))?)
        }
    };
    Ok(StreamSpec {
        name: Arc::from(name),
        table: Arc::new(TableSpec {
            name: s.table.clone(),
            partition_key: partition_key.clone(),
            sort_key: sort_key.as_ref().map(|k| KeySpec {
                name: k.name.clone(),
                kind: k.kind,
            }),
            ttl_attribute: None,
            wcu_budget: None,
        }),
        partition_key,
        sort_key,
        ttl: s.ttl,
        ttl_attribute: s.ttl_attribute.clone(),
        ack: s.ack,
        http_path,
        mqtt_topic,
        attribute_types: s.attribute_types.clone(),
    })
}

/// `[spool]` sizes, and no stream asks for `spooled` without a spool.
fn check_spool(file: &FileConfig) -> Result<(), ConfigError> {
    let s = &file.spool;
    if s.segment_bytes.as_u64() < 4096 || s.segment_bytes > s.max_bytes {
        return Err(err(
            "spool.segment_bytes",
            "must be at least 4 KiB and at most spool.max_bytes",
        ));
    }
    if !s.enabled {
        if let Some((name, _)) = file
            .streams
            .iter()
            .find(|(_, st)| st.ack == super::AckLevel::Spooled)
        {
            return Err(err(
                format!("streams.{name}.ack"),
                "`spooled` needs the disk spool: set [spool] enabled = true",
            ));
        }
    }
    Ok(())
}

fn err(key: impl Into<String>, message: impl Into<String>) -> ConfigError {
    ConfigError::Invalid {
        key: key.into(),
        message: message.into(),
    }
}
