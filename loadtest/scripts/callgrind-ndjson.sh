#!/usr/bin/env bash
# Instructions per event of one or more gateway builds, counted by valgrind's
# callgrind: deterministic where wall-clock CPU on this shared machine
# varies by ±5-8 % from run to run. Per build: dynamo-sim --unlimited (not
# under valgrind), the gateway under callgrind, 5,000 NDJSON events to warm
# up (connections, first allocations), counters zeroed, then N events (500
# per POST, 4 connections, ack=written), a dump, and Ir ÷ N. The dump stays
# in OUT/NAME/ for callgrind_annotate (e.g. --inclusive=yes).
#
# Caveat: valgrind's CPU has no SHA extensions, so SigV4's SHA-256 runs in
# software there (about 9,500 instructions per event, in every build); on
# the machine it uses SHA-NI and is a few per cent of the gateway's CPU.
#
# LOAD=mqtt counts the MQTT path instead: N QoS 1 sensor messages from
# loadgen's 20 devices (10 topics each, closed loop), after 5,000 to warm
# up; the dump waits until they are written (a PUBACK means queued).
# LOAD=single counts single-event POSTs (`/upload_data`, the seed route,
# ack=queued, 16 connections), likewise counted until written.
#
# PROFILE=sim counts dynamo-sim instead: each BIN is a simulator build,
# run under callgrind behind target/release/dynamo-ingest (native); the
# figure is then instructions per stored item.
#
# Usage: [LOAD=mqtt|single] [PROFILE=sim] loadtest/scripts/callgrind-ndjson.sh OUT N BIN [BIN...]
#   e.g. cp target/release/dynamo-ingest /tmp/gw-old; (rebuild);
#        loadtest/scripts/callgrind-ndjson.sh /tmp/cg 50000 /tmp/gw-old target/release/dynamo-ingest
set -euo pipefail
cd "$(dirname "$0")/../.."
[ $# -ge 3 ] || { sed -n '2,26p' "$0"; exit 2; }
command -v valgrind >/dev/null || { echo "needs valgrind (apt-get install valgrind)"; exit 1; }
OUT=$1
N=$2
shift 2
[ -x target/release/dynamo-sim ] && [ -x target/release/loadgen ] || cargo build --release -p dynamo-sim -p loadgen
mkdir -p "$OUT"
WORK=$(mktemp -d)
PIDS=()
trap 'for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done; rm -rf "$WORK"' EXIT
wait_line() { for _ in $(seq 1 600); do grep -q "$2" "$1" && return 0; sleep 0.2; done; echo "no '$2' in $1"; exit 1; }

i=0
for BIN in "$@"; do
  i=$((i + 1))
  NAME="$i-$(basename "$BIN")"
  DIR="$OUT/$NAME"
  rm -rf "$DIR" && mkdir -p "$DIR"
  # PROFILE=sim: BIN is a simulator build, counted under callgrind behind
  # the current gateway; otherwise BIN is the gateway, the simulator native.
  if [ "${PROFILE:-gateway}" = sim ]; then
    SIM_BIN=$BIN; GW_BIN=target/release/dynamo-ingest
    SIM_CMD=(valgrind --tool=callgrind --callgrind-out-file="$DIR/callgrind.out.%p")
    GW_CMD=()
  else
    SIM_BIN=target/release/dynamo-sim; GW_BIN=$BIN
    SIM_CMD=()
    GW_CMD=(valgrind --tool=callgrind --callgrind-out-file="$DIR/callgrind.out.%p")
  fi
  "${SIM_CMD[@]}" "$SIM_BIN" --listen 127.0.0.1:0 --unlimited > "$WORK/sim.out" 2> "$WORK/sim.err" &
  SIM_PID=$!; PIDS+=("$SIM_PID")
  wait_line "$WORK/sim.out" listening
  SIM=$(grep -o 'http://[0-9.:]*' "$WORK/sim.out" | head -1)
  sed -e 's/"127.0.0.1:8080"/"127.0.0.1:0"/' -e 's/"127.0.0.1:9464"/"127.0.0.1:0"/' \
      -e 's/"127.0.0.1:1883"/"127.0.0.1:0"/' \
      -e "s|^path = \"dead-letter.ndjson\"|path = \"$WORK/dead-letter.ndjson\"|" config/default.toml > "$WORK/gw.toml"
  RUST_LOG=warn "${GW_CMD[@]}" \
    "$GW_BIN" --config "$WORK/gw.toml" --dynamodb-endpoint "$SIM" > "$WORK/gw.out" 2> "$WORK/gw.err" &
  GW_PID=$!; PIDS+=("$GW_PID")
  wait_line "$WORK/gw.out" "dynamo-ingest ready"
  HTTP=$(sed -n 's/.*http=\([^ ]*\).*/\1/p' "$WORK/gw.out")
  MQTT=$(sed -n 's/.*mqtt=\([^ ]*\).*/\1/p' "$WORK/gw.out")
  if [ "${LOAD:-ndjson}" = mqtt ]; then
    load() { target/release/loadgen mqtt --target "$MQTT" --qos 1 --concurrency 20 \
               --topics-per-device 10 --count "$1" --duration 600s > "$2" 2>&1; }
  elif [ "${LOAD:-ndjson}" = single ]; then
    load() { target/release/loadgen http --target "$HTTP" --route seed --batch 1 --concurrency 16 \
               --ack queued --count "$1" --duration 600s --keys 1000 > "$2" 2>&1; }
  else
    load() { target/release/loadgen http --target "$HTTP" --route stream --batch 500 --concurrency 4 \
               --ack written --count "$1" --duration 600s --keys 1000 > "$2" 2>&1; }
  fi
  load 5000 "$DIR/warm-up.txt"
  PROFILED=$GW_PID; [ "${PROFILE:-gateway}" = sim ] && PROFILED=$SIM_PID
  callgrind_control -z "$PROFILED" > /dev/null 2>&1
  load "$N" "$DIR/loadgen.txt"
  # MQTT is acknowledged once queued: count the writing too before the dump
  # (asking the simulator, so the gateway's instructions stay its own).
  written() { curl -s "$SIM/__sim/stats" | grep -o '"admitted_items": *[0-9]*' |
    awk -F: '{s+=$2} END {printf "%d", s}'; }
  for _ in $(seq 1 3000); do [ "$(written)" -ge $((N + 5000)) ] && break; sleep 0.2; done
  callgrind_control -d "$PROFILED" > /dev/null 2>&1
  kill "$GW_PID" "$SIM_PID" 2>/dev/null || true
  wait "$GW_PID" "$SIM_PID" 2>/dev/null || true
  DUMP=$(ls "$DIR"/callgrind.out.*.1)
  IR=$(awk '/^summary:/ {print $2; exit}' "$DUMP")
  echo "$NAME: $IR instructions for $N ${LOAD:-ndjson} events = $((IR / N)) per event"
done
