//! The fast path of [`Fields::parse`](super::fields::Fields::parse): one
//! pass over an object whose names hold no escapes and whose values are
//! strings without escapes, numbers, `true`, `false`, `null`, or nested
//! objects and arrays (those measured by serde_json). Where it sits: the
//! sources decode each HTTP event and MQTT payload into fields here, before
//! the mapper writes the item.
//!
//! It accepts a subset of what serde_json accepts and reads the same fields
//! from it. Anything else (an escape, a control character, invalid UTF-8,
//! more than [`LINEAR_DEDUP`] fields, any syntax error) gives `None`, and
//! the caller reads the text with serde_json, which also words the error.
//! A three-field sensor event costs about 1,270 instructions this way
//! against about 1,760 through serde_json's visitor (callgrind,
//! docs/PERFORMANCE.md): names and values are found by byte loops, with
//! no deserializer state per field.

use std::borrow::Cow;

use serde_json::value::RawValue;

use super::fields::{FieldList, Raw, LINEAR_DEDUP};
use super::typed::json_special;

/// Nesting a nested value may reach here: serde_json refuses 128 levels
/// of the whole text, and counting brackets (strings included) stays on
/// the safe side of that.
const MAX_BRACKETS: usize = 100;

/// The fields of the JSON object that is all of `text`, or `None` when
/// serde_json has to decide.
pub(super) fn flat_object(text: &[u8]) -> Option<FieldList<'_>> {
    // Validated once: every delimiter below is ASCII, so each slice taken
    // between two of them is whole UTF-8.
    let text = std::str::from_utf8(text).ok()?;
    let b = text.as_bytes();
    let mut i = skip_ws(b, 0);
    if b.get(i) != Some(&b'{') {
        return None;
    }
    i = skip_ws(b, i + 1);
    let mut list = FieldList::new();
    if b.get(i) != Some(&b'}') {
        loop {
            let name_end = string_end(b, i)?;
            let name = &text[i + 1..name_end - 1];
            i = skip_ws(b, name_end);
            if b.get(i) != Some(&b':') {
                return None;
            }
            i = skip_ws(b, i + 1);
            let end = value_end(text, i)?;
            let value = Raw::checked(&text[i..end]);
            // A name given twice keeps its last value in its first place.
            match list.iter().position(|(n, _)| n == name) {
                Some(earlier) => list[earlier].1 = value,
                None if list.len() == LINEAR_DEDUP => return None,
                None => list.push((Cow::Borrowed(name), value)),
            }
            i = skip_ws(b, end);
            match b.get(i) {
                Some(b',') => i = skip_ws(b, i + 1),
                Some(b'}') => break,
                _ => return None,
            }
        }
    }
    (skip_ws(b, i + 1) == b.len()).then_some(list)
}

/// The index of the first byte from `i` on that is not JSON whitespace.
fn skip_ws(b: &[u8], mut i: usize) -> usize {
    while matches!(b.get(i), Some(b' ' | b'\n' | b'\t' | b'\r')) {
        i += 1;
    }
    i
}

/// The end (past the closing quote) of the string starting at `i`, if it
/// holds no escape and no control character.
fn string_end(b: &[u8], i: usize) -> Option<usize> {
    if b.get(i) != Some(&b'"') {
        return None;
    }
    let len = b[i + 1..].iter().position(|&c| json_special(c))?;
    let close = i + 1 + len;
    (b[close] == b'"').then_some(close + 1)
}

/// The end of the JSON value starting at `i`.
fn value_end(text: &str, i: usize) -> Option<usize> {
    let b = text.as_bytes();
    match *b.get(i)? {
        b'"' => string_end(b, i),
        b'-' | b'0'..=b'9' => number_end(b, i),
        b't' => literal_end(b, i, b"true"),
        b'f' => literal_end(b, i, b"false"),
        b'n' => literal_end(b, i, b"null"),
        b'{' | b'[' => nested_end(&text[i..]).map(|len| i + len),
        _ => None,
    }
}

fn literal_end(b: &[u8], i: usize, literal: &[u8]) -> Option<usize> {
    b[i..].starts_with(literal).then_some(i + literal.len())
}

/// JSON's number grammar: `-? (0 | [1-9][0-9]*) (. [0-9]+)? ([eE] [+-]? [0-9]+)?`.
fn number_end(b: &[u8], mut i: usize) -> Option<usize> {
    let digits = |b: &[u8], i: usize| b[i..].iter().take_while(|c| c.is_ascii_digit()).count();
    if b[i] == b'-' {
        i += 1;
    }
    match b.get(i)? {
        b'0' => i += 1,
        b'1'..=b'9' => i += digits(b, i),
        _ => return None,
    }
    if b.get(i) == Some(&b'.') {
        let n = digits(b, i + 1);
        if n == 0 {
            return None;
        }
        i += 1 + n;
    }
    if matches!(b.get(i), Some(b'e' | b'E')) {
        i += 1;
        if matches!(b.get(i), Some(b'+' | b'-')) {
            i += 1;
        }
        let n = digits(b, i);
        if n == 0 {
            return None;
        }
        i += n;
    }
    Some(i)
}

/// The length of the object or array at the start of `text`, measured by
/// serde_json (which checks it as the whole text's parse would).
fn nested_end(text: &str) -> Option<usize> {
    let mut values = serde_json::Deserializer::from_str(text).into_iter::<&RawValue>();
    let raw = values.next()?.ok()?;
    let brackets = raw
        .get()
        .bytes()
        .filter(|c| matches!(c, b'{' | b'['))
        .count();
    (brackets <= MAX_BRACKETS).then(|| values.byte_offset())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::fields::Fields;
    use proptest::prelude::*;

    /// A field name's text: plain, non-ASCII, escaped, a control character,
    /// unterminated, not a string.
    fn name() -> impl Strategy<Value = String> {
        prop_oneof![
            4 => "\"[a-c]{1,2}\"",
            2 => "\"[a-zé😀_ ]{0,6}\"",
            1 => Just(r#""a\u0062""#.to_owned()),
            1 => Just(r#""b\n""#.to_owned()),
            1 => Just("\"c\u{1}\"".to_owned()),
            1 => Just("\"open".to_owned()),
            1 => Just("x".to_owned()),
        ]
    }

    /// A value's text: numbers valid and not, strings with and without
    /// escapes, literals and near-literals, nested values valid and not.
    fn value() -> impl Strategy<Value = String> {
        prop_oneof![
            4 => "-?(0|[1-9][0-9]{0,5})(\\.[0-9]{1,3})?([eE][+-]?[0-9]{1,2})?",
            2 => "[-+0-9.eE]{1,6}",
            2 => prop::sample::select(vec![
                "01", "-01", "00", "-", "1.", "1e", "1E+", ".5", "+1", "-0", "0.5", "1.5e-3",
            ])
            .prop_map(str::to_owned),
            3 => "\"[a-z é\t]{0,6}\"",
            1 => "\"[a-z]{0,3}\\\\[n\"u\\\\x/][a-f0-9]{0,4}\"",
            1 => prop::sample::select(vec!["true", "false", "null", "tru", "nul", "falsey", "truex"])
                .prop_map(str::to_owned),
            1 => "\\{ ?(\"[a-z]\": ?[0-9])? ?\\}",
            1 => "\\[([0-9], ?)?\\{\\}\\]",
            1 => "[\\[\\{\"]{1,3}[\\]\\}\"]{0,3}",
        ]
    }

    fn ws() -> impl Strategy<Value = &'static str> {
        // Form feed is whitespace to Rust, not to JSON.
        prop::sample::select(vec!["", "", " ", "\t", "\r\n ", "\u{c}"])
    }

    fn field() -> impl Strategy<Value = String> {
        (name(), ws(), ws(), value(), ws()).prop_map(|(n, a, b, v, c)| format!("{n}{a}:{b}{v}{c}"))
    }

    /// Objects, with a suffix that may spoil them, and perhaps one byte
    /// replaced (an invalid UTF-8 byte among the choices).
    fn text() -> impl Strategy<Value = Vec<u8>> {
        let object = (
            ws(),
            prop::collection::vec(field(), 0..6),
            ws(),
            prop::sample::select(vec!["", "", ",", "x", "}"]),
        )
            .prop_map(|(a, fields, b, tail)| {
                format!("{a}{{{}}}{b}{tail}", fields.join(",")).into_bytes()
            });
        (
            object,
            any::<prop::sample::Index>(),
            prop::option::of(prop::sample::select(vec![
                b'"', b',', b'}', b'\\', 0xff, b'0',
            ])),
        )
            .prop_map(|(mut bytes, at, byte)| {
                if let (Some(byte), false) = (byte, bytes.is_empty()) {
                    let i = at.index(bytes.len());
                    bytes[i] = byte;
                }
                bytes
            })
    }

    /// The same fields, or the same error, as serde_json alone.
    fn agrees(text: &[u8]) -> Result<(), TestCaseError> {
        let fast = Fields::parse(text).map_err(|e| e.to_string());
        let slow = Fields::parse_by_serde(text).map_err(|e| e.to_string());
        prop_assert_eq!(fast, slow, "{:?}", String::from_utf8_lossy(text));
        Ok(())
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(4096))]

        #[test]
        fn reads_what_serde_json_reads(text in text()) {
            agrees(&text)?;
        }

        /// Plain flat objects take the fast path (so the test above tests it).
        #[test]
        fn plain_objects_take_the_one_pass(
            fields in prop::collection::vec(("[a-e]{1,3}", prop_oneof![
                "-?(0|[1-9][0-9]{0,5})(\\.[0-9]{1,3})?([eE][+-]?[0-9]{1,2})?",
                "\"[a-z é😀]{0,6}\"",
                Just("true".to_owned()),
                Just("null".to_owned()),
                Just(r#"{"m":[1,{"n":"\u0041"}]}"#.to_owned()),
            ]), 0..8)
        ) {
            let text = format!("{{{}}}", fields.iter().map(|(n, v)| format!("\"{n}\" : {v}")).collect::<Vec<_>>().join(" ,"));
            prop_assert!(flat_object(text.as_bytes()).is_some(), "{}", text);
            agrees(text.as_bytes())?;
        }
    }

    #[test]
    fn nesting_near_serde_jsons_limit_is_left_to_it() {
        for depth in 95..=130 {
            let text = format!(r#"{{"a":{}{}}}"#, "[".repeat(depth), "]".repeat(depth));
            agrees(text.as_bytes()).expect("same result");
        }
        let deep = format!(r#"{{"a":{}{}}}"#, "[".repeat(101), "]".repeat(101));
        assert!(flat_object(deep.as_bytes()).is_none());
    }

    #[test]
    fn many_fields_and_repeated_names() {
        let wide = (0..40)
            .map(|i| format!(r#""f{i}":{i}"#))
            .collect::<Vec<_>>()
            .join(",");
        let wide = format!("{{{wide}}}");
        assert!(flat_object(wide.as_bytes()).is_none(), "past LINEAR_DEDUP");
        agrees(wide.as_bytes()).expect("same result");
        let twice = br#"{"a":1,"b":"x","a":[2]}"#;
        let list = flat_object(twice).expect("plain");
        let pairs: Vec<(&str, &str)> = list.iter().map(|(n, v)| (n.as_ref(), v.get())).collect();
        assert_eq!(pairs, [("a", "[2]"), ("b", "\"x\"")]);
    }
}
