#!/usr/bin/env bash
# Table V: adaptive compression over the paper's grid, CR in {0.1, 0.01} x delta in {0.1, 0.2, 0.3,
# 0.4}, under both forms of the criterion (--criterion paper: the norm rule of the paper's
# display 2 smoothed by an EWMA; --criterion code: the reference code's sum of per-tensor norms with
# a per-epoch running mean). Per cell one ScaDLES run (Table VI's configuration otherwise, S'1 rates,
# 16 ranks, IID) that trains on past the target (--past-target) so that the accuracy is the final one
# and the floats sent are counted up to the target: CNC ratio, accuracy, floats sent to the target.
# Runs go to $OUT/runs/<model>-<criterion>-cr<CR>-d<delta>/ (paper_train_run in lib.sh: a finished
# run is kept, each run logs its command in its commands.txt).
# TABLE5_MODELS (default: "resnet152 vgg19" at paper scale, "resnet152" otherwise) picks the
# stand-ins: at quick scale the VGG19 stand-in is the same network and data with VGG19's lr, weight
# decay and clock, and 16 more runs would double the item's ~40 minutes on 2 cores.
# Usage: see scripts/paper/lib.sh.
source "$(dirname "$0")/lib.sh"
paper_init table5 "$@"
paper_config "$ROOT/configs/paper-quick-resnet152.toml" "$ROOT/configs/paper-quick-vgg19.toml"
if [ "$SCALE" = paper ]; then models=${TABLE5_MODELS:-resnet152 vgg19}; else models=${TABLE5_MODELS:-resnet152}; fi
data=()
if [ "$SCALE" = quick ]; then paper_quick_data "the runs"; data=("${QUICK_DATA[@]}"); fi
paper_check_data
RUNS5=$OUT/runs
mkdir -p "$RUNS5"
for model in $models; do
  case " $PAPER_MODELS " in *" $model "*) ;; *) echo "table5: unknown model '$model' in TABLE5_MODELS" >&2; exit 2 ;; esac
  for crit in paper code; do
    for cr in 0.1 0.01; do
      for delta in 0.1 0.2 0.3 0.4; do
        grid=(--cr "$cr" --delta "$delta" --criterion "$crit" --compression adaptive --policy scadles --past-target)
        case $SCALE in
          smoke)
            np=2
            args=(--config "$ROOT/configs/paper-quick-$model.toml" --rates S1p --dataset synthetic
                  --synthetic-train 2000 --synthetic-test 400 --steps 24 --eval-every-s 4 --eval-samples 200
                  --target-top1 0.2 --threads 1) ;;
          quick)
            np=16
            args=(--config "$ROOT/configs/paper-quick-$model.toml" --rates S1p --steps 150 "${data[@]}") ;;
          paper)
            np=${PAPER_NP:-16}
            paper_scale_args "$model" --rates S1p
            args=("${PARGS[@]}") ;;
        esac
        paper_train_run "$RUNS5/$model-$crit-cr$cr-d$delta" "$np" "${args[@]}" "${grid[@]}"
      done
    done
  done
done
paper_run "$BIN" report table5 --runs "$RUNS5" --out "$OUT" --scale "$SCALE"
paper_done
