#!/usr/bin/env bash
# MQTT end to end, side by side with a bare broker. loadgen's simulated
# devices (one connection each, closed loop, 1,000 topics = partition keys
# in all: `--topics-per-device` 1000/DEVICES) publish sensor readings to the
# gateway's embedded broker, which writes them into dynamo-sim with
# unlimited capacity; then the same publishers against a bare mosquitto
# broker with one subscriber (loadtest/baselines/mosquitto.sh), in the same
# run. For each of QoS 0/1 × 1/100 devices and each run, a fresh dynamo-sim
# and gateway, so no phase inherits another's backlog.
#
# Gateway columns: acked/s (PUBACKs, QoS 1; QoS 0: handed to the socket),
# end-to-end = items written ÷ (load + drain until every received message
# is written), gateway CPU (utime+stime from /proc, load + drain) per
# written message. Mosquitto: delivered/s at its subscriber, broker CPU per
# delivered message.
#
# QoS 0 has no flow control but TCP's: closed-loop devices fill the
# kernel's socket buffers (megabytes per connection on loopback) far
# faster than anything drains them, so a QoS 0 cell is bounded by count
# (QOS0_COUNT, default 1,000,000 messages) as well as by duration, and
# its end-to-end rate is that count over the time until all are written.
#
# Usage: loadtest/scripts/mqtt-load.sh [DURATION_SECONDS=10] [RUNS=3]
# CELLS="QOS:DEVICES ..." picks cells (default "0:1 0:100 1:1 1:100");
# BIN=PATH runs another gateway build (default target/release/dynamo-ingest),
# LOADGEN=PATH another loadgen build (default target/release/loadgen),
# SIM=PATH another dynamo-sim build (default target/release/dynamo-sim).
set -euo pipefail
cd "$(dirname "$0")/../.."
DURATION=${1:-10}
RUNS=${2:-3}
CELLS=${CELLS:-0:1 0:100 1:1 1:100}
BIN=${BIN:-target/release/dynamo-ingest}
LOADGEN=${LOADGEN:-target/release/loadgen}
QOS0_COUNT=${QOS0_COUNT:-1000000}
SIM=${SIM:-target/release/dynamo-sim}
[ -x "$BIN" ] && [ -x "$SIM" ] || cargo build --release -p dynamo-ingest -p dynamo-sim
[ -x "$LOADGEN" ] || cargo build --release -p loadgen
WORK=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$WORK"' EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
cpu_ticks() { awk '{print $14+$15}' "/proc/$1/stat"; }
metric() { curl -s "http://$ADMIN/metrics" | awk -v m="$1" '$1 ~ "^"m {s+=$2} END {printf "%d", s}'; }
TICK=$(getconf CLK_TCK)

phase() { # qos devices
  local qos=$1 devices=$2 dport gw sim t0 c0 c1 t1 w r
  dport=$(free_port)
  "$SIM" --listen "127.0.0.1:$dport" --unlimited > "$WORK/backend.log" 2>&1 &
  sim=$!
  until grep -q listening "$WORK/backend.log"; do sleep 0.1; done
  "$BIN" --dynamodb-endpoint "http://127.0.0.1:$dport" --http-listen 127.0.0.1:0 --admin-listen 127.0.0.1:0 \
    --mqtt-listen 127.0.0.1:0 > "$WORK/gw.out" 2> "$WORK/gw.err" &
  gw=$!
  until grep -q "dynamo-ingest ready" "$WORK/gw.out"; do sleep 0.1; done
  MQTT=$(sed -n 's/.*mqtt=\([^ ]*\).*/\1/p' "$WORK/gw.out")
  ADMIN=$(sed -n 's/.*admin=\([^ ]*\).*/\1/p' "$WORK/gw.out")
  t0=$(date +%s.%N); c0=$(cpu_ticks "$gw")
  local count=()
  [ "$qos" = 0 ] && count=(--count "$QOS0_COUNT")
  "$LOADGEN" mqtt --quiet --target "$MQTT" --concurrency "$devices" --qos "$qos" "${count[@]}" \
    --topics-per-device $((1000 / devices)) --duration "${DURATION}s" --summary-json "$WORK/s.json" > "$WORK/s.txt"
  # Drain (bounded): every message the front forwarded is written (QoS 0
  # messages still in socket buffers keep arriving: read both each time).
  for _ in $(seq 1 1200); do
    r=$(metric dynamo_ingest_mqtt_messages_received_total)
    w=$(metric dynamo_ingest_items_written_total)
    [ "$w" -ge "$r" ] && break
    sleep 0.1
  done
  t1=$(date +%s.%N); c1=$(cpu_ticks "$gw")
  python3 - "$WORK/s.json" "$w" "$r" "$((c1 - c0))" "$TICK" "$qos" "$devices" "$t0" "$t1" <<'PY'
import json, sys
s = json.load(open(sys.argv[1])); w, r = int(sys.argv[2]), int(sys.argv[3])
cpu = int(sys.argv[4]) / int(sys.argv[5]); wall = float(sys.argv[9]) - float(sys.argv[8])
lat = s.get("latency_us")  # none for QoS 0: nothing is acknowledged
lat = f"PUBACK p50 {lat['p50']/1000:.2f} ms p99 {lat['p99']/1000:.2f} ms" if lat else "no acks (QoS 0)"
print(f"  gateway   QoS {sys.argv[6]} {int(sys.argv[7]):>3} devices: {s['achieved_rate']:>7.0f} acked/s, "
      f"end to end {w / wall:>7.0f}/s ({w} of {r} written in {wall:.1f} s), {lat}, "
      f"CPU {cpu:.2f} s = {cpu / max(w, 1) * 1e6:.1f} us/msg")
PY
  kill -TERM "$gw" "$sim"; wait "$gw" "$sim" 2>/dev/null || true
}

for run in $(seq 1 "$RUNS"); do
  echo "run $run"
  for cell in $CELLS; do
    qos=${cell%%:*} devices=${cell##*:}
    phase "$qos" "$devices"
    LOADGEN="$LOADGEN" TOPICS_PER_DEVICE=$((1000 / devices)) \
      loadtest/baselines/mosquitto.sh "${DURATION}s" 1 "$devices" "$qos" 2>&1 \
      | sed -n "s/^run 1: /  mosquitto QoS $qos $(printf '%3d' "$devices") devices: /p"
  done
done
