#!/usr/bin/env bash
# Sparse (index, value) exchange against dense allreduce for a ResNet152-sized gradient
# (60,192,808 f32) at 2 and 4 ranks: time per call and bytes moved.  scripts/bench_exchange.sh [REPS]
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
REPS=${1:-5}
BIN="$ROOT/target/release/scadles"
[ -x "$BIN" ] || (cd "$ROOT" && cargo build --release)
for NP in 2 4; do
  echo "== $NP ranks ($(mpirun --version 2>&1 | head -1))"
  "$ROOT/scripts/mpirun.sh" "$NP" "$BIN" bench exchange --reps "$REPS"
done
