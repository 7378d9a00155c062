#!/usr/bin/env bash
# The main job on its embedded default: ScaDLES and conventional DDL side by side on 4 ranks
# (tinycnn, synthetic stream, heterogeneous S'1-like rates, virtual clock, CPU). Prints the
# time-to-target of both and the speedup; the run directory gets both runs and a plot.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/setup.sh
NP=${NP:-4}
OUT=${OUT:-results/runs/demo-$(date -u +%Y%m%d-%H%M%S)}
./scripts/mpirun.sh "$NP" target/release/scadles compare --config configs/demo.toml --out "$OUT" "$@"
