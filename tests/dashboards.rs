//! The operations files stay true to the gateway: every metric the Grafana
//! dashboards and the Prometheus alerts use is on the real gateway's
//! /metrics, the Prometheus files pass `promtool`, the container config
//! validates, and every path the Dockerfile and docker-compose.yml take from
//! the repository exists.

mod support;

use std::collections::BTreeSet;
use std::path::Path;
use std::process::Command;

use support::{repo_root, Dynalite, Gateway, Http};

const PREFIX: &str = "dynamo_ingest_";
const HISTOGRAM_SUFFIXES: [&str; 3] = ["_bucket", "_sum", "_count"];

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// The files whose PromQL must only name real metrics.
fn dashboard_files() -> Vec<std::path::PathBuf> {
    let root = repo_root();
    let mut files: Vec<_> = std::fs::read_dir(root.join("dashboards/grafana"))
        .expect("dashboards/grafana")
        .map(|e| e.expect("dir entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "json"))
        .collect();
    files.sort();
    assert!(!files.is_empty(), "no dashboards/grafana/*.json");
    files.push(root.join("dashboards/alerts.yml"));
    files
}

/// Every `dynamo_ingest_[a-z_]+` in `text`, as written (suffixes kept).
fn metric_names(text: &str) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    let mut rest = text;
    while let Some(i) = rest.find(PREFIX) {
        let after = &rest[i + PREFIX.len()..];
        let len = after
            .find(|c: char| !(c.is_ascii_lowercase() || c == '_'))
            .unwrap_or(after.len());
        if len > 0 {
            names.insert(format!("{PREFIX}{}", &after[..len]));
        }
        rest = &after[len..];
    }
    names
}

/// A histogram series name without its `_bucket`/`_sum`/`_count` suffix.
fn family(name: &str) -> &str {
    HISTOGRAM_SUFFIXES
        .iter()
        .find_map(|s| name.strip_suffix(s))
        .unwrap_or(name)
}

/// Series names of the sample lines of a Prometheus text exposition.
fn exposed_series(body: &str) -> BTreeSet<String> {
    body.lines()
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .filter_map(|l| l.split(['{', ' ']).next())
        .map(str::to_owned)
        .collect()
}

#[test]
fn metric_names_are_extracted_from_promql() {
    let names = metric_names(
        "histogram_quantile(0.99, sum by (le) (rate(dynamo_ingest_write_latency_seconds_bucket[5m]))) / dynamo_ingest:queue_max_items:config + dynamo_ingest_queue_depth{table=\"T\"}",
    );
    assert_eq!(
        names.into_iter().collect::<Vec<_>>(),
        [
            "dynamo_ingest_queue_depth",
            "dynamo_ingest_write_latency_seconds_bucket"
        ]
    );
    assert_eq!(
        family("dynamo_ingest_write_latency_seconds_bucket"),
        "dynamo_ingest_write_latency_seconds"
    );
    assert_eq!(
        family("dynamo_ingest_queue_depth"),
        "dynamo_ingest_queue_depth"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_metric_in_dashboards_and_alerts_is_on_metrics() {
    let mut used = BTreeSet::new();
    for file in dashboard_files() {
        let text = read(&file);
        if file.extension().is_some_and(|e| e == "json") {
            serde_json::from_str::<serde_json::Value>(&text)
                .unwrap_or_else(|e| panic!("{} is not JSON: {e}", file.display()));
        }
        let names = metric_names(&text);
        assert!(!names.is_empty(), "{} uses no metric", file.display());
        used.extend(names);
    }
    // The extraction works: names every dashboard needs are among them.
    for expected in [
        "dynamo_ingest_queue_depth",
        "dynamo_ingest_write_latency_seconds_bucket",
        "dynamo_ingest_dead_letter_items_total",
    ] {
        assert!(used.contains(expected), "{expected} not found in {used:?}");
    }

    let db = Dynalite::start();
    let gw = Gateway::start(&db.endpoint, &[], "");
    let body = Http::default()
        .get(&format!("http://{}/metrics", gw.admin))
        .await
        .body;
    let series = exposed_series(&body);
    let family_exposed = |fam: &str| {
        series.contains(fam)
            || HISTOGRAM_SUFFIXES
                .iter()
                .any(|s| series.contains(&format!("{fam}{s}")))
    };

    let missing_families: BTreeSet<&str> = used
        .iter()
        .map(|n| family(n))
        .filter(|f| !family_exposed(f))
        .collect();
    assert!(
        missing_families.is_empty(),
        "used in dashboards/alerts but not on /metrics: {missing_families:?}\n{body}"
    );
    // A `_bucket`/`_sum`/`_count` series is used only where the family is
    // a histogram (histogram_quantile needs `_bucket`).
    let missing_series: Vec<&String> = used
        .iter()
        .filter(|n| family(n) != n.as_str() && !series.contains(n.as_str()))
        .collect();
    assert!(
        missing_series.is_empty(),
        "histogram series not on /metrics: {missing_series:?}\n{body}"
    );
}

#[test]
fn prometheus_files_pass_promtool() {
    let root = repo_root();
    let checks: [&[&str]; 2] = [
        &["check", "rules", "dashboards/alerts.yml"],
        &["check", "config", "dashboards/prometheus.yml"],
    ];
    for args in checks {
        let out = match Command::new("promtool")
            .args(args)
            .current_dir(&root)
            .output()
        {
            Ok(out) => out,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                assert!(
                    std::env::var_os("CI").is_none(),
                    "promtool is not on PATH and CI is set: install it (Debian: apt-get install prometheus)"
                );
                eprintln!(
                    "NOTICE: promtool is not on PATH; skipping `promtool check` of dashboards/ \
                     (Debian: apt-get install prometheus). With CI set this fails."
                );
                return;
            }
            Err(e) => panic!("promtool: {e}"),
        };
        assert!(
            out.status.success(),
            "promtool {}: {}\n{}{}",
            args.join(" "),
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

#[test]
fn the_container_config_validates_and_matches_the_alert_bounds() {
    let root = repo_root();
    let out = Command::new(env!("CARGO_BIN_EXE_dynamo-ingest"))
        .args(["check-config", "--config", "deploy/docker.toml"])
        .current_dir(&root)
        .output()
        .expect("run dynamo-ingest");
    assert!(
        out.status.success(),
        "check-config --config deploy/docker.toml: {}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );

    // The alert QueueNearFull divides by constants that mirror the bounds.
    let config: toml::Table = toml::from_str(&read(&root.join("deploy/docker.toml")))
        .expect("deploy/docker.toml is TOML");
    let pipeline = config["pipeline"].as_table().expect("[pipeline]");
    let max_items = pipeline["queue_max_items"]
        .as_integer()
        .expect("queue_max_items");
    let max_bytes: bytesize::ByteSize = pipeline["queue_max_bytes"]
        .as_str()
        .expect("queue_max_bytes")
        .parse()
        .expect("queue_max_bytes is a size");
    let alerts = read(&root.join("dashboards/alerts.yml"));
    for (record, value) in [
        ("dynamo_ingest:queue_max_items:config", max_items as u64),
        ("dynamo_ingest:queue_max_bytes:config", max_bytes.as_u64()),
    ] {
        let expected = format!("record: {record}\n        expr: vector({value})");
        assert!(
            alerts.contains(&expected),
            "dashboards/alerts.yml must have `{expected}` (deploy/docker.toml [pipeline])"
        );
    }
}

/// The source paths of the Dockerfile's `COPY` instructions from the build
/// context (not `--from=` stages).
fn dockerfile_copy_sources(dockerfile: &str) -> Vec<String> {
    let mut sources = Vec::new();
    for line in dockerfile.lines() {
        let Some(args) = line.trim().strip_prefix("COPY ") else {
            continue;
        };
        let args: Vec<&str> = args.split_whitespace().collect();
        if args.iter().any(|a| a.starts_with("--from")) {
            continue;
        }
        let paths: Vec<&str> = args
            .iter()
            .copied()
            .filter(|a| !a.starts_with("--"))
            .collect();
        assert!(
            paths.len() >= 2,
            "COPY without source and destination: {line}"
        );
        sources.extend(paths[..paths.len() - 1].iter().map(|s| (*s).to_owned()));
    }
    sources
}

#[test]
fn every_path_the_dockerfile_and_compose_take_exists() {
    let root = repo_root();
    let sources = dockerfile_copy_sources(&read(&root.join("Dockerfile")));
    for expected in ["Cargo.lock", "src", "deploy/docker.toml"] {
        assert!(
            sources.iter().any(|s| s == expected),
            "Dockerfile does not COPY {expected}: {sources:?}"
        );
    }
    let missing: Vec<&String> = sources.iter().filter(|s| !root.join(s).exists()).collect();
    assert!(
        missing.is_empty(),
        "Dockerfile COPYs missing paths: {missing:?}"
    );

    // Every workspace member's manifest is copied for the dependency layer.
    let manifest: toml::Table = toml::from_str(&read(&root.join("Cargo.toml"))).expect("TOML");
    let members = manifest["workspace"]["members"]
        .as_array()
        .expect("workspace.members");
    for member in members {
        let member = member.as_str().expect("member path");
        let path = if member == "." {
            "Cargo.toml".to_owned()
        } else {
            format!("{member}/Cargo.toml")
        };
        assert!(
            sources.contains(&path),
            "Dockerfile does not COPY {path} (workspace member {member})"
        );
    }

    // docker-compose.yml bind mounts (`./path:/in/container`).
    let compose = read(&root.join("docker-compose.yml"));
    let mounts: Vec<&str> = compose
        .split_whitespace()
        .filter_map(|w| w.strip_prefix("./"))
        .filter_map(|w| w.split(':').next())
        .collect();
    assert!(mounts.len() >= 4, "bind mounts: {mounts:?}");
    let missing: Vec<&&str> = mounts.iter().filter(|m| !root.join(m).exists()).collect();
    assert!(
        missing.is_empty(),
        "docker-compose.yml mounts missing paths: {missing:?}"
    );
}
