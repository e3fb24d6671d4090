//! Item size by DynamoDB's documented rules, and the write capacity it costs.
//!
//! Used at ingest (reject items over 400 KB with 413 before acking them) and
//! by the batcher (16 MiB per request) and, later, the WCU limiter.
//! Rules: attribute name bytes + value; S = UTF-8 bytes; N = 1 + one byte per
//! two significant digits; B = raw bytes; BOOL/NULL = 1; L/M = 3 + each
//! element's size + 1 byte per element (map keys count their name).

use std::collections::HashMap;

use aws_sdk_dynamodb::types::AttributeValue;

use super::number;

/// DynamoDB's maximum item size.
pub const MAX_ITEM_BYTES: usize = 400 * 1024;

/// Size of a whole item in bytes.
pub fn item_size(attrs: &HashMap<String, AttributeValue>) -> usize {
    attrs.iter().map(|(k, v)| k.len() + value_size(v)).sum()
}

/// Size of one value, without its attribute name.
pub fn value_size(v: &AttributeValue) -> usize {
    match v {
        AttributeValue::S(s) => s.len(),
        AttributeValue::N(n) => number_size(n),
        AttributeValue::B(b) => b.as_ref().len(),
        AttributeValue::Bool(_) | AttributeValue::Null(_) => 1,
        AttributeValue::L(l) => 3 + l.iter().map(|e| 1 + value_size(e)).sum::<usize>(),
        AttributeValue::M(m) => {
            3 + m
                .iter()
                .map(|(k, e)| 1 + k.len() + value_size(e))
                .sum::<usize>()
        }
        AttributeValue::Ss(ss) => ss.iter().map(String::len).sum(),
        AttributeValue::Ns(ns) => ns.iter().map(|n| number_size(n)).sum(),
        AttributeValue::Bs(bs) => bs.iter().map(|b| b.as_ref().len()).sum(),
        _ => 0,
    }
}

fn number_size(text: &str) -> usize {
    number::normalize(text)
        .map(|n| n.size())
        .unwrap_or(text.len())
}

/// Write capacity units for writing an item of `size` bytes: one per started KB, at least one.
pub fn wcu(size: usize) -> u32 {
    size.div_ceil(1024).max(1) as u32
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(v: &str) -> AttributeValue {
        AttributeValue::S(v.to_owned())
    }
    fn n(v: &str) -> AttributeValue {
        AttributeValue::N(v.to_owned())
    }

    #[test]
    fn scalar_sizes_follow_the_documented_rules() {
        let item = HashMap::from([("user_id".to_owned(), s("U123"))]);
        assert_eq!(item_size(&item), 7 + 4);
        let item = HashMap::from([("héllo".to_owned(), s("ü"))]);
        assert_eq!(item_size(&item), 6 + 2, "UTF-8 bytes, not chars");
        let item = HashMap::from([("t".to_owned(), n("30.5"))]);
        assert_eq!(
            item_size(&item),
            1 + (1 + 2),
            "3 significant digits = 2 bytes + 1"
        );
        let item = HashMap::from([
            ("ok".to_owned(), AttributeValue::Bool(true)),
            ("z".to_owned(), AttributeValue::Null(true)),
        ]);
        assert_eq!(item_size(&item), 2 + 1 + 1 + 1);
    }

    #[test]
    fn containers_cost_three_bytes_plus_one_per_element() {
        let empty = HashMap::from([("m".to_owned(), AttributeValue::M(HashMap::new()))]);
        assert_eq!(item_size(&empty), 1 + 3);
        let list = HashMap::from([("l".to_owned(), AttributeValue::L(vec![s("ab"), n("1")]))]);
        assert_eq!(item_size(&list), 1 + 3 + (1 + 2) + (1 + 2));
        let map = HashMap::from([(
            "m".to_owned(),
            AttributeValue::M(HashMap::from([("ip".to_owned(), s("1.2.3.4"))])),
        )]);
        assert_eq!(item_size(&map), 1 + 3 + 1 + 2 + 7);
    }

    #[test]
    fn wcu_is_one_per_started_kilobyte() {
        assert_eq!(wcu(0), 1);
        assert_eq!(wcu(1), 1);
        assert_eq!(wcu(1024), 1);
        assert_eq!(wcu(1025), 2);
        assert_eq!(wcu(MAX_ITEM_BYTES), 400);
    }
}
