//! Routing and request handling: route → stream, body → events, events →
//! the router, and the answer.
//!
//! Routes: `POST /v1/streams/{stream}/events` (JSON object, array or
//! NDJSON → 202 `{"accepted": N}`), each stream's optional `http_path`
//! template, and the seed document's three routes with the seed's own
//! response bodies. `?ack=queued|spooled|written` chooses when to answer; other
//! query parameters fill event fields the body lacks.

// ApiError is built once per refused request; boxing it would only add an allocation.
#![allow(clippy::result_large_err)]

use std::borrow::Cow;
use std::net::SocketAddr;
use std::sync::Arc;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::header::{CONTENT_LENGTH, CONTENT_TYPE};
use hyper::{Method, Request, Response, StatusCode};
use smallvec::SmallVec;

use super::auth::AuthError;
use super::client_rate::{retry_after_secs, ClientId, RateError};
use super::decode::{self, DecodeError, Format, Positions};
use super::response::{accepted, raw_json, ApiError};
use super::HttpState;
use crate::config::AckLevel;
use crate::event::fields::Fields;
use crate::pipeline::router::IngestError;
use crate::pipeline::spool::SpoolError;
use crate::telemetry::metrics::StreamMetrics;

/// The seed document's example apps.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Seed {
    LogActivity,
    UploadData,
    AddToCart,
}

#[derive(Debug)]
enum Route<'a> {
    /// `/v1/streams/{stream}/events`, the stream's name percent-decoded
    /// (borrowed from the path unless it had escapes).
    Generic(Cow<'a, str>),
    Template(Arc<str>, Vec<(String, String)>),
    Seed(Seed),
}

/// Handles one request from `peer`; never fails (errors become JSON responses).
pub async fn handle(
    state: Arc<HttpState>,
    req: Request<Incoming>,
    peer: SocketAddr,
) -> Response<Full<Bytes>> {
    let checked = super::head::check(&req, state.max_header_bytes, state.max_headers)
        .inspect_err(|_| state.count_rejected("headers_too_large"));
    let resp = match checked {
        Ok(()) => route_and_ingest(&state, req, peer).await,
        Err(e) => Err(e),
    };
    let resp = match resp {
        Ok(r) => r,
        Err(e) => e.into_response(),
    };
    state.count_response(resp.status());
    resp
}

async fn route_and_ingest(
    state: &HttpState,
    req: Request<Incoming>,
    peer: SocketAddr,
) -> Result<Response<Full<Bytes>>, ApiError> {
    // The head is kept apart from the body so that the route, the stream's
    // name and the query's fields borrow from it while the body is read.
    let (head, body) = req.into_parts();
    let route = resolve(state, &head.method, head.uri.path())?;
    let caller = authenticate(state, &route, &head.headers)?;
    let client = state.client_rate.as_ref().map(|limiter| {
        (
            limiter,
            ClientId::of(state.key_by, caller.as_ref(), peer.ip()),
        )
    });
    // Every request costs at least one event, charged before its body is
    // read: a client over its limit is refused without reading anything.
    if let Some((limiter, client)) = &client {
        limiter
            .charge(client, 1)
            .map_err(|e| rate_error(state, e))?;
    }
    // Borrowed from the query unless a field had escapes.
    let mut context: Context<'_> = head
        .uri
        .query()
        .map(|q| form_urlencoded::parse(q.as_bytes()).collect())
        .unwrap_or_default();
    let ack_param = take_param(&mut context, "ack");
    let stream = route_stream(&route);
    let seed = match &route {
        Route::Template(_, captures) => {
            context.extend(
                captures
                    .iter()
                    .map(|(k, v)| (Cow::Borrowed(k.as_str()), Cow::Borrowed(v.as_str()))),
            );
            None
        }
        Route::Seed(seed) => Some(*seed),
        Route::Generic(_) => None,
    };
    let Some(stream_route) = state.router.stream(stream) else {
        return Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "unknown_stream",
            format!("no stream named `{stream}` is configured"),
        ));
    };
    let ack = match ack_param.as_deref() {
        None => stream_route.spec.ack,
        Some("queued") => AckLevel::Queued,
        Some("written") => AckLevel::Written,
        Some("spooled") if state.router.has_spool() => AckLevel::Spooled,
        Some("spooled") => {
            return Err(ApiError::new(
                StatusCode::BAD_REQUEST,
                "spool_disabled",
                "ack=spooled needs the disk spool, which is off on this gateway ([spool] enabled = false)",
            )
            .with_field(Some("ack".into())))
        }
        Some(other) => {
            return Err(ApiError::new(
                StatusCode::BAD_REQUEST,
                "bad_ack",
                format!("ack must be `queued`, `spooled` or `written`, not `{other}`"),
            )
            .with_field(Some("ack".into())))
        }
    };

    // Seed routes that take only query parameters ignore the body, as the seed apps do.
    let (body, format) = match seed {
        Some(Seed::LogActivity | Seed::AddToCart) => (Bytes::new(), None),
        _ => {
            let format = body_format(head.headers.get(CONTENT_TYPE), seed.is_none())
                .inspect_err(|_| reject(stream, "unsupported_media_type"))?;
            let read = read_body(&head.headers, body, state.max_body);
            let body = match tokio::time::timeout(state.body_read_timeout, read).await {
                Ok(body) => body.inspect_err(|e| {
                    if e.status == StatusCode::PAYLOAD_TOO_LARGE {
                        reject(stream, "body_too_large");
                    }
                })?,
                Err(_) => {
                    state.count_rejected("body_timeout");
                    let mut e = ApiError::new(
                        StatusCode::REQUEST_TIMEOUT,
                        "body_timeout",
                        format!(
                            "the body did not arrive within http.body_read_timeout ({:?})",
                            state.body_read_timeout
                        ),
                    );
                    e.close = true;
                    return Err(e);
                }
            };
            // A full queue refuses the request before decoding it.
            state
                .router
                .refuse_if_full(stream, ack, "http")
                .map_err(|e| ingest_error(e, &Positions::Single, state.retry_after_secs))?;
            (body, Some(format))
        }
    };
    let (events, positions) = match format {
        None => (vec![Fields::default()], Positions::Single),
        Some(format) => {
            let decoded = decode::decode(&body, format);
            let (events, positions) = decoded.map_err(|e| {
                reject(stream, e.reason());
                decode_error(e)
            })?;
            if seed == Some(Seed::UploadData) && positions != Positions::Single {
                return Err(ApiError::new(
                    StatusCode::BAD_REQUEST,
                    "not_an_object",
                    "/upload_data takes one JSON object",
                ));
            }
            (events, positions)
        }
    };
    if let Some((limiter, client)) = &client {
        // The first event was charged before the body was read.
        limiter
            .charge_rest(client, events.len())
            .map_err(|e| rate_error(state, e))?;
    }
    let device_id = match seed {
        Some(Seed::UploadData) => events
            .first()
            .and_then(|e| e.get("device_id"))
            .map(|raw| raw.get().to_owned()),
        _ => None,
    };
    let accepted_req = state
        .router
        .ingest(stream, events, &borrowed(&context), ack, "http")
        .map_err(|e| ingest_error(e, &positions, state.retry_after_secs))?;
    if let Some(wait) = accepted_req.spooled {
        wait.wait().await.map_err(|e| spool_error(state, e))?;
    }

    let written = match &accepted_req.ack {
        None => None,
        Some(ack) => match tokio::time::timeout(state.ack_timeout, ack.wait(accepted_req.count)).await {
            Err(_) => {
                return Err(ApiError::new(
                    StatusCode::GATEWAY_TIMEOUT,
                    "ack_timeout",
                    format!(
                        "DynamoDB did not confirm all {} events within {:?}; they stay queued and will still be written",
                        accepted_req.count, state.ack_timeout
                    ),
                ))
            }
            Ok(outcome) if outcome.failed > 0 => {
                let mut e = ApiError::new(
                    StatusCode::BAD_GATEWAY,
                    "dead_lettered",
                    format!(
                        "{} of {} events were refused by DynamoDB and written to the dead-letter file: {}",
                        outcome.failed,
                        accepted_req.count,
                        outcome.first_failure.unwrap_or_default()
                    ),
                );
                e.extra.insert("accepted".into(), accepted_req.count.into());
                e.extra.insert("written".into(), outcome.written.into());
                e.extra.insert("dead_lettered".into(), outcome.failed.into());
                return Err(e);
            }
            Ok(outcome) => Some(outcome.written),
        },
    };

    Ok(match seed {
        None => accepted(
            if written.is_some() {
                StatusCode::OK
            } else {
                StatusCode::ACCEPTED
            },
            accepted_req.count,
            written,
        ),
        Some(seed) => seed_response(seed, &context, device_id),
    })
}

/// The stream a route writes.
fn route_stream<'a>(route: &'a Route<'_>) -> &'a str {
    match route {
        Route::Generic(s) => s,
        Route::Template(s, _) => s,
        Route::Seed(seed) => seed_stream(*seed),
    }
}

/// Checks the request's API key when auth is on; returns the caller's key
/// name when it carried a valid one (open seed routes identify without
/// requiring).
fn authenticate(
    state: &HttpState,
    route: &Route,
    headers: &hyper::HeaderMap,
) -> Result<Option<Arc<str>>, ApiError> {
    let Some(store) = &state.api_keys else {
        return Ok(None);
    };
    let keys = store.current();
    if state.seed_routes_open && matches!(route, Route::Seed(_)) {
        return Ok(keys.identify(headers).ok().map(|c| c.name));
    }
    match keys.authorize(headers, route_stream(route)) {
        Ok(caller) => Ok(Some(caller.name)),
        Err(e) => Err(auth_error(state, e)),
    }
}

fn auth_error(state: &HttpState, e: AuthError) -> ApiError {
    // RFC 6750: a challenge on 401, `insufficient_scope` on 403.
    let (status, code, challenge) = match &e {
        AuthError::Missing => (
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            r#"Bearer realm="dynamo-ingest""#,
        ),
        AuthError::Invalid => (
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            r#"Bearer realm="dynamo-ingest", error="invalid_token""#,
        ),
        AuthError::Forbidden { .. } => (
            StatusCode::FORBIDDEN,
            "forbidden",
            r#"Bearer realm="dynamo-ingest", error="insufficient_scope""#,
        ),
    };
    state.count_rejected(code);
    let mut err = ApiError::new(status, code, e.to_string());
    err.www_authenticate = Some(challenge);
    err
}

fn rate_error(state: &HttpState, e: RateError) -> ApiError {
    match e {
        RateError::Limited(wait) => {
            state.count_rejected("rate_limited");
            let mut err =
                ApiError::new(StatusCode::TOO_MANY_REQUESTS, "rate_limited", e.to_string());
            err.retry_after = Some(retry_after_secs(wait));
            err
        }
        RateError::TooMany { .. } => {
            state.count_rejected("too_many_events");
            ApiError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "too_many_events",
                e.to_string(),
            )
        }
    }
}

/// The `{stream}` of `/v1/streams/{stream}/events` (one segment, maybe
/// empty), found without splitting the path into a `Vec` per request.
fn generic_stream(path: &str) -> Option<&str> {
    path.strip_prefix("/v1/streams/")
        .and_then(|rest| rest.strip_suffix("/events"))
        .filter(|stream| !stream.contains('/'))
}

fn resolve<'a>(state: &HttpState, method: &Method, path: &'a str) -> Result<Route<'a>, ApiError> {
    let method_not_allowed = |allow: &'static str| {
        let mut e = ApiError::new(
            StatusCode::METHOD_NOT_ALLOWED,
            "method_not_allowed",
            format!("{path} accepts {allow}"),
        );
        e.allow = Some(allow);
        e
    };
    if let Some(stream) = generic_stream(path) {
        if method != Method::POST {
            return Err(method_not_allowed("POST"));
        }
        return Ok(Route::Generic(percent_decode(stream)));
    }
    if state.seed_routes {
        let seed = match path {
            "/log_activity/" | "/log_activity" => Some((Seed::LogActivity, "POST")),
            "/upload_data" | "/upload_data/" => Some((Seed::UploadData, "POST")),
            "/add_to_cart/" | "/add_to_cart" => Some((Seed::AddToCart, "GET, POST")),
            _ => None,
        };
        if let Some((seed, allow)) = seed {
            let ok = method == Method::POST || (seed == Seed::AddToCart && method == Method::GET);
            return if ok {
                Ok(Route::Seed(seed))
            } else {
                Err(method_not_allowed(allow))
            };
        }
    }
    for (template, stream) in &state.paths {
        if let Some(captures) = template.matches(path) {
            if method != Method::POST {
                return Err(method_not_allowed("POST"));
            }
            let captures = captures
                .into_iter()
                .map(|(k, v)| (k.to_owned(), percent_decode(v).into_owned()))
                .collect();
            return Ok(Route::Template(stream.clone(), captures));
        }
    }
    Err(ApiError::new(
        StatusCode::NOT_FOUND,
        "not_found",
        format!("no route for {path}"),
    ))
}

/// `s` percent-decoded (borrowed unless it had escapes).
fn percent_decode(s: &str) -> Cow<'_, str> {
    percent_encoding::percent_decode_str(s).decode_utf8_lossy()
}

fn seed_stream(seed: Seed) -> &'static str {
    match seed {
        Seed::LogActivity => "activity",
        Seed::UploadData => "sensor",
        Seed::AddToCart => "cart",
    }
}

/// A request's context fields: query parameters, then path captures.
type Context<'a> = SmallVec<[(Cow<'a, str>, Cow<'a, str>); 4]>;

/// The request's context fields as the router takes them (up to four
/// inline, as a topic's captures: no allocation per request).
fn borrowed<'a>(context: &'a Context<'_>) -> SmallVec<[(&'a str, &'a str); 4]> {
    context.iter().map(|(k, v)| (&**k, &**v)).collect()
}

/// The seed apps' exact response bodies (status 200, as FastAPI/Flask/Django answer).
fn seed_response(
    seed: Seed,
    context: &Context<'_>,
    device_id: Option<String>,
) -> Response<Full<Bytes>> {
    let param = |name: &str| {
        let v = context
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| &**v)
            .unwrap_or_default();
        serde_json::to_string(v).unwrap_or_default()
    };
    // Joined rather than `format!`ed: `core::fmt` is a measurable part of
    // a single event's cost.
    let body = match seed {
        Seed::LogActivity => [
            r#"{"status":"success","user_id":"#,
            &param("user_id"),
            r#","action":"#,
            &param("action"),
            "}",
        ]
        .concat(),
        Seed::UploadData => [
            r#"{"status":"success","device_id":"#,
            device_id.as_deref().unwrap_or("null"),
            "}",
        ]
        .concat(),
        Seed::AddToCart => r#"{"status":"Item added to cart"}"#.to_owned(),
    };
    raw_json(StatusCode::OK, body.into_bytes())
}

fn take_param<'a>(context: &mut Context<'a>, name: &str) -> Option<Cow<'a, str>> {
    let i = context.iter().position(|(k, _)| k == name)?;
    Some(context.remove(i).1)
}

/// The body's framing from its Content-Type (none: JSON). Media types
/// compare without regard to case and parameters (`; charset=utf-8`), as
/// HTTP defines them, without building a lower-cased copy per request.
fn body_format(
    content_type: Option<&hyper::header::HeaderValue>,
    allow_ndjson: bool,
) -> Result<Format, ApiError> {
    let Some(ct) = content_type else {
        return Ok(Format::Json);
    };
    let mime = ct
        .to_str()
        .unwrap_or("")
        .split(';')
        .next()
        .unwrap_or("")
        .trim();
    let is = |m: &str| mime.eq_ignore_ascii_case(m);
    let json_suffix = mime
        .len()
        .checked_sub(5)
        .is_some_and(|i| mime.as_bytes()[i..].eq_ignore_ascii_case(b"+json"));
    if is("application/json") || is("text/json") || json_suffix {
        return Ok(Format::Json);
    }
    let ndjson = [
        "application/x-ndjson",
        "application/ndjson",
        "application/jsonl",
        "application/x-jsonlines",
    ];
    if allow_ndjson && ndjson.iter().any(|m| is(m)) {
        return Ok(Format::Ndjson);
    }
    Err(ApiError::new(
        StatusCode::UNSUPPORTED_MEDIA_TYPE,
        "unsupported_media_type",
        format!(
            "Content-Type `{}` is not accepted; send application/json{}",
            mime.to_ascii_lowercase(),
            if allow_ndjson {
                " or application/x-ndjson"
            } else {
                ""
            }
        ),
    ))
}

async fn read_body(
    headers: &hyper::HeaderMap,
    mut body: Incoming,
    max: usize,
) -> Result<Bytes, ApiError> {
    let too_large = || {
        let mut e = ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "body_too_large",
            format!("the body exceeds http.max_body_bytes ({max} bytes)"),
        );
        e.close = true;
        e
    };
    let declared = headers
        .get(CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > max as u64) {
        drain(&mut body, max).await;
        return Err(too_large());
    }
    // A body that arrives in one frame is used as it is (no copy); a longer
    // one is gathered into a buffer sized by its Content-Length (grown from
    // empty, an 80 KB body was reallocated and copied about five times).
    let mut first: Option<Bytes> = None;
    let mut collected = bytes::BytesMut::new();
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|e| {
            ApiError::new(
                StatusCode::BAD_REQUEST,
                "body_read_failed",
                format!("cannot read the body: {e}"),
            )
        })?;
        if let Ok(data) = frame.into_data() {
            let held = first.as_ref().map_or(collected.len(), Bytes::len);
            if held + data.len() > max {
                drain(&mut body, max).await;
                return Err(too_large());
            }
            if first.is_none() && collected.is_empty() {
                first = Some(data);
                continue;
            }
            if let Some(first) = first.take() {
                let expected = declared.map_or(0, |n| n as usize).min(max);
                collected.reserve(expected.max(first.len() + data.len()));
                collected.extend_from_slice(&first);
            }
            collected.extend_from_slice(&data);
        }
    }
    Ok(first.unwrap_or_else(|| collected.freeze()))
}

/// Reads and discards up to `limit` more bytes (for at most 5 s), so that a
/// client still sending an oversized body reads our 413 instead of a reset.
async fn drain(body: &mut Incoming, limit: usize) {
    let mut seen = 0usize;
    let _ = tokio::time::timeout(std::time::Duration::from_secs(5), async {
        while seen <= limit {
            match body.frame().await {
                Some(Ok(frame)) => seen += frame.data_ref().map_or(0, |d| d.len()),
                _ => break,
            }
        }
    })
    .await;
}

fn reject(stream: &str, reason: &'static str) {
    StreamMetrics::rejected(stream, "http", reason, 1);
}

fn decode_error(e: DecodeError) -> ApiError {
    let code = match e {
        DecodeError::NotAnObject(_) => "not_an_object",
        DecodeError::Empty => "empty_body",
        _ => "malformed_json",
    };
    ApiError::new(StatusCode::BAD_REQUEST, code, e.to_string()).with_line(e.line())
}

/// The record could not be made durable. Its events are already queued and
/// will most likely still be written; the sender is told they are not safe.
fn spool_error(state: &HttpState, e: SpoolError) -> ApiError {
    state.count_rejected("spool_unavailable");
    let mut api = ApiError::new(
        StatusCode::SERVICE_UNAVAILABLE,
        "spool_unavailable",
        format!("the events could not be fsynced to the spool ({e}); retry later (a retry may duplicate server-timestamped events)"),
    );
    api.retry_after = Some(state.retry_after_secs);
    api
}

fn ingest_error(e: IngestError, positions: &Positions, retry_after: u64) -> ApiError {
    match e {
        IngestError::SpoolFull => {
            let mut e = ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "spool_full",
                "the gateway's disk spool is at spool.max_bytes (DynamoDB is slower than the arrivals); retry later",
            );
            e.retry_after = Some(retry_after);
            e
        }
        IngestError::SpoolDisabled => ApiError::new(
            StatusCode::BAD_REQUEST,
            "spool_disabled",
            "ack=spooled needs the disk spool, which is off on this gateway ([spool] enabled = false)",
        )
        .with_field(Some("ack".into())),
        IngestError::UnknownStream(s) => ApiError::new(
            StatusCode::NOT_FOUND,
            "unknown_stream",
            format!("no stream named `{s}` is configured"),
        ),
        IngestError::QueueFull => {
            let mut e = ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "queue_full",
                "the gateway's queue for this table is full (DynamoDB is slower than the arrivals); retry later",
            );
            e.retry_after = Some(retry_after);
            e
        }
        IngestError::TooManyEvents(n) => ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "too_many_events",
            format!("{n} events in one request exceed pipeline.queue_max_items; split the request"),
        ),
        IngestError::Invalid { index, error } => {
            use crate::event::map::MapError;
            let status = if matches!(error, MapError::TooLarge(_)) {
                StatusCode::PAYLOAD_TOO_LARGE
            } else {
                StatusCode::BAD_REQUEST
            };
            let field = match &error {
                MapError::MissingKey(f) | MapError::EmptyKey(f) | MapError::ServerAssigned(f) => {
                    Some(f.clone())
                }
                MapError::MistypedKey { name, .. }
                | MapError::KeyTooLong { name, .. }
                | MapError::BadField { name, .. }
                | MapError::MistypedField { name, .. } => Some(name.clone()),
                MapError::TooLarge(_) => None,
            };
            let (message, line) = match positions.describe(index) {
                Some((at, line)) => (format!("{at}: {error}"), line),
                None => (error.to_string(), None),
            };
            ApiError::new(status, error.reason(), message)
                .with_line(line)
                .with_field(field)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use hyper::header::HeaderValue;

    fn format(ct: Option<&str>, allow_ndjson: bool) -> Result<Format, (StatusCode, String)> {
        let value = ct.map(|c| HeaderValue::from_str(c).expect("header value"));
        body_format(value.as_ref(), allow_ndjson).map_err(|e| (e.status, e.message))
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(2048))]
        /// The same paths as splitting at `/` and matching
        /// `["", "v1", "streams", stream, "events"]`.
        #[test]
        fn the_generic_route_is_matched_by_its_segments(
            prefixed in proptest::bool::ANY,
            parts in proptest::collection::vec(
                proptest::prop_oneof!["v1", "streams", "events", "[a-z%2F]{0,3}", ""],
                0..5,
            ),
        ) {
            let prefix = if prefixed { "/v1/streams" } else { "" };
            let path = parts.iter().fold(prefix.to_owned(), |p, s| format!("{p}/{s}"));
            let segments: Vec<&str> = path.split('/').collect();
            let expected = match segments.as_slice() {
                ["", "v1", "streams", stream, "events"] => Some(*stream),
                _ => None,
            };
            proptest::prop_assert_eq!(generic_stream(&path), expected, "{}", path);
        }
    }

    #[test]
    fn the_generic_route_names_one_segment() {
        assert_eq!(generic_stream("/v1/streams/sensor/events"), Some("sensor"));
        assert_eq!(generic_stream("/v1/streams//events"), Some(""));
        assert_eq!(generic_stream("/v1/streams/a%2Fb/events"), Some("a%2Fb"));
        for other in [
            "/v1/streams/a/b/events",
            "/v1/streams/events",
            "/v1/streams/sensor/events/",
            "/v2/streams/sensor/events",
        ] {
            assert_eq!(generic_stream(other), None, "{other}");
        }
    }

    #[test]
    fn media_types_compare_without_case_and_parameters() {
        assert_eq!(format(None, true), Ok(Format::Json));
        // Content-Type → its format on a stream route and on a seed route
        // (`None`: refused there with 415).
        let (json, ndjson) = (Some(Format::Json), Some(Format::Ndjson));
        for (ct, on_stream, on_seed) in [
            ("application/json", json, json),
            ("Application/JSON; charset=utf-8", json, json),
            (" text/json ", json, json),
            ("application/vnd.api+JSON", json, json),
            ("application/x-ndjson", ndjson, None),
            ("Application/NDJSON;charset=utf-8", ndjson, None),
            ("application/jsonl", ndjson, None),
            ("application/x-jsonlines", ndjson, None),
        ] {
            assert_eq!(format(Some(ct), true).ok(), on_stream, "{ct}");
            match format(Some(ct), false) {
                Ok(f) => assert_eq!(Some(f), on_seed, "{ct}"),
                Err((status, message)) => {
                    assert_eq!(
                        (status, on_seed),
                        (StatusCode::UNSUPPORTED_MEDIA_TYPE, None)
                    );
                    assert!(message.ends_with("send application/json"), "{message}");
                }
            }
        }
        assert_eq!(
            format(Some("Text/Plain; charset=utf-8"), true),
            Err((
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "Content-Type `text/plain` is not accepted; send application/json or application/x-ndjson"
                    .to_owned()
            ))
        );
        assert!(format(Some("json"), true).is_err(), "no +json suffix");
    }
}
