#!/usr/bin/env bash
# Every scripts/paper/<id>.sh that exists, in the paper's order, with the same arguments
# (--scale smoke|quick|paper; --out is per item, so it is not passed on). The shared ScaDLES/DDL runs
# (runs.sh) go first so that Table VI, Figs. 6, 7 and Table IV only read them. Prints each item's
# time and the total. At quick scale the shared runs are 8 cells of about 6 minutes each on 2 cores.
set -euo pipefail
DIR=$(cd "$(dirname "$0")" && pwd)
for a in "$@"; do
  case $a in --out|--out=*) echo "all.sh: --out is per item; run the item's script for that" >&2; exit 2 ;; esac
done
start=$(date +%s)
for id in table1 table2 table3 fig1 fig4a runs table6 fig6 fig7 table4 table5 fig2 fig3 fig4b fig8 fig9; do
  [ -x "$DIR/$id.sh" ] || { echo "all.sh: $id: no script yet, skipped"; continue; }
  t0=$(date +%s)
  "$DIR/$id.sh" "$@"
  echo "all.sh: $id took $(( $(date +%s) - t0 )) s"
done
echo "all.sh: total $(( $(date +%s) - start )) s"
