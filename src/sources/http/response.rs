//! HTTP responses: the JSON error body every refusal carries (status, a
//! stable `error` code, a `message` naming the problem, and where known the
//! `line` and `field`), and JSON success bodies.

use bytes::Bytes;
use http_body_util::Full;
use hyper::header::{HeaderValue, CONTENT_TYPE, RETRY_AFTER};
use hyper::{Response, StatusCode};
use serde_json::{Map, Value};

/// A refused request.
#[derive(Debug, Clone)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: &'static str,
    pub message: String,
    pub line: Option<usize>,
    pub field: Option<String>,
    pub retry_after: Option<u64>,
    pub allow: Option<&'static str>,
    /// `WWW-Authenticate` challenge (401/403).
    pub www_authenticate: Option<&'static str>,
    /// Close the connection after answering (the body was not fully read).
    pub close: bool,
    pub extra: Map<String, Value>,
}

impl ApiError {
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            code,
            message: message.into(),
            line: None,
            field: None,
            retry_after: None,
            allow: None,
            www_authenticate: None,
            close: false,
            extra: Map::new(),
        }
    }

    pub fn with_line(mut self, line: Option<usize>) -> Self {
        self.line = line;
        self
    }

    pub fn with_field(mut self, field: Option<String>) -> Self {
        self.field = field;
        self
    }

    pub fn into_response(self) -> Response<Full<Bytes>> {
        let mut body = Map::new();
        body.insert("error".into(), Value::from(self.code));
        body.insert("message".into(), Value::from(self.message));
        if let Some(line) = self.line {
            body.insert("line".into(), Value::from(line));
        }
        if let Some(field) = self.field {
            body.insert("field".into(), Value::from(field));
        }
        body.extend(self.extra);
        let mut resp = json_response(self.status, &Value::Object(body));
        if let Some(secs) = self.retry_after {
            resp.headers_mut()
                .insert(RETRY_AFTER, HeaderValue::from(secs));
        }
        if self.close {
            resp.headers_mut()
                .insert(hyper::header::CONNECTION, HeaderValue::from_static("close"));
        }
        if let Some(challenge) = self.www_authenticate {
            resp.headers_mut().insert(
                hyper::header::WWW_AUTHENTICATE,
                HeaderValue::from_static(challenge),
            );
        }
        if let Some(allow) = self.allow {
            resp.headers_mut()
                .insert(hyper::header::ALLOW, HeaderValue::from_static(allow));
        }
        resp
    }
}

/// A JSON response.
pub fn json_response(status: StatusCode, body: &Value) -> Response<Full<Bytes>> {
    raw_json(status, serde_json::to_vec(body).unwrap_or_default())
}

/// A response whose JSON text is already rendered (the seed routes' exact bodies).
pub fn raw_json(status: StatusCode, body: Vec<u8>) -> Response<Full<Bytes>> {
    let mut resp = Response::new(Full::new(Bytes::from(body)));
    *resp.status_mut() = status;
    resp.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    resp
}

/// `{"accepted":n}`, with `"written":w` when known: written directly (no
/// `serde_json::Value` map per request), the text serde_json would give.
pub fn accepted(status: StatusCode, n: usize, written: Option<usize>) -> Response<Full<Bytes>> {
    let mut body = Vec::with_capacity(48);
    body.extend_from_slice(br#"{"accepted":"#);
    body.extend_from_slice(itoa::Buffer::new().format(n).as_bytes());
    if let Some(w) = written {
        body.extend_from_slice(br#","written":"#);
        body.extend_from_slice(itoa::Buffer::new().format(w).as_bytes());
    }
    body.push(b'}');
    raw_json(status, body)
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::BodyExt;

    async fn body_of(resp: Response<Full<Bytes>>) -> Vec<u8> {
        resp.into_body()
            .collect()
            .await
            .expect("a full body")
            .to_bytes()
            .to_vec()
    }

    #[tokio::test]
    async fn accepted_is_the_text_serde_json_writes() {
        for (n, written) in [
            (0, None),
            (1, Some(1)),
            (500, Some(0)),
            (usize::MAX, Some(usize::MAX)),
        ] {
            let resp = accepted(StatusCode::ACCEPTED, n, written);
            assert_eq!(resp.status(), StatusCode::ACCEPTED);
            assert_eq!(resp.headers()[CONTENT_TYPE], "application/json");
            let mut expected = serde_json::json!({ "accepted": n });
            if let Some(w) = written {
                expected["written"] = w.into();
            }
            assert_eq!(
                body_of(resp).await,
                serde_json::to_vec(&expected).expect("serializes"),
                "{n} {written:?}"
            );
        }
    }
}
