#!/usr/bin/env bash
# Fig. 2: IID against non-IID accuracy in conventional training (the paper's DDL: fixed batch 64 per
# device, plain averaging, no injection), over the same epochs: IID on 16 devices, label-shard on
# 10 devices x 1 label (the ResNet152/CIFAR-10 panel) and, as the stand-in for the VGG19/CIFAR-100
# panel's 25 devices x 4 labels (Fashion-MNIST has 10 classes), 5 devices x 2 labels.
# Runs into the shared non-IID directory (paper_noniid_run in lib.sh).
# Usage: see scripts/paper/lib.sh.
source "$(dirname "$0")/lib.sh"
paper_init fig2 "$@"
paper_config "$ROOT/configs/noniid-fmnist.toml"
paper_noniid_init
# Evaluation every --eval-every-s clock seconds (configs/noniid-fmnist.toml sets eval_every_s, which a
# step interval --eval-every would not override).
DDL=(--policy ddl --batch 64 --inject none)
# Steps for EPOCHS passes over TRAIN samples with NP devices x 64.
steps() { echo $(( ($1 * $3 + $2 * 64 - 1) / ($2 * 64) )); }
case $SCALE in
  smoke)
    paper_noniid_run ddl-iid-r4 4 --partition iid "${DDL[@]}" --steps "$(steps 1 4 2000)" --eval-every-s 2
    paper_noniid_run ddl-shard-r2 2 --partition label-shard "${DDL[@]}" --steps "$(steps 1 2 2000)" --eval-every-s 2 ;;
  quick)
    paper_noniid_run ddl-iid-r16 16 --partition iid "${DDL[@]}" --steps "$(steps 1 16 60000)" --eval-every-s 15
    paper_noniid_run ddl-shard-r10 10 --partition label-shard "${DDL[@]}" --steps "$(steps 1 10 60000)" --eval-every-s 15
    paper_noniid_run ddl-shard-r5 5 --partition label-shard "${DDL[@]}" --steps "$(steps 1 5 60000)" --eval-every-s 15 ;;
  paper)
    # 200 epochs of the 50 000 training samples.
    paper_noniid_run ddl-iid-r16 16 --partition iid "${DDL[@]}" --steps "$(steps 200 16 50000)" --eval-every-s 600
    paper_noniid_run ddl-shard-r10 10 --partition label-shard "${DDL[@]}" --steps "$(steps 200 10 50000)" --eval-every-s 600
    NONIID_BASE=(--config "$ROOT/configs/noniid-fmnist.toml" --model vgg19_bn --shape torchvision --num-classes 1000
                 --dataset cifar100 --data-dir "${PAPER_DATA_DIR:-DATA_DIR}" --lr 0.01 --weight-decay 0.0005
                 --milestones 75,150,200 --gamma 0.3 --compute-model k80-vgg19 --link-params 143678248 --eval-samples 10000)
    paper_noniid_run ddl-vgg19-iid-r16 16 --partition iid "${DDL[@]}" --steps "$(steps 200 16 50000)" --eval-every-s 600
    paper_noniid_run ddl-vgg19-shard-r25 25 --partition label-shard "${DDL[@]}" --steps "$(steps 200 25 50000)" --eval-every-s 600 ;;
esac
paper_run "$BIN" report fig2 --runs "$NONIID" --out "$OUT" --scale "$SCALE"
paper_done
