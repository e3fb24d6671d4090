//! The admin listener (own port, default 127.0.0.1:9464): `/metrics`
//! (Prometheus text), `/healthz` (the process serves), `/readyz` (tables
//! ready, DynamoDB answered the last call, the MQTT broker is up, not
//! shutting down).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use bytes::Bytes;
use http_body_util::Full;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use metrics_exporter_prometheus::PrometheusHandle;
use serde_json::json;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::sources::http::response::json_response;

/// What /readyz reports.
#[derive(Debug, Default)]
pub struct Health {
    pub tables_ready: AtomicBool,
    pub shutting_down: AtomicBool,
    /// One flag per table writer: DynamoDB answered its last call.
    pub reachable: std::sync::Mutex<Vec<(String, Arc<AtomicBool>)>>,
    /// The MQTT source's broker health (link alive / external broker connected), when MQTT is on.
    pub mqtt: std::sync::Mutex<Option<Arc<AtomicBool>>>,
}

impl Health {
    fn ready(&self) -> (bool, serde_json::Value) {
        let tables = self.tables_ready.load(Ordering::Relaxed);
        let shutting_down = self.shutting_down.load(Ordering::Relaxed);
        let unreachable: Vec<String> = self
            .reachable
            .lock()
            .map(|r| {
                r.iter()
                    .filter(|(_, ok)| !ok.load(Ordering::Relaxed))
                    .map(|(t, _)| t.clone())
                    .collect()
            })
            .unwrap_or_default();
        let mqtt_down = self
            .mqtt
            .lock()
            .ok()
            .and_then(|m| m.as_ref().map(|ok| !ok.load(Ordering::Relaxed)))
            .unwrap_or(false);
        let ready = tables && !shutting_down && unreachable.is_empty() && !mqtt_down;
        (
            ready,
            json!({ "ready": ready, "tables_ready": tables, "shutting_down": shutting_down, "dynamodb_unreachable": unreachable, "mqtt_broker_down": mqtt_down }),
        )
    }
}

/// Serves the admin routes until `shutdown` fires.
pub async fn serve(
    listener: TcpListener,
    metrics: PrometheusHandle,
    health: Arc<Health>,
    shutdown: CancellationToken,
) {
    loop {
        let (stream, _) = tokio::select! {
            a = listener.accept() => match a { Ok(s) => s, Err(_) => continue },
            _ = shutdown.cancelled() => return,
        };
        let metrics = metrics.clone();
        let health = health.clone();
        let service = service_fn(move |req: Request<hyper::body::Incoming>| {
            let resp = route(req.uri().path(), &metrics, &health);
            async move { Ok::<_, std::convert::Infallible>(resp) }
        });
        tokio::spawn(async move {
            let _ = http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}

fn route(path: &str, metrics: &PrometheusHandle, health: &Health) -> Response<Full<Bytes>> {
    match path {
        "/metrics" => {
            let mut resp = Response::new(Full::new(Bytes::from(metrics.render())));
            resp.headers_mut().insert(
                hyper::header::CONTENT_TYPE,
                hyper::header::HeaderValue::from_static("text/plain; version=0.0.4"),
            );
            resp
        }
        "/healthz" => json_response(StatusCode::OK, &json!({ "status": "ok" })),
        "/readyz" => {
            let (ready, body) = health.ready();
            json_response(
                if ready {
                    StatusCode::OK
                } else {
                    StatusCode::SERVICE_UNAVAILABLE
                },
                &body,
            )
        }
        _ => json_response(
            StatusCode::NOT_FOUND,
            &json!({ "error": "not_found", "message": format!("no admin route {path}") }),
        ),
    }
}
