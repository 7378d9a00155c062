#!/usr/bin/env bash
# Fig. 4(a): log10 Q vs T from 0 to 5000 for tS in {0, 10, 100, 600} from Eq. 3 with S = 10, on a
# log10 axis, and the values at T = 5000 against the paper's.
# Analytic: --scale smoke, quick and paper give the same files. Usage: see scripts/paper/lib.sh.
source "$(dirname "$0")/lib.sh"
paper_init fig4a "$@"
paper_run "$BIN" report fig4a --out "$OUT" --scale "$SCALE"
paper_done
