#!/usr/bin/env bash
# Single-event HTTP, side by side in one run: wrk against the bare hyper
# server (the ceiling) and against the gateway's /upload_data with
# ack=queued, same body, same connections, alternating, RUNS times. The
# gateway writes into dynamo-sim --unlimited. Reports requests/s answered
# 2xx, requests/s refused (503 when the queue is full), gateway CPU per
# accepted event (utime+stime from /proc, load phase only, and split into
# user and kernel time) and RSS.
#
# Usage: loadtest/baselines/http-ceiling.sh [DURATION_SECONDS=10] [RUNS=3] [CONNECTIONS=32] [THREADS=2]
#
# GATEWAY="CMD" replaces the gateway command (default
# target/release/dynamo-ingest); GATEWAY_B="CMD" adds a second gateway,
# loaded after the first in odd runs and before it in even runs (an A/B of
# two builds or settings, e.g. GATEWAY_B="env TOKIO_WORKER_THREADS=1
# /tmp/other-build"; use an even RUNS for a balanced order).
set -euo pipefail
cd "$(dirname "$0")/../.."
DURATION=${1:-10}
RUNS=${2:-3}
CONNS=${3:-32}
THREADS=${4:-2}
command -v wrk >/dev/null || { echo "needs wrk (apt-get install wrk)"; exit 1; }
for b in dynamo-ingest dynamo-sim bare-hyper; do [ -x "target/release/$b" ] || NEED=1; done
[ -z "${NEED:-}" ] || cargo build --release -p dynamo-ingest -p dynamo-sim -p bare-hyper
WORK=$(mktemp -d)
PIDS=()
trap 'for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done; rm -rf "$WORK"' EXIT
wait_line() { for _ in $(seq 1 300); do grep -q "$2" "$1" && return 0; sleep 0.1; done; echo "no '$2' in $1"; exit 1; }

target/release/bare-hyper 127.0.0.1:0 > "$WORK/hyper.out" 2>&1 &
HYPER_PID=$!; PIDS+=($HYPER_PID)
target/release/dynamo-sim --listen 127.0.0.1:0 --unlimited > "$WORK/sim.out" 2>&1 &
PIDS+=($!)
wait_line "$WORK/hyper.out" listening; wait_line "$WORK/sim.out" listening
HYPER=$(grep -o 'http://[0-9.:]*' "$WORK/hyper.out" | head -1)
SIM=$(grep -o 'http://[0-9.:]*' "$WORK/sim.out" | head -1)
start_gateway() { # name command: sets GW, HTTP, ADMIN
  sed -e 's/"127.0.0.1:8080"/"127.0.0.1:0"/' -e 's/"127.0.0.1:9464"/"127.0.0.1:0"/' \
      -e 's/"127.0.0.1:1883"/"127.0.0.1:0"/' \
      -e "s|^path = \"dead-letter.ndjson\"|path = \"$WORK/$1-dead-letter.ndjson\"|" config/default.toml > "$WORK/$1.toml"
  # shellcheck disable=SC2086 # the command may carry words (env VAR=...)
  RUST_LOG=warn $2 --config "$WORK/$1.toml" --dynamodb-endpoint "$SIM" > "$WORK/$1.out" 2> "$WORK/$1.err" &
  GW=$!; PIDS+=($GW)
  wait_line "$WORK/$1.out" "dynamo-ingest ready"
  HTTP=$(sed -n 's/.*http=\([^ ]*\).*/\1/p' "$WORK/$1.out")
  ADMIN=$(sed -n 's/.*admin=\([^ ]*\).*/\1/p' "$WORK/$1.out")
}
NAMES=(gateway)
start_gateway gateway "${GATEWAY:-target/release/dynamo-ingest}"
GWS=("$GW"); HTTPS=("$HTTP"); ADMINS=("$ADMIN")
if [ -n "${GATEWAY_B:-}" ]; then
  NAMES=(gatewayA gatewayB)
  start_gateway gatewayB "$GATEWAY_B"
  GWS+=("$GW"); HTTPS+=("$HTTP"); ADMINS+=("$ADMIN")
fi
TICK=$(getconf CLK_TCK)
cat > "$WORK/single.lua" <<'LUA'
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
-- 1,000 devices (partition keys) in turn: one device alone is held to
-- DynamoDB's 1,000 WCU/s per partition key, which would measure the queue.
local n = 0
request = function()
  n = n + 1
  return wrk.format(nil, nil, nil,
    string.format('{"device_id":"ceiling-D%03d","temperature":30.5,"humidity":67}', n % 1000))
end
LUA
cpu() { awk '{print $14+$15}' "/proc/$1/stat"; }
ucpu() { awk '{print $14}' "/proc/$1/stat"; }
rss() { awk '/VmRSS/ {printf "%.1f", $2/1024}' "/proc/$1/status"; }
queue() { curl -s "http://$1/metrics" | awk '$1 ~ /^dynamo_ingest_queue_depth/ {s+=$2} END {printf "%d", s}'; }
phase() { # name url pid
  local c0 c1 u0 u1 out reqs non2xx ok
  c0=$(cpu "$3"); u0=$(ucpu "$3")
  out=$(wrk -t"$THREADS" -c"$CONNS" -d"${DURATION}s" -s "$WORK/single.lua" "$2")
  c1=$(cpu "$3"); u1=$(ucpu "$3")
  reqs=$(echo "$out" | awk '/Requests\/sec/ {print $2}')
  non2xx=$(echo "$out" | awk '/Non-2xx/ {print $5}'); non2xx=${non2xx:-0}
  awk -v n="$1" -v r="$reqs" -v x="$non2xx" -v d="$DURATION" -v c=$((c1 - c0)) -v t="$TICK" -v m="$(rss "$3")" -v u=$((u1 - u0)) \
    'BEGIN { ok = r - x/d; per = (ok>0 ? 1/(ok*d)*1e6 : 0); printf "%-9s 2xx/s %9.0f  refused/s %8.0f  server CPU %5.2f s  %5.2f us/accepted (user %5.2f, kernel %5.2f)  RSS %s MiB\n", n, ok, x/d, c/t, c/t*per, u/t*per, (c-u)/t*per, m }'
}
for run in $(seq 1 "$RUNS"); do
  echo "run $run (wrk -t$THREADS -c$CONNS -d${DURATION}s)"
  phase hyper "$HYPER/upload_data" "$HYPER_PID"
  # With two gateways, even runs load B first: on this machine the second
  # gateway of a round measured slower whichever build it was.
  ORDER=("${!GWS[@]}")
  if [ "${#GWS[@]}" -eq 2 ] && [ $((run % 2)) -eq 0 ]; then ORDER=(1 0); fi
  for i in "${ORDER[@]}"; do
    phase "${NAMES[$i]}" "http://${HTTPS[$i]}/upload_data?ack=queued" "${GWS[$i]}"
    # Let the gateway drain its queue before the next phase (bounded: 120 s).
    for _ in $(seq 1 600); do [ "$(queue "${ADMINS[$i]}")" = "0" ] && break; sleep 0.2; done
  done
done
