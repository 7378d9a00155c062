#!/usr/bin/env bash
# Fig. 1: latency for each of 16 devices to collect 64/128/256/512 samples per rate set (constant
# and Poisson arrival); violins fig1a (S1 vs S2) and fig1b (S'1 vs S'2), the paper's maxima beside ours.
# Analytic: --scale smoke, quick and paper give the same files. Usage: see scripts/paper/lib.sh.
source "$(dirname "$0")/lib.sh"
paper_init fig1 "$@"
paper_run "$BIN" report fig1 --out "$OUT" --scale "$SCALE"
paper_done
