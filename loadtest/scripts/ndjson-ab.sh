#!/usr/bin/env bash
# Two sets of builds side by side under the NDJSON ack=written scenario
# (loadtest/scenarios/http-ndjson-written.toml: 500 events per POST, 16
# connections, closed loop, dynamo-sim --unlimited), ROUNDS rounds, the
# order alternating (A then B in odd rounds, B then A in even ones). A set
# is "LOADGEN GATEWAY SIM": the loadgen binary runs the scenario and starts
# that gateway and simulator, so any of the three can differ between A and
# B (e.g. only the gateway: the same loadgen and simulator on both sides).
#
# Per run: events/s end to end, the gateway's CPU per event (loadgen's
# report), lost (acked - stored, from --verify), and loadgen's own CPU per
# event: utime+stime of the loadgen process over seconds 3-9 of the run
# (after start-up, before the drain and the read-back), divided by the
# events of that window at the run's rate (an estimate: the rate is the
# whole run's).
#
# Usage: loadtest/scripts/ndjson-ab.sh ROUNDS "LG_A GW_A SIM_A" "LG_B GW_B SIM_B" [DURATION=10s]
# (DURATION of at least 10s: loadgen's CPU is read at seconds 3 and 9.)
#   e.g. loadtest/scripts/ndjson-ab.sh 4 "target/release/loadgen /tmp/gw-old target/release/dynamo-sim" \
#          "target/release/loadgen target/release/dynamo-ingest target/release/dynamo-sim"
set -euo pipefail
cd "$(dirname "$0")/../.."
ROUNDS=${1:?rounds}
A=${2:?"LOADGEN GATEWAY SIM"}
B=${3:?"LOADGEN GATEWAY SIM"}
DURATION=${4:-10s}
TICK=$(getconf CLK_TCK)
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
ticks() { awk '{print $14+$15}' "/proc/$1/stat"; }
run() { # tag loadgen gateway sim
  local tag=$1 lg=$2 gw=$3 sim=$4
  "$lg" run loadtest/scenarios/http-ndjson-written.toml --duration "$DURATION" --quiet \
    --out "$WORK/$tag" --gateway-bin "$gw" --sim-bin "$sim" > "$WORK/$tag.log" 2>&1 &
  local pid=$! c0 c1
  sleep 3; c0=$(ticks "$pid")
  sleep 6; c1=$(ticks "$pid")
  wait "$pid" || true
  awk -v tag="$tag" -v ticks=$((c1 - c0)) -v hz="$TICK" '
    /achieved rate/ {rate = $3}
    /gateway CPU/ {cpu = $3}
    /^verify/ {lost = $5}
    END {printf "%-4s %8d events/s  gateway %5.2f us/event  loadgen %5.2f us/event  lost %s\n",
         tag, rate, cpu, (rate > 0 ? ticks / hz * 1e6 / (rate * 6) : 0), lost}' "$WORK/$tag.log"
}
# shellcheck disable=SC2086 # each set is three words
for r in $(seq 1 "$ROUNDS"); do
  if [ $((r % 2)) -eq 1 ]; then run "A$r" $A; run "B$r" $B; else run "B$r" $B; run "A$r" $A; fi
done
