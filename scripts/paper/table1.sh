#!/usr/bin/env bash
# Table I: the four rate sets (S1, S2, S'1, S'2) drawn for 16 devices as --rates draws them
# (seed 1234, within [b_min, b_max] = [8, 1024]): mean, std, min, max against the paper's mean and
# std, and the reference code's fixed lists with the same statistics; rates.png/.svg box-plots them.
# Analytic: --scale smoke, quick and paper give the same files. Usage: see scripts/paper/lib.sh.
source "$(dirname "$0")/lib.sh"
paper_init table1 "$@"
paper_run "$BIN" report table1 --out "$OUT" --scale "$SCALE"
paper_done
