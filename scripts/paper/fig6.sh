#!/usr/bin/env bash
# Fig. 6: accuracy against clock hours, ScaDLES against DDL, one panel per rate set.
# Built from the shared runs (paper_shared_runs in lib.sh; finished ones are reused).
# Usage: see scripts/paper/lib.sh.
source "$(dirname "$0")/lib.sh"
paper_init fig6 "$@"
paper_config "$ROOT/configs/paper-quick-resnet152.toml" "$ROOT/configs/paper-quick-vgg19.toml"
paper_shared_runs
paper_run "$BIN" report fig6 --runs "$RUNS" --out "$OUT" --scale "$SCALE"
paper_done
