#!/usr/bin/env bash
# Fig. 7: log10 buffer samples against epochs under persistence, ScaDLES and DDL.
# Built from the shared runs (paper_shared_runs in lib.sh; finished ones are reused).
# Usage: see scripts/paper/lib.sh.
source "$(dirname "$0")/lib.sh"
paper_init fig7 "$@"
paper_config "$ROOT/configs/paper-quick-resnet152.toml" "$ROOT/configs/paper-quick-vgg19.toml"
paper_shared_runs
paper_run "$BIN" report fig7 --runs "$RUNS" --out "$OUT" --scale "$SCALE"
paper_done
