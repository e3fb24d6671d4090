//! What a run costs, from the process's own counters: bytes sent to the
//! storage layer (`/proc/self/io` `write_bytes`: page-granular, so a
//! 300-byte append that re-dirties a page already written back costs a
//! page), CPU time of all threads (`/proc/self/stat` utime + stime, 10 ms
//! ticks) and the disk space a directory takes (allocated blocks).

use std::path::Path;

use anyhow::Context;

#[derive(Debug, Clone, Copy)]
pub struct Snap {
    pub write_bytes: u64,
    pub cpu_secs: f64,
}

impl Snap {
    pub fn now() -> anyhow::Result<Self> {
        Ok(Self {
            write_bytes: write_bytes()?,
            cpu_secs: cpu_secs()?,
        })
    }

    /// (bytes written, CPU seconds) since `earlier`.
    pub fn since(&self, earlier: &Snap) -> (u64, f64) {
        (
            self.write_bytes.saturating_sub(earlier.write_bytes),
            self.cpu_secs - earlier.cpu_secs,
        )
    }
}

fn write_bytes() -> anyhow::Result<u64> {
    let io = std::fs::read_to_string("/proc/self/io")?;
    io.lines()
        .find_map(|l| l.strip_prefix("write_bytes:"))
        .and_then(|v| v.trim().parse().ok())
        .context("no write_bytes in /proc/self/io")
}

fn cpu_secs() -> anyhow::Result<f64> {
    let stat = std::fs::read_to_string("/proc/self/stat")?;
    // Fields after the command name in parentheses; utime and stime are the
    // 14th and 15th fields of the line, the 12th and 13th after it.
    let rest = stat.rsplit_once(')').context("bad /proc/self/stat")?.1;
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks: u64 =
        f.get(11).context("utime")?.parse::<u64>()? + f.get(12).context("stime")?.parse::<u64>()?;
    Ok(ticks as f64 / 100.0)
}

/// Allocated bytes of every file under `dir`.
pub fn disk_bytes(dir: &Path) -> anyhow::Result<u64> {
    use std::os::unix::fs::MetadataExt;
    let mut total = 0;
    for e in std::fs::read_dir(dir)? {
        let e = e?;
        let m = e.metadata()?;
        total += if m.is_dir() {
            disk_bytes(&e.path())?
        } else {
            m.blocks() * 512
        };
    }
    Ok(total)
}
