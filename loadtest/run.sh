#!/usr/bin/env bash
# One entry point for the load scenarios: builds the release binaries once
# (gateway, dynamo-sim, loadgen), then runs loadtest/scenarios/NAME.toml and
# writes loadtest/reports/NAME-UNIXTIME/ (summary.md + charts).
#
# Usage: loadtest/run.sh NAME [loadgen run flags, e.g. --duration 20s --out DIR]
#        loadtest/run.sh            (lists the scenarios)
set -euo pipefail
cd "$(dirname "$0")/.."
if [ $# -eq 0 ]; then
  echo "usage: loadtest/run.sh SCENARIO [--duration D] [--out DIR]"
  echo "scenarios:"; for f in loadtest/scenarios/*.toml; do echo "  $(basename "$f" .toml)"; done
  exit 64
fi
NAME=$1; shift
FILE=loadtest/scenarios/$NAME.toml
[ -f "$FILE" ] || { echo "no scenario $FILE"; exit 64; }
# Cargo only rebuilds what changed; --release binaries are what we measure.
cargo build --release -p dynamo-ingest -p dynamo-sim -p loadgen
exec target/release/loadgen run "$FILE" "$@"
