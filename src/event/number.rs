//! DynamoDB numbers: validation against DynamoDB's limits and a normalized
//! form so that `1`, `1.0` and `10e-1` compare equal as key values.
//!
//! Numbers travel as their exact decimal text (never through f64); this
//! module only reads that text.

/// A number DynamoDB accepts, reduced to sign, significant digits and exponent
/// such that value = sign × 0.DIGITS × 10^exponent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Normalized {
    pub negative: bool,
    /// Significant digits without leading or trailing zeros; empty for zero.
    pub digits: String,
    pub exponent: i64,
}

/// Why a number is not acceptable to DynamoDB.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NumberError {
    #[error("`{0}` is not a decimal number")]
    Syntax(String),
    #[error("`{0}` has more than 38 significant digits")]
    Precision(String),
    #[error("`{0}` is outside DynamoDB's range (1E-130 to 9.99E+125 in magnitude)")]
    Range(String),
}

impl Normalized {
    /// Canonical text used in key identities.
    pub fn canonical(&self) -> String {
        if self.digits.is_empty() {
            return "0".to_owned();
        }
        format!(
            "{}0.{}e{}",
            if self.negative { "-" } else { "" },
            self.digits,
            self.exponent
        )
    }

    /// Bytes DynamoDB counts for this number: 1 + one per two significant digits.
    pub fn size(&self) -> usize {
        size_of(self.digits.len())
    }
}

/// Parses decimal text (`-12.50`, `1e3`, `0.001E-2`) and checks DynamoDB's limits:
/// at most 38 significant digits, magnitude 1E-130 ..< 1E126 (or zero).
pub fn normalize(text: &str) -> Result<Normalized, NumberError> {
    let p = parse(text)?;
    Ok(Normalized {
        negative: p.negative,
        digits: p.digits().collect(),
        exponent: p.exponent,
    })
}

/// Appends the canonical text of `text` (as [`Normalized::canonical`]) to
/// `out` without building the normalized form: key identities.
pub fn push_canonical(out: &mut String, text: &str) -> Result<(), NumberError> {
    parse(text).map(|p| p.push_canonical(out))
}

/// The bytes DynamoDB counts for `text` (as [`Normalized::size`]), after the
/// same checks as [`normalize`] but without building the normalized form:
/// the intake's per-number path.
pub fn checked_size(text: &str) -> Result<usize, NumberError> {
    parse(text).map(|p| p.size())
}

/// [`checked_size`] of an unsigned integer's decimal text as `itoa` writes
/// it (digits, no leading zero; at most 20, so always within DynamoDB's
/// limits), from the digits alone: the server-assigned sort key's path.
pub fn integer_size(digits: &str) -> usize {
    Parsed::integer(digits).size()
}

/// [`push_canonical`] of an unsigned integer's decimal text as `itoa`
/// writes it, without checking or parsing it again.
pub fn push_integer_canonical(out: &mut String, digits: &str) {
    Parsed::integer(digits).push_canonical(out);
}

/// Bytes DynamoDB counts for a number of `significant` digits: 1 + one per two.
fn size_of(significant: usize) -> usize {
    1 + significant.div_ceil(2)
}

/// A parsed number: its significant digits are `len` bytes of the digit
/// sequence `int ++ frac` starting at `skip`.
struct Parsed<'a> {
    negative: bool,
    int: &'a str,
    frac: &'a str,
    skip: usize,
    len: usize,
    exponent: i64,
}

impl Parsed<'_> {
    /// Zero, whatever its spelling (`0`, `-0.00`, `0e5`).
    const ZERO: Parsed<'static> = Parsed {
        negative: false,
        int: "",
        frac: "",
        skip: 0,
        len: 0,
        exponent: 0,
    };

    /// An unsigned integer's decimal text as `itoa` writes it (digits, no
    /// leading zero), taken as it is: nothing to check.
    fn integer(digits: &str) -> Parsed<'_> {
        let len = digits.trim_end_matches('0').len();
        if len == 0 {
            return Parsed::ZERO;
        }
        Parsed {
            negative: false,
            int: digits,
            frac: "",
            skip: 0,
            len,
            exponent: digits.len() as i64,
        }
    }

    fn size(&self) -> usize {
        size_of(self.len)
    }

    /// Appends the canonical text (as [`Normalized::canonical`]).
    fn push_canonical(&self, out: &mut String) {
        if self.len == 0 {
            out.push('0');
            return;
        }
        if self.negative {
            out.push('-');
        }
        out.push_str("0.");
        // The significant digits are ASCII: copied as (at most two) slices.
        let int_len = self.int.len();
        let (from, to) = (self.skip, self.skip + self.len);
        if from < int_len {
            out.push_str(&self.int[from..to.min(int_len)]);
        }
        if to > int_len {
            out.push_str(&self.frac[from.saturating_sub(int_len)..to - int_len]);
        }
        out.push('e');
        out.push_str(itoa::Buffer::new().format(self.exponent));
    }

    fn digits(&self) -> impl Iterator<Item = char> + '_ {
        self.int
            .chars()
            .chain(self.frac.chars())
            .skip(self.skip)
            .take(self.len)
    }
}

fn parse(text: &str) -> Result<Parsed<'_>, NumberError> {
    match parse_integer(text) {
        Some(p) => Ok(p),
        None => parse_general(text),
    }
}

/// The common case in one pass: a plain unsigned integer of at most 38
/// digits (server-assigned timestamps, counters). None for anything else.
fn parse_integer(text: &str) -> Option<Parsed<'_>> {
    let b = text.as_bytes();
    if b.is_empty() || b.len() > 38 || !b.iter().all(u8::is_ascii_digit) {
        return None;
    }
    let leading = b.iter().take_while(|&&c| c == b'0').count();
    if leading == b.len() {
        return Some(Parsed::ZERO);
    }
    let trailing = b.iter().rev().take_while(|&&c| c == b'0').count();
    Some(Parsed {
        negative: false,
        int: text,
        frac: "",
        skip: leading,
        len: b.len() - leading - trailing,
        exponent: (b.len() - leading) as i64,
    })
}

fn parse_general(text: &str) -> Result<Parsed<'_>, NumberError> {
    let syntax = || NumberError::Syntax(text.to_owned());
    let (negative, rest) = match text.as_bytes().first() {
        Some(b'-') => (true, &text[1..]),
        Some(b'+') => (false, &text[1..]),
        _ => (false, text),
    };
    let (mantissa, exp_text) = match rest.find(['e', 'E']) {
        Some(i) => (&rest[..i], Some(&rest[i + 1..])),
        None => (rest, None),
    };
    let (int_part, frac_part) = match mantissa.find('.') {
        Some(i) => (&mantissa[..i], &mantissa[i + 1..]),
        None => (mantissa, ""),
    };
    if int_part.is_empty() && frac_part.is_empty() {
        return Err(syntax());
    }
    if !int_part.bytes().all(|b| b.is_ascii_digit())
        || !frac_part.bytes().all(|b| b.is_ascii_digit())
    {
        return Err(syntax());
    }
    let mut exponent: i64 = match exp_text {
        None => 0,
        Some(e) => {
            let digits = e.strip_prefix(['+', '-']).unwrap_or(e);
            if digits.is_empty() || digits.len() > 6 || !digits.bytes().all(|b| b.is_ascii_digit())
            {
                return Err(syntax());
            }
            e.parse::<i64>().map_err(|_| syntax())?
        }
    };
    // value = 0.(int_part frac_part) × 10^(exponent + len(int_part))
    let all = || int_part.bytes().chain(frac_part.bytes());
    let total = int_part.len() + frac_part.len();
    let leading = all().take_while(|b| *b == b'0').count();
    exponent += int_part.len() as i64 - leading as i64;
    if leading == total {
        return Ok(Parsed::ZERO);
    }
    let trailing = all().rev().take_while(|b| *b == b'0').count();
    let len = total - leading - trailing;
    if len > 38 {
        return Err(NumberError::Precision(text.to_owned()));
    }
    // 0.D × 10^E >= 1E-130  <=>  E >= -129 ;  < 1E126  <=>  E <= 126
    if !(-129..=126).contains(&exponent) {
        return Err(NumberError::Range(text.to_owned()));
    }
    Ok(Parsed {
        negative,
        int: int_part,
        frac: frac_part,
        skip: leading,
        len,
        exponent,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn equal_values_have_one_canonical_form() {
        let forms = ["1", "1.0", "10e-1", "0.1E1", "+1", "001.000"];
        let c: Vec<_> = forms
            .iter()
            .map(|f| normalize(f).expect(f).canonical())
            .collect();
        assert!(c.iter().all(|x| x == &c[0]), "{c:?}");
        assert_ne!(normalize("-1").expect("n").canonical(), c[0]);
        assert_eq!(normalize("-0.000").expect("zero").canonical(), "0");
    }

    #[test]
    fn limits_follow_dynamodb() {
        assert!(normalize(&"9".repeat(38)).is_ok());
        assert!(matches!(
            normalize(&"9".repeat(39)),
            Err(NumberError::Precision(_))
        ));
        assert!(normalize("1e-130").is_ok());
        assert!(matches!(normalize("1e-131"), Err(NumberError::Range(_))));
        assert!(normalize("9.9999999999999999999999999999999999999E+125").is_ok());
        assert!(matches!(normalize("1e126"), Err(NumberError::Range(_))));
        for bad in ["", "-", ".", "1e", "1.2.3", "abc", "1e+-3", "0x10"] {
            assert!(
                matches!(normalize(bad), Err(NumberError::Syntax(_))),
                "{bad}"
            );
        }
    }

    #[test]
    fn size_counts_significant_digits() {
        assert_eq!(normalize("0").expect("n").size(), 1);
        assert_eq!(normalize("7").expect("n").size(), 2);
        assert_eq!(normalize("1200").expect("n").size(), 2); // "12"
        assert_eq!(normalize("123").expect("n").size(), 3);
        assert_eq!(normalize("1695678123000").expect("n").size(), 1 + 5); // "1695678123"
    }

    #[test]
    fn push_canonical_agrees_with_normalize() {
        for text in [
            "0",
            "-0.000",
            "7",
            "-1200",
            "0.00123",
            "1732761600123",
            "1e-130",
            "12.5e3",
        ] {
            let mut out = String::from("k\0");
            push_canonical(&mut out, text).expect(text);
            assert_eq!(
                out,
                format!("k\0{}", normalize(text).expect(text).canonical())
            );
        }
        assert!(push_canonical(&mut String::new(), "x").is_err());
    }

    /// Decimal text of every shape `parse` reads, valid or not.
    fn number_text() -> impl proptest::strategy::Strategy<Value = String> {
        use proptest::prelude::*;
        (
            prop::sample::select(vec!["", "-", "+"]),
            "[0-9]{0,45}",
            prop::option::of("[0-9]{0,12}"),
            prop::option::of((prop::sample::select(vec!["e", "E"]), -140i64..140)),
        )
            .prop_map(|(sign, int, frac, exp)| {
                let mut s = format!("{sign}{int}");
                if let Some(f) = frac {
                    s.push('.');
                    s.push_str(&f);
                }
                if let Some((e, x)) = exp {
                    s.push_str(&format!("{e}{x}"));
                }
                s
            })
    }

    proptest::proptest! {
        #[test]
        fn the_integer_fast_path_reads_what_the_general_parser_reads(
            text in "[0-9]{1,45}"
        ) {
            let fast = parse_integer(&text).map(|p| (p.negative, p.skip, p.len, p.exponent, p.digits().collect::<String>()));
            let general = parse_general(&text).ok().map(|p| (p.negative, p.skip, p.len, p.exponent, p.digits().collect::<String>()));
            if text.len() <= 38 {
                proptest::prop_assert_eq!(fast, general);
            } else {
                proptest::prop_assert!(fast.is_none(), "longer texts take the general path");
            }
        }

        #[test]
        fn the_integer_path_agrees_with_the_parser(
            value in proptest::prop_oneof![
                proptest::prelude::any::<u64>(),
                // Short significands with many trailing zeros, up to 999 × 10^16
                // (< u64::MAX, so the product cannot overflow).
                proptest::strategy::Strategy::prop_map((0u64..1_000, 0u32..17), |(m, z)| m * 10u64.pow(z)),
            ]
        ) {
            let digits = itoa::Buffer::new().format(value).to_owned();
            proptest::prop_assert_eq!(integer_size(&digits), checked_size(&digits).expect("valid"));
            let (mut fast, mut general) = (String::from("k\0"), String::from("k\0"));
            push_integer_canonical(&mut fast, &digits);
            push_canonical(&mut general, &digits).expect("valid");
            proptest::prop_assert_eq!(fast, general);
        }

        #[test]
        fn push_canonical_agrees_with_normalize_for_any_text(text in number_text()) {
            let mut out = String::from("k\0");
            match (push_canonical(&mut out, &text), normalize(&text)) {
                (Ok(()), Ok(n)) => proptest::prop_assert_eq!(out, format!("k\0{}", n.canonical())),
                (Err(a), Err(b)) => proptest::prop_assert_eq!(a, b),
                (a, b) => proptest::prop_assert!(false, "{text:?}: {a:?} vs {b:?}"),
            }
        }
    }

    #[test]
    fn checked_size_agrees_with_normalize() {
        for text in [
            "0",
            "-0.000",
            "7",
            "1200",
            "123",
            "1695678123000",
            "001.0100",
            "1e-130",
            "-12.50e3",
        ] {
            assert_eq!(
                checked_size(text).expect(text),
                normalize(text).expect(text).size(),
                "{text}"
            );
        }
        assert!(matches!(checked_size("1e126"), Err(NumberError::Range(_))));
        assert!(matches!(
            checked_size(&"9".repeat(39)),
            Err(NumberError::Precision(_))
        ));
        assert!(matches!(checked_size("1.2.3"), Err(NumberError::Syntax(_))));
    }
}
