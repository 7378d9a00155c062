#!/usr/bin/env bash
# Trains the same model twice from the same seed, once with the default convolutions (Winograd
# F(4x4,3x3) on 3x3 stride-1 layers, dense GEMM on tiny planes) and once with im2col + GEMM
# everywhere, and prints both evaluation curves side by side: the algorithms round differently,
# and this shows that training follows the same course.
#
#   [MODEL=resnet18] [SHAPE=cifar] [STEPS=200] [BATCH=32] [EVAL_EVERY=25] [EVAL_SAMPLES=1000] \
#   scripts/conv_algo_check.sh [other `scadles train` flags]
# Default: resnet18 (CIFAR shape) on the synthetic stream, 1 rank, 200 steps of batch 32, lr 0.05.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
BIN="$ROOT/target/release/scadles"
[ -x "$BIN" ] || (cd "$ROOT" && cargo build --release)
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT
COMMON=(train --model "${MODEL:-resnet18}" --shape "${SHAPE:-cifar}" --dataset synthetic --policy ddl
        --batch "${BATCH:-32}" --lr 0.05 --steps "${STEPS:-200}" --eval-every "${EVAL_EVERY:-25}"
        --eval-samples "${EVAL_SAMPLES:-1000}" --seed 7 "$@")
for algo in auto im2col; do
    echo "== $BIN ${COMMON[*]} --conv-algo $algo"
    "$BIN" "${COMMON[@]}" --conv-algo "$algo" --out "$TMP/$algo" 2>/dev/null | tail -n 1
done
echo
echo "step   top1(auto) top1(im2col)   loss(auto) loss(im2col)"
paste -d, "$TMP/auto/eval.csv" "$TMP/im2col/eval.csv" | tail -n +2 |
    awk -F, '{ printf "%4d %12.3f %12.3f %12.4f %12.4f\n", $1, $3, $8, $5, $10 }'
