#!/usr/bin/env bash
# Direct request path vs the SDK path, side by side: the NDJSON bulk
# scenario (500 events per POST, 4 connections, closed loop, ack=queued,
# dynamo-sim --unlimited) against the same release gateway with
# `[dynamodb] request_path = "direct"` (the default config) and with
# `"sdk"`, alternating, RUNS times. Prints acked events/s, gateway CPU per
# event (whole run, drain included) and the verify result per run.
# (The glibc-vs-mimalloc rows in docs/PERFORMANCE.md were taken the same
# way with a second build whose main.rs had no #[global_allocator].)
#
# Usage: loadtest/scripts/request-path-ab.sh [DURATION=10s] [RUNS=3]
set -euo pipefail
cd "$(dirname "$0")/../.."
DURATION=${1:-10s}
RUNS=${2:-3}
[ -x target/release/dynamo-ingest ] && [ -x target/release/loadgen ] && [ -x target/release/dynamo-sim ] \
  || cargo build --release -p dynamo-ingest -p dynamo-sim -p loadgen
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
sed 's/^request_path = "direct"/request_path = "sdk"/' config/default.toml > "$WORK/sdk.toml"
grep -q '^request_path = "sdk"' "$WORK/sdk.toml" || { echo "no request_path line in config/default.toml"; exit 2; }
for run in $(seq 1 "$RUNS"); do
  for path in direct sdk; do
    cfg=config/default.toml; [ "$path" = sdk ] && cfg="$WORK/sdk.toml"
    out="$WORK/$path-$run"
    target/release/loadgen run loadtest/scenarios/http-ndjson.toml --duration "$DURATION" --quiet \
      --base-config "$cfg" --out "$out" > "$out.txt" 2>&1 || true
    printf '%-6s run %s: %s | %s | %s\n' "$path" "$run" \
      "$(grep 'achieved rate' "$out.txt" | tr -s ' ')" \
      "$(grep 'gateway CPU' "$out.txt" | tr -s ' ')" \
      "$(grep '^verify' "$out.txt" | tr -s ' ')"
  done
done
