//! Medians over the repetitions of the TSV rows `bench` and `crash` wrote.

use std::collections::BTreeMap;
use std::path::Path;

pub const BENCH_HEADER: &str = "store\tconc\trep\trecords\tsecs\trecords_per_s\tp50_us\tp99_us\twrite_bytes_per_rec\tdisk_bytes_per_rec\tcpu_us_per_rec\treopen_ms\trelease_ms\trelease_write_bytes_per_rec\tdisk_bytes_after_release";
pub const CRASH_HEADER: &str =
    "store\trep\tkill_at\tacked\tfound\tlost\textra\treopen_ms\ttorn_tail\tgarbage_tail";

fn rows(path: &Path) -> anyhow::Result<Vec<Vec<String>>> {
    let text = std::fs::read_to_string(path)?;
    Ok(text
        .lines()
        .skip(1)
        .filter(|l| !l.trim().is_empty())
        .map(|l| l.split('\t').map(str::to_string).collect())
        .collect())
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    match v.len() {
        0 => f64::NAN,
        n if n % 2 == 1 => v[n / 2],
        n => (v[n / 2 - 1] + v[n / 2]) / 2.0,
    }
}

fn order(store: &str) -> usize {
    super::stores::NAMES
        .iter()
        .position(|n| *n == store)
        .unwrap_or(usize::MAX)
}

pub fn print(bench: &Path, crash: Option<&Path>) -> anyhow::Result<()> {
    let mut groups: BTreeMap<(usize, usize, String), Vec<Vec<String>>> = BTreeMap::new();
    for r in rows(bench)? {
        let conc: usize = r[1].parse()?;
        groups
            .entry((order(&r[0]), conc, r[0].clone()))
            .or_default()
            .push(r);
    }
    println!("| store | C | runs | records/s | (min–max) | p50 ms | p99 ms | written B/rec | disk B/rec | CPU µs/rec | reopen ms | release ms | release written B/rec |");
    println!("|---|---:|---:|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|");
    for ((_, conc, store), rs) in &groups {
        let col =
            |i: usize| -> f64 { median(rs.iter().filter_map(|r| r[i].parse().ok()).collect()) };
        let rps: Vec<f64> = rs.iter().filter_map(|r| r[5].parse().ok()).collect();
        let (lo, hi) = rps
            .iter()
            .fold((f64::MAX, f64::MIN), |(lo, hi), v| (lo.min(*v), hi.max(*v)));
        println!(
            "| {store} | {conc} | {} | {:.0} | {lo:.0}–{hi:.0} | {:.2} | {:.2} | {:.0} | {:.0} | {:.0} | {:.0} | {:.0} | {:.0} |",
            rs.len(),
            col(5),
            col(6) / 1e3,
            col(7) / 1e3,
            col(8),
            col(9),
            col(10),
            col(11),
            col(12),
            col(13),
        );
    }
    if let Some(crash) = crash {
        println!();
        println!("| store | run | killed after acks | acked | found | lost | reopen ms | torn tail | garbage tail |");
        println!("|---|---:|---:|---:|---:|---:|---:|---|---|");
        let mut rs = rows(crash)?;
        rs.sort_by_key(|r| (order(&r[0]), r[1].clone()));
        for r in rs {
            println!(
                "| {} | {} | {} | {} | {} | {} | {} | {} | {} |",
                r[0], r[1], r[2], r[3], r[4], r[5], r[7], r[8], r[9]
            );
        }
    }
    Ok(())
}
