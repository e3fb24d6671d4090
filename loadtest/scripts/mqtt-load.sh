#!/usr/bin/env bash
# MQTT end to end: loadgen's simulated devices (one connection each,
# closed loop) publish sensor readings to the gateway's embedded broker,
# which writes them into dynamo-sim with unlimited capacity. For each of
# QoS 0/1 × 1/100 devices: messages/s acknowledged by the broker (QoS 1) or
# sent (QoS 0), messages written to the table, and the gateway's CPU per
# message (utime+stime from /proc, including draining after the load).
# Then the same publishers against a bare mosquitto broker with one
# subscriber (loadtest/baselines/mosquitto.sh): the publish→subscribe ceiling.
#
# Usage: loadtest/scripts/mqtt-load.sh [DURATION_SECONDS=10] [RUNS=3]
set -euo pipefail
cd "$(dirname "$0")/../.."
DURATION=${1:-10}
RUNS=${2:-3}
BIN=target/release/dynamo-ingest
LOADGEN=${LOADGEN:-target/release/loadgen}
[ -x "$BIN" ] && [ -x target/release/dynamo-sim ] || cargo build --release -p dynamo-ingest -p dynamo-sim
[ -x "$LOADGEN" ] || cargo build --release -p loadgen
WORK=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$WORK"' EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
cpu_ticks() { awk '{print $14+$15}' "/proc/$1/stat"; }
metric() { curl -s "http://$ADMIN/metrics" | awk -v m="$1" '$1 ~ "^"m {s+=$2} END {printf "%d", s}'; }

DPORT=$(free_port)
target/release/dynamo-sim --listen "127.0.0.1:$DPORT" --unlimited > "$WORK/backend.log" 2>&1 &
until grep -q listening "$WORK/backend.log"; do sleep 0.1; done
"$BIN" --dynamodb-endpoint "http://127.0.0.1:$DPORT" --http-listen 127.0.0.1:0 --admin-listen 127.0.0.1:0 --mqtt-listen 127.0.0.1:0 \
  > "$WORK/gw.out" 2> "$WORK/gw.err" &
GW=$!
until grep -q "dynamo-ingest ready" "$WORK/gw.out"; do sleep 0.1; done
MQTT=$(sed -n 's/.*mqtt=\([^ ]*\).*/\1/p' "$WORK/gw.out")
ADMIN=$(sed -n 's/.*admin=\([^ ]*\).*/\1/p' "$WORK/gw.out")
TICK=$(getconf CLK_TCK)

phase() { # qos devices
  local qos=$1 devices=$2 c0 w0 c1 w1
  c0=$(cpu_ticks $GW); w0=$(metric dynamo_ingest_items_written_total)
  "$LOADGEN" mqtt --quiet --target "$MQTT" --concurrency "$devices" --qos "$qos" --keys 1000 \
    --duration "${DURATION}s" --summary-json "$WORK/s.json" > "$WORK/s.txt"
  # Wait until everything acknowledged is written, so its CPU is counted.
  local r; r=$(metric 'dynamo_ingest_events_received_total')
  until [ "$(metric dynamo_ingest_items_written_total)" -ge "$r" ]; do sleep 0.2; done
  c1=$(cpu_ticks $GW); w1=$(metric dynamo_ingest_items_written_total)
  python3 - "$WORK/s.json" "$((w1 - w0))" "$((c1 - c0))" "$TICK" "$qos" "$devices" <<'PY'
import json, sys
s = json.load(open(sys.argv[1])); w = int(sys.argv[2]); cpu = int(sys.argv[3]) / int(sys.argv[4])
print(f"QoS {sys.argv[5]} {int(sys.argv[6]):>3} devices: {s['achieved_rate']:>8.0f} msg/s sent/acked, "
      f"written {w} ({w / s['elapsed_seconds']:.0f}/s), p50 {s['latency_us']['p50']/1000:.2f} ms p99 {s['latency_us']['p99']/1000:.2f} ms, "
      f"gateway CPU {cpu:.2f} s = {cpu / max(w, 1) * 1e6:.1f} us/msg")
PY
}

for run in $(seq 1 "$RUNS"); do
  echo "run $run (gateway → dynamo-sim --unlimited)"
  for qos in 0 1; do for devices in 1 100; do phase "$qos" "$devices"; done; done
done
echo "dead letters: $(metric dynamo_ingest_mqtt_dead_letters_total), unroutable: $(metric dynamo_ingest_mqtt_messages_unroutable_total)"
kill -TERM $GW; wait $GW || true
for qos in 0 1; do for devices in 1 100; do
  echo "bare mosquitto, QoS $qos, $devices devices:"
  LOADGEN="$LOADGEN" loadtest/baselines/mosquitto.sh "${DURATION}s" "$RUNS" "$devices" "$qos" 2>&1 | grep '^run'
done; done
