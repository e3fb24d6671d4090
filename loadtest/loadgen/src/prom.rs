//! Reading the gateway's Prometheus text exposition (`/metrics`): sums of a
//! metric family's samples, optionally only those with one label value.
//! Enough for the sampler; histograms are read through their `_sum`,
//! `_count` and `_bucket` series like any other sample.

/// Sum of the samples of metric `name` (exact name, labels ignored unless
/// `label` = (key, value) is given, then only samples carrying it).
pub fn sum(text: &str, name: &str, label: Option<(&str, &str)>) -> f64 {
    let want = label.map(|(k, v)| format!("{k}=\"{v}\""));
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| {
            let (series, value) = l.rsplit_once(' ')?;
            let (metric, labels) = match series.split_once('{') {
                Some((m, rest)) => (m, rest),
                None => (series, ""),
            };
            if metric != name {
                return None;
            }
            if let Some(w) = &want {
                if !labels.contains(w.as_str()) {
                    return None;
                }
            }
            value.parse::<f64>().ok()
        })
        .sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    const TEXT: &str = "# TYPE dynamo_ingest_queue_depth gauge\n\
        dynamo_ingest_queue_depth{stream=\"sensor\"} 12\n\
        dynamo_ingest_queue_depth{stream=\"cart\"} 3\n\
        dynamo_ingest_queue_depth_bytes{stream=\"cart\"} 999\n\
        dynamo_ingest_mqtt_connections 4\n";

    #[test]
    fn sums_a_family_and_filters_by_label() {
        assert_eq!(sum(TEXT, "dynamo_ingest_queue_depth", None), 15.0);
        assert_eq!(
            sum(TEXT, "dynamo_ingest_queue_depth", Some(("stream", "cart"))),
            3.0
        );
        assert_eq!(sum(TEXT, "dynamo_ingest_mqtt_connections", None), 4.0);
        assert_eq!(sum(TEXT, "missing", None), 0.0);
    }
}
