#!/usr/bin/env bash
# `queued` vs `spooled` side by side in one run: events/s and p50/p99 ack
# latency for single-event POSTs and NDJSON bulk (100 events per request),
# closed loop with loadgen (32 connections single, 8 bulk), against
# dynamo-sim --unlimited (the backend is never the bottleneck), each phase
# DURATION seconds, alternating ack levels, RUNS runs; prints every run and
# the medians, plus the spool's write amplification (bytes appended per
# event, events per fsync) from the gateway's metrics.
#
# Usage: loadtest/scripts/spool-figures.sh [DURATION_SECONDS=5] [RUNS=3]
set -euo pipefail
cd "$(dirname "$0")/../.."
DURATION=${1:-5}
RUNS=${2:-3}
BIN=target/release/dynamo-ingest
SIM=target/release/dynamo-sim
LOADGEN=target/release/loadgen
[ -x "$BIN" ] && [ -x "$SIM" ] && [ -x "$LOADGEN" ] || cargo build --release -p dynamo-ingest -p dynamo-sim -p loadgen
WORK=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$WORK"' EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
metric() { curl -s "http://$ADMIN/metrics" | awk -v m="$1" '$1 ~ "^"m {s+=$2} END {printf "%d", s}'; }

DPORT=$(free_port)
"$SIM" --listen "127.0.0.1:$DPORT" --unlimited > "$WORK/sim.log" 2>&1 &
for _ in $(seq 1 100); do grep -q listening "$WORK/sim.log" && break; sleep 0.1; done
# Dead letters (none expected: every phase drains) go to the temp dir, not ./
sed "s|^path = \"dead-letter.ndjson\"|path = \"$WORK/dead-letter.ndjson\"|" config/default.toml > "$WORK/config.toml"
printf '\n[spool]\nenabled = true\npath = "%s/spool"\n' "$WORK" >> "$WORK/config.toml"
"$BIN" --config "$WORK/config.toml" --dynamodb-endpoint "http://127.0.0.1:$DPORT" \
  --http-listen 127.0.0.1:0 --admin-listen 127.0.0.1:0 --mqtt-listen 127.0.0.1:0 \
  > "$WORK/gw.out" 2> "$WORK/gw.err" &
GW=$!
for _ in $(seq 1 300); do grep -q "dynamo-ingest ready" "$WORK/gw.out" && break; sleep 0.1; done
HTTP=$(sed -n 's/.*http=\([^ ]*\).*/\1/p' "$WORK/gw.out")
ADMIN=$(sed -n 's/.*admin=\([^ ]*\).*/\1/p' "$WORK/gw.out")

drain() { # bounded: at most 60 s
  for _ in $(seq 1 300); do [ "$(metric dynamo_ingest_queue_depth)" = "0" ] && [ "$(metric dynamo_ingest_spool_records)" = "0" ] && return; sleep 0.2; done
}

phase() { # run shape ack batch concurrency
  local run=$1 shape=$2 ack=$3 batch=$4 conns=$5
  local b0 f0 out=$WORK/$shape-$ack-$run.json
  b0=$(metric dynamo_ingest_spool_appended_bytes_total); f0=$(metric dynamo_ingest_spool_fsync_seconds_count)
  "$LOADGEN" http --target "$HTTP" --route stream --batch "$batch" --concurrency "$conns" \
    --duration "${DURATION}s" --ack "$ack" --quiet --summary-json "$out" > /dev/null
  drain
  python3 - "$out" "$run" "$shape" "$ack" "$(( $(metric dynamo_ingest_spool_appended_bytes_total) - b0 ))" \
    "$(( $(metric dynamo_ingest_spool_fsync_seconds_count) - f0 ))" >> "$WORK/rows" <<'PY'
import json, sys
s = json.load(open(sys.argv[1]))
lat = s.get("latency_us") or {}
print(json.dumps({"run": int(sys.argv[2]), "shape": sys.argv[3], "ack": sys.argv[4],
  "events_s": s["achieved_rate"], "acked": s["acked"], "errors": sum(s["errors"].values()),
  "p50_ms": lat.get("p50", 0) / 1000, "p99_ms": lat.get("p99", 0) / 1000,
  "appended": int(sys.argv[5]), "fsyncs": int(sys.argv[6])}))
PY
}

for run in $(seq 1 "$RUNS"); do
  for ack in queued spooled; do phase "$run" single "$ack" 1 32; done
  for ack in queued spooled; do phase "$run" ndjson "$ack" 100 8; done
done

# Stop the gateway before the simulator, so it shuts down against a live
# backend (killed together, it would retry until its shutdown deadline).
kill -TERM "$GW"
wait "$GW" 2>/dev/null || true

python3 - "$WORK/rows" "$DURATION" <<'PY'
import json, statistics as st, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
print(f"each phase {sys.argv[2]} s, dynamo-sim --unlimited, release build")
for r in rows:
    print("run {run} {shape:6} {ack:7} {events_s:9.0f} ev/s  p50 {p50_ms:7.2f} ms  p99 {p99_ms:7.2f} ms  errors {errors}  appended {appended} B  fsyncs {fsyncs}".format(**r))
print()
print("| shape | ack | events/s (runs) | median events/s | median p50 | median p99 | bytes appended / event | events / fsync |")
print("|---|---|---|---|---|---|---|---|")
for shape in ("single", "ndjson"):
    for ack in ("queued", "spooled"):
        rs = [r for r in rows if r["shape"] == shape and r["ack"] == ack]
        if not rs:
            continue
        ev = ", ".join(f"{r['events_s']:.0f}" for r in rs)
        acked = sum(r["acked"] for r in rs)
        app = sum(r["appended"] for r in rs)
        fs = sum(r["fsyncs"] for r in rs)
        amp = f"{app / acked:.0f}" if ack == "spooled" and acked else "–"
        per = f"{acked / fs:.1f}" if ack == "spooled" and fs else "–"
        print(f"| {shape} | `{ack}` | {ev} | {st.median(r['events_s'] for r in rs):.0f} | "
              f"{st.median(r['p50_ms'] for r in rs):.2f} ms | {st.median(r['p99_ms'] for r in rs):.2f} ms | {amp} | {per} |")
PY
