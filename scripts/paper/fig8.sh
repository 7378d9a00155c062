#!/usr/bin/env bash
# Fig. 8: non-IID accuracy against epochs for data injection (alpha, beta) in {(.5,.5), (.25,.25),
# (.1,.1), (.05,.05)} and none: 10 devices with one label each (label-shard), ScaDLES, S'1 rates,
# the ResNet152 stand-in (configs/noniid-fmnist.toml), the same steps for all five runs.
# Runs into the shared non-IID directory (paper_noniid_run in lib.sh; finished ones are kept).
# Usage: see scripts/paper/lib.sh.
source "$(dirname "$0")/lib.sh"
paper_init fig8 "$@"
paper_config "$ROOT/configs/noniid-fmnist.toml"
paper_noniid_init
case $SCALE in
  smoke) NP=2 RUN=(--steps 6 --eval-every-s 2) ;;
  quick) NP=10 RUN=(--steps 60 --eval-every-s 8) ;;
  # 250 epochs of CIFAR-10's 50 000 samples at about 10 x 64 own samples per iteration.
  paper) NP=10 RUN=(--steps 20000 --eval-every-s 600) ;;
esac
for inj in $NONIID_INJECT; do
  paper_noniid_run "scadles-S1p-$(paper_inject_name "$inj")" "$NP" --partition label-shard --policy scadles --rates S1p --inject "$inj" "${RUN[@]}"
done
paper_run "$BIN" report fig8 --runs "$NONIID" --out "$OUT" --scale "$SCALE"
paper_done
