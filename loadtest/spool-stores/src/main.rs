//! spool-stores: the measured comparison of issue 6 (docs/SPOOL.md,
//! "Measured comparison"). The gateway's own spool log, a minimal
//! segmented log with the same framing (also with preallocated segments),
//! redb, fjall and okaywal get the same workload: C concurrent appenders of 300-byte records, each waiting
//! until its record is durable before the next, every store grouping
//! concurrent appends into one fsync the best way it offers. Each run then
//! reopens the store and checks every acknowledged record is there (byte
//! for byte), releases everything and checks nothing is left; `crash`
//! SIGKILLs a writer child and checks recovery, then damages the tail.
//!
//! Not part of the root workspace: run it with
//! `cargo run --release --manifest-path loadtest/spool-stores/Cargo.toml -- ...`
//! (see loadtest/spool-stores/README.md).

mod measure;
mod report;
mod stores;

use std::collections::HashSet;
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{bail, ensure, Context};
use clap::{Parser, Subcommand};
use hdrhistogram::Histogram;
use rand::Rng;

use measure::{disk_bytes, Snap};
use stores::Store;

#[derive(Parser)]
#[command(
    about = "Durable-append benchmark: the gateway's spool log vs. minimal log, redb, fjall, okaywal"
)]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Throughput, latency, write amplification and CPU per record; appends
    /// one TSV row per run to --out.
    Bench {
        #[arg(long)]
        store: String,
        #[arg(long, value_delimiter = ',', default_value = "1,8,64")]
        conc: Vec<usize>,
        #[arg(long, default_value_t = 200_000)]
        records: u64,
        /// A run stops after this many seconds even if --records are not done.
        #[arg(long, default_value_t = 10)]
        seconds: u64,
        /// Label of this repetition in the output.
        #[arg(long, default_value_t = 1)]
        rep: u32,
        /// Where the stores are created (a disk, not tmpfs).
        #[arg(long)]
        dir: PathBuf,
        #[arg(long)]
        out: PathBuf,
    },
    /// SIGKILL a writer child at a random moment, reopen and check every
    /// acknowledged record; then damage the tail file and reopen.
    Crash {
        #[arg(long)]
        store: String,
        #[arg(long, default_value_t = 100_000)]
        records: u64,
        #[arg(long, default_value_t = 64)]
        conc: usize,
        #[arg(long, default_value_t = 1)]
        rep: u32,
        #[arg(long)]
        dir: PathBuf,
        #[arg(long)]
        out: PathBuf,
    },
    /// The crash child: appends and prints each acknowledged sequence number.
    Write {
        #[arg(long)]
        store: String,
        #[arg(long)]
        records: u64,
        #[arg(long)]
        conc: usize,
        #[arg(long)]
        dir: PathBuf,
    },
    /// Medians of the TSV files as Markdown tables.
    Report {
        #[arg(long)]
        bench: PathBuf,
        #[arg(long)]
        crash: Option<PathBuf>,
    },
}

fn main() -> anyhow::Result<()> {
    match Cli::parse().cmd {
        Cmd::Bench {
            store,
            conc,
            records,
            seconds,
            rep,
            dir,
            out,
        } => {
            for c in conc {
                let row = bench(&store, c, records, Duration::from_secs(seconds), &dir)?;
                let line = format!("{store}\t{c}\t{rep}\t{row}");
                println!("{line}");
                append_line(&out, report::BENCH_HEADER, &line)?;
            }
            Ok(())
        }
        Cmd::Crash {
            store,
            records,
            conc,
            rep,
            dir,
            out,
        } => {
            let row = crash(&store, records, conc, &dir)?;
            let line = format!("{store}\t{rep}\t{row}");
            println!("{line}");
            append_line(&out, report::CRASH_HEADER, &line)
        }
        Cmd::Write {
            store,
            records,
            conc,
            dir,
        } => write_child(&store, records, conc, &dir),
        Cmd::Report { bench, crash } => report::print(&bench, crash.as_deref()),
    }
}

fn append_line(path: &Path, header: &str, line: &str) -> anyhow::Result<()> {
    let new = !path.exists();
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)?;
    if new {
        writeln!(f, "{header}")?;
    }
    writeln!(f, "{line}")?;
    Ok(())
}

fn fresh_dir(base: &Path, name: &str) -> anyhow::Result<PathBuf> {
    let dir = base.join(name);
    if dir.exists() {
        std::fs::remove_dir_all(&dir)?;
    }
    std::fs::create_dir_all(&dir)?;
    Ok(dir)
}

/// What the appenders did: latencies (µs), acknowledged sequence numbers.
struct Appended {
    hist: Histogram<u64>,
    acked: Vec<u64>,
    elapsed: Duration,
}

/// C threads append until `records` are claimed or `limit` passed; each
/// acknowledged sequence number is also handed to `on_ack`.
fn run_appenders(
    store: &dyn Store,
    conc: usize,
    records: u64,
    limit: Duration,
    on_ack: &(dyn Fn(u64) + Sync),
) -> anyhow::Result<Appended> {
    let next = AtomicU64::new(0);
    let start = Instant::now();
    let deadline = start + limit;
    let results: Vec<anyhow::Result<(Histogram<u64>, Vec<u64>)>> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..conc)
            .map(|_| {
                s.spawn(|| {
                    let mut hist = Histogram::<u64>::new_with_bounds(1, 600_000_000, 3)?;
                    let mut acked = Vec::new();
                    loop {
                        let seq = next.fetch_add(1, Ordering::Relaxed);
                        if seq >= records || Instant::now() >= deadline {
                            break;
                        }
                        let p = stores::payload(seq);
                        let t = Instant::now();
                        store.append(seq, &p)?;
                        hist.saturating_record(t.elapsed().as_micros() as u64);
                        acked.push(seq);
                        on_ack(seq);
                    }
                    Ok((hist, acked))
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().unwrap_or_else(|_| bail!("appender panicked")))
            .collect()
    });
    let elapsed = start.elapsed();
    let mut hist = Histogram::<u64>::new_with_bounds(1, 600_000_000, 3)?;
    let mut acked = Vec::new();
    for r in results {
        let (h, a) = r?;
        hist.add(h)?;
        acked.extend(a);
    }
    Ok(Appended {
        hist,
        acked,
        elapsed,
    })
}

/// One bench run; returns the TSV fields after store, conc, rep.
fn bench(
    name: &str,
    conc: usize,
    records: u64,
    limit: Duration,
    base: &Path,
) -> anyhow::Result<String> {
    let dir = fresh_dir(base, &format!("{name}-c{conc}"))?;
    let before = Snap::now()?;
    let (store, found) = stores::open(name, &dir)?;
    ensure!(
        found.is_empty(),
        "fresh store holds {} records",
        found.len()
    );
    let a = run_appenders(&*store, conc, records, limit, &|_| {})?;
    // Dropped without a clean close: the reopen below is a recovery.
    drop(store);
    let (written, cpu) = Snap::now()?.since(&before);
    let du = disk_bytes(&dir)?;
    let n = a.acked.len() as u64;
    ensure!(n > 0, "no record appended");

    let t = Instant::now();
    let (store, found) = stores::open(name, &dir)?;
    let reopen = t.elapsed();
    verify(&a.acked, &found, true)
        .with_context(|| format!("{name} c={conc}: reopen after the run"))?;

    let before_release = Snap::now()?;
    let t = Instant::now();
    store.release_all()?;
    let release = t.elapsed();
    let (release_written, _) = Snap::now()?.since(&before_release);
    let du_released = disk_bytes(&dir)?;
    let (store, left) = stores::open(name, &dir)?;
    ensure!(
        left.is_empty(),
        "{name} c={conc}: {} records left after releasing all",
        left.len()
    );
    drop(store);
    std::fs::remove_dir_all(&dir)?;

    let secs = a.elapsed.as_secs_f64();
    Ok(format!(
        "{n}\t{secs:.2}\t{:.0}\t{}\t{}\t{:.0}\t{:.0}\t{:.1}\t{:.0}\t{:.0}\t{:.0}\t{du_released}",
        n as f64 / secs,
        a.hist.value_at_quantile(0.5),
        a.hist.value_at_quantile(0.99),
        written as f64 / n as f64,
        du as f64 / n as f64,
        cpu * 1e6 / n as f64,
        reopen.as_secs_f64() * 1e3,
        release.as_secs_f64() * 1e3,
        release_written as f64 / n as f64,
    ))
}

/// Every acknowledged record is found, none twice; with `exact`, nothing else.
fn verify(acked: &[u64], found: &[u64], exact: bool) -> anyhow::Result<(usize, usize)> {
    let found_set: HashSet<u64> = found.iter().copied().collect();
    ensure!(
        found_set.len() == found.len(),
        "{} duplicate records",
        found.len() - found_set.len()
    );
    let lost = acked.iter().filter(|s| !found_set.contains(s)).count();
    ensure!(
        lost == 0,
        "LOST {lost} of {} acknowledged records",
        acked.len()
    );
    let extra = found.len() - acked.len();
    ensure!(
        !exact || extra == 0,
        "{extra} records found that were never appended"
    );
    Ok((lost, extra))
}

fn write_child(name: &str, records: u64, conc: usize, dir: &Path) -> anyhow::Result<()> {
    let (store, found) = stores::open(name, dir)?;
    ensure!(found.is_empty(), "child expects a fresh store");
    let (tx, rx) = flume::unbounded::<u64>();
    let printer = std::thread::spawn(move || -> std::io::Result<()> {
        let mut out = std::io::BufWriter::new(std::io::stdout().lock());
        while let Ok(seq) = rx.recv() {
            writeln!(out, "{seq}")?;
            for seq in rx.try_iter() {
                writeln!(out, "{seq}")?;
            }
            out.flush()?;
        }
        out.flush()
    });
    run_appenders(&*store, conc, records, Duration::from_secs(600), &|seq| {
        let _ = tx.send(seq);
    })?;
    drop(tx);
    printer
        .join()
        .map_err(|_| anyhow::anyhow!("printer panicked"))??;
    // Not killed in time: leave without closing anything.
    std::process::exit(0)
}

/// One crash run; returns the TSV fields after store, rep.
fn crash(name: &str, records: u64, conc: usize, base: &Path) -> anyhow::Result<String> {
    let dir = fresh_dir(base, &format!("{name}-crash"))?;
    let kill_at = rand::rng().random_range(records / 20..records * 6 / 10) as usize;
    let mut child = Command::new(std::env::current_exe()?)
        .args(["write", "--store", name, "--records", &records.to_string()])
        .args(["--conc", &conc.to_string(), "--dir"])
        .arg(&dir)
        .stdout(Stdio::piped())
        .spawn()?;
    let stdout = child.stdout.take().context("no stdout")?;
    let mut acked = Vec::new();
    let mut killed_after = None;
    for line in BufReader::new(stdout).lines() {
        acked.push(line?.trim().parse::<u64>()?);
        if acked.len() == kill_at {
            child.kill()?; // SIGKILL
            killed_after = Some(kill_at);
        }
    }
    child.wait()?;
    ensure!(
        killed_after.is_some(),
        "the child finished before the kill point"
    );

    let t = Instant::now();
    let (store, found) = stores::open(name, &dir)?;
    let reopen = t.elapsed();
    let (lost, extra) =
        verify(&acked, &found, false).with_context(|| format!("{name}: recovery after SIGKILL"))?;
    drop(store);

    let torn = damaged(name, &dir, base, Damage::TornTail, found.len())?;
    let garbage = damaged(name, &dir, base, Damage::Garbage, found.len())?;
    std::fs::remove_dir_all(&dir)?;
    Ok(format!(
        "{kill_at}\t{}\t{}\t{lost}\t{extra}\t{:.0}\t{torn}\t{garbage}",
        acked.len(),
        found.len(),
        reopen.as_secs_f64() * 1e3,
    ))
}

#[derive(Clone, Copy, Debug)]
enum Damage {
    /// The last 150 bytes of data lost (cut, or zeroed in a preallocated file).
    TornTail,
    /// 4 KiB of random bytes after the data.
    Garbage,
}

/// Damages a copy of the store's tail file, reopens it, and reports what it
/// kept and whether records appended after that reopen survive the next.
fn damaged(
    name: &str,
    dir: &Path,
    base: &Path,
    damage: Damage,
    before: usize,
) -> anyhow::Result<String> {
    let copy = fresh_dir(base, &format!("{name}-{damage:?}"))?;
    copy_dir(dir, &copy)?;
    let tail = tail_file(name, &copy)?;
    let mut bytes = std::fs::read(&tail)?;
    let len = bytes.len();
    let end = bytes.iter().rposition(|b| *b != 0).map_or(0, |p| p + 1);
    match damage {
        Damage::TornTail if end == len => bytes.truncate(end.saturating_sub(150)),
        Damage::TornTail => bytes[end.saturating_sub(150)..end].fill(0),
        Damage::Garbage => {
            let mut g = vec![0u8; 4096];
            rand::rng().fill(&mut g[..]);
            bytes.truncate(end);
            bytes.extend_from_slice(&g);
            bytes.resize(bytes.len().max(len), 0);
        }
    }
    std::fs::write(&tail, &bytes)?;
    let file = tail
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or("?")
        .to_string();
    let opened = std::panic::catch_unwind(|| stores::open(name, &copy));
    let outcome = match opened {
        Err(_) => "open panicked".to_string(),
        Ok(Err(e)) if format!("{e:#}").contains("payload differs") => {
            format!("opens, returns a damaged record: {}", one_line(&e))
        }
        Ok(Err(e)) => format!("open failed: {}", one_line(&e)),
        Ok(Ok((store, found))) => {
            let kept = found.len();
            // Do appends made after this recovery survive the next one?
            let new: Vec<u64> = (0..10).map(|i| 1 << 40 | i).collect();
            for &seq in &new {
                store.append(seq, &stores::payload(seq))?;
            }
            drop(store);
            let after = match std::panic::catch_unwind(|| stores::open(name, &copy)) {
                Err(_) => "reopen panicked".to_string(),
                Ok(Err(e)) => format!("reopen failed: {}", one_line(&e)),
                Ok(Ok((_s, again))) => {
                    let set: HashSet<u64> = again.iter().copied().collect();
                    let ok = new.iter().filter(|s| set.contains(s)).count();
                    format!("new appends kept {ok}/10")
                }
            };
            format!("opens, kept {kept} of {before}; {after}")
        }
    };
    std::fs::remove_dir_all(&copy)?;
    Ok(format!("{file} {len}→{}: {outcome}", bytes.len()))
}

fn one_line(e: &anyhow::Error) -> String {
    let s = format!("{e:#}");
    s.replace(['\n', '\t'], " ").chars().take(160).collect()
}

fn copy_dir(from: &Path, to: &Path) -> anyhow::Result<()> {
    std::fs::create_dir_all(to)?;
    for e in std::fs::read_dir(from)? {
        let e = e?;
        let dest = to.join(e.file_name());
        if e.file_type()?.is_dir() {
            copy_dir(&e.path(), &dest)?;
        } else {
            std::fs::copy(e.path(), dest)?;
        }
    }
    Ok(())
}

/// The file a crash mid-append leaves torn: the newest segment or journal
/// (redb: its only file).
fn tail_file(name: &str, dir: &Path) -> anyhow::Result<PathBuf> {
    let mut files = Vec::new();
    list_files(dir, &mut files)?;
    let pick = |pred: &dyn Fn(&str) -> bool| -> Option<PathBuf> {
        files
            .iter()
            .filter(|p| p.to_str().is_some_and(pred))
            .max_by_key(|p| {
                (
                    std::fs::metadata(p).and_then(|m| m.modified()).ok(),
                    (*p).clone(),
                )
            })
            .cloned()
    };
    match name {
        "spool" => pick(&|p| p.ends_with(".seg")),
        "minimal" | "minimal-pre" => pick(&|p| p.ends_with(".log")),
        "redb" => pick(&|p| p.ends_with(".redb")),
        "okaywal" => pick(&|p| p.contains("/wal-") && !p.ends_with("-cp")),
        "fjall" => pick(&|p| p.contains("journal") || p.ends_with(".jnl")),
        _ => None,
    }
    .with_context(|| format!("{name}: no tail file in {} ({files:?})", dir.display()))
}

fn list_files(dir: &Path, out: &mut Vec<PathBuf>) -> anyhow::Result<()> {
    for e in std::fs::read_dir(dir)? {
        let e = e?;
        if e.file_type()?.is_dir() {
            list_files(&e.path(), out)?;
        } else if e.metadata()?.len() > 0 {
            out.push(e.path());
        }
    }
    Ok(())
}
