#!/usr/bin/env bash
# Two dynamo-sim builds side by side under the same gateway: the NDJSON
# ack=written scenario (loadtest/scenarios/http-ndjson-written.toml: 500
# events per POST, 16 connections, closed loop, dynamo-sim --unlimited, a
# table that grows by every event), alternating A and B, RUNS times. Per
# run: events/s end to end, the gateway's CPU per event (from loadgen's
# report), the simulator's CPU per stored item (utime+stime of the sim
# process from /proc, sampled every 0.2 s until it exits) and its peak RSS
# per stored item (VmHWM).
#
# Usage: loadtest/scripts/sim-ab.sh SIM_A SIM_B [DURATION=10s] [RUNS=3]
#   e.g. keep the old build first: cp target/release/dynamo-sim /tmp/sim-old
#   then rebuild and run: loadtest/scripts/sim-ab.sh /tmp/sim-old target/release/dynamo-sim
# GATEWAY=path picks the gateway binary (default target/release/dynamo-ingest).
set -euo pipefail
cd "$(dirname "$0")/../.."
[ $# -ge 2 ] || { sed -n '2,16p' "$0"; exit 2; }
SIM_A=$(realpath "$1")
SIM_B=$(realpath "$2")
DURATION=${3:-10s}
RUNS=${4:-3}
GATEWAY=${GATEWAY:-target/release/dynamo-ingest}
[ -x "$GATEWAY" ] && [ -x target/release/loadgen ] || cargo build --release -p dynamo-ingest -p loadgen
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT

one() { # label sim-binary out-dir
  target/release/loadgen run loadtest/scenarios/http-ndjson-written.toml --duration "$DURATION" \
    --gateway-bin "$GATEWAY" --sim-bin "$2" --quiet --out "$3" > "$3.txt" 2>&1 &
  local lg=$! sim="" ticks=0 hwm=0 t h
  while kill -0 "$lg" 2>/dev/null; do
    [ -n "$sim" ] || sim=$(pgrep -f "^$2 " | head -1 || true)
    if [ -n "$sim" ]; then
      t=$(awk '{print $14 + $15}' "/proc/$sim/stat" 2>/dev/null || true)
      h=$(awk '/VmHWM/ {print $2}' "/proc/$sim/status" 2>/dev/null || true)
      [ -n "$t" ] && ticks=$t
      [ -n "$h" ] && hwm=$h
    fi
    sleep 0.2
  done
  wait "$lg" || true
  python3 - "$1" "$3" "$ticks" "$hwm" "$(getconf CLK_TCK)" <<'PY'
import json, sys
label, out, ticks, hwm_kib, tck = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5])
s = json.load(open(out + "/summary.json"))
v = s["summary"]["verify"]
stored = v["stored"] if isinstance(v, dict) else 0
rate = s["summary"]["achieved_rate"]
acked = s["summary"]["acked"]
gw = s["gateway"]["cpu_seconds"] / acked * 1e6 if acked else 0.0
lost = v.get("lost") if isinstance(v, dict) else "?"
if stored:
    print(f"{label}: {rate:9.0f} events/s  gateway {gw:5.2f} us/event  sim {ticks / tck / stored * 1e6:5.2f} us/item"
          f"  sim peak RSS {hwm_kib * 1024 / stored:4.0f} B/item  stored {stored}  lost {lost}")
else:
    print(f"{label}: no verify result; see {out}.txt")
PY
}

# The order alternates (A first in odd runs, B first in even ones): on this
# machine the build loaded second in a pair was often the faster one,
# whichever it was; use an even RUNS for a balanced order.
for run in $(seq 1 "$RUNS"); do
  echo "run $run"
  if [ $((run % 2)) -eq 1 ]; then
    one "  A $1" "$SIM_A" "$WORK/a-$run"
    one "  B $2" "$SIM_B" "$WORK/b-$run"
  else
    one "  B $2" "$SIM_B" "$WORK/b-$run"
    one "  A $1" "$SIM_A" "$WORK/a-$run"
  fi
done
