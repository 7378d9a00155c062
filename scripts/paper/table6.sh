#!/usr/bin/env bash
# Table VI: per rate set and model, ScaDLES (all techniques) against the paper's DDL: accuracy
# drop at convergence, buffer reduction in GB, speedup to the target.
# Built from the shared runs (paper_shared_runs in lib.sh; finished ones are reused).
# Usage: see scripts/paper/lib.sh.
source "$(dirname "$0")/lib.sh"
paper_init table6 "$@"
paper_config "$ROOT/configs/paper-quick-resnet152.toml" "$ROOT/configs/paper-quick-vgg19.toml"
paper_shared_runs
paper_run "$BIN" report table6 --runs "$RUNS" --out "$OUT" --scale "$SCALE"
paper_done
