//! Configuration: the TOML file ([`file`]), its validation ([`validate`]) and
//! the one [`ValidatedConfig`] every component is built from.
//!
//! Sits before everything else in the data flow: the gateway refuses to bind
//! a port with a config that does not validate (exit code 64).

pub mod file;
pub mod mqtt;
mod mqtt_check;
pub mod spool;
pub use mqtt_check::SHA256_PREFIX;
mod validate;

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

pub use file::{
    AckLevel, ClientKeyBy, FileConfig, KeyType, ScalarType, SeedRouteAccess, SortKeySource,
    TlsSection,
};

use crate::event::template::PathTemplate;

/// The configuration shipped in `config/default.toml`, embedded in the binary.
pub const DEFAULT_TOML: &str = include_str!("../../config/default.toml");

/// A configuration that failed to load.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("invalid config {origin}: {message}")]
    Parse { origin: String, message: String },
    #[error("invalid config key `{key}`: {message}")]
    Invalid { key: String, message: String },
}

/// A config that parsed and passed every cross-field check.
#[derive(Debug, Clone)]
pub struct ValidatedConfig {
    /// The file as parsed, with command-line overrides applied.
    pub file: FileConfig,
    pub streams: Vec<StreamSpec>,
    /// One entry per distinct table, key schema shared by its streams.
    pub tables: Vec<Arc<TableSpec>>,
    /// `[[http.auth.keys]]`, decoded (empty when auth is off).
    pub api_keys: Vec<ApiKey>,
    /// The file this was read from (`None`: embedded default or text) and
    /// the overrides applied: what a SIGHUP reload reads again.
    pub source: Option<std::path::PathBuf>,
    pub overrides: Overrides,
}

/// A validated API key: who holds it, its SHA-256, what it may write.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiKey {
    pub name: Arc<str>,
    pub sha256: [u8; 32],
    pub streams: StreamGrant,
}

/// The streams an API key may write.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StreamGrant {
    All,
    Only(Vec<Arc<str>>),
}

impl StreamGrant {
    /// Whether `stream` may be written.
    pub fn allows(&self, stream: &str) -> bool {
        match self {
            StreamGrant::All => true,
            StreamGrant::Only(list) => list.iter().any(|s| &**s == stream),
        }
    }
}

/// A key attribute of a table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeySpec {
    pub name: String,
    pub kind: KeyType,
}

/// A stream's sort key and where its value comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SortKeySpec {
    pub name: String,
    pub kind: KeyType,
    pub source: SortKeySource,
}

/// What the gateway knows about a table.
#[derive(Debug, Clone, PartialEq)]
pub struct TableSpec {
    pub name: String,
    pub partition_key: KeySpec,
    pub sort_key: Option<KeySpec>,
    /// Set when any stream of this table writes a TTL attribute.
    pub ttl_attribute: Option<String>,
    /// `[tables.NAME] wcu_budget`.
    pub wcu_budget: Option<f64>,
}

#[cfg(test)]
impl TableSpec {
    /// A table keyed by a string `k` alone, no TTL, no budget (unit tests).
    pub(crate) fn string_keyed(name: &str) -> Self {
        Self {
            name: name.into(),
            partition_key: KeySpec {
                name: "k".into(),
                kind: KeyType::S,
            },
            sort_key: None,
            ttl_attribute: None,
            wcu_budget: None,
        }
    }
}

/// A validated `[streams.NAME]`.
#[derive(Debug, Clone)]
pub struct StreamSpec {
    pub name: Arc<str>,
    pub table: Arc<TableSpec>,
    pub partition_key: KeySpec,
    pub sort_key: Option<SortKeySpec>,
    pub ttl: Option<Duration>,
    pub ttl_attribute: String,
    pub ack: AckLevel,
    pub http_path: Option<PathTemplate>,
    pub mqtt_topic: Option<PathTemplate>,
    pub attribute_types: BTreeMap<String, ScalarType>,
}

/// Command-line values that replace the file's.
#[derive(Debug, Clone, Default)]
pub struct Overrides {
    pub dynamodb_endpoint: Option<String>,
    pub region: Option<String>,
    pub http_listen: Option<std::net::SocketAddr>,
    pub admin_listen: Option<std::net::SocketAddr>,
    pub mqtt_listen: Option<std::net::SocketAddr>,
}

impl ValidatedConfig {
    /// Loads `path` (or the embedded default), applies `overrides`, validates.
    pub fn load(path: Option<&Path>, overrides: &Overrides) -> Result<Self, ConfigError> {
        let (origin, text) = match path {
            Some(p) => {
                let text = std::fs::read_to_string(p).map_err(|source| ConfigError::Read {
                    path: p.display().to_string(),
                    source,
                })?;
                (p.display().to_string(), text)
            }
            None => (
                "(embedded config/default.toml)".to_owned(),
                DEFAULT_TOML.to_owned(),
            ),
        };
        let mut config = Self::from_toml(&origin, &text, overrides)?;
        config.source = path.map(Path::to_path_buf);
        Ok(config)
    }

    /// Parses and validates TOML text; `origin` names it in errors.
    pub fn from_toml(origin: &str, text: &str, overrides: &Overrides) -> Result<Self, ConfigError> {
        let mut file: FileConfig = toml::from_str(text).map_err(|e| ConfigError::Parse {
            origin: origin.to_owned(),
            message: e.to_string(),
        })?;
        if let Some(e) = &overrides.dynamodb_endpoint {
            file.dynamodb.endpoint = Some(e.clone());
        }
        if let Some(r) = &overrides.region {
            file.dynamodb.region = r.clone();
        }
        if let Some(a) = overrides.http_listen {
            file.http.listen = a;
        }
        if let Some(a) = overrides.admin_listen {
            file.admin.listen = a;
        }
        if let Some(a) = overrides.mqtt_listen {
            file.mqtt.listen = a;
        }
        let mut config = validate::validate(file)?;
        config.overrides = overrides.clone();
        Ok(config)
    }

    /// Points the gateway at the embedded simulator (`--local`): its
    /// endpoint, and tables created there at start-up.
    pub fn use_local_endpoint(&mut self, endpoint: String) {
        self.file.dynamodb.endpoint = Some(endpoint);
        self.file.dynamodb.create_tables = true;
    }

    /// The effective configuration as TOML (what `check-config` prints).
    pub fn to_toml(&self) -> String {
        toml::to_string_pretty(&self.file)
            .unwrap_or_else(|e| format!("# cannot render config: {e}\n"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load(text: &str) -> Result<ValidatedConfig, ConfigError> {
        ValidatedConfig::from_toml("test", text, &Overrides::default())
    }

    #[test]
    fn embedded_default_validates_with_the_three_seed_streams() {
        let c = load(DEFAULT_TOML).expect("default config");
        let names: Vec<_> = c.streams.iter().map(|s| &*s.name).collect();
        assert_eq!(names, ["activity", "cart", "sensor"]);
        let tables: Vec<_> = c.tables.iter().map(|t| t.name.as_str()).collect();
        assert_eq!(tables, ["IoTSensorData", "ShoppingCart", "UserActivity"]);
        assert_eq!(c.file.pipeline.linger, Duration::from_millis(20));
        assert_eq!(c.file.http.max_body_bytes.as_u64(), 16 * 1024 * 1024);
    }

    #[test]
    fn unknown_key_is_named() {
        let e = load("[http]\nlisten = \"127.0.0.1:1\"\nlisen = 3\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("lisen"), "{e}");
    }

    #[test]
    fn bad_unit_is_named() {
        let e = load("[pipeline]\nlinger = \"20 parsecs\"\n[streams.a]\ntable=\"Tab\"\npartition_key={name=\"k\",type=\"S\"}\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("linger"), "{e}");
    }

    #[test]
    fn server_time_sort_key_must_be_numeric() {
        let e = load("[streams.a]\ntable=\"Tab\"\npartition_key={name=\"k\",type=\"S\"}\nsort_key={name=\"t\",type=\"S\",source=\"server_time\"}\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("streams.a.sort_key.type"), "{e}");
    }

    #[test]
    fn two_streams_of_one_table_must_agree_on_keys() {
        let e = load(
            "[streams.a]\ntable=\"Tab\"\npartition_key={name=\"k\",type=\"S\"}\n[streams.b]\ntable=\"Tab\"\npartition_key={name=\"k\",type=\"N\"}\n",
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("streams.b.partition_key"), "{e}");
    }

    #[test]
    fn overrides_replace_file_values() {
        let o = Overrides {
            dynamodb_endpoint: Some("http://127.0.0.1:9".into()),
            region: Some("eu-west-1".into()),
            http_listen: Some("127.0.0.1:0".parse().expect("addr")),
            admin_listen: None,
            mqtt_listen: Some("127.0.0.1:1".parse().expect("addr")),
        };
        let c = ValidatedConfig::from_toml("t", DEFAULT_TOML, &o).expect("valid");
        assert_eq!(c.file.mqtt.listen.port(), 1);
        assert_eq!(
            c.file.dynamodb.endpoint.as_deref(),
            Some("http://127.0.0.1:9")
        );
        assert_eq!(c.file.dynamodb.region, "eu-west-1");
        assert_eq!(c.file.http.listen.port(), 0);
    }

    #[test]
    fn api_keys_are_validated_and_named() {
        let base = DEFAULT_TOML.to_owned();
        let with = |extra: &str| load(&format!("{base}\n{extra}"));
        let h = "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad";
        let e = with("[http.auth]\nenabled = true\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("http.auth.keys"), "{e}");
        let e = with("[[http.auth.keys]]\nname=\"a\"\nsha256=\"abc\"\nstreams=[\"*\"]\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("http.auth.keys[0].sha256"), "{e}");
        let e = with(&format!(
            "[[http.auth.keys]]\nname=\"a\"\nsha256=\"{h}\"\nstreams=[\"nope\"]\n"
        ))
        .unwrap_err()
        .to_string();
        assert!(
            e.contains("http.auth.keys[0].streams") && e.contains("nope"),
            "{e}"
        );
        let e = with(&format!("[[http.auth.keys]]\nname=\"a\"\nsha256=\"{h}\"\nstreams=[\"*\"]\n[[http.auth.keys]]\nname=\"b\"\nsha256=\"{h}\"\nstreams=[\"*\"]\n"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("http.auth.keys[1].sha256"), "{e}");
        let c = with(&format!("[http.auth]\nenabled = true\n[[http.auth.keys]]\nname=\"fleet\"\nsha256=\"{h}\"\nstreams=[\"sensor\"]\n"))
            .expect("valid");
        assert_eq!(c.api_keys.len(), 1);
        assert!(c.api_keys[0].streams.allows("sensor"));
        assert!(!c.api_keys[0].streams.allows("cart"));
        let e = load(&base.replace(
            "max_header_bytes = \"16KiB\"",
            "max_header_bytes = \"1KiB\"",
        ))
        .unwrap_err()
        .to_string();
        assert!(e.contains("http.max_header_bytes"), "{e}");
    }

    #[test]
    fn bad_endpoint_is_named() {
        let o = Overrides {
            dynamodb_endpoint: Some("localhost:8000".into()),
            ..Default::default()
        };
        let e = ValidatedConfig::from_toml("t", DEFAULT_TOML, &o)
            .unwrap_err()
            .to_string();
        assert!(e.contains("dynamodb.endpoint"), "{e}");
    }
}
