#!/usr/bin/env bash
# Where the CPU goes in one MQTT run: a fresh dynamo-sim (--unlimited) and
# gateway, loadgen's 100 QoS 1 devices for 10 s (1,000 topics), and over
# the 8 s in the middle the CPU ticks (utime+stime, /proc) of each of the
# three processes, out of CLK_TCK × 8 × cores, and the machine's idle and
# softirq ticks over the same 8 s. Every 2 s it prints the machine's idle
# time of those 2 s (the first 2 s include the adaptive rate's ramp-up, when
# the writer waits on its own limit) and the gauges that say what limits
# the rate: queue depth, BatchWriteItem calls in flight and their limit,
# paused device connections. At the end: items
# written and the gateway's peak RSS.
#
# Usage: loadtest/scripts/mqtt-cpu-split.sh ["GATEWAY [ARGS]"]
#   (default target/release/dynamo-ingest; e.g. "/tmp/gw --config x.toml");
#   LOADGEN=PATH runs another loadgen build (default target/release/loadgen)
set -euo pipefail
cd "$(dirname "$0")/../.."
GATEWAY=${1:-target/release/dynamo-ingest}
LOADGEN=${LOADGEN:-target/release/loadgen}
[ -x target/release/dynamo-sim ] && [ -x target/release/loadgen ] ||
  cargo build --release -p dynamo-sim -p loadgen
WORK=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$WORK"' EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
ticks() { awk '{print $14+$15}' "/proc/$1/stat"; }
gauges() {
  curl -s "http://$ADMIN/metrics" |
    grep -E '^dynamo_ingest_(queue_depth|requests_in_flight|concurrency_limit)\{table="IoTSensorData"\}|^dynamo_ingest_mqtt_connections_paused' |
    sed 's/^dynamo_ingest_//; s/{table="IoTSensorData"}//' | tr '\n' ' '
  echo
}

port=$(free_port)
target/release/dynamo-sim --listen "127.0.0.1:$port" --unlimited > "$WORK/sim.log" 2>&1 &
sim=$!
until grep -q listening "$WORK/sim.log"; do sleep 0.1; done
# shellcheck disable=SC2086 # GATEWAY may carry arguments
$GATEWAY --dynamodb-endpoint "http://127.0.0.1:$port" --http-listen 127.0.0.1:0 \
  --admin-listen 127.0.0.1:0 --mqtt-listen 127.0.0.1:0 > "$WORK/gw.out" 2> "$WORK/gw.err" &
gw=$!
until grep -q "dynamo-ingest ready" "$WORK/gw.out"; do sleep 0.1; done
MQTT=$(sed -n 's/.*mqtt=\([^ ]*\).*/\1/p' "$WORK/gw.out")
ADMIN=$(sed -n 's/.*admin=\([^ ]*\).*/\1/p' "$WORK/gw.out")
"$LOADGEN" mqtt --quiet --target "$MQTT" --concurrency 100 --qos 1 \
  --topics-per-device 10 --duration 10s > "$WORK/loadgen.txt" &
lg=$!
sleep 1
s0=$(ticks "$sim") g0=$(ticks "$gw") l0=$(ticks "$lg") m0=$(head -1 /proc/stat)
# The whole machine between two /proc/stat readings m0 and m1 (user nice
# system idle iowait irq softirq steal): loopback's softirq work often
# runs in ksoftirqd, outside the three processes' ticks, so their sum
# alone overstates the idle time.
machine() { awk -v a="${m0}" -v b="${m1}" 'BEGIN { split(a, x); split(b, y); for (i = 2; i <= 9; i++) { d[i] = y[i] - x[i]; t += d[i] } printf "machine: idle %d, softirq %d, total %d ticks", d[5], d[8], t }'; }
prev=$m0
for _ in 1 2 3 4; do
  sleep 2
  now=$(head -1 /proc/stat)
  echo "$(m0=$prev m1=$now machine) | $(gauges)"
  prev=$now
done
s1=$(ticks "$sim") g1=$(ticks "$gw") l1=$(ticks "$lg") m1=$(head -1 /proc/stat)
wait "$lg"
rss=$(awk '/VmHWM/ {print $2}' "/proc/$gw/status")
written=$(curl -s "http://$ADMIN/metrics" | awk '$1 ~ "^dynamo_ingest_items_written_total" {s+=$2} END {printf "%d", s}')
# Stop the gateway before the simulator: it drains its full queue (about a
# second) instead of dead-lettering it into ./dead-letter.ndjson at its
# shutdown deadline, as it did when both were killed at once.
kill -TERM "$gw"
wait "$gw" 2>/dev/null || true
echo "$(machine)"
echo "ticks over 8 s (of $(($(getconf CLK_TCK) * 8 * $(nproc)))): dynamo-sim $((s1 - s0)), gateway $((g1 - g0)), loadgen $((l1 - l0)); written by the end of the load: $written; gateway peak RSS $((rss / 1024)) MiB"
