#!/usr/bin/env bash
# Fig. 9: bytes injected per iteration for each (alpha, beta) and rate set (S1, S2, S'1, S'2):
# 10 devices with one label each, ScaDLES, short runs (the volume needs no convergence; evaluated
# only at the end). Runs into the shared non-IID directory (paper_noniid_run in lib.sh).
# Usage: see scripts/paper/lib.sh.
source "$(dirname "$0")/lib.sh"
paper_init fig9 "$@"
paper_config "$ROOT/configs/noniid-fmnist.toml"
paper_noniid_init
case $SCALE in
  smoke) NP=2 RUN=(--steps 4 --eval-every-s 100000) ;;
  quick) NP=10 RUN=(--steps 10 --eval-every-s 100000 --eval-samples 500) ;;
  paper) NP=10 RUN=(--steps 200 --eval-every-s 100000) ;;
esac
for set in S1 S2 S1p S2p; do
  for inj in $NONIID_INJECT; do
    paper_noniid_run "short-$set-$(paper_inject_name "$inj")" "$NP" --partition label-shard --policy scadles --rates "$set" --inject "$inj" "${RUN[@]}"
  done
done
paper_run "$BIN" report fig9 --runs "$NONIID" --out "$OUT" --scale "$SCALE"
paper_done
