//! The HTTP source: a hyper 1.x listener (HTTP/1.1, keep-alive, optional
//! TLS) that decodes requests into events and hands them to the stream
//! router.
//!
//! Per request, in order: route → API key ([`auth`]) → per-client rate
//! ([`client_rate`]) → body (bounded in bytes and time) → decode → router.
//! A request refused at any step stores nothing.
//!
//! Per connection, bounded: at most `http.max_connections` open (the
//! accept loop waits for a free slot, so further clients queue in the
//! kernel's backlog); the TLS handshake and every request head must arrive
//! within `http.header_read_timeout`, counted from when the connection is
//! ready for a request, so slowloris and idle keep-alive connections are
//! cut; the head is bounded in bytes and header count ([`head`]).
//!
//! Shutdown: on the signal the listener stops accepting, open connections
//! finish their current request (hyper's graceful shutdown), and only then
//! does this source drop its handle on the router so the queues can close.

pub mod auth;
pub mod client_rate;
pub mod decode;
pub mod head;
pub mod reload;
pub mod response;
pub mod routes;
pub mod tls;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use hyper::rt::{Read, Write};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::StatusCode;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::{GracefulShutdown, Watcher};
use metrics::{counter, gauge, Counter, Gauge};
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio_rustls::TlsAcceptor;
use tokio_util::sync::CancellationToken;

use crate::config::{ClientKeyBy, SeedRouteAccess, ValidatedConfig};
use crate::event::template::PathTemplate;
use crate::pipeline::router::Router;
use crate::telemetry::metrics::{
    HTTP_CONNECTIONS, HTTP_REJECTED, HTTP_REJECT_REASONS, HTTP_REQUESTS,
};

use auth::ApiKeys;
use client_rate::ClientRateLimiter;
use reload::KeyStore;

/// How often idle clients' rate-limit buckets are dropped.
const FORGET_IDLE_CLIENTS: Duration = Duration::from_secs(60);

/// Shared by every connection.
#[derive(Debug)]
pub struct HttpState {
    pub router: Arc<Router>,
    pub max_body: usize,
    pub ack_timeout: Duration,
    pub body_read_timeout: Duration,
    pub retry_after_secs: u64,
    pub seed_routes: bool,
    pub paths: Vec<(PathTemplate, Arc<str>)>,
    /// `None` when `http.auth.enabled` is false; swapped on SIGHUP.
    pub api_keys: Option<Arc<KeyStore>>,
    /// Whether the seed routes skip the key check when auth is on.
    pub seed_routes_open: bool,
    /// `None` when `http.rate_limit.enabled` is false.
    pub client_rate: Option<ClientRateLimiter>,
    pub key_by: ClientKeyBy,
    /// The request-head limits ([`head`]).
    pub max_header_bytes: usize,
    pub max_headers: usize,
    responses: [Counter; 3],
    rejected: [Counter; HTTP_REJECT_REASONS.len()],
}

impl HttpState {
    pub fn new(config: &ValidatedConfig, router: Arc<Router>) -> Self {
        let h = &config.file.http;
        Self {
            router,
            max_body: h.max_body_bytes.as_u64().min(usize::MAX as u64) as usize,
            ack_timeout: h.ack_timeout,
            body_read_timeout: h.body_read_timeout,
            retry_after_secs: config.file.pipeline.retry_after.as_secs().max(1),
            seed_routes: h.seed_routes,
            paths: config
                .streams
                .iter()
                .filter_map(|s| Some((s.http_path.clone()?, s.name.clone())))
                .collect(),
            api_keys: h
                .auth
                .enabled
                .then(|| Arc::new(KeyStore::new(ApiKeys::new(&config.api_keys)))),
            seed_routes_open: h.auth.seed_routes == SeedRouteAccess::Open,
            client_rate: h.rate_limit.enabled.then(|| {
                ClientRateLimiter::new(h.rate_limit.events_per_second, h.rate_limit.burst)
            }),
            key_by: h.rate_limit.key_by,
            max_header_bytes: h.max_header_bytes.as_u64().min(usize::MAX as u64) as usize,
            max_headers: h.max_headers.get(),
            responses: ["2xx", "4xx", "5xx"].map(|c| counter!(HTTP_REQUESTS, "class" => c)),
            rejected: HTTP_REJECT_REASONS.map(|r| counter!(HTTP_REJECTED, "reason" => r)),
        }
    }

    fn count_response(&self, status: StatusCode) {
        let i = match status.as_u16() {
            500.. => 2,
            400.. => 1,
            _ => 0,
        };
        self.responses[i].increment(1);
    }

    /// Counts a request refused by the listener's protections.
    pub fn count_rejected(&self, reason: &str) {
        if let Some(i) = HTTP_REJECT_REASONS.iter().position(|r| *r == reason) {
            self.rejected[i].increment(1);
        }
    }
}

/// Connection limits of the listener (from `[http]`).
#[derive(Debug, Clone)]
pub struct ListenerConfig {
    pub max_connections: usize,
    pub header_read_timeout: Duration,
    pub keep_alive: bool,
    pub max_header_bytes: usize,
    pub max_headers: usize,
}

impl ListenerConfig {
    pub fn new(config: &ValidatedConfig) -> Self {
        let h = &config.file.http;
        Self {
            max_connections: h.max_connections.get(),
            header_read_timeout: h.header_read_timeout,
            keep_alive: h.keep_alive,
            max_header_bytes: h.max_header_bytes.as_u64().min(usize::MAX as u64) as usize,
            max_headers: h.max_headers.get(),
        }
    }
}

/// Serves until `shutdown` fires, then lets open connections finish.
pub async fn serve(
    listener: TcpListener,
    state: Arc<HttpState>,
    limits: ListenerConfig,
    tls: Option<TlsAcceptor>,
    shutdown: CancellationToken,
) {
    let graceful = GracefulShutdown::new();
    let mut builder = http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .keep_alive(limits.keep_alive)
        .header_read_timeout(limits.header_read_timeout)
        // Caps above the limits, which `head::check` enforces with a JSON
        // answer; hyper's own 431 (empty body) only past the caps.
        .max_buf_size(limits.max_header_bytes * head::HYPER_HEAD_FACTOR)
        .max_headers(limits.max_headers * head::HYPER_HEAD_FACTOR);
    let builder = Arc::new(builder);
    let slots = Arc::new(Semaphore::new(limits.max_connections));
    let open: Gauge = gauge!(HTTP_CONNECTIONS);
    if state.client_rate.is_some() {
        tokio::spawn(forget_idle_clients(state.clone(), shutdown.clone()));
    }
    loop {
        // Wait for a free slot before accepting: past the limit, clients
        // queue in the kernel's backlog instead of costing us a task each.
        let slot = tokio::select! {
            s = slots.clone().acquire_owned() => s,
            _ = shutdown.cancelled() => break,
        };
        let Ok(slot) = slot else { break };
        let accepted = tokio::select! {
            a = listener.accept() => a,
            _ = shutdown.cancelled() => break,
        };
        let (stream, peer) = match accepted {
            Ok(s) => s,
            Err(e) => {
                // Out of file descriptors and the like: keep serving the others.
                tracing::warn!(error = %e, "accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        let state = state.clone();
        let builder = builder.clone();
        let watcher = graceful.watcher();
        let tls = tls.clone();
        let open = open.clone();
        let handshake_timeout = limits.header_read_timeout;
        tokio::spawn(async move {
            open.increment(1.0);
            match tls {
                None => {
                    serve_connection(TokioIo::new(stream), peer, state, &builder, watcher).await
                }
                Some(acceptor) => {
                    match tokio::time::timeout(handshake_timeout, acceptor.accept(stream)).await {
                        Ok(Ok(tls_stream)) => {
                            serve_connection(
                                TokioIo::new(tls_stream),
                                peer,
                                state,
                                &builder,
                                watcher,
                            )
                            .await
                        }
                        Ok(Err(e)) => {
                            tracing::debug!(%peer, error = %e, "TLS handshake failed");
                            state.count_rejected("tls_handshake");
                        }
                        Err(_) => {
                            tracing::debug!(%peer, "TLS handshake timed out");
                            state.count_rejected("header_timeout");
                        }
                    }
                }
            }
            open.decrement(1.0);
            drop(slot);
        });
    }
    drop(listener);
    graceful.shutdown().await;
}

async fn serve_connection<I>(
    io: I,
    peer: SocketAddr,
    state: Arc<HttpState>,
    builder: &http1::Builder,
    watcher: Watcher,
) where
    I: Read + Write + Unpin + Send + 'static,
{
    let conn_state = state.clone();
    let service = service_fn(move |req| {
        let state = conn_state.clone();
        async move { Ok::<_, std::convert::Infallible>(routes::handle(state, req, peer).await) }
    });
    if let Err(e) = watcher.watch(builder.serve_connection(io, service)).await {
        if e.is_timeout() {
            // A request head that did not arrive in time: slowloris, or an
            // idle keep-alive connection being closed.
            state.count_rejected("header_timeout");
        }
        tracing::debug!(%peer, error = %e, "connection ended with an error");
    }
}

/// Drops the buckets of clients that have been idle long enough to be full
/// again, so the limiter holds only recently active clients.
async fn forget_idle_clients(state: Arc<HttpState>, shutdown: CancellationToken) {
    let mut tick = tokio::time::interval(FORGET_IDLE_CLIENTS);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = shutdown.cancelled() => return,
        }
        if let Some(limiter) = &state.client_rate {
            limiter.forget_idle();
        }
    }
}
