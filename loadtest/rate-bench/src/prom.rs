//! Minimal Prometheus text-format reading for the gateway's `/metrics`:
//! sums of a metric over all label sets, and quantiles from histogram
//! buckets (linear interpolation inside the bucket, as `histogram_quantile`).

use std::collections::BTreeMap;

/// One sample line: metric name, raw label text, value.
fn samples(text: &str) -> impl Iterator<Item = (&str, &str, f64)> {
    text.lines().filter_map(|line| {
        if line.starts_with('#') || line.trim().is_empty() {
            return None;
        }
        let (head, value) = line.rsplit_once(' ')?;
        let value: f64 = value.trim().parse().ok()?;
        let (name, labels) = match head.find('{') {
            Some(i) => (&head[..i], head[i..].trim()),
            None => (head.trim(), ""),
        };
        Some((name, labels, value))
    })
}

/// Sum of `name` over all label sets whose label text contains every
/// string of `filters` (e.g. `outcome="partial"`).
pub fn sum(text: &str, name: &str, filters: &[&str]) -> f64 {
    samples(text)
        .filter(|(n, labels, _)| *n == name && filters.iter().all(|f| labels.contains(f)))
        .map(|(_, _, v)| v)
        .sum()
}

/// Highest finite `le` bound of histogram `name`, if any.
pub fn highest_finite_bound(text: &str, name: &str) -> Option<f64> {
    let bucket = format!("{name}_bucket");
    samples(text)
        .filter(|(n, _, _)| *n == bucket)
        .filter_map(|(_, labels, _)| le_of(labels))
        .filter(|le| le.is_finite())
        .reduce(f64::max)
}

/// Whether the text holds any sample of `name`.
pub fn has(text: &str, name: &str) -> bool {
    samples(text).any(|(n, _, _)| n == name)
}

/// The `le` label's value.
fn le_of(labels: &str) -> Option<f64> {
    // `le` is a whole label name: not the tail of e.g. `table="…"`.
    let start = ["{le=\"", ",le=\""].iter().find_map(|p| labels.find(p))? + 5;
    let rest = &labels[start..];
    let end = rest.find('"')?;
    let v = &rest[..end];
    if v == "+Inf" {
        Some(f64::INFINITY)
    } else {
        v.parse().ok()
    }
}

/// Quantile `q` of histogram `name` (buckets summed over label sets).
/// `None` when the histogram is empty or absent.
pub fn histogram_quantile(text: &str, name: &str, q: f64) -> Option<f64> {
    let bucket = format!("{name}_bucket");
    let mut cumulative: BTreeMap<u64, (f64, f64)> = BTreeMap::new();
    for (n, labels, v) in samples(text) {
        if n != bucket {
            continue;
        }
        if let Some(le) = le_of(labels) {
            // Key by the float's ordered bits: all `le` are ≥ 0.
            let e = cumulative.entry(le.to_bits()).or_insert((le, 0.0));
            e.1 += v;
        }
    }
    let total = cumulative.values().last()?.1;
    if total <= 0.0 {
        return None;
    }
    let rank = q * total;
    let mut prev_le = 0.0;
    let mut prev_count = 0.0;
    for (le, count) in cumulative.values() {
        if *count >= rank {
            if le.is_infinite() {
                return Some(prev_le); // above the highest finite bound
            }
            let in_bucket = count - prev_count;
            let frac = if in_bucket > 0.0 {
                (rank - prev_count) / in_bucket
            } else {
                1.0
            };
            return Some(prev_le + (le - prev_le) * frac);
        }
        prev_le = *le;
        prev_count = *count;
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    const TEXT: &str = "# TYPE x histogram\n\
x_bucket{table=\"T\",le=\"1\"} 50\n\
x_bucket{table=\"T\",le=\"2\"} 100\n\
x_bucket{table=\"T\",le=\"+Inf\"} 100\n\
x_count{table=\"T\"} 100\n\
b_total{table=\"T\",outcome=\"ok\"} 7\n\
b_total{table=\"T\",outcome=\"partial\"} 3\n";

    #[test]
    fn quantiles_and_sums() {
        assert_eq!(histogram_quantile(TEXT, "x", 0.5), Some(1.0));
        assert_eq!(histogram_quantile(TEXT, "x", 0.75), Some(1.5));
        assert_eq!(sum(TEXT, "b_total", &[]), 10.0);
        assert_eq!(sum(TEXT, "b_total", &["outcome=\"partial\""]), 3.0);
        assert!(has(TEXT, "x_count"));
    }
}
