//! The fast path of BatchWriteItem's parse, the simulator's hot path: one
//! pass over a request whose names and strings hold no escapes and whose
//! attribute values are S, N, B, BOOL or NULL (no maps, lists or sets).
//! Where it sits: [`super::batch::batch_write_item`] tries it first.
//!
//! Anything else gives `None`, and serde_json reads the request and words
//! any error: an escape, a nested value, a repeated or unknown member, an
//! empty or multi-typed value, any syntax error. It fills the types
//! serde_json fills and reads the same values from what it accepts (a
//! proptest checks both). It also keeps each item's text as the request
//! held it, which the table stores as it is. serde_json's visitor calls
//! and writing the text anew from the attributes were ≈ 55 % of the
//! simulator's instructions per item (docs/PERFORMANCE.md).

use std::borrow::Cow;
use std::collections::BTreeMap;

use super::batch::{WireBatchWrite, WireDelete, WireItem, WirePut, WireWrite};
use crate::attr::{Attr, AttrMap, Text};
use crate::attr_json::first_to_escape;

/// `text` read as a BatchWriteItem request, or `None` when serde_json has
/// to read it.
pub(super) fn scan(text: &str) -> Option<WireBatchWrite<'_>> {
    let mut s = Scanner {
        text,
        b: text.as_bytes(),
        i: 0,
    };
    let mut req = WireBatchWrite::default();
    s.object(|s, name| {
        match name {
            "RequestItems" if req.request_items.is_none() => {
                req.request_items = Some(s.request_items()?);
            }
            "ReturnConsumedCapacity" if req.return_consumed_capacity.is_none() => {
                req.return_consumed_capacity = Some(s.string()?.to_owned());
            }
            _ => return None,
        }
        Some(())
    })?;
    s.ws();
    (s.i == s.b.len()).then_some(req)
}

/// The length of a string's text up to its closing quote (`bytes` starts
/// after the opening one), or `None` if a backslash or a control character
/// comes first or the quote never does.
fn plain_len(bytes: &[u8]) -> Option<usize> {
    first_to_escape(bytes).filter(|&i| bytes[i] == b'"')
}

struct Scanner<'a> {
    text: &'a str,
    b: &'a [u8],
    i: usize,
}

impl<'a> Scanner<'a> {
    fn ws(&mut self) {
        while matches!(self.b.get(self.i), Some(b' ' | b'\n' | b'\t' | b'\r')) {
            self.i += 1;
        }
    }

    /// The next byte after whitespace (not consumed).
    fn peek(&mut self) -> Option<u8> {
        self.ws();
        self.b.get(self.i).copied()
    }

    fn eat(&mut self, c: u8) -> Option<()> {
        (self.peek()? == c).then(|| self.i += 1)
    }

    /// A string without escapes or control characters: its text.
    fn string(&mut self) -> Option<&'a str> {
        self.eat(b'"')?;
        let start = self.i;
        let end = start + plain_len(&self.b[start..])?;
        self.i = end + 1;
        // Both ends are ASCII quotes, so the slice is whole UTF-8.
        self.text.get(start..end)
    }

    fn literal(&mut self) -> Option<bool> {
        self.ws();
        let rest = &self.b[self.i..];
        let (value, len) = if rest.starts_with(b"true") {
            (true, 4)
        } else if rest.starts_with(b"false") {
            (false, 5)
        } else {
            return None;
        };
        self.i += len;
        Some(value)
    }

    /// `open item, item, ... close`, each item read by `item`.
    fn sequence(
        &mut self,
        open: u8,
        close: u8,
        mut item: impl FnMut(&mut Self) -> Option<()>,
    ) -> Option<()> {
        self.eat(open)?;
        if self.peek()? == close {
            self.i += 1;
            return Some(());
        }
        loop {
            item(self)?;
            match self.peek()? {
                b',' => self.i += 1,
                c if c == close => {
                    self.i += 1;
                    return Some(());
                }
                _ => return None,
            }
        }
    }

    /// `{"name": value, ...}`, each value read by `member`.
    fn object(&mut self, mut member: impl FnMut(&mut Self, &'a str) -> Option<()>) -> Option<()> {
        self.sequence(b'{', b'}', |s| {
            let name = s.string()?;
            s.eat(b':')?;
            member(s, name)
        })
    }

    /// `[value, ...]`, each value read by `element`.
    fn array(&mut self, element: impl FnMut(&mut Self) -> Option<()>) -> Option<()> {
        self.sequence(b'[', b']', element)
    }

    /// `{"table": [write, ...], ...}`; a table named twice is left to
    /// serde_json.
    fn request_items(&mut self) -> Option<BTreeMap<String, Vec<WireWrite<'a>>>> {
        let mut tables = BTreeMap::new();
        self.object(|s, table| {
            let mut writes = Vec::with_capacity(25);
            s.array(|s| {
                writes.push(s.write()?);
                Some(())
            })?;
            tables
                .insert(table.to_owned(), writes)
                .is_none()
                .then_some(())
        })?;
        Some(tables)
    }

    /// `{"PutRequest": {"Item": {..}}}` or `{"DeleteRequest": {"Key": {..}}}`.
    fn write(&mut self) -> Option<WireWrite<'a>> {
        let mut write = WireWrite::default();
        let mut seen = false;
        self.object(|s, name| {
            if std::mem::replace(&mut seen, true) {
                return None;
            }
            let mut inner = None;
            let field = if name == "PutRequest" { "Item" } else { "Key" };
            if !matches!(name, "PutRequest" | "DeleteRequest") {
                return None;
            }
            s.object(|s, n| {
                if n != field || inner.is_some() {
                    return None;
                }
                inner = Some(s.item()?);
                Some(())
            })?;
            let inner = inner?;
            if name == "PutRequest" {
                write.put_request = Some(WirePut { item: Some(inner) });
            } else {
                write.delete_request = Some(WireDelete {
                    key: Some(inner.attrs),
                });
            }
            Some(())
        })?;
        seen.then_some(write)
    }

    /// An attribute map and its text.
    fn item(&mut self) -> Option<WireItem<'a>> {
        self.ws();
        let start = self.i;
        let attrs = self.attrs()?;
        Some(WireItem {
            attrs,
            text: Some(self.text.get(start..self.i)?),
        })
    }

    /// `{"name": {"S": ".."}, ...}`; a name given twice keeps its last
    /// value in its first place, as [`AttrMap`]'s deserializer does.
    fn attrs(&mut self) -> Option<AttrMap<'a>> {
        let mut out: Vec<(Text<'a>, Attr<'a>)> = Vec::with_capacity(8);
        self.object(|s, name| {
            let value = s.value()?;
            match out.iter_mut().find(|(n, _)| n == name) {
                Some(slot) => slot.1 = value,
                None => out.push((Cow::Borrowed(name), value)),
            }
            Some(())
        })?;
        Some(AttrMap(out))
    }

    /// One S, N, B, BOOL or NULL value.
    fn value(&mut self) -> Option<Attr<'a>> {
        let mut value = None;
        self.object(|s, tag| {
            if value.is_some() {
                return None;
            }
            value = Some(match tag {
                "S" => Attr::S(Cow::Borrowed(s.string()?)),
                "N" => Attr::N(Cow::Borrowed(s.string()?)),
                "B" => Attr::B(Cow::Borrowed(s.string()?)),
                "BOOL" => Attr::Bool(s.literal()?),
                "NULL" => Attr::Null(s.literal()?),
                _ => return None,
            });
            Some(())
        })?;
        value
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::attr_json::tests::{first_to_escape_bytewise, string_bytes};
    use proptest::prelude::*;

    fn ws() -> impl Strategy<Value = &'static str> {
        prop::sample::select(vec!["", "", " ", "\n  ", "\t"])
    }

    /// A JSON string: plain, escaped, with a control character, or not a
    /// string at all.
    fn string() -> impl Strategy<Value = String> {
        prop_oneof![
            6 => "\"[a-z0-9 _.é-]{0,6}\"",
            1 => Just(r#""a\"b""#.to_owned()),
            1 => Just(r#""\u0041""#.to_owned()),
            1 => Just("\"c\u{1}\"".to_owned()),
            1 => Just("5".to_owned()),
        ]
    }

    fn value() -> impl Strategy<Value = String> {
        prop_oneof![
            4 => (ws(), string()).prop_map(|(w, s)| format!("{{\"S\":{w}{s}}}")),
            3 => "-?[0-9]{1,4}(\\.[0-9]{1,2})?".prop_map(|n| format!("{{\"N\": \"{n}\"}}")),
            1 => Just(r#"{"B":"AAE="}"#.to_owned()),
            1 => prop::sample::select(vec![
                r#"{"BOOL":true}"#, r#"{"BOOL": false}"#, r#"{"NULL":true}"#, r#"{"NULL":fals}"#,
                "{}", r#"{"S":"a","N":"1"}"#, r#"{"M":{}}"#, r#"{"SS":["a"]}"#, r#"{"L":[]}"#,
                r#"{"X":"y"}"#, r#"{"S":"a"#,
            ])
            .prop_map(str::to_owned),
        ]
    }

    fn attrs() -> impl Strategy<Value = String> {
        proptest::collection::vec(
            (
                prop::sample::select(vec!["pk", "sk", "x", "y"]),
                ws(),
                value(),
            ),
            0..4,
        )
        .prop_map(|fields| {
            let body: Vec<String> = fields
                .into_iter()
                .map(|(n, w, v)| format!("\"{n}\"{w}:{v}"))
                .collect();
            format!("{{{}}}", body.join(","))
        })
    }

    fn write() -> impl Strategy<Value = String> {
        prop_oneof![
            6 => (ws(), attrs()).prop_map(|(w, a)| format!("{{\"PutRequest\":{w}{{\"Item\":{a}}}}}")),
            2 => attrs().prop_map(|a| format!("{{\"DeleteRequest\": {{\"Key\": {a}}}}}")),
            1 => (attrs(), attrs()).prop_map(|(a, b)| {
                format!("{{\"PutRequest\":{{\"Item\":{a}}},\"DeleteRequest\":{{\"Key\":{b}}}}}")
            }),
            1 => prop::sample::select(vec![
                "{}", r#"{"PutRequest":{}}"#, r#"{"Other":1}"#, r#"{"PutRequest":{"Item":{},"Item":{}}}"#,
            ])
            .prop_map(str::to_owned),
        ]
    }

    fn request() -> impl Strategy<Value = String> {
        let table = (
            prop::sample::select(vec!["t", "u", "t"]),
            proptest::collection::vec(write(), 0..4),
            ws(),
        )
            .prop_map(|(t, w, s)| format!("\"{t}\":{s}[{}]", w.join(", ")));
        (
            proptest::collection::vec(table, 0..3),
            prop::sample::select(vec![
                "",
                r#","ReturnConsumedCapacity":"TOTAL""#,
                r#", "ReturnConsumedCapacity": null"#,
                r#","Other":1"#,
            ]),
            ws(),
        )
            .prop_map(|(tables, tail, w)| {
                format!("{w}{{\"RequestItems\":{{{}}}{tail}}}{w}", tables.join(","))
            })
    }

    proptest! {
        /// A string's text ends at its quote only when nothing to escape
        /// comes first.
        #[test]
        fn plain_len_stops_at_the_first_quote_backslash_or_control(bytes in string_bytes()) {
            let expected = first_to_escape_bytewise(&bytes).filter(|&i| bytes[i] == b'"');
            prop_assert_eq!(plain_len(&bytes), expected, "{:?}", bytes);
        }

        /// What the scan accepts, serde_json reads to the same request,
        /// and each put's text reads back to its attributes.
        #[test]
        fn the_scan_reads_what_serde_json_reads(text in request()) {
            if let Some(scanned) = scan(&text) {
                let parsed: WireBatchWrite = serde_json::from_str(&text).expect("serde_json reads it too");
                prop_assert_eq!(&scanned, &parsed);
                for writes in scanned.request_items.iter().flat_map(|t| t.values()) {
                    for item in writes.iter().filter_map(|w| w.put_request.as_ref()?.item.as_ref()) {
                        let again: AttrMap = serde_json::from_str(item.text.expect("text kept"))
                            .expect("the item's text is JSON");
                        prop_assert_eq!(&again, &item.attrs);
                    }
                }
            }
        }
    }

    #[test]
    fn a_gateway_request_takes_the_scan_and_keeps_each_item_as_sent() {
        let item = r#"{"device_id":{"S":"run-1-device-000042"},"timestamp":{"N":"1764340000123"},"temperature":{"N":"21.5"},"ok":{"BOOL":true}}"#;
        let text = format!(
            r#"{{"RequestItems":{{"IoTSensorData":[{{"PutRequest":{{"Item":{item}}}}},{{"DeleteRequest":{{"Key":{{"device_id":{{"S":"d"}}}}}}}}]}},"ReturnConsumedCapacity":"TOTAL"}}"#
        );
        let req = scan(&text).expect("the common shape takes the fast path");
        assert_eq!(req.return_consumed_capacity.as_deref(), Some("TOTAL"));
        let writes = &req.request_items.as_ref().expect("items")["IoTSensorData"];
        let put = writes[0].put_request.as_ref().and_then(|p| p.item.as_ref());
        assert_eq!(put.and_then(|i| i.text), Some(item));
        assert_eq!(put.map(|i| i.attrs.len()), Some(4));
        assert!(writes[1].delete_request.is_some());
        // An escape anywhere sends the whole request to serde_json.
        assert!(scan(&text.replace("run-1", "run\\u002d1")).is_none());
    }
}
