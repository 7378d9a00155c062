#!/usr/bin/env bash
# Fig. 3: training memory (a) against the batch size and (b) by optimiser, for a stand-in of each of
# the paper's two models. The paper measures GPU memory on a V100; ours is the peak resident memory
# (VmHWM) of one training process on the host, from `scadles bench memory` (each cell in its own
# process), one CSV per model and panel under $OUT/bench/. The report sets the growth (÷ batch 32,
# ÷ SGD) beside the paper's.
# Scales: smoke: tinycnn_bn / tinycnn with a 20000-way head (1.3M parameters, so that the
# optimiser's state stands out of the allocator's noise), batches 4 and 16, all three optimisers at
# both, seconds; quick: resnet18 (CIFAR shape, 10 classes) for ResNet152 and vgg19_bn (CIFAR shape,
# 100 classes) for VGG19, SGD at batches 32..1024 (2048 dropped: 12-15 GiB per process) and the
# three optimisers at 32, minutes on 2 idle cores; paper: resnet152 / vgg19_bn in torchvision shape
# (1000 classes), batches 32..2048, logged only unless PAPER_EXECUTE=1.
# A measured CSV is kept when the command that wrote it (in NAME.csv.cmd) is the one this run would
# run, so an interrupted run resumes. Usage: see scripts/paper/lib.sh.
source "$(dirname "$0")/lib.sh"
paper_init fig3 "$@"
mkdir -p "$OUT/bench"

# model shape classes per stand-in (ResNet152's, then VGG19's), the batches of panel (a), the
# optimisers of panel (a), the batch of panel (b), steps per cell.
case $SCALE in
  smoke) RESNET=(tinycnn_bn cifar 20000); VGG=(tinycnn cifar 20000); BATCHES=4,16; A_OPT=sgd,nesterov,adam; B_BATCH=4; STEPS=1; THREADS=1 ;;
  quick) RESNET=(resnet18 cifar 10); VGG=(vgg19_bn cifar 100); BATCHES=32,128,256,512,1024; A_OPT=sgd; B_BATCH=32; STEPS=1; THREADS=2 ;;
  paper) RESNET=(resnet152 torchvision 1000); VGG=(vgg19_bn torchvision 1000); BATCHES=32,128,256,512,1024,2048; A_OPT=sgd; B_BATCH=32; STEPS=2; THREADS=2 ;;
esac

# fig3_bench NAME MODEL SHAPE CLASSES BATCHES OPTIMIZERS: one `bench memory` into $OUT/bench/NAME.csv.
fig3_bench() {
  local name=$1 csv=$OUT/bench/$1.csv
  local args=(bench memory --model "$2" --shape "$3" --num-classes "$4" --batch "$5" --optimizer "$6"
              --steps "$STEPS" --threads "$THREADS" --csv "$csv")
  local words
  words=$(paper_words "${args[@]}")
  if [ "$SCALE" = paper ] && [ "${PAPER_EXECUTE:-0}" != 1 ]; then
    echo "# would run: $(paper_words "$BIN") $words" | tee -a "$OUT/commands.txt"
    return
  fi
  if [ -f "$csv" ] && [ -f "$csv.cmd" ] && [ "$(cat "$csv.cmd")" = "$words" ]; then
    echo "# kept: $(paper_rel "$csv") (measured before by: scadles $words)" >> "$OUT/commands.txt"
    return
  fi
  rm -f "$csv" "$csv.cmd"
  echo "fig3: bench memory $name ($SCALE)" >&2
  paper_run "$BIN" "${args[@]}"
  echo "$words" > "$csv.cmd"
}

fig3_bench resnet152-batch "${RESNET[@]}" "$BATCHES" "$A_OPT"
fig3_bench resnet152-optim "${RESNET[@]}" "$B_BATCH" sgd,nesterov,adam
fig3_bench vgg19-batch "${VGG[@]}" "$BATCHES" "$A_OPT"
fig3_bench vgg19-optim "${VGG[@]}" "$B_BATCH" sgd,nesterov,adam
paper_run "$BIN" report fig3 --out "$OUT" --scale "$SCALE"
paper_done
