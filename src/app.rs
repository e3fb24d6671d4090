//! Wires the gateway together and owns the shutdown order.
//!
//! Start-up: TLS certificate (if any) → metrics recorder → admin listener
//! → DynamoDB client and table bootstrap → per table: queue, batcher,
//! writer → spool (recovery) → router → spool replay (recovered records
//! into the tables' overflows) and one feeder per table → MQTT source and
//! HTTP listener → the readiness line on stdout.
//!
//! Shutdown (SIGTERM/SIGINT), an ordered cascade bounded by
//! `shutdown_grace`: stop accepting and let open requests finish, drain the
//! MQTT link into the pipeline → the router's last handle drops, closing the queues → batchers flush at end of
//! stream → writers drain. At the deadline `abort` fires and whatever is
//! still unwritten goes to the dead-letter file. Nothing acknowledged is lost.
//! The spool's feeders stop once their overflow is empty (or at the
//! deadline: what waits on disk is replayed at the next start). Last, the
//! spool persists its releases and deletes its fully released segments.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::sync::mpsc;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::config::file::{MqttMode, RequestPath};
use crate::config::ValidatedConfig;
use crate::pipeline::batcher::{self, BatcherConfig};
use crate::pipeline::clock::SortClock;
use crate::pipeline::queue;
use crate::pipeline::router::Router;
use crate::pipeline::spool::{replay, Spool, SpoolOptions};
use crate::sink::dead_letter::DeadLetter;
use crate::sink::dynamodb::bootstrap::{self, BootstrapError};
use crate::sink::dynamodb::client;
use crate::sink::dynamodb::direct::sign::Signer;
use crate::sink::dynamodb::direct::{DirectError, DirectWriter, TableWriter};
use crate::sink::dynamodb::rate::controller::ControllerConfig;
use crate::sink::dynamodb::rate::RateControl;
use crate::sink::dynamodb::request::SdkWriter;
use crate::sink::dynamodb::retry::Backoff;
use crate::sink::dynamodb::writer::{self, WriterConfig};
use crate::sources::http::reload::{reload_keys_on_sighup, KeyReloader};
use crate::sources::http::tls::{self, CertStore, TlsError};
use crate::sources::http::{self as http_source, HttpState, ListenerConfig};
use crate::sources::mqtt::{self as mqtt_source, MqttError, Running};
use crate::telemetry::admin::{self, Health};
use crate::telemetry::metrics::{SpoolMetrics, TableMetrics};

/// Why the gateway stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum AppError {
    #[error(transparent)]
    Bootstrap(#[from] BootstrapError),
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("http.tls: {0}")]
    Tls(#[from] TlsError),
    #[error(transparent)]
    Mqtt(#[from] MqttError),
    #[error("cannot open the spool in {path}: {source}")]
    Spool {
        path: std::path::PathBuf,
        source: std::io::Error,
    },
    #[error(transparent)]
    Client(#[from] DirectError),
    #[error(transparent)]
    Other(#[from] anyhow::Error),
}

impl AppError {
    /// Process exit code: 64 (EX_USAGE) when the configuration is at fault.
    pub fn exit_code(&self) -> i32 {
        match self {
            AppError::Bootstrap(
                BootstrapError::SchemaMismatch { .. } | BootstrapError::Missing(_),
            )
            | AppError::Tls(_)
            | AppError::Client(DirectError::Endpoint(_)) => 64,
            _ => 1,
        }
    }
}

/// Runs the gateway until SIGTERM/SIGINT (or `stop`, when given) and a complete shutdown.
pub async fn run(config: ValidatedConfig, stop: Option<CancellationToken>) -> Result<(), AppError> {
    // Certificates are read before any port is bound: a bad file stops start-up.
    let cert_store = match &config.file.http.tls {
        Some(files) => Some(Arc::new(CertStore::load(files)?)),
        None => None,
    };
    let tls_acceptor = cert_store.as_ref().map(|s| s.acceptor()).transpose()?;
    let prometheus = crate::telemetry::install_recorder()?;
    let upkeep = prometheus.clone();
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_secs(5));
        loop {
            tick.tick().await;
            upkeep.run_upkeep();
        }
    });

    let shutdown = stop.unwrap_or_default();
    tokio::spawn(watch_signals(shutdown.clone()));
    tokio::spawn(tls::reload_on_sighup(
        cert_store,
        "http_tls",
        shutdown.clone(),
    ));

    let health = Arc::new(Health::default());
    let admin_listener = bind(config.file.admin.listen).await?;
    let admin_addr = admin_listener
        .local_addr()
        .map_err(|source| AppError::Bind {
            addr: config.file.admin.listen,
            source,
        })?;
    let admin_stop = CancellationToken::new();
    tokio::spawn(admin::serve(
        admin_listener,
        prometheus,
        health.clone(),
        admin_stop.clone(),
    ));

    let sdk_config = client::load(&config).await;
    let client = aws_sdk_dynamodb::Client::new(&sdk_config);
    let d = &config.file.dynamodb;
    tokio::select! {
        r = bootstrap::ensure_tables(&client, &config.tables, d.create_tables, d.startup_timeout) => r?,
        _ = shutdown.cancelled() => {
            tracing::info!("shutdown requested during start-up");
            return Ok(());
        }
    }
    health.tables_ready.store(true, Ordering::Relaxed);

    // Pipeline, one lane per table.
    let abort = CancellationToken::new();
    let dead_letter = DeadLetter::new(config.file.dead_letter.path.clone());
    let sdk_writer = SdkWriter::new(client);
    let table_writer = Arc::new(match d.request_path {
        RequestPath::Sdk => TableWriter::Sdk(sdk_writer),
        RequestPath::Direct => TableWriter::Direct(Box::new(DirectWriter::new(
            d.endpoint.as_deref(),
            &d.region,
            Signer::new(sdk_config.credentials_provider(), &d.region),
            d.request_timeout,
            sdk_writer,
        )?)),
    });
    let p = &config.file.pipeline;
    let mut queues = HashMap::new();
    let mut clocks = HashMap::new();
    let mut lanes = JoinSet::new();
    for table in &config.tables {
        let streams: Vec<_> = config
            .streams
            .iter()
            .filter(|s| s.table.name == table.name)
            .map(|s| s.name.clone())
            .collect();
        let metrics = TableMetrics::register(&table.name, &streams);
        let (tx, rx) = queue::bounded(
            p.queue_max_items.get(),
            p.queue_max_bytes.as_u64() as usize,
            metrics.queue_depth.clone(),
            metrics.queue_bytes.clone(),
        );
        let (batch_tx, batch_rx) = mpsc::channel(d.max_in_flight.get());
        let batcher_config = BatcherConfig {
            linger: p.linger,
            max_bytes: p.batch_max_bytes.as_u64() as usize,
        };
        lanes.spawn(batcher::run(
            rx,
            batch_tx,
            batcher_config,
            abort.clone(),
            dead_letter.clone(),
            metrics.clone(),
        ));
        let reachable = Arc::new(AtomicBool::new(true));
        if let Ok(mut r) = health.reachable.lock() {
            r.push((table.name.clone(), reachable.clone()));
        }
        let writer_config = WriterConfig {
            max_in_flight: d.max_in_flight.get(),
            max_parked_items: d.max_parked_items,
            backoff: Backoff {
                base: d.retry.base_delay,
                max: d.retry.max_delay,
            },
            max_fatal_attempts: d.retry.max_fatal_attempts,
        };
        let rate = d.rate.enabled.then(|| {
            let r = &d.rate;
            let controller = ControllerConfig {
                initial_wcu: r.initial_wcu,
                min_wcu: r.min_wcu,
                max_wcu: table.wcu_budget,
                decrease_factor: r.decrease_factor,
                recovery: r.recovery,
                plateau: r.plateau,
                probe_doubling: r.probe_doubling,
                hold: r.hold,
                unprocessed_threshold: r.unprocessed_threshold,
                capacity_poll: r.capacity_poll,
            };
            Arc::new(RateControl::new(
                controller,
                r.partition_wcu,
                &table.name,
                metrics.rate_limit.clone(),
                metrics.rate_wait.clone(),
            ))
        });
        lanes.spawn(writer::run(
            table.clone(),
            batch_rx,
            table_writer.clone(),
            writer_config,
            abort.clone(),
            dead_letter.clone(),
            metrics,
            reachable,
            rate,
        ));
        queues.insert(table.name.clone(), Arc::new(tx));
        clocks.insert(table.name.clone(), Arc::new(SortClock::new()));
    }
    let spool_metrics = SpoolMetrics::register();
    let mut router = Router::new(&config.streams, &queues, &clocks);
    drop(queues);
    let sp = &config.file.spool;
    let (spool, recovered) = if sp.enabled {
        let options = SpoolOptions {
            path: sp.path.clone(),
            max_bytes: sp.max_bytes.as_u64(),
            segment_bytes: sp.segment_bytes.as_u64(),
            release_tick: crate::pipeline::spool::RELEASE_TICK,
        };
        let (spool, recovered) =
            Spool::open(&options, spool_metrics).map_err(|source| AppError::Spool {
                path: sp.path.clone(),
                source,
            })?;
        router = router.with_spool(spool.clone());
        (Some(spool), recovered)
    } else {
        (None, Vec::new())
    };
    let router = Arc::new(router);
    let mut feeders = JoinSet::new();
    if let Some(spool) = &spool {
        let replayed = replay::replay(&router, recovered, spool.metrics());
        if replayed > 0 {
            tracing::info!(records = replayed, "spool: replaying into the queues");
        }
        for feeder in router.feeders(spool.metrics()) {
            feeders.spawn(feeder.run(shutdown.clone(), abort.clone()));
        }
    }
    let mqtt = mqtt_source::start(
        &config,
        router.clone(),
        dead_letter.clone(),
        shutdown.clone(),
        abort.clone(),
    )
    .await?;
    if let Some(m) = &mqtt {
        if let Ok(mut h) = health.mqtt.lock() {
            *h = Some(m.healthy.clone());
        }
    }
    let http_state = Arc::new(HttpState::new(&config, router));
    tokio::spawn(reload_keys_on_sighup(
        KeyReloader::new(&config, http_state.api_keys.clone()),
        shutdown.clone(),
    ));

    let http_listener = bind(config.file.http.listen).await?;
    let http_addr = http_listener
        .local_addr()
        .map_err(|source| AppError::Bind {
            addr: config.file.http.listen,
            source,
        })?;
    let http = tokio::spawn(http_source::serve(
        http_listener,
        http_state,
        ListenerConfig::new(&config),
        tls_acceptor,
        shutdown.clone(),
    ));
    tracing::info!(%http_addr, %admin_addr, dead_letter = %dead_letter.path().display(), "dynamo-ingest ready");
    let mqtt_label = match (&mqtt, config.file.mqtt.mode) {
        (
            Some(Running {
                listen: Some(a), ..
            }),
            _,
        ) => a.to_string(),
        (_, MqttMode::External) => "external".to_owned(),
        _ => "off".to_owned(),
    };
    announce_ready(
        http_addr,
        admin_addr,
        &mqtt_label,
        config.file.dynamodb.endpoint.as_deref().unwrap_or("aws"),
    );

    shutdown.cancelled().await;
    health.shutting_down.store(true, Ordering::Relaxed);
    let grace = config.file.shutdown_grace;
    tracing::info!(
        ?grace,
        "shutting down: no new connections, flushing queued events"
    );
    let deadline = tokio::time::Instant::now() + grace;
    if tokio::time::timeout_at(deadline, http).await.is_err() {
        tracing::warn!("HTTP connections still open at the shutdown deadline");
    }
    let mut mqtt_done = mqtt.map(|m| m.done);
    if let Some(done) = mqtt_done.as_mut() {
        if tokio::time::timeout_at(deadline, done).await.is_ok() {
            mqtt_done = None;
        } else {
            tracing::warn!("MQTT messages still waiting for the pipeline at the shutdown deadline");
        }
    }
    let drained = tokio::time::timeout_at(deadline, async {
        while lanes.join_next().await.is_some() {}
    })
    .await;
    if drained.is_err() {
        tracing::warn!("shutdown deadline reached: dead-lettering what is still unwritten");
        abort.cancel();
        if let Some(done) = mqtt_done.take() {
            let _ = done.await;
        }
        while lanes.join_next().await.is_some() {}
    }
    feeders.shutdown().await;
    if let Some(spool) = spool {
        spool.close();
    }
    admin_stop.cancel();
    tracing::info!("shutdown complete");
    Ok(())
}

async fn bind(addr: SocketAddr) -> Result<TcpListener, AppError> {
    TcpListener::bind(addr)
        .await
        .map_err(|source| AppError::Bind { addr, source })
}

/// One line on stdout that scripts and tests wait for.
fn announce_ready(http: SocketAddr, admin: SocketAddr, mqtt: &str, dynamodb: &str) {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    let _ = writeln!(
        out,
        "dynamo-ingest ready http={http} admin={admin} mqtt={mqtt} dynamodb={dynamodb}"
    );
    let _ = out.flush();
}

async fn watch_signals(shutdown: CancellationToken) {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = term.recv() => tracing::info!("SIGTERM received"),
                    _ = ctrl_c => tracing::info!("SIGINT received"),
                    _ = shutdown.cancelled() => return,
                }
            }
            Err(_) => {
                let _ = ctrl_c.await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = ctrl_c.await;
    }
    shutdown.cancel();
}
