//! An item's wire JSON as the table stores it ([`crate::storage::Item`]),
//! written straight from its [`AttrMap`] after the request was parsed and
//! checked: the same text `serde_json::to_string` gives (the `Serialize`
//! impls in [`crate::attr`]), but a string that needs no escape (nearly
//! all of them) is copied as it is instead of being scanned byte by byte
//! by serde_json's escape table.

use std::cell::Cell;

use crate::attr::{Attr, AttrMap};

thread_local! {
    /// The buffer items are written into, one per thread: each text is
    /// copied out at its exact size (no growing from a guess, no shrinking).
    static SCRATCH: Cell<String> = const { Cell::new(String::new()) };
}

/// A scratch buffer larger than this (an unusually large item) is freed
/// rather than kept for the thread's next item.
const MAX_KEPT_SCRATCH: usize = 64 * 1024;

/// `attrs` as wire JSON text (`{"name":{"S":"…"},…}`), at its exact size.
pub fn item_json(attrs: &AttrMap) -> Box<str> {
    let mut out = SCRATCH.take();
    out.clear();
    map(&mut out, attrs);
    let text = Box::from(out.as_str());
    if out.capacity() <= MAX_KEPT_SCRATCH {
        SCRATCH.set(out);
    }
    text
}

fn map(out: &mut String, attrs: &AttrMap) {
    out.push('{');
    for (i, (name, value)) in attrs.0.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        string(out, name);
        out.push(':');
        attr(out, value);
    }
    out.push('}');
}

fn attr(out: &mut String, value: &Attr) {
    if let Attr::Invalid(_) = value {
        out.push_str("{}");
        return;
    }
    out.push_str("{\"");
    out.push_str(value.tag());
    out.push_str("\":");
    match value {
        Attr::S(v) | Attr::N(v) | Attr::B(v) => string(out, v),
        Attr::Bool(v) | Attr::Null(v) => out.push_str(if *v { "true" } else { "false" }),
        Attr::M(m) => map(out, m),
        Attr::L(list) => array(out, list, attr),
        Attr::Ss(v) | Attr::Ns(v) | Attr::Bs(v) => array(out, v, |out, s| string(out, s)),
        Attr::Invalid(_) => {}
    }
    out.push('}');
}

/// A JSON array of `items`, each written by `write`.
fn array<T>(out: &mut String, items: &[T], write: impl Fn(&mut String, &T)) {
    out.push('[');
    for (i, item) in items.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        write(out, item);
    }
    out.push(']');
}

/// The index of the first byte a JSON string must escape (`"`, `\`, a
/// control character: what serde_json escapes), eight bytes per step as
/// serde_json's own scan. Also how [`crate::ops`]' request scan finds a
/// string's end (a byte-by-byte loop there was a quarter of the
/// simulator's instructions per item).
pub(crate) fn first_to_escape(bytes: &[u8]) -> Option<usize> {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGH: u64 = 0x8080_8080_8080_8080;
    // The high bit of each byte that is zero (exact for the lowest one).
    let zero = |v: u64| v.wrapping_sub(ONES) & !v & HIGH;
    let mut chunks = bytes.chunks_exact(8);
    let mut at = 0;
    for chunk in &mut chunks {
        let v = u64::from_le_bytes(chunk.try_into().ok()?);
        let stop = zero(v ^ (ONES * u64::from(b'"')))
            | zero(v ^ (ONES * u64::from(b'\\')))
            | (v.wrapping_sub(ONES * 0x20) & !v & HIGH);
        if stop != 0 {
            return Some(at + (stop.trailing_zeros() / 8) as usize);
        }
        at += 8;
    }
    let mut rest = chunks.remainder().iter();
    Some(at + rest.position(|&c| c == b'"' || c == b'\\' || c < 0x20)?)
}

/// A JSON string: copied between quotes when no byte needs an escape,
/// else serde_json's escaping.
fn string(out: &mut String, s: &str) {
    if first_to_escape(s.as_bytes()).is_none() {
        out.push('"');
        out.push_str(s);
        out.push('"');
    } else {
        // Serializing a &str into a String cannot fail.
        out.push_str(&serde_json::to_string(s).unwrap_or_default());
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::attr::Text;
    use proptest::prelude::*;

    fn text() -> impl Strategy<Value = String> {
        prop_oneof![
            "[a-z0-9 .-]{0,12}",
            // Escapes, control characters, DEL, '/', multi-byte UTF-8.
            proptest::collection::vec(
                prop_oneof![
                    Just('"'),
                    Just('\\'),
                    Just('\n'),
                    Just('\u{0}'),
                    Just('\u{1f}'),
                    Just('\u{7f}'),
                    Just('/'),
                    Just('é'),
                    Just('😀'),
                    Just('a'),
                ],
                0..8
            )
            .prop_map(|c| c.into_iter().collect()),
        ]
    }

    fn texts(each: impl Strategy<Value = String>) -> impl Strategy<Value = Vec<Text<'static>>> {
        proptest::collection::vec(each, 0..3).prop_map(|v| v.into_iter().map(Text::from).collect())
    }

    fn attr() -> impl Strategy<Value = Attr<'static>> {
        let leaf = prop_oneof![
            text().prop_map(|s| Attr::S(s.into())),
            "-?[0-9]{1,5}(\\.[0-9]{1,3})?".prop_map(|s| Attr::N(s.into())),
            "[A-Za-z0-9+/]{0,8}={0,2}".prop_map(|s| Attr::B(s.into())),
            any::<bool>().prop_map(Attr::Bool),
            any::<bool>().prop_map(Attr::Null),
            texts(text()).prop_map(Attr::Ss),
            texts("[0-9]{1,3}".prop_map(String::from)).prop_map(Attr::Ns),
            texts("[A-Za-z0-9]{0,4}".prop_map(String::from)).prop_map(Attr::Bs),
            Just(Attr::Invalid("never stored")),
        ];
        leaf.prop_recursive(3, 24, 4, |inner| {
            prop_oneof![
                proptest::collection::vec((text().prop_map(Text::from), inner.clone()), 0..4)
                    .prop_map(|fields| Attr::M(AttrMap(fields))),
                proptest::collection::vec(inner, 0..4).prop_map(Attr::L),
            ]
        })
    }

    /// Bytes of a string's inside: mostly plain ASCII, with quotes,
    /// backslashes, control characters and non-ASCII bytes mixed in.
    pub(crate) fn string_bytes() -> impl Strategy<Value = Vec<u8>> {
        proptest::collection::vec(
            prop_oneof![8 => 0x20u8..0x7f, 1 => Just(b'"'), 1 => Just(b'\\'), 1 => 0u8..0x20, 1 => 0x80u8..=0xff],
            0..40,
        )
    }

    /// [`first_to_escape`] one byte at a time: the reference.
    pub(crate) fn first_to_escape_bytewise(bytes: &[u8]) -> Option<usize> {
        bytes
            .iter()
            .position(|&c| c == b'"' || c == b'\\' || c < 0x20)
    }

    proptest! {
        /// The eight-byte scan finds what a byte-by-byte one finds.
        #[test]
        fn the_first_byte_to_escape_is_found_eight_at_a_time(bytes in string_bytes()) {
            prop_assert_eq!(first_to_escape(&bytes), first_to_escape_bytewise(&bytes), "{:?}", bytes);
        }

        /// Every case runs on the same thread, so each also checks that the
        /// reused buffer leaves nothing of the item before.
        #[test]
        fn the_stored_text_is_what_serde_json_writes(
            fields in proptest::collection::vec((text().prop_map(Text::from), attr()), 0..6)
        ) {
            let attrs = AttrMap(fields);
            let expected = serde_json::to_string(&attrs).expect("serializes");
            prop_assert_eq!(&*item_json(&attrs), expected.as_str());
        }
    }
}
