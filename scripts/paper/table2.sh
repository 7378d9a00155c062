#!/usr/bin/env bash
# Table II: data accumulated under persistence in DDL, Eq. 3 (Q = T*t*S + S samples x 3072 B,
# GiB) against every published cell.
# Analytic: --scale smoke, quick and paper give the same files. Usage: see scripts/paper/lib.sh.
source "$(dirname "$0")/lib.sh"
paper_init table2 "$@"
paper_run "$BIN" report table2 --out "$OUT" --scale "$SCALE"
paper_done
