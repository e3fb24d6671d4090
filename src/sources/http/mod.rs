//! The HTTP source: a hyper 1.x listener (HTTP/1.1, keep-alive) that decodes
//! requests into events and hands them to the stream router.
//!
//! Shutdown: on the signal the listener stops accepting, open connections
//! finish their current request (hyper's graceful shutdown), and only then
//! does this source drop its handle on the router so the queues can close.

pub mod decode;
pub mod response;
pub mod routes;

use std::sync::Arc;
use std::time::Duration;

use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::StatusCode;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use metrics::{counter, Counter};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::config::ValidatedConfig;
use crate::event::template::PathTemplate;
use crate::pipeline::router::Router;
use crate::telemetry::metrics::HTTP_REQUESTS;

/// Shared by every connection.
#[derive(Debug)]
pub struct HttpState {
    pub router: Arc<Router>,
    pub max_body: usize,
    pub ack_timeout: Duration,
    pub retry_after_secs: u64,
    pub seed_routes: bool,
    pub paths: Vec<(PathTemplate, Arc<str>)>,
    responses: [Counter; 3],
}

impl HttpState {
    pub fn new(config: &ValidatedConfig, router: Arc<Router>) -> Self {
        let h = &config.file.http;
        Self {
            router,
            max_body: h.max_body_bytes.as_u64().min(usize::MAX as u64) as usize,
            ack_timeout: h.ack_timeout,
            retry_after_secs: config.file.pipeline.retry_after.as_secs().max(1),
            seed_routes: h.seed_routes,
            paths: config
                .streams
                .iter()
                .filter_map(|s| Some((s.http_path.clone()?, s.name.clone())))
                .collect(),
            responses: ["2xx", "4xx", "5xx"].map(|c| counter!(HTTP_REQUESTS, "class" => c)),
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
}

/// Serves until `shutdown` fires, then lets open connections finish.
pub async fn serve(listener: TcpListener, state: Arc<HttpState>, shutdown: CancellationToken) {
    let graceful = GracefulShutdown::new();
    let mut builder = http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .keep_alive(true)
        .header_read_timeout(Duration::from_secs(30));
    loop {
        let accepted = tokio::select! {
            a = listener.accept() => a,
            _ = shutdown.cancelled() => break,
        };
        let (stream, _peer) = match accepted {
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
        let service = service_fn(move |req| {
            let state = state.clone();
            async move { Ok::<_, std::convert::Infallible>(routes::handle(state, req).await) }
        });
        let conn = graceful.watch(builder.serve_connection(TokioIo::new(stream), service));
        tokio::spawn(async move {
            if let Err(e) = conn.await {
                tracing::debug!(error = %e, "connection ended with an error");
            }
        });
    }
    drop(listener);
    graceful.shutdown().await;
}
