#!/usr/bin/env python3
"""Medians over several rate-bench runs, as the table in docs/PERFORMANCE.md.

Usage: loadtest/rate-bench/medians.py target/rate-bench/final-run1 target/rate-bench/final-run2 ...
Reads SCENARIO-summary.md from each directory; prints one markdown row per
scenario and writer: the median of each column with the single runs in
brackets, lost summed over the runs.
"""
import pathlib
import statistics
import sys

SCENARIOS = ["steady", "step", "hot-partition", "on-demand", "on-demand-max", "two-instances"]


def rows(path):
    out = {}
    for line in path.read_text().splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) >= 12 and cells[0] in ("gateway", "sdk-standard", "sdk-adaptive"):
            out[cells[0]] = cells
    return out


def num(cell):
    try:
        return float(cell.replace("%", "").replace("s", "").replace(",", "").strip())
    except ValueError:
        return None


def med(values, unit):
    vals = [v for v in values if v is not None]
    if not vals:
        return "–"
    runs = " / ".join(f"{v:.1f}" for v in values if v is not None)
    return f"{statistics.median(vals):.1f}{unit} [{runs}]"


def main(dirs):
    print("| scenario | writer | runs | utilization | throttled share | e2e p50 | e2e p99 | lost (all runs) | step: within 5 % / non-hot share |")
    print("|---|---|---|---|---|---|---|---|---|")
    for s in SCENARIOS:
        found = [rows(p / f"{s}-summary.md") for p in map(pathlib.Path, dirs) if (p / f"{s}-summary.md").exists()]
        for w in ("gateway", "sdk-standard", "sdk-adaptive"):
            rs = [r[w] for r in found if w in r and num(r[w][1]) is not None]
            if not rs:
                continue
            extra = ""
            if len(rs[0]) > 12:
                vals = [r[12] for r in rs]
                extra = med([num(v) for v in vals], " %") if s == "hot-partition" else " · ".join(vals)
            lost = sum(int(num(r[10]) or 0) for r in rs)
            print(f"| {s} | {w} | {len(rs)} | {med([num(r[1]) for r in rs], ' %')} | {med([num(r[5]) for r in rs], ' %')} "
                  f"| {med([num(r[6]) for r in rs], ' s')} | {med([num(r[7]) for r in rs], ' s')} | {lost} | {extra} |")


if __name__ == "__main__":
    main(sys.argv[1:] or sys.exit(__doc__))
