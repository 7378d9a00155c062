#!/usr/bin/env bash
# The main job: ScaDLES and the paper's conventional DDL side by side on 16 ranks (the paper's
# device count) on Fashion-MNIST, S'1 stream rates, the paper-calibrated virtual clock, CPU
# (configs/demo.toml says why each setting). Prints the time-to-target of both and the speedup; the
# run directory gets both runs, comparison.json and a plot. NP=4 ./scripts/demo.sh runs fewer
# ranks; without Fashion-MNIST (no apt) it falls back to the synthetic set.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/setup.sh
NP=${NP:-16}
OUT=${OUT:-results/runs/demo-$(date -u +%Y%m%d-%H%M%S)}
. scripts/lib/detect.sh
DATA=()
if ! detect_fashion_mnist >/dev/null; then
  echo "demo: Fashion-MNIST is not installed: training on the synthetic set instead" >&2
  DATA=(--dataset synthetic)
fi
./scripts/mpirun.sh "$NP" target/release/scadles compare --config configs/demo.toml --out "$OUT" "${DATA[@]}" "$@"
