//! The simulator: table registry, clock, storage budget, and the one entry
//! point `handle(op, body)` that the HTTP server (or an embedding test) calls.
//!
//! Locking: a `RwLock` guards the name → table map (write-locked only by
//! Create/DeleteTable); each table has its own `Mutex` held only for the
//! in-memory work of one call, never across an await.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, RwLock};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use serde_json::{json, Map, Value};

use crate::attr::AttrMap;
use crate::capacity::{Billing, WriteCapacity};
use crate::config::{ConfigError, SimConfig};
use crate::error::{ApiError, ApiResult};
use crate::ops;
use crate::protocol::Operation;
use crate::size::item_size;
use crate::stats::WriteStats;
use crate::storage::{Item, StorageBudget, TableStore};
use crate::table::{table_arn, KeySchema, Table, TableSpec};

/// Source of time for the capacity model, in seconds on a monotonic scale.
pub trait Clock: Send + Sync + std::fmt::Debug {
    /// Seconds since an arbitrary fixed origin.
    fn now(&self) -> f64;
}

/// Real time since the clock was made.
#[derive(Debug)]
pub struct MonotonicClock {
    start: Instant,
}

impl Default for MonotonicClock {
    fn default() -> Self {
        MonotonicClock {
            start: Instant::now(),
        }
    }
}

impl Clock for MonotonicClock {
    fn now(&self) -> f64 {
        self.start.elapsed().as_secs_f64()
    }
}

/// A clock moved by hand, for deterministic tests.
#[derive(Debug, Default)]
pub struct ManualClock {
    micros: AtomicU64,
}

impl ManualClock {
    /// Set the time in seconds.
    pub fn set(&self, secs: f64) {
        self.micros
            .store((secs * 1_000_000.0) as u64, Ordering::SeqCst);
    }

    /// Move time forward.
    pub fn advance(&self, secs: f64) {
        self.micros
            .fetch_add((secs * 1_000_000.0) as u64, Ordering::SeqCst);
    }
}

impl Clock for ManualClock {
    fn now(&self) -> f64 {
        self.micros.load(Ordering::SeqCst) as f64 / 1_000_000.0
    }
}

/// Startup errors.
#[derive(Debug, thiserror::Error)]
pub enum SimError {
    /// Invalid configuration.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// A configured table could not be created.
    #[error("cannot create table {name}: {source}")]
    Table {
        /// Table name.
        name: String,
        /// Cause.
        source: ApiError,
    },
    /// Snapshot read/write failure.
    #[error("snapshot {path}: {reason}")]
    Snapshot {
        /// File.
        path: String,
        /// Cause.
        reason: String,
    },
}

/// Lock a mutex, recovering the data if another thread panicked with it.
pub fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Shared handle to one table.
pub type TableRef = Arc<Mutex<Table>>;

/// A DynamoDB-compatible capacity simulator.
#[derive(Debug)]
pub struct Simulator {
    config: SimConfig,
    clock: Arc<dyn Clock>,
    tables: RwLock<BTreeMap<String, TableRef>>,
    budget: StorageBudget,
}

fn epoch_now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}

impl Simulator {
    /// A simulator on the real clock, with the configured tables created.
    pub fn new(config: SimConfig) -> Result<Self, SimError> {
        Self::with_clock(config, Arc::new(MonotonicClock::default()))
    }

    /// A simulator on the given clock (tests pass a `ManualClock`).
    pub fn with_clock(config: SimConfig, clock: Arc<dyn Clock>) -> Result<Self, SimError> {
        config.validate()?;
        let budget = StorageBudget::new(config.storage.max_items, config.storage.max_bytes);
        let sim = Simulator {
            config,
            clock,
            tables: RwLock::new(BTreeMap::new()),
            budget,
        };
        let specs: Vec<TableSpec> = sim
            .config
            .tables
            .iter()
            .filter(|t| t.create)
            .map(|t| TableSpec {
                name: t.name.clone(),
                schema: KeySchema {
                    hash: (t.partition_key.clone(), t.partition_key_type),
                    range: t.sort_key.clone().map(|s| (s, t.sort_key_type)),
                },
                billing: match t.wcu {
                    Some(w) => Billing::Provisioned { wcu: w as f64 },
                    None => Billing::OnDemand,
                },
                rcu: t.rcu.or(t.wcu).unwrap_or(0),
            })
            .collect();
        for spec in specs {
            let name = spec.name.clone();
            sim.create_table(spec)
                .map_err(|source| SimError::Table { name, source })?;
        }
        if let Some(path) = sim.config.storage.snapshot.clone() {
            if path.exists() {
                sim.load_snapshot(&path)?;
            }
        }
        Ok(sim)
    }

    /// The configuration in force.
    pub fn config(&self) -> &SimConfig {
        &self.config
    }

    /// Current time on the simulator's clock.
    pub fn now(&self) -> f64 {
        self.clock.now()
    }

    /// Shared storage budget.
    pub fn budget(&self) -> &StorageBudget {
        &self.budget
    }

    /// Create a table; `ResourceInUseException` if it exists.
    pub fn create_table(&self, spec: TableSpec) -> ApiResult<()> {
        let now = self.now();
        let over = self.config.table(&spec.name);
        let capacity = WriteCapacity::new(
            self.config.capacity.clone(),
            spec.billing,
            over.and_then(|t| t.schedule.clone())
                .or_else(|| self.config.capacity.schedule.clone()),
            over.and_then(|t| t.partitions),
            now,
        );
        let epoch = epoch_now();
        let table = Table {
            arn: table_arn(&spec.name),
            name: spec.name.clone(),
            schema: spec.schema,
            rcu: spec.rcu,
            created_epoch: epoch,
            last_pay_per_request_epoch: (spec.billing == Billing::OnDemand).then_some(epoch),
            ttl: None,
            store: TableStore::default(),
            capacity,
            stats: WriteStats::default(),
        };
        let mut tables = self.tables.write().unwrap_or_else(PoisonError::into_inner);
        if tables.contains_key(&spec.name) {
            return Err(ApiError::ResourceInUse(format!(
                "Table already exists: {}",
                spec.name
            )));
        }
        tables.insert(spec.name, Arc::new(Mutex::new(table)));
        Ok(())
    }

    /// Look up a table; item operations' `ResourceNotFoundException`.
    pub fn table(&self, name: &str) -> ApiResult<TableRef> {
        self.tables
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .get(name)
            .cloned()
            .ok_or_else(crate::error::table_not_found)
    }

    /// Remove a table, releasing its storage.
    pub fn remove_table(&self, name: &str) -> Option<TableRef> {
        let removed = self
            .tables
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(name);
        if let Some(t) = &removed {
            lock(t).store.release(&self.budget);
        }
        removed
    }

    /// Table names in order.
    pub fn table_names(&self) -> Vec<String> {
        self.tables
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .keys()
            .cloned()
            .collect()
    }

    /// Run one API call given its `X-Amz-Target` and JSON body.
    pub fn handle(&self, target: &str, body: &[u8]) -> ApiResult<Value> {
        let op = Operation::from_target(target)?;
        ops::dispatch(self, op, body)
    }

    /// Run one API call on an already-parsed body.
    pub fn handle_value(&self, target: &str, req: Value) -> ApiResult<Value> {
        let op = Operation::from_target(target)?;
        let body = serde_json::to_vec(&req).map_err(crate::attr::parse_error)?;
        ops::dispatch(self, op, &body)
    }

    /// The `/__sim/stats` document.
    pub fn stats(&self) -> Value {
        let now = self.now();
        let tables: Vec<(String, TableRef)> = self
            .tables
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        let mut out = Map::new();
        for (name, t) in tables {
            let view = lock(&t).stats_view(now);
            out.insert(name, serde_json::to_value(view).unwrap_or(Value::Null));
        }
        json!({
            "uptime_seconds": now,
            "tables": out,
        })
    }

    /// Write every table and item to a JSON file.
    pub fn save_snapshot(&self, path: &Path) -> Result<(), SimError> {
        let err = |reason: String| SimError::Snapshot {
            path: path.display().to_string(),
            reason,
        };
        let mut tables = Vec::new();
        for name in self.table_names() {
            let Ok(t) = self.table(&name) else { continue };
            let t = lock(&t);
            let (mode, wcu) = match t.capacity.billing() {
                Billing::Provisioned { wcu } => ("PROVISIONED", wcu as u64),
                Billing::OnDemand => ("PAY_PER_REQUEST", 0),
            };
            let items: Vec<Value> = t.store.all_items().map(|i| i.to_json()).collect();
            tables.push(json!({
                "TableName": t.name,
                "HashKey": [t.schema.hash.0, t.schema.hash.1.as_str()],
                "RangeKey": t.schema.range.as_ref().map(|(n, ty)| json!([n, ty.as_str()])),
                "BillingMode": mode,
                "WriteCapacityUnits": wcu,
                "ReadCapacityUnits": t.rcu,
                "Items": items,
            }));
        }
        let doc = json!({"version": 1, "tables": tables});
        let tmp = path.with_extension("tmp");
        let bytes = serde_json::to_vec(&doc).map_err(|e| err(e.to_string()))?;
        std::fs::write(&tmp, bytes).map_err(|e| err(e.to_string()))?;
        std::fs::rename(&tmp, path).map_err(|e| err(e.to_string()))
    }

    /// Load tables and items from a snapshot written by `save_snapshot`.
    /// Existing tables of the same name keep their settings; items are added.
    pub fn load_snapshot(&self, path: &Path) -> Result<usize, SimError> {
        let err = |reason: String| SimError::Snapshot {
            path: path.display().to_string(),
            reason,
        };
        let bytes = std::fs::read(path).map_err(|e| err(e.to_string()))?;
        let doc: Value = serde_json::from_slice(&bytes).map_err(|e| err(e.to_string()))?;
        let mut loaded = 0;
        for t in doc["tables"].as_array().into_iter().flatten() {
            let name = t["TableName"]
                .as_str()
                .ok_or_else(|| err("table without name".into()))?;
            let key = |v: &Value| -> Option<(String, crate::key::KeyType)> {
                Some((
                    v.get(0)?.as_str()?.to_string(),
                    crate::key::KeyType::parse(v.get(1)?.as_str()?)?,
                ))
            };
            let hash = key(&t["HashKey"]).ok_or_else(|| err(format!("{name}: bad HashKey")))?;
            let billing = match t["BillingMode"].as_str() {
                Some("PROVISIONED") => Billing::Provisioned {
                    wcu: t["WriteCapacityUnits"].to_string().parse().unwrap_or(1.0),
                },
                _ => Billing::OnDemand,
            };
            let spec = TableSpec {
                name: name.to_string(),
                schema: KeySchema {
                    hash,
                    range: key(&t["RangeKey"]),
                },
                billing,
                rcu: t["ReadCapacityUnits"].to_string().parse().unwrap_or(0),
            };
            match self.create_table(spec) {
                Ok(()) | Err(ApiError::ResourceInUse(_)) => {}
                Err(e) => return Err(err(e.to_string())),
            }
            let table = self.table(name).map_err(|e| err(e.to_string()))?;
            let mut table = lock(&table);
            for item in t["Items"].as_array().into_iter().flatten() {
                let attrs = AttrMap::from_json(item.clone()).map_err(|e| err(e.to_string()))?;
                let size = item_size(&attrs).map_err(|e| err(e.to_string()))?;
                let (pk, sk) = table.key_of_item(&attrs).map_err(|e| err(e.to_string()))?;
                table
                    .store
                    .put(&self.budget, pk, sk, Item::new(&attrs, size))
                    .map_err(|e| err(e.to_string()))?;
                loaded += 1;
            }
        }
        Ok(loaded)
    }
}
