//! Request bodies → events: one JSON object, a JSON array of objects, or
//! NDJSON (one object per line; blank lines skipped). Errors carry the line
//! and column (JSON) or line number (NDJSON) so a client can find the
//! problem; element positions are kept so later mapping errors can name
//! them too.

use serde_json::value::RawValue;

use crate::event::fields::{Fields, Kind, Raw};

/// How a body is framed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Json,
    Ndjson,
}

/// Where an event sat in the body, for error messages.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Positions {
    /// A single JSON object.
    Single,
    /// Elements of a JSON array.
    Array,
    /// NDJSON: the 1-based line of each event.
    Lines(Vec<usize>),
}

impl Positions {
    /// Describes event `index`, e.g. "line 3" or "element 2".
    pub fn describe(&self, index: usize) -> Option<(String, Option<usize>)> {
        match self {
            Positions::Single => None,
            Positions::Array => Some((format!("element {index}"), None)),
            Positions::Lines(lines) => lines.get(index).map(|l| (format!("line {l}"), Some(*l))),
        }
    }
}

/// A body that cannot be decoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    #[error("malformed JSON at line {line}, column {column}: {message}")]
    Json {
        line: usize,
        column: usize,
        message: String,
    },
    #[error("malformed JSON on NDJSON line {line}, column {column}: {message}")]
    NdjsonLine {
        line: usize,
        column: usize,
        message: String,
    },
    #[error("{0} must be a JSON object")]
    NotAnObject(String),
    #[error("the body holds no events")]
    Empty,
}

impl DecodeError {
    /// The 1-based line at fault, if known.
    pub fn line(&self) -> Option<usize> {
        match self {
            DecodeError::Json { line, .. } | DecodeError::NdjsonLine { line, .. } => Some(*line),
            _ => None,
        }
    }

    /// Metric reason.
    pub fn reason(&self) -> &'static str {
        match self {
            DecodeError::NotAnObject(_) => "not_an_object",
            _ => "malformed",
        }
    }
}

/// Decodes `body` into JSON objects, each borrowed from `body`.
pub fn decode(body: &[u8], format: Format) -> Result<(Vec<Fields<'_>>, Positions), DecodeError> {
    match format {
        Format::Json => decode_json(body),
        Format::Ndjson => decode_ndjson(body),
    }
}

fn json_error(e: &serde_json::Error) -> DecodeError {
    DecodeError::Json {
        line: e.line(),
        column: e.column(),
        message: strip_position(e),
    }
}

/// The first byte that is not JSON whitespace.
fn first_byte(text: &[u8]) -> Option<u8> {
    text.iter().copied().find(|b| !b.is_ascii_whitespace())
}

fn decode_json(body: &[u8]) -> Result<(Vec<Fields<'_>>, Positions), DecodeError> {
    match first_byte(body) {
        None => Err(DecodeError::Empty),
        Some(b'{') => {
            let fields = Fields::parse(body).map_err(|e| json_error(&e))?;
            Ok((vec![fields], Positions::Single))
        }
        Some(b'[') => {
            let elements: Vec<&RawValue> =
                serde_json::from_slice(body).map_err(|e| json_error(&e))?;
            if elements.is_empty() {
                return Err(DecodeError::Empty);
            }
            let events = elements
                .iter()
                .enumerate()
                .map(|(i, raw)| {
                    if Kind::of(Raw::from(*raw)) != Kind::Object {
                        return Err(DecodeError::NotAnObject(format!("element {i}")));
                    }
                    // Valid JSON already: an object always reads as fields.
                    Fields::parse(raw.get().as_bytes())
                        .map_err(|_| DecodeError::NotAnObject(format!("element {i}")))
                })
                .collect::<Result<_, _>>()?;
            Ok((events, Positions::Array))
        }
        Some(_) => {
            // Valid JSON but not an object or array, or no JSON at all.
            let _: &RawValue = serde_json::from_slice(body).map_err(|e| json_error(&e))?;
            Err(DecodeError::NotAnObject("the body".to_owned()))
        }
    }
}

fn decode_ndjson(body: &[u8]) -> Result<(Vec<Fields<'_>>, Positions), DecodeError> {
    // Lines found with memchr's vector search, not a byte at a time; the
    // vectors sized once from their count.
    let newlines = memchr::memchr_iter(b'\n', body);
    let mut events = Vec::with_capacity(newlines.count() + 1);
    let mut lines = Vec::with_capacity(events.capacity());
    let ends = memchr::memchr_iter(b'\n', body).chain(std::iter::once(body.len()));
    let mut start = 0;
    for (i, end) in ends.enumerate() {
        let raw = &body[start..end];
        start = end + 1;
        let line = raw.strip_suffix(b"\r").unwrap_or(raw);
        let Some(first) = first_byte(line) else {
            continue;
        };
        let line_error = |e: serde_json::Error| DecodeError::NdjsonLine {
            line: i + 1,
            column: e.column(),
            message: strip_position(&e),
        };
        if first != b'{' {
            let _: &RawValue = serde_json::from_slice(line).map_err(line_error)?;
            return Err(DecodeError::NotAnObject(format!("line {}", i + 1)));
        }
        events.push(Fields::parse(line).map_err(line_error)?);
        lines.push(i + 1);
    }
    if events.is_empty() {
        return Err(DecodeError::Empty);
    }
    Ok((events, Positions::Lines(lines)))
}

/// serde_json appends " at line L column C"; we report those separately.
fn strip_position(e: &serde_json::Error) -> String {
    let text = e.to_string();
    match text.rfind(" at line ") {
        Some(i) => text[..i].to_owned(),
        None => text,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn single_object_array_and_ndjson() {
        let (ev, pos) = decode(br#"{"a":1}"#, Format::Json).expect("object");
        assert_eq!((ev.len(), pos), (1, Positions::Single));
        let (ev, pos) = decode(br#"[{"a":1},{"a":2}]"#, Format::Json).expect("array");
        assert_eq!((ev.len(), pos), (2, Positions::Array));
        let (ev, pos) = decode(b"{\"a\":1}\r\n\n{\"a\":2}\n", Format::Ndjson).expect("ndjson");
        assert_eq!((ev.len(), pos), (2, Positions::Lines(vec![1, 3])));
    }

    #[test]
    fn errors_name_line_and_column() {
        assert_eq!(
            decode(b"{\"a\":\n  tru}", Format::Json).map(|_| ()),
            Err(DecodeError::Json {
                line: 2,
                column: 6,
                message: "expected ident".into()
            })
        );
        let e = decode(b"{\"a\":1}\n{\"a\":2}\n{oops}\n", Format::Ndjson)
            .map(|_| ())
            .unwrap_err();
        assert!(
            matches!(
                e,
                DecodeError::NdjsonLine {
                    line: 3,
                    column: 2,
                    ..
                }
            ),
            "{e:?}"
        );
        assert_eq!(
            decode(b"[{\"a\":1}, 5]", Format::Json).map(|_| ()),
            Err(DecodeError::NotAnObject("element 1".into()))
        );
        assert_eq!(
            decode(b"\"str\"", Format::Json).map(|_| ()),
            Err(DecodeError::NotAnObject("the body".into()))
        );
        assert_eq!(
            decode(b"{}\n[1]\n", Format::Ndjson).map(|_| ()),
            Err(DecodeError::NotAnObject("line 2".into()))
        );
        assert_eq!(
            decode(b"  ", Format::Json).map(|_| ()),
            Err(DecodeError::Empty)
        );
        assert_eq!(
            decode(b"[]", Format::Json).map(|_| ()),
            Err(DecodeError::Empty)
        );
        assert_eq!(
            decode(b"\n\n", Format::Ndjson).map(|_| ()),
            Err(DecodeError::Empty)
        );
    }
}
