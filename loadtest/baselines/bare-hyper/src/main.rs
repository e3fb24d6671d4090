//! The HTTP ceiling for docs/PERFORMANCE.md: the same stack as the gateway's
//! listener (tokio multi-thread runtime, hyper 1 HTTP/1.1 with keep-alive)
//! doing nothing but reading the body and answering 202 `{"accepted":1}`.
//! What the gateway reaches at the same concurrency, divided by this, is the
//! share of the ceiling it keeps.
//!
//! Usage: `bare-hyper [ADDR]` (default 127.0.0.1:0); prints
//! `bare-hyper listening on http://ADDR` when ready. Binds loopback only
//! unless told otherwise; stops on Ctrl-C.

use std::convert::Infallible;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;

async fn answer(req: Request<Incoming>) -> Result<Response<Full<Bytes>>, Infallible> {
    // Read the body like a real ingest endpoint would, then drop it.
    let _ = req.into_body().collect().await;
    let mut resp = Response::new(Full::new(Bytes::from_static(br#"{"accepted":1}"#)));
    *resp.status_mut() = StatusCode::ACCEPTED;
    resp.headers_mut().insert(
        hyper::header::CONTENT_TYPE,
        hyper::header::HeaderValue::from_static("application/json"),
    );
    Ok(resp)
}

#[tokio::main]
async fn main() -> std::io::Result<()> {
    let addr = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:0".to_owned());
    let listener = tokio::net::TcpListener::bind(&addr).await?;
    println!("bare-hyper listening on http://{}", listener.local_addr()?);
    loop {
        let (stream, _) = tokio::select! {
            r = listener.accept() => r?,
            _ = tokio::signal::ctrl_c() => return Ok(()),
        };
        let _ = stream.set_nodelay(true);
        tokio::spawn(async move {
            let _ = http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service_fn(answer))
                .await;
        });
    }
}
