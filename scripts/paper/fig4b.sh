#!/usr/bin/env bash
# Fig. 4(b): gradient synchronisation time vs gradient size (46 MB Transformer, 230 MB ResNet152,
# 548 MB VGG19; MB = MiB, 4-byte floats). The report sets the paper's readings (8 K80s, 5 Gbps)
# beside the training clock's 5 Gbps link model at 8 and 16 ranks, and beside the dense MPI
# allreduce measured here: `scripts/mpirun.sh N scadles bench exchange --dense-only` per rank count,
# one CSV each under $OUT/bench/ (a size whose buffers would not fit in memory is skipped and says so).
# Scales: smoke: the sizes / 1000, 2 ranks, seconds; quick: the three sizes at 2 and 4 ranks (a
# timing: run it on an otherwise idle machine; commands.txt records the load average before it);
# paper: the three sizes at 8 ranks, logged only unless PAPER_EXECUTE=1.
# Usage: see scripts/paper/lib.sh.
source "$(dirname "$0")/lib.sh"
paper_init fig4b "$@"
mkdir -p "$OUT/bench"
rm -f "$OUT"/bench/exchange-np*.csv

SIZES=12058624,60293120,143654912   # 46, 230, 548 MiB in floats
case $SCALE in
  smoke) SIZES=12059,60293,143655; RANKS="2"; REPS=3 ;;
  quick) RANKS="2 4"; REPS=3 ;;
  paper) RANKS="8"; REPS=5 ;;
esac

for np in $RANKS; do
  cmd=("$ROOT/scripts/mpirun.sh" "$np" "$BIN" bench exchange --dense-only --n "$SIZES" --reps "$REPS"
       --csv "$OUT/bench/exchange-np$np.csv")
  if [ "$SCALE" = paper ] && [ "${PAPER_EXECUTE:-0}" != 1 ]; then
    echo "# would run: $(paper_words "${cmd[@]}")" | tee -a "$OUT/commands.txt"
    continue
  fi
  echo "# load average before timing: $(cut -d' ' -f1-3 /proc/loadavg)" >> "$OUT/commands.txt"
  paper_run "${cmd[@]}"
done
paper_run "$BIN" report fig4b --out "$OUT" --scale "$SCALE"
paper_done
