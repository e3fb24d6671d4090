//! HTTP/1.1 front end: hyper connection per socket, DynamoDB JSON 1.0 on
//! `POST /`, plus `GET /__sim/stats` and `GET /__sim/healthz`. A request
//! signed more than five minutes off the simulator's clock is refused
//! first ([`crate::request_time`]).
//!
//! Bounds: at most `MAX_CONNECTIONS` open connections (extra sockets are
//! closed at once), request bodies capped at DynamoDB's 16 MB. Shutdown:
//! stop accepting when `shutdown` resolves, let open connections finish
//! their current request for up to `DRAIN_DEADLINE`, then write the snapshot
//! if one is configured.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::header::{HeaderValue, CONTENT_LENGTH, CONTENT_TYPE, DATE};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;

use crate::error::ApiError;
use crate::faults::{FaultAction, Faults};
use crate::protocol::{error_parts, Operation, CONTENT_TYPE as AMZ_JSON, MAX_REQUEST_BYTES};
use crate::request_time;
use crate::simulator::Simulator;

/// Most simultaneously open client connections.
pub const MAX_CONNECTIONS: usize = 4096;
/// How long open connections may take to finish after shutdown.
pub const DRAIN_DEADLINE: Duration = Duration::from_secs(5);

/// The connection is dropped on purpose (fault injection).
#[derive(Debug, thiserror::Error)]
#[error("connection dropped by fault injection")]
pub struct Dropped;

type Resp = Response<Full<Bytes>>;

/// Serve the simulator on `listener` until `shutdown` resolves.
pub async fn serve(listener: TcpListener, sim: Arc<Simulator>, shutdown: impl Future<Output = ()>) {
    let graceful = GracefulShutdown::new();
    let limit = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    let faults = Arc::new(Faults::new(sim.config().faults.clone()));
    tokio::pin!(shutdown);
    loop {
        let accepted = tokio::select! {
            () = &mut shutdown => break,
            accepted = listener.accept() => accepted,
        };
        let (stream, _peer) = match accepted {
            Ok(s) => s,
            Err(e) => {
                // Usually EMFILE: back off briefly instead of spinning.
                tracing::warn!(error = %e, "dynamo-sim accept failed");
                tokio::time::sleep(Duration::from_millis(20)).await;
                continue;
            }
        };
        let Ok(permit) = limit.clone().try_acquire_owned() else {
            tracing::warn!("dynamo-sim connection limit reached; closing new connection");
            continue;
        };
        let _ = stream.set_nodelay(true);
        let sim = sim.clone();
        let faults = faults.clone();
        let svc = service_fn(move |req| respond(sim.clone(), faults.clone(), req));
        let conn = http1::Builder::new().serve_connection(TokioIo::new(stream), svc);
        let conn = graceful.watch(conn);
        tokio::spawn(async move {
            let _ = conn.await;
            drop(permit);
        });
    }
    drop(listener);
    tokio::select! {
        () = graceful.shutdown() => {}
        () = tokio::time::sleep(DRAIN_DEADLINE) => {
            tracing::warn!("dynamo-sim: connections still open after the drain deadline");
        }
    }
    if let Some(path) = &sim.config().storage.snapshot {
        if let Err(e) = sim.save_snapshot(path) {
            tracing::error!(error = %e, "dynamo-sim: snapshot not written");
        }
    }
}

fn json_response(status: u16, body: Bytes) -> Resp {
    let mut resp = Response::new(Full::new(body));
    *resp.status_mut() = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    resp.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static(AMZ_JSON));
    resp
}

fn error_response(err: &ApiError) -> Resp {
    let (status, short, body) = error_parts(err);
    let mut resp = json_response(status, body);
    if let Ok(v) = HeaderValue::from_str(&short) {
        resp.headers_mut().insert("x-amzn-ErrorType", v);
    }
    resp
}

fn request_id() -> String {
    format!("{:016X}{:016X}", fastrand::u64(..), fastrand::u64(..))
}

async fn respond(
    sim: Arc<Simulator>,
    faults: Arc<Faults>,
    req: Request<Incoming>,
) -> Result<Resp, Dropped> {
    let mut resp = match (req.method(), req.uri().path()) {
        (&Method::GET, "/__sim/healthz") => Response::new(Full::new(Bytes::from_static(b"ok\n"))),
        (&Method::GET, "/__sim/stats") => {
            let body = serde_json::to_vec(&sim.stats()).unwrap_or_default();
            let mut r = Response::new(Full::new(Bytes::from(body)));
            r.headers_mut()
                .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
            r
        }
        (&Method::GET, _) => Response::new(Full::new(Bytes::from_static(
            b"healthy: dynamodb.us-east-1.amazonaws.com ",
        ))),
        (&Method::POST, _) => api_call(&sim, &faults, req).await?,
        _ => {
            let mut r = Response::new(Full::new(Bytes::from_static(
                b"<UnknownOperationException/>\n",
            )));
            *r.status_mut() = StatusCode::NOT_FOUND;
            r
        }
    };
    if let Ok(v) = HeaderValue::from_str(&request_id()) {
        resp.headers_mut().insert("x-amzn-RequestId", v);
    }
    let offset_s = sim.config().faults.clock_offset_s;
    if offset_s != 0 {
        // hyper writes the host's time unless the response has a Date.
        let date = httpdate::fmt_http_date(request_time::now(offset_s));
        if let Ok(v) = HeaderValue::from_str(&date) {
            resp.headers_mut().insert(DATE, v);
        }
    }
    Ok(resp)
}

async fn api_call(
    sim: &Simulator,
    faults: &Faults,
    req: Request<Incoming>,
) -> Result<Resp, Dropped> {
    let offset_s = sim.config().faults.clock_offset_s;
    let signed_at = req
        .headers()
        .get("x-amz-date")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let target = req
        .headers()
        .get("x-amz-target")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string();
    let declared_len = req
        .headers()
        .get(CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok());
    if declared_len.is_some_and(|n| n > MAX_REQUEST_BYTES) {
        return Ok(error_response(&ApiError::RequestTooLarge));
    }
    let body = match Limited::new(req.into_body(), MAX_REQUEST_BYTES)
        .collect()
        .await
    {
        Ok(b) => b.to_bytes(),
        Err(e) => {
            if e.downcast_ref::<http_body_util::LengthLimitError>()
                .is_some()
            {
                return Ok(error_response(&ApiError::RequestTooLarge));
            }
            return Err(Dropped);
        }
    };
    let now = request_time::epoch_secs(request_time::now(offset_s));
    if let Err(e) = request_time::check(signed_at.as_deref(), now) {
        return Ok(error_response(&e));
    }
    let op = match Operation::from_target(&target) {
        Ok(op) => op,
        Err(e) => return Ok(error_response(&e)),
    };
    if op.is_data_plane() {
        if let Some(d) = faults.delay() {
            tokio::time::sleep(d).await;
        }
        match faults.roll() {
            FaultAction::Pass => {}
            FaultAction::Drop => return Err(Dropped),
            FaultAction::InternalError => {
                return Ok(error_response(&ApiError::Internal(
                    "Internal server error".into(),
                )))
            }
            FaultAction::Unavailable => {
                return Ok(error_response(&ApiError::Unavailable(
                    "Service unavailable".into(),
                )))
            }
        }
    }
    let result = crate::ops::dispatch(sim, op, &body);
    Ok(match result {
        Ok(v) => json_response(200, Bytes::from(serde_json::to_vec(&v).unwrap_or_default())),
        Err(e) => error_response(&e),
    })
}

/// Convenience for callers that have no shutdown signal of their own.
pub async fn never() {
    std::future::pending::<()>().await
}
