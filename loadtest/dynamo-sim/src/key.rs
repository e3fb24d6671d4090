//! Key attribute values: extraction from wire JSON, ordering and hashing.
//!
//! Invariants: N keys are normalised exact decimals (`1.0` and `1` are the
//! same key) and ordered numerically without floating point; S and B keys
//! are ordered byte-wise, as DynamoDB orders sort keys. The partition hash is
//! stable across runs (FNV-1a over the canonical bytes), so a given key
//! always lands on the same simulated partition.

use std::cmp::Ordering;

use base64::Engine;
use serde_json::{Map, Value};

use crate::attr::Attr;

use crate::error::{ApiError, ApiResult};

/// The scalar type of a key attribute.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum KeyType {
    /// String.
    S,
    /// Number.
    N,
    /// Binary.
    B,
}

impl KeyType {
    /// Wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            KeyType::S => "S",
            KeyType::N => "N",
            KeyType::B => "B",
        }
    }

    /// Parse `S`, `N` or `B`.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "S" => Some(KeyType::S),
            "N" => Some(KeyType::N),
            "B" => Some(KeyType::B),
            _ => None,
        }
    }
}

/// An exact decimal: sign, significant digits (no leading/trailing zeros)
/// and the decimal exponent of the first digit. Zero has no digits.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct Decimal {
    negative: bool,
    digits: Vec<u8>,
    /// Value = 0.d1d2d3... × 10^exp
    exp: i64,
}

/// `text` without surrounding whitespace. A number's text nearly always
/// starts and ends with a visible ASCII character, which `str::trim` would
/// not remove: it is returned as it is (`trim` decodes characters from both
/// ends, about a fifth of the simulator's number checks).
fn trimmed(text: &str) -> &str {
    let visible = |b: Option<&u8>| b.is_some_and(u8::is_ascii_graphic);
    if visible(text.as_bytes().first()) && visible(text.as_bytes().last()) {
        text
    } else {
        text.trim()
    }
}

impl Decimal {
    /// Parse DynamoDB's number text (`-12.5e3`, `0.001`, `7`).
    ///
    /// One pass over the mantissa collects its digits without leading
    /// zeros (a key's number is parsed for every write; splitting and
    /// re-scanning the text took ≈ 690 instructions for a 13-digit
    /// timestamp).
    pub fn parse(text: &str) -> Option<Decimal> {
        let t = trimmed(text);
        let b = t.as_bytes();
        let (negative, mut i) = match b.first()? {
            b'-' => (true, 1),
            b'+' => (false, 1),
            _ => (false, 0),
        };
        let mut digits: Vec<u8> = Vec::with_capacity(b.len() - i);
        // Digits before the point, leading zeros included; zeros before
        // the first other digit, which are not kept.
        let (mut int_len, mut lead) = (0i64, 0i64);
        let (mut point, mut any) = (false, false);
        while let Some(&c) = b.get(i) {
            match c {
                b'0'..=b'9' => {
                    any = true;
                    int_len += i64::from(!point);
                    if c == b'0' && digits.is_empty() {
                        lead += 1;
                    } else {
                        digits.push(c - b'0');
                    }
                }
                b'.' if !point => point = true,
                b'e' | b'E' => break,
                _ => return None,
            }
            i += 1;
        }
        if !any {
            return None;
        }
        let e10: i64 = match b.get(i) {
            Some(_) => t[i + 1..].parse().ok()?,
            None => 0,
        };
        Some(Decimal::normalized(negative, digits, int_len + e10 - lead))
    }

    /// The decimal 0.`digits` × 10^`exp`, `digits` without leading zeros:
    /// trailing zeros dropped, and zero unsigned with no digits.
    fn normalized(negative: bool, mut digits: Vec<u8>, exp: i64) -> Decimal {
        while digits.last() == Some(&0) {
            digits.pop();
        }
        if digits.is_empty() {
            return Decimal::default();
        }
        Decimal {
            negative,
            digits,
            exp,
        }
    }

    /// Significant digits of a number's text without building it, or None
    /// if the text is not a number (size rules need only the count).
    ///
    /// One pass notes the first and last non-zero digit and the point: the
    /// count is the span between them, less the point when it lies inside
    /// (a per-digit count with a branch for each case took ≈ 186
    /// instructions per number of a sensor item, this ≈ 135).
    pub fn count_significant(text: &str) -> Option<usize> {
        let t = trimmed(text);
        // A byte test: a `char` pattern decodes the first character.
        let t = match t.as_bytes().first() {
            Some(b'-' | b'+') => &t[1..],
            _ => t,
        };
        let b = t.as_bytes();
        const NONE: usize = usize::MAX;
        let (mut first, mut last, mut point) = (NONE, 0, NONE);
        let mut end = b.len();
        for (i, &c) in b.iter().enumerate() {
            if c.is_ascii_digit() {
                if c != b'0' {
                    first = first.min(i);
                    last = i;
                }
            } else if c == b'.' && point == NONE {
                point = i;
            } else if c == b'e' || c == b'E' {
                // The exponent must be an integer; its value does not
                // change the count.
                t[i + 1..].parse::<i64>().ok()?;
                end = i;
                break;
            } else {
                return None;
            }
        }
        // Mantissa digits: all of it but the point.
        if end - usize::from(point != NONE) == 0 {
            return None;
        }
        if first == NONE {
            return Some(0);
        }
        Some(last - first + 1 - usize::from(point > first && point < last))
    }

    /// Number of significant digits (DynamoDB allows at most 38).
    pub fn significant_digits(&self) -> usize {
        self.digits.len()
    }

    /// 120-bit rank ordered like the value (ties possible past 25 digits):
    /// class (negative 0, zero 1, positive 2) in the top 2 bits, then the
    /// magnitude (exponent clamped to 16 bits, 25 digits at 4 bits each),
    /// inverted for negatives so that larger magnitudes rank lower.
    fn rank(&self) -> u128 {
        const MAGNITUDE_BITS: u32 = 116;
        if self.digits.is_empty() {
            return 1 << 118;
        }
        let exp = (self.exp.clamp(i64::from(i16::MIN), i64::from(i16::MAX)) - i64::from(i16::MIN))
            as u128;
        // The first 25 digits, 4 bits each, left-aligned (missing ones 0).
        let kept = &self.digits[..self.digits.len().min(25)];
        let digits = kept
            .iter()
            .fold(0u128, |acc, &d| (acc << 4) | u128::from(d))
            << (4 * (25 - kept.len()));
        let magnitude = (exp << 100) | digits;
        if self.negative {
            !magnitude & ((1u128 << MAGNITUDE_BITS) - 1)
        } else {
            (2 << 118) | magnitude
        }
    }

    fn cmp_magnitude(&self, other: &Decimal) -> Ordering {
        self.exp
            .cmp(&other.exp)
            .then_with(|| self.digits.cmp(&other.digits))
    }
}

impl Ord for Decimal {
    fn cmp(&self, other: &Self) -> Ordering {
        let self_zero = self.digits.is_empty();
        let other_zero = other.digits.is_empty();
        match (self_zero, other_zero) {
            (true, true) => return Ordering::Equal,
            (true, false) => {
                return if other.negative {
                    Ordering::Greater
                } else {
                    Ordering::Less
                }
            }
            (false, true) => {
                return if self.negative {
                    Ordering::Less
                } else {
                    Ordering::Greater
                }
            }
            _ => {}
        }
        match (self.negative, other.negative) {
            (false, true) => Ordering::Greater,
            (true, false) => Ordering::Less,
            (false, false) => self.cmp_magnitude(other),
            (true, true) => other.cmp_magnitude(self),
        }
    }
}

impl PartialOrd for Decimal {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

/// A key attribute value in comparable form, plus its wire JSON for echoing.
#[derive(Debug, Clone)]
pub enum KeyValue {
    /// String key.
    S(String),
    /// Number key: exact decimal plus the client's original text.
    N(Decimal, String),
    /// Binary key (decoded bytes).
    B(Vec<u8>),
}

impl KeyValue {
    /// The key's type.
    pub fn key_type(&self) -> KeyType {
        match self {
            KeyValue::S(_) => KeyType::S,
            KeyValue::N(..) => KeyType::N,
            KeyValue::B(_) => KeyType::B,
        }
    }

    /// Wire JSON (`{"S": ".."}` etc).
    pub fn to_json(&self) -> Value {
        let mut m = Map::new();
        match self {
            KeyValue::S(s) => m.insert("S".into(), Value::String(s.clone())),
            KeyValue::N(_, text) => m.insert("N".into(), Value::String(text.clone())),
            KeyValue::B(b) => m.insert(
                "B".into(),
                Value::String(base64::engine::general_purpose::STANDARD.encode(b)),
            ),
        };
        Value::Object(m)
    }

    /// Stable 64-bit hash used to pick a simulated partition.
    pub fn stable_hash(&self) -> u64 {
        let mut h: u64 = 0xcbf2_9ce4_8422_2325;
        let mut eat = |bytes: &[u8]| {
            for b in bytes {
                h ^= u64::from(*b);
                h = h.wrapping_mul(0x0100_0000_01b3);
            }
        };
        match self {
            KeyValue::S(s) => {
                eat(b"S");
                eat(s.as_bytes());
            }
            KeyValue::N(d, _) => {
                eat(if d.negative { b"N-" } else { b"N+" });
                eat(&d.exp.to_le_bytes());
                eat(&d.digits);
            }
            KeyValue::B(b) => {
                eat(b"B");
                eat(b);
            }
        }
        h
    }

    /// A 128-bit rank that orders like the key itself wherever it differs:
    /// `a < b` implies `a.rank() <= b.rank()`, so an ordered map compares
    /// ranks first (inline integers) and dereferences the key's heap bytes
    /// only on a tie. Top byte: the type; then S and B: their first 15
    /// bytes, zero-padded; N: sign class, exponent and first 25 digits.
    pub fn rank(&self) -> u128 {
        let tag = u128::from(self.key_type() as u8) << 120;
        match self {
            KeyValue::S(s) => tag | prefix15(s.as_bytes()),
            KeyValue::B(b) => tag | prefix15(b),
            KeyValue::N(d, _) => tag | d.rank(),
        }
    }

    /// Size in bytes by DynamoDB's rules (used for key length limits).
    pub fn byte_len(&self) -> usize {
        match self {
            KeyValue::S(s) => s.len(),
            KeyValue::N(d, _) => 1 + d.digits.len().div_ceil(2),
            KeyValue::B(b) => b.len(),
        }
    }

    /// Does this value start with `prefix` (begins_with on S and B)?
    pub fn begins_with(&self, prefix: &KeyValue) -> bool {
        match (self, prefix) {
            (KeyValue::S(a), KeyValue::S(p)) => a.as_bytes().starts_with(p.as_bytes()),
            (KeyValue::B(a), KeyValue::B(p)) => a.starts_with(p),
            _ => false,
        }
    }
}

impl PartialEq for KeyValue {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}

impl Eq for KeyValue {}

impl Ord for KeyValue {
    fn cmp(&self, other: &Self) -> Ordering {
        match (self, other) {
            (KeyValue::S(a), KeyValue::S(b)) => a.as_bytes().cmp(b.as_bytes()),
            (KeyValue::N(a, _), KeyValue::N(b, _)) => a.cmp(b),
            (KeyValue::B(a), KeyValue::B(b)) => a.cmp(b),
            _ => (self.key_type() as u8).cmp(&(other.key_type() as u8)),
        }
    }
}

impl PartialOrd for KeyValue {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

/// The first 15 bytes of `bytes`, big-endian, zero-padded (120 bits).
fn prefix15(bytes: &[u8]) -> u128 {
    let mut buf = [0u8; 16];
    let n = bytes.len().min(15);
    buf[1..=n].copy_from_slice(&bytes[..n]);
    u128::from_be_bytes(buf)
}

/// Decode a typed scalar from an attribute value of the expected key type.
/// Returns `Ok(None)` when the value has another type (caller builds the
/// DynamoDB message for its context).
pub fn scalar_of_type(value: &Attr, ty: KeyType) -> ApiResult<Option<KeyValue>> {
    match (ty, value) {
        (KeyType::S, Attr::S(s)) => Ok(Some(KeyValue::S(s.to_string()))),
        (KeyType::N, Attr::N(text)) => match Decimal::parse(text) {
            Some(d) if d.significant_digits() <= 38 => Ok(Some(KeyValue::N(d, text.to_string()))),
            Some(_) => Err(ApiError::validation(
                "Attempting to store more than 38 significant digits in a Number",
            )),
            None => Err(ApiError::validation(
                "A value provided cannot be converted into a number",
            )),
        },
        (KeyType::B, Attr::B(text)) => {
            match base64::engine::general_purpose::STANDARD.decode(text.as_bytes()) {
                Ok(b) => Ok(Some(KeyValue::B(b))),
                Err(_) => Err(ApiError::validation(
                    "One or more parameter values were invalid: Binary value is not valid base64",
                )),
            }
        }
        (_, Attr::Invalid(msg)) => Err(ApiError::validation(*msg)),
        _ => Ok(None),
    }
}

/// The type tag of an attribute value, for messages (`S`, `N`, `M`..).
pub fn type_tag(value: &Attr) -> &'static str {
    value.tag()
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use proptest::prelude::*;

    fn d(s: &str) -> Decimal {
        Decimal::parse(s).expect("valid decimal")
    }

    #[test]
    fn numbers_are_trimmed_like_str_trim() {
        for text in [
            "7",
            " 7",
            "7 ",
            "\t-1.5e3\n",
            "\u{a0}2\u{a0}",
            "",
            " ",
            "x",
            "\u{3000}",
        ] {
            assert_eq!(trimmed(text), text.trim(), "{text:?}");
        }
        assert_eq!(Decimal::count_significant(" 12.50 "), Some(3));
        assert_eq!(Decimal::parse("\u{a0}1e2"), Decimal::parse("100"));
    }

    #[test]
    fn decimals_compare_numerically() {
        assert!(d("9") < d("10"));
        assert!(d("-10") < d("-9"));
        assert!(d("-0.5") < d("0"));
        assert!(d("0.001") < d("0.01"));
        assert_eq!(d("1.0"), d("1"));
        assert_eq!(d("100"), d("1e2"));
        assert_eq!(d("-0"), d("0"));
        assert!(
            d("12345678901234567890123456789012345678")
                > d("12345678901234567890123456789012345677")
        );
        assert!(d("1e-130") > d("0"));
        assert!(Decimal::parse("abc").is_none());
        assert!(Decimal::parse("").is_none());
        assert!(Decimal::parse(".").is_none());
        for text in ["0", "-0.00100", "12.5e3", "100", "0.001", "1234567890123"] {
            assert_eq!(
                Decimal::count_significant(text),
                Decimal::parse(text).map(|d| d.significant_digits()),
                "{text}"
            );
        }
        assert_eq!(Decimal::count_significant("1.2.3"), None);
        assert_eq!(Decimal::count_significant("1e"), None);
    }

    /// The parser before its one-pass form: the reference it is checked
    /// against.
    fn reference_parse(text: &str) -> Option<Decimal> {
        let t = trimmed(text);
        let (negative, rest) = match t.as_bytes().first()? {
            b'-' => (true, &t[1..]),
            b'+' => (false, &t[1..]),
            _ => (false, t),
        };
        let (mantissa, exp_part) = match rest.find(['e', 'E']) {
            Some(i) => (&rest[..i], Some(&rest[i + 1..])),
            None => (rest, None),
        };
        let e10: i64 = match exp_part {
            Some(e) => e.parse().ok()?,
            None => 0,
        };
        let (int_part, frac_part) = match mantissa.find('.') {
            Some(i) => (&mantissa[..i], &mantissa[i + 1..]),
            None => (mantissa, ""),
        };
        if int_part.is_empty() && frac_part.is_empty() {
            return None;
        }
        if !int_part
            .bytes()
            .chain(frac_part.bytes())
            .all(|b| b.is_ascii_digit())
        {
            return None;
        }
        let mut digits: Vec<u8> = int_part
            .bytes()
            .chain(frac_part.bytes())
            .map(|b| b - b'0')
            .collect();
        let mut exp = int_part.len() as i64 + e10;
        let lead = digits.iter().take_while(|d| **d == 0).count();
        digits.drain(..lead);
        exp -= lead as i64;
        Some(Decimal::normalized(negative, digits, exp))
    }

    proptest! {
        /// The one-pass parser reads every text as the two-pass one did.
        #[test]
        fn parsing_agrees_with_the_reference(
            text in "[ 0-9.eE+a-]{0,14}|-?0{0,3}[0-9]{0,6}(\\.[0-9]{0,6}0{0,3})?([eE][+-]?[0-9]{0,4})?"
        ) {
            prop_assert_eq!(Decimal::parse(&text), reference_parse(&text), "{:?}", text);
        }
    }

    proptest! {
        /// Counting agrees with parsing for any text made of a number's
        /// characters (and a few that are not).
        #[test]
        fn counting_digits_agrees_with_parsing(
            text in "[ 0-9.eE+a-]{0,14}|-?[0-9]{0,6}(\\.[0-9]{0,6})?([eE][+-]?[0-9]{0,4})?"
        ) {
            prop_assert_eq!(
                Decimal::count_significant(&text),
                Decimal::parse(&text).map(|d| d.significant_digits()),
                "{:?}", text
            );
        }
    }

    #[test]
    fn strings_compare_bytewise() {
        let a = KeyValue::S("Z".into());
        let b = KeyValue::S("a".into());
        assert!(a < b);
        let c = KeyValue::S("é".into());
        assert!(b < c);
    }

    fn number_text() -> impl Strategy<Value = String> {
        (
            any::<bool>(),
            "[0-9]{0,30}",
            proptest::option::of("[0-9]{0,30}"),
            proptest::option::of(-140i64..140),
        )
            .prop_filter_map("not a number", |(neg, int, frac, exp)| {
                let mut t = String::new();
                if neg {
                    t.push('-');
                }
                t.push_str(&int);
                if let Some(f) = frac {
                    t.push('.');
                    t.push_str(&f);
                }
                if let Some(e) = exp {
                    t.push_str(&format!("e{e}"));
                }
                Decimal::parse(&t).map(|_| t)
            })
    }

    /// Keys of every type, with long shared prefixes, ties and equal numbers
    /// written differently (`1`, `1.0…`).
    pub(crate) fn key_value() -> impl Strategy<Value = KeyValue> {
        prop_oneof![
            // Few distinct bytes, so long shared prefixes and ties happen.
            "[ab\\x00]{0,20}".prop_map(KeyValue::S),
            proptest::collection::vec(prop_oneof![Just(0u8), Just(1), Just(255)], 0..20)
                .prop_map(KeyValue::B),
            number_text().prop_map(|t| KeyValue::N(d(&t), t)),
            prop_oneof![
                Just("1"),
                Just("-1"),
                Just("0"),
                Just("1.0000000000000000000000000001")
            ]
            .prop_map(|t| KeyValue::N(d(t), t.to_owned())),
        ]
    }

    proptest! {
        /// The rank never contradicts the order: it may tie, never invert.
        #[test]
        fn rank_orders_like_the_key(a in key_value(), b in key_value()) {
            match a.cmp(&b) {
                Ordering::Less => prop_assert!(a.rank() <= b.rank(), "{a:?} < {b:?}"),
                Ordering::Greater => prop_assert!(a.rank() >= b.rank(), "{a:?} > {b:?}"),
                Ordering::Equal => prop_assert_eq!(a.rank(), b.rank()),
            }
        }
    }

    #[test]
    fn rank_separates_typical_keys_without_ties() {
        let ts = |t: &str| KeyValue::N(d(t), t.to_owned());
        assert!(ts("1764340000123").rank() < ts("1764340000124").rank());
        assert!(ts("-2").rank() < ts("-1").rank());
        assert!(ts("-1").rank() < ts("0").rank());
        assert!(ts("0").rank() < ts("0.5").rank());
        let s = |t: &str| KeyValue::S(t.to_owned());
        assert!(s("D0001").rank() < s("D0002").rank());
        assert!(s("").rank() < s("a").rank());
        // Past 15 bytes only the key itself decides.
        assert_eq!(
            s("device-0000000001-a").rank(),
            s("device-0000000001-b").rank()
        );
    }

    #[test]
    fn hash_is_stable_for_equal_numbers() {
        let a = KeyValue::N(d("1.0"), "1.0".into());
        let b = KeyValue::N(d("1"), "1".into());
        assert_eq!(a.stable_hash(), b.stable_hash());
    }
}
