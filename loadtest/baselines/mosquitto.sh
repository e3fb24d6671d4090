#!/usr/bin/env bash
# The MQTT ceiling for docs/PERFORMANCE.md: a bare mosquitto broker (Debian's
# package) on an ephemeral loopback port, with the same publishers loadgen
# uses against the gateway (N devices, one connection each, QoS 1, closed
# loop) plus one subscriber on sensors/+/telemetry counting deliveries: the
# broker's publish→subscribe rate. Also shows loadgen's MQTT mode works
# against any broker.
#
# max_inflight_messages 0: no cap on QoS 1 deliveries awaiting the
# subscriber's PUBACK. Mosquitto's default (20) held the subscriber to
# ≈ 10,400 msg/s while the publishers got ≈ 52,000 PUBACKs/s, and the
# broker dropped what overflowed max_queued_messages (in one run 105,432
# of 535,802 acknowledged messages were delivered): a lossy ceiling.
# Without the cap every acknowledged message is delivered (2026-11-29:
# 37,379 and 30,231 msg/s published = delivered, 100 devices, QoS 1).
#
# Usage: loadtest/baselines/mosquitto.sh [DURATION=10s] [RUNS=3] [DEVICES=100] [QOS=1]
# (env TOPICS_PER_DEVICE=N: each device publishes to N topics in turn;
# LOADGEN=PATH: another loadgen build, default target/release/loadgen)
# Needs: apt-get install -y mosquitto
set -euo pipefail
cd "$(dirname "$0")/../.."
DURATION=${1:-10s}
RUNS=${2:-3}
DEVICES=${3:-100}
QOS=${4:-1}
MOSQ=$(command -v mosquitto || echo /usr/sbin/mosquitto)
[ -x "$MOSQ" ] || { echo "needs mosquitto (apt-get install -y mosquitto)"; exit 1; }
LOADGEN=${LOADGEN:-target/release/loadgen}
[ -x "$LOADGEN" ] || cargo build --release -p loadgen
WORK=$(mktemp -d)
PID=""
trap '[ -n "$PID" ] && kill "$PID" 2>/dev/null; rm -rf "$WORK"' EXIT
PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
cat > "$WORK/mosquitto.conf" <<CONF
listener $PORT 127.0.0.1
allow_anonymous true
persistence false
max_queued_messages 100000
max_inflight_messages 0
CONF
"$MOSQ" -c "$WORK/mosquitto.conf" > "$WORK/mosquitto.log" 2>&1 &
PID=$!
for _ in $(seq 1 100); do (echo > "/dev/tcp/127.0.0.1/$PORT") 2>/dev/null && break; sleep 0.1; done
TICK=$(getconf CLK_TCK)
for run in $(seq 1 "$RUNS"); do
  c0=$(awk '{print $14+$15}' "/proc/$PID/stat")
  "$LOADGEN" mqtt --quiet --target "127.0.0.1:$PORT" --concurrency "$DEVICES" --qos "$QOS" \
    --topics-per-device "${TOPICS_PER_DEVICE:-1}" --duration "$DURATION" --subscribe --summary-json "$WORK/run$run.json" > "$WORK/run$run.txt"
  c1=$(awk '{print $14+$15}' "/proc/$PID/stat")
  python3 - "$WORK/run$run.json" "$((c1 - c0))" "$TICK" "$run" <<'PY'
import json, sys
s = json.load(open(sys.argv[1])); cpu = int(sys.argv[2]) / int(sys.argv[3])
d = s.get("delivered") or 0
lat = s.get("latency_us")  # none for QoS 0: nothing is acknowledged
lat = f"p50 {lat['p50']/1000:.2f} ms p99 {lat['p99']/1000:.2f} ms" if lat else "no acks (QoS 0)"
print(f"run {sys.argv[4]}: published+acked {s['achieved_rate']:.0f} msg/s, delivered {d / s['elapsed_seconds']:.0f} msg/s "
      f"({d} of {s['acked']}), {lat}, "
      f"broker CPU {cpu:.2f} s = {cpu / max(s['acked'], 1) * 1e6:.1f} us/msg")
PY
done
