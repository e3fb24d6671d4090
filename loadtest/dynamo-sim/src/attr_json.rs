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

/// A JSON string: copied between quotes when no byte needs an escape
/// (`"`, `\`, control characters: what serde_json escapes), else
/// serde_json's escaping.
fn string(out: &mut String, s: &str) {
    // No early exit: the compiler checks many bytes per step.
    let plain = !s.bytes().fold(false, |bad, b| {
        bad | (b < 0x20) | (b == b'"') | (b == b'\\')
    });
    if plain {
        out.push('"');
        out.push_str(s);
        out.push('"');
    } else {
        // Serializing a &str into a String cannot fail.
        out.push_str(&serde_json::to_string(s).unwrap_or_default());
    }
}

#[cfg(test)]
mod tests {
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

    proptest! {
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
