//! The direct request path (`[dynamodb] request_path = "direct"`, the
//! default): each batch becomes one signed BatchWriteItem HTTP request
//! built here — body copied from the items' typed JSON ([`wire`]), SigV4
//! signed with a day-cached key ([`sign`]) at DynamoDB's time (its
//! responses' `Date`, [`clock`]), sent on a pooled
//! hyper client over rustls — and the response is read back without the
//! SDK's orchestrator, interceptors and model types. It sits where
//! [`super::request::SdkWriter`] sits: between the writer's in-flight slot
//! and DynamoDB. DescribeTable (the capacity ceiling, rarely) still goes
//! through the SDK.

pub mod clock;
pub mod sign;
pub mod wire;

use std::time::{Duration, SystemTime};

use bytes::Bytes;
use http_body_util::{BodyExt as _, Full};
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;

use super::rate::ceiling::{DescribeCapacity, DescribeError, Described};
use super::request::SdkWriter;
use super::retry::WriteError;
use super::writer::{BatchWrite, WriteOutcome};
use crate::config::TableSpec;
use crate::event::Item;

/// Idle pooled connections are closed after this (DynamoDB's front ends
/// close idle connections themselves; reusing one they closed costs a
/// retried call).
const POOL_IDLE: Duration = Duration::from_secs(20);

/// Writes batches with hand-built, signed BatchWriteItem requests.
#[derive(Debug, Clone)]
pub struct DirectWriter {
    http: Client<HttpsConnector<HttpConnector>, Full<Bytes>>,
    uri: hyper::Uri,
    host: String,
    signer: sign::Signer,
    timeout: Duration,
    describe: SdkWriter,
}

/// The endpoint could not be used.
#[derive(Debug, thiserror::Error)]
pub enum DirectError {
    #[error("dynamodb.endpoint {0:?} is not an http(s) URL with a host")]
    Endpoint(String),
    #[error("TLS set-up for the DynamoDB client failed: {0}")]
    Tls(String),
}

impl DirectWriter {
    /// `endpoint` None means the region's public endpoint
    /// (`https://dynamodb.REGION.amazonaws.com`).
    pub fn new(
        endpoint: Option<&str>,
        region: &str,
        signer: sign::Signer,
        timeout: Duration,
        describe: SdkWriter,
    ) -> Result<Self, DirectError> {
        let url = endpoint.map_or_else(
            || format!("https://dynamodb.{region}.amazonaws.com/"),
            str::to_owned,
        );
        let uri: hyper::Uri = url
            .parse()
            .map_err(|_| DirectError::Endpoint(url.clone()))?;
        let host = uri
            .authority()
            .map(|a| a.as_str().to_owned())
            .ok_or_else(|| DirectError::Endpoint(url.clone()))?;
        if !matches!(uri.scheme_str(), Some("http" | "https")) {
            return Err(DirectError::Endpoint(url));
        }
        let mut http = HttpConnector::new();
        http.set_connect_timeout(Some(Duration::from_secs(3).min(timeout)));
        http.set_nodelay(true);
        http.enforce_http(false);
        let tls = hyper_rustls::HttpsConnectorBuilder::new()
            .with_provider_and_native_roots(rustls::crypto::aws_lc_rs::default_provider())
            .map_err(|e| DirectError::Tls(e.to_string()))?
            .https_or_http()
            .enable_http1()
            .wrap_connector(http);
        let client = Client::builder(TokioExecutor::new())
            .pool_idle_timeout(POOL_IDLE)
            .build(tls);
        Ok(Self {
            http: client,
            uri,
            host,
            signer,
            timeout,
            describe,
        })
    }

    async fn send(&self, body: Vec<u8>) -> Result<(u16, Option<String>, Bytes), WriteError> {
        let mut request = hyper::Request::post(self.uri.clone())
            .header(hyper::header::HOST, &self.host)
            .header(hyper::header::CONTENT_TYPE, wire::CONTENT_TYPE)
            .header("x-amz-target", wire::TARGET)
            .body(())
            .map_err(|e| WriteError::Fatal {
                message: format!("cannot build request: {e}"),
            })?;
        self.signer.sign(&mut request, &body).await?;
        let (parts, ()) = request.into_parts();
        let request = hyper::Request::from_parts(parts, Full::new(Bytes::from(body)));
        let sent = SystemTime::now();
        let exchange = async {
            let response = self
                .http
                .request(request)
                .await
                .map_err(|e| WriteError::Retriable {
                    cause: "connection",
                    message: format!("{e}: {:?}", std::error::Error::source(&e)),
                })?;
            self.signer.clock().observe(
                response.headers().get(hyper::header::DATE),
                sent,
                SystemTime::now(),
            );
            let status = response.status().as_u16();
            let error_type = response
                .headers()
                .get("x-amzn-errortype")
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned);
            let body = response
                .into_body()
                .collect()
                .await
                .map_err(|e| WriteError::Retriable {
                    cause: "connection",
                    message: format!("reading the response: {e}"),
                })?
                .to_bytes();
            Ok((status, error_type, body))
        };
        tokio::time::timeout(self.timeout, exchange)
            .await
            .unwrap_or(Err(WriteError::Retriable {
                cause: "timeout",
                message: "request timed out".to_owned(),
            }))
    }
}

impl BatchWrite for DirectWriter {
    async fn write(&self, table: &TableSpec, items: &[Item]) -> Result<WriteOutcome, WriteError> {
        let body = wire::request_body(&table.name, items);
        let (status, error_type, response) = self.send(body).await?;
        if status == 200 {
            wire::outcome(table, items, &response)
        } else {
            Err(wire::error(status, error_type.as_deref(), &response))
        }
    }
}

impl DescribeCapacity for DirectWriter {
    async fn capacity(&self, table: &TableSpec) -> Result<Described, DescribeError> {
        self.describe.capacity(table).await
    }
}

/// The writer the configuration asks for.
#[derive(Debug, Clone)]
pub enum TableWriter {
    Direct(Box<DirectWriter>),
    Sdk(SdkWriter),
}

impl BatchWrite for TableWriter {
    async fn write(&self, table: &TableSpec, items: &[Item]) -> Result<WriteOutcome, WriteError> {
        match self {
            TableWriter::Direct(w) => w.write(table, items).await,
            // Boxed: the SDK's call future is many kilobytes, and inline it
            // would size every batch's task by it, copied whole at each
            // spawn, though the default path never uses it.
            TableWriter::Sdk(w) => Box::pin(w.write(table, items)).await,
        }
    }
}

impl DescribeCapacity for TableWriter {
    async fn capacity(&self, table: &TableSpec) -> Result<Described, DescribeError> {
        match self {
            TableWriter::Direct(w) => w.capacity(table).await,
            TableWriter::Sdk(w) => w.capacity(table).await,
        }
    }
}
