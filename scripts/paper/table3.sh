#!/usr/bin/env bash
# Table III: models (torchvision shape, 1000-way head), parameter counts, devices and labels per
# device from our partitioner, against the paper's.
# Analytic: --scale smoke, quick and paper give the same files. Usage: see scripts/paper/lib.sh.
source "$(dirname "$0")/lib.sh"
paper_init table3 "$@"
paper_run "$BIN" report table3 --out "$OUT" --scale "$SCALE"
paper_done
