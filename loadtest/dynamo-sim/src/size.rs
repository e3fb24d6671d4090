//! DynamoDB item size rules and attribute-value shape validation.
//!
//! Size decides the 400 KB item limit and the write cost
//! (`ceil(size / 1024)` WCU, minimum 1). Rules, from the DynamoDB developer
//! guide ("Item sizes and formats"): attribute name UTF-8 length + value size;
//! S = UTF-8 bytes; N = 1 + ceil(significant digits / 2); B = raw bytes;
//! BOOL/NULL = 1; M/L = 3 + Σ(element + 1), map keys count their name
//! length; sets = Σ elements. Validation and sizing happen in one pass.

use crate::attr::{Attr, AttrMap};
use crate::error::{ApiError, ApiResult};
use crate::key::Decimal;

/// DynamoDB's maximum item size.
pub const MAX_ITEM_BYTES: usize = 400 * 1024;

/// Size of a whole item, validating every attribute value.
pub fn item_size(item: &AttrMap) -> ApiResult<usize> {
    let mut total = 0usize;
    for (name, value) in &item.0 {
        total += name.len() + value_size(value)?;
    }
    Ok(total)
}

/// Write cost of an item of `size` bytes.
pub fn write_units(size: usize) -> u64 {
    (size.div_ceil(1024)).max(1) as u64
}

fn number_size(text: &str) -> ApiResult<usize> {
    match Decimal::count_significant(text) {
        Some(d) if d > 38 => Err(ApiError::validation(
            "Attempting to store more than 38 significant digits in a Number",
        )),
        Some(d) => Ok(1 + d.div_ceil(2)),
        None => Err(ApiError::validation(
            "A value provided cannot be converted into a number",
        )),
    }
}

/// Decoded length of standard base64 text, without decoding it.
pub fn binary_size(text: &str) -> ApiResult<usize> {
    let bytes = text.as_bytes();
    let valid = bytes.len().is_multiple_of(4)
        && bytes.iter().enumerate().all(|(i, b)| {
            b.is_ascii_alphanumeric()
                || *b == b'+'
                || *b == b'/'
                || (*b == b'=' && i + 2 >= bytes.len())
        });
    if !valid {
        return Err(ApiError::validation(
            "One or more parameter values were invalid: Binary value is not valid base64",
        ));
    }
    let pad = bytes.iter().rev().take_while(|b| **b == b'=').count();
    Ok(bytes.len() / 4 * 3 - pad)
}

fn non_empty_set(tag: &str, len: usize) -> ApiResult<()> {
    if len == 0 {
        let kind = match tag {
            "NS" => "number set",
            "BS" => "binary set",
            _ => "string set",
        };
        return Err(ApiError::validation(format!(
            "One or more parameter values were invalid: An {kind}  may not be empty"
        )));
    }
    Ok(())
}

/// Size of one attribute value (without its name), validating it.
pub fn value_size(value: &Attr) -> ApiResult<usize> {
    match value {
        Attr::S(s) => Ok(s.len()),
        Attr::N(n) => number_size(n),
        Attr::B(b) => binary_size(b),
        Attr::Bool(_) => Ok(1),
        Attr::Null(true) => Ok(1),
        Attr::Null(false) => Err(ApiError::validation(
            "One or more parameter values were invalid: Null attribute value types must have the value of true",
        )),
        Attr::M(m) => {
            let mut size = 3;
            for (k, v) in &m.0 {
                size += k.len() + value_size(v)? + 1;
            }
            Ok(size)
        }
        Attr::L(l) => {
            let mut size = 3;
            for v in l {
                size += value_size(v)? + 1;
            }
            Ok(size)
        }
        Attr::Ss(v) => {
            non_empty_set("SS", v.len())?;
            Ok(v.iter().map(|s| s.len()).sum())
        }
        Attr::Ns(v) => {
            non_empty_set("NS", v.len())?;
            v.iter().try_fold(0, |acc, n| Ok(acc + number_size(n)?))
        }
        Attr::Bs(v) => {
            non_empty_set("BS", v.len())?;
            v.iter().try_fold(0, |acc, b| Ok(acc + binary_size(b)?))
        }
        Attr::Invalid(msg) => Err(ApiError::validation(*msg)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn size_of(v: serde_json::Value) -> usize {
        item_size(&AttrMap::from_json(v).expect("parses")).expect("valid item")
    }

    #[test]
    fn scalar_sizes_follow_dynamodb_rules() {
        assert_eq!(size_of(json!({"a": {"S": "héllo"}})), 1 + 6);
        assert_eq!(size_of(json!({"n": {"N": "12345"}})), 1 + 1 + 3);
        assert_eq!(size_of(json!({"n": {"N": "-0.00100"}})), 1 + 1 + 1);
        assert_eq!(size_of(json!({"b": {"B": "AAEC"}})), 1 + 3);
        assert_eq!(
            size_of(json!({"t": {"BOOL": true}, "z": {"NULL": true}})),
            4
        );
    }

    #[test]
    fn document_sizes_add_overheads() {
        // M: 3 + (key "k" 1 + S "ab" 2 + 1)
        assert_eq!(size_of(json!({"m": {"M": {"k": {"S": "ab"}}}})), 1 + 3 + 4);
        // L: 3 + (S "ab" 2 + 1) * 2
        assert_eq!(
            size_of(json!({"l": {"L": [{"S": "ab"}, {"S": "cd"}]}})),
            1 + 3 + 6
        );
        assert_eq!(size_of(json!({"s": {"SS": ["a", "bc"]}})), 1 + 3);
    }

    #[test]
    fn write_units_round_up_with_minimum_one() {
        assert_eq!(write_units(0), 1);
        assert_eq!(write_units(1024), 1);
        assert_eq!(write_units(1025), 2);
    }

    #[test]
    fn malformed_values_are_rejected() {
        for bad in [
            json!({"a": {}}),
            json!({"a": {"S": "x", "N": "1"}}),
            json!({"a": {"N": "one"}}),
            json!({"a": {"Q": "x"}}),
            json!({"a": {"B": "not base64!"}}),
            json!({"a": {"SS": []}}),
            json!({"a": {"NULL": false}}),
        ] {
            let m = AttrMap::from_json(bad.clone()).expect("parses");
            assert!(item_size(&m).is_err(), "{bad}");
        }
    }
}
