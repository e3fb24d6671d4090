#!/usr/bin/env bash
# Bounded load against the gateway backed by dynalite or dynamo-sim
# (unlimited capacity): single-event POSTs and
# NDJSON bulk (500 events per request), both with ack=written, each for DURATION seconds with wrk, reporting requests/s,
# events accepted and written, 503s, and the gateway's CPU-seconds per event
# (utime+stime from /proc, including draining the queue after the load).
#
# dynalite is single-threaded (a few thousand to 25k items/s depending on
# the machine); with it the backend is the bottleneck. dynamo-sim with
# --unlimited shows the gateway's own ceiling.
#
# Usage: loadtest/scripts/http-load.sh [dynalite|sim] [DURATION_SECONDS=10] [RUNS=3]
set -euo pipefail
cd "$(dirname "$0")/../.."
BACKEND=${1:-dynalite}
DURATION=${2:-10}
RUNS=${3:-3}
BIN=target/release/dynamo-ingest
command -v wrk >/dev/null || { echo "needs wrk (apt-get install wrk)"; exit 1; }
[ -x "$BIN" ] && [ -x target/release/dynamo-sim ] || cargo build --release -p dynamo-ingest -p dynamo-sim
[ -f node_modules/dynalite/cli.js ] || npm install --no-audit --no-fund
WORK=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$WORK"' EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
cpu_ticks() { awk '{print $14+$15}' "/proc/$1/stat"; }
metric() { curl -s "http://$ADMIN/metrics" | awk -v m="$1" '$1 ~ "^"m {s+=$2} END {printf "%d", s}'; }

DPORT=$(free_port)
if [ "$BACKEND" = sim ]; then
  target/release/dynamo-sim --listen "127.0.0.1:$DPORT" --unlimited > "$WORK/backend.log" 2>&1 &
else
  node node_modules/dynalite/cli.js --host 127.0.0.1 --port "$DPORT" --createTableMs 0 > "$WORK/backend.log" 2>&1 &
fi
BACKEND_PID=$!
until grep -q listening "$WORK/backend.log"; do sleep 0.1; done
"$BIN" --dynamodb-endpoint "http://127.0.0.1:$DPORT" --http-listen 127.0.0.1:0 --admin-listen 127.0.0.1:0 --mqtt-listen 127.0.0.1:0 \
  > "$WORK/gw.out" 2> "$WORK/gw.err" &
GW=$!
until grep -q "dynamo-ingest ready" "$WORK/gw.out"; do sleep 0.1; done
HTTP=$(sed -n 's/.*http=\([^ ]*\).*/\1/p' "$WORK/gw.out")
ADMIN=$(sed -n 's/.*admin=\([^ ]*\).*/\1/p' "$WORK/gw.out")
TICK=$(getconf CLK_TCK)

# Bodies: one sensor event; 500 NDJSON events.
cat > "$WORK/single.lua" <<'LUA'
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.body = '{"device_id":"D001","temperature":30.5,"humidity":67}'
LUA
python3 - "$WORK/bulk.lua" <<'PY'
import sys
lines = "".join('{"device_id":"D%03d","temperature":%d.5,"humidity":%d}\n' % (i % 200, 20 + i % 15, 40 + i % 50) for i in range(500))
open(sys.argv[1], "w").write('wrk.method = "POST"\nwrk.headers["Content-Type"] = "application/x-ndjson"\nwrk.body = [[\n' + lines + ']]\n')
PY

phase() { # name path lua connections
  local name=$1 path=$2 lua=$3 conns=$4
  local c0 r0 w0 c1 r1 w1 out reqs non2xx
  c0=$(cpu_ticks $GW); r0=$(metric dynamo_ingest_events_received_total); w0=$(metric dynamo_ingest_items_written_total)
  out=$(wrk -t1 -c"$conns" -d"${DURATION}s" -s "$lua" "http://$HTTP$path")
  # Let the queue drain so the CPU of writing is counted too.
  until [ "$(metric dynamo_ingest_queue_depth)" = "0" ]; do sleep 0.2; done
  c1=$(cpu_ticks $GW); r1=$(metric dynamo_ingest_events_received_total); w1=$(metric dynamo_ingest_items_written_total)
  reqs=$(echo "$out" | awk '/Requests\/sec/ {print $2}')
  non2xx=$(echo "$out" | awk '/Non-2xx/ {print $5}')
  local acc=$((r1 - r0)) wr=$((w1 - w0)) cpu=$((c1 - c0))
  awk -v n="$name" -v rq="$reqs" -v a="$acc" -v w="$wr" -v c="$cpu" -v t="$TICK" -v d="$DURATION" -v x="${non2xx:-0}" \
    'BEGIN { printf "%-8s req/s %9.0f  accepted/s %8.0f  written %8d  non-2xx %7d  gateway CPU %6.2f s  %.2f us/event\n", n, rq, a/d, w, x, c/t, (a>0 ? c/t/a*1e6 : 0) }'
}

# ack=written makes the load closed-loop at DynamoDB's pace (no 503s), so the
# CPU per event covers the whole path: HTTP, mapping, batching, SDK call.
for run in $(seq 1 "$RUNS"); do
  echo "run $run"
  phase single "/upload_data?ack=written" "$WORK/single.lua" 32
  phase ndjson "/v1/streams/sensor/events?ack=written" "$WORK/bulk.lua" 4
done
echo "backend: $BACKEND; gateway CPU includes draining the queue after each phase"
kill -TERM $GW; wait $GW; kill $BACKEND_PID
