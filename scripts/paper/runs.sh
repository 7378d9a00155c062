#!/usr/bin/env bash
# The shared ScaDLES/DDL runs of Table VI, Fig. 6, Fig. 7 and Table IV (paper_shared_runs in
# lib.sh says what each cell runs): results/paper/runs/<set>-<model>/ at quick scale. Finished cells
# are kept; PAPER_CELLS="S1p-resnet152 ..." runs only those. table6.sh, fig6.sh, fig7.sh and
# table4.sh call the same function, so running this first only saves them the wait.
# Usage: see scripts/paper/lib.sh (--out names where commands.txt goes).
source "$(dirname "$0")/lib.sh"
paper_init runs "$@"
paper_shared_runs
paper_done
