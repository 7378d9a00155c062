#!/usr/bin/env bash
# Table IV: ScaDLES buffer (samples) under persistence and truncation at the target, and the
# reduction factor.
# Built from the shared runs (paper_shared_runs in lib.sh; finished ones are reused).
# Usage: see scripts/paper/lib.sh.
source "$(dirname "$0")/lib.sh"
paper_init table4 "$@"
paper_config "$ROOT/configs/paper-quick-resnet152.toml" "$ROOT/configs/paper-quick-vgg19.toml"
paper_shared_runs
paper_run "$BIN" report table4 --runs "$RUNS" --out "$OUT" --scale "$SCALE"
paper_done
