#!/usr/bin/env bash
# The seed's FastAPI + boto3 activity tracker against dynamo-sim (unlimited
# capacity), driven by loadgen exactly like the gateway's single-event runs:
# POST /log_activity/?user_id=&action= , 32 connections, closed loop, then
# --verify (lost = acknowledged − stored; the seed's one-second sort key
# overwrites events, so expect losses). Prints requests/s and CPU per request
# of the uvicorn process.
#
# Usage: loadtest/baselines/fastapi-boto3/run.sh [DURATION=10s] [RUNS=3] [CONCURRENCY=32] [KEYS=1000]
# Needs: pip install -r loadtest/baselines/fastapi-boto3/requirements.txt
set -euo pipefail
cd "$(dirname "$0")/../../.."
DURATION=${1:-10s}
RUNS=${2:-3}
CONC=${3:-32}
KEYS=${4:-1000}
python3 -c 'import fastapi, uvicorn, boto3' 2>/dev/null || pip install -q -r loadtest/baselines/fastapi-boto3/requirements.txt
[ -x target/release/dynamo-sim ] && [ -x target/release/loadgen ] || cargo build --release -p dynamo-sim -p loadgen
WORK=$(mktemp -d)
PIDS=()
trap 'for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done; rm -rf "$WORK"' EXIT

target/release/dynamo-sim --listen 127.0.0.1:0 --unlimited --table 'UserActivity:user_id:S:timestamp:N' > "$WORK/sim.out" 2>&1 &
PIDS+=($!)
for _ in $(seq 1 100); do grep -q listening "$WORK/sim.out" && break; sleep 0.1; done
SIM=$(grep -o 'http://[0-9.:]*' "$WORK/sim.out" | head -1)
PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
(cd loadtest/baselines/fastapi-boto3 && DYNAMODB_ENDPOINT=$SIM exec python3 -m uvicorn app:app --host 127.0.0.1 --port "$PORT" --log-level warning) > "$WORK/app.log" 2>&1 &
APP=$!
PIDS+=($APP)
for _ in $(seq 1 100); do curl -s -o /dev/null "http://127.0.0.1:$PORT/docs" && break; sleep 0.1; done
TICK=$(getconf CLK_TCK)
for run in $(seq 1 "$RUNS"); do
  c0=$(awk '{print $14+$15}' "/proc/$APP/stat")
  target/release/loadgen http --quiet --target "127.0.0.1:$PORT" --shape activity --route seed \
    --concurrency "$CONC" --duration "$DURATION" --keys "$KEYS" --verify --dynamodb-endpoint "$SIM" \
    --summary-json "$WORK/run$run.json" > "$WORK/run$run.txt" || true
  c1=$(awk '{print $14+$15}' "/proc/$APP/stat")
  python3 - "$WORK/run$run.json" "$((c1 - c0))" "$TICK" "$run" <<'PY'
import json, sys
s = json.load(open(sys.argv[1])); ticks = int(sys.argv[2]); hz = int(sys.argv[3])
v = s.get("verify") or {}
cpu = ticks / hz
print(f"run {sys.argv[4]}: {s['achieved_rate']:.0f} req/s acked {s['acked']} stored {v.get('stored')} lost {v.get('lost')} "
      f"p50 {s['latency_us']['p50']/1000:.1f} ms p99 {s['latency_us']['p99']/1000:.1f} ms "
      f"app CPU {cpu:.2f} s = {cpu / max(s['acked'], 1) * 1e6:.0f} us/request")
PY
done
