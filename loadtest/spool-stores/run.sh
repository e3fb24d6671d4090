#!/usr/bin/env bash
# The comparison of docs/SPOOL.md ("Measured comparison"): REPS repetitions
# of the bench (every store, C = 1, 8, 64, interleaved store by store),
# CRASH_REPS crash runs per store, then the medians. Each invocation of the
# binary is one store and stays under ~1 minute. Results: $OUT/bench.tsv,
# $OUT/crash.tsv, $OUT/report.md (~25 minutes with the defaults).
set -euo pipefail
cd "$(dirname "$0")"
REPS=${REPS:-5}
CRASH_REPS=${CRASH_REPS:-3}
STORES=${STORES:-"spool minimal minimal-pre redb fjall okaywal"}
DIR=${DIR:-target/bench-data}   # must be on a real disk (fsync), not tmpfs
OUT=${OUT:-target/results}
mkdir -p "$DIR" "$OUT"
nice -n 10 cargo build --release -j "${JOBS:-1}"
BIN=target/release/spool-stores
for rep in $(seq "$REPS"); do
  for s in $STORES; do
    timeout 180 nice -n 10 "$BIN" bench --store "$s" --rep "$rep" --dir "$DIR" --out "$OUT/bench.tsv"
  done
done
for rep in $(seq "$CRASH_REPS"); do
  for s in $STORES; do
    timeout 180 nice -n 10 "$BIN" crash --store "$s" --rep "$rep" --dir "$DIR" --out "$OUT/crash.tsv"
  done
done
"$BIN" report --bench "$OUT/bench.tsv" --crash "$OUT/crash.tsv" | tee "$OUT/report.md"
