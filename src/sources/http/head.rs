//! The request-head limits (`http.max_header_bytes`, `http.max_headers`),
//! checked first for every request so an oversized head gets the same
//! JSON error body as every other refusal.
//!
//! hyper answers a head it cannot buffer with its own bare 431 (empty
//! body) and offers no hook to change it. So hyper's buffer and header
//! array are set to [`HYPER_HEAD_FACTOR`] times the configured limits, and
//! this module enforces the limits themselves: a head over the limit but
//! within hyper's cap gets our 431 JSON; only a head past the cap (hyper
//! checks it between socket reads, so give or take one read) still meets
//! hyper's bare 431. Memory per connection stays bounded by the cap.

use hyper::{Request, StatusCode};

use super::response::ApiError;

/// hyper's hard caps, as multiples of the configured limits.
pub const HYPER_HEAD_FACTOR: usize = 2;

/// The head's size as sent: request line, header lines, blank line.
pub fn head_bytes<B>(req: &Request<B>) -> usize {
    let uri = req.uri();
    let target = uri.path_and_query().map_or(1, |p| p.as_str().len())
        + uri
            .authority()
            .map_or(0, |a| "http://".len() + a.as_str().len());
    let request_line = req.method().as_str().len() + 1 + target + " HTTP/1.1\r\n".len();
    let headers: usize = req
        .headers()
        .iter()
        .map(|(name, value)| name.as_str().len() + 2 + value.len() + 2)
        .sum();
    request_line + headers + 2
}

/// Refuses a head over `max_bytes` or with more than `max_headers` fields.
// ApiError is built once per refused request, as in `routes`: boxing it
// would only add an allocation.
#[allow(clippy::result_large_err)]
pub fn check<B>(req: &Request<B>, max_bytes: usize, max_headers: usize) -> Result<(), ApiError> {
    let count = req.headers().len();
    let message = if count > max_headers {
        format!("the request has {count} header fields, over the limit of {max_headers} (http.max_headers)")
    } else {
        let size = head_bytes(req);
        if size <= max_bytes {
            return Ok(());
        }
        format!("the request line and headers are {size} bytes, over the limit of {max_bytes} (http.max_header_bytes)")
    };
    let mut err = ApiError::new(
        StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
        "headers_too_large",
        message,
    );
    // The body was not read: the connection cannot carry another request.
    err.close = true;
    Err(err)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(headers: &[(&str, String)]) -> Request<()> {
        let mut b = Request::post("/v1/streams/sensor/events?ack=queued");
        for (name, value) in headers {
            b = b.header(*name, value);
        }
        b.body(()).expect("request")
    }

    #[test]
    fn head_size_counts_the_bytes_on_the_wire() {
        let req = request(&[("host", "x".into()), ("content-type", "a/b".into())]);
        let wire = "POST /v1/streams/sensor/events?ack=queued HTTP/1.1\r\nhost: x\r\ncontent-type: a/b\r\n\r\n";
        assert_eq!(head_bytes(&req), wire.len());
    }

    #[test]
    fn limits_refuse_with_a_named_431() {
        let small = request(&[("x-a", "1".repeat(100))]);
        assert!(check(&small, 1024, 4).is_ok());
        let big = request(&[("x-a", "1".repeat(2000))]);
        let e = check(&big, 1024, 4).expect_err("too large");
        assert_eq!(e.status, StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE);
        assert_eq!(e.code, "headers_too_large");
        assert!(e.message.contains("http.max_header_bytes"), "{}", e.message);
        assert!(e.close);
        let many: Vec<_> = (0..5).map(|i| ("x-n", i.to_string())).collect();
        let e = check(&request(&many), 1024, 4).expect_err("too many");
        assert!(e.message.contains("5 header fields"), "{}", e.message);
    }
}
