#!/usr/bin/env bash
# CPU training-step throughput of scadles next to PyTorch on the same machine, and their ratio.
#
#   scripts/bench_cpu.sh [--batch 64] [--threads 2] [--steps 5] [--warmup 2]
#                        [--models resnet18-cifar,resnet152,vgg19_bn]
#
# Runs `target/release/scadles bench step` (built with `cargo build --release` if missing) and
# scripts/bench_torch.py (venv from scripts/setup_torch.sh; $SCADLES_TORCH_VENV, default
# /opt/scadles-torch), one after the other so they never share the cores, then joins their
# `bench model=M shape=S ... img_per_s=X ...` lines on (model, shape) and prints scadles/PyTorch.
# Both sides do the same step: zero grad, forward, mean cross-entropy, backward, SGD(0.1, 0.9, 1e-4).
# scadles runs twice: with its default convolution algorithms and with im2col + GEMM everywhere.
# Run it on an idle machine: torch's OpenMP threads spin at barriers and lose several-fold when other
# processes share the cores (`OMP_WAIT_POLICY=PASSIVE scripts/bench_cpu.sh` softens that for torch).
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
VENV=${SCADLES_TORCH_VENV:-/opt/scadles-torch}
BATCH=64
THREADS=2
STEPS=5
WARMUP=2
MODELS=resnet18-cifar,resnet152,vgg19_bn
while [ $# -gt 0 ]; do
    case "$1" in
        --batch) BATCH=$2; shift 2 ;;
        --threads) THREADS=$2; shift 2 ;;
        --steps) STEPS=$2; shift 2 ;;
        --warmup) WARMUP=$2; shift 2 ;;
        --models) MODELS=$2; shift 2 ;;
        *) echo "bench_cpu.sh: unknown argument '$1'; expected --batch N, --threads N, --steps N, --warmup N or --models LIST" >&2; exit 2 ;;
    esac
done
# This environment may pin OpenBLAS to AVX2 kernels; the comparison wants each library at its best.
unset OPENBLAS_CORETYPE

BIN="$ROOT/target/release/scadles"
if [ ! -x "$BIN" ]; then
    (cd "$ROOT" && cargo build --release)
fi
if [ ! -x "$VENV/bin/python" ]; then
    echo "bench_cpu.sh: no PyTorch venv at $VENV; run scripts/setup_torch.sh or set SCADLES_TORCH_VENV" >&2
    exit 1
fi

# Both libraries lose badly when other processes share the cores (OpenMP barriers spin), so say so.
LOAD=$(cut -d' ' -f1 /proc/loadavg)
if awk -v l="$LOAD" 'BEGIN { exit !(l > 0.5) }'; then
    echo "bench_cpu.sh: warning: 1-minute load average is $LOAD before starting; timings will be noisy" >&2
fi

TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT
echo "== scadles ($BIN)"
COMMON=(--models "$MODELS" --batch "$BATCH" --threads "$THREADS" --steps "$STEPS" --warmup "$WARMUP")
"$BIN" bench step "${COMMON[@]}" --conv-algo auto | tee "$TMP/scadles.txt"
echo "== scadles, im2col + GEMM for every convolution ($BIN --conv-algo im2col)"
"$BIN" bench step "${COMMON[@]}" --conv-algo im2col | tee "$TMP/im2col.txt"
echo "== PyTorch ($VENV)"
"$VENV/bin/python" "$ROOT/scripts/bench_torch.py" "${COMMON[@]}" | tee "$TMP/torch.txt"

echo
echo "== scadles / PyTorch, batch $BATCH, $THREADS threads, $(nproc) cores on this machine"
awk '
    function field(key,   i, kv) {
        for (i = 2; i <= NF; i++) { split($i, kv, "="); if (kv[1] == key) return kv[2] }
        return ""
    }
    $1 != "bench" { next }
    {
        k = field("model") " " field("shape")
        v = field("img_per_s")
        if (FILENAME ~ /scadles\.txt$/) s[k] = v; else if (FILENAME ~ /im2col\.txt$/) c[k] = v; else t[k] = v
        if (!(k in seen)) { seen[k] = 1; order[++n] = k }
    }
    function ratio(a, b) { return (a != "-" && b != "-" && b + 0 > 0) ? sprintf("%.2f", a / b) : "-" }
    END {
        printf "%-12s %-12s %14s %14s %12s %8s %14s\n", "model", "shape", "scadles img/s", "torch img/s", "im2col img/s", "ratio", "im2col ratio"
        for (i = 1; i <= n; i++) {
            k = order[i]; split(k, ms, " ")
            sv = (k in s) ? s[k] : "-"; tv = (k in t) ? t[k] : "-"; cv = (k in c) ? c[k] : "-"
            printf "%-12s %-12s %14s %14s %12s %8s %14s\n", ms[1], ms[2], sv, tv, cv, ratio(sv, tv), ratio(cv, tv)
        }
        print ""
        print "ratio: scadles (default --conv-algo auto: Winograd F(4x4,3x3) on 3x3 stride-1 layers, dense GEMM on planes"
        print "smaller than the kernel, im2col elsewhere) over PyTorch; im2col ratio: scadles with --conv-algo im2col over PyTorch."
    }
' "$TMP/scadles.txt" "$TMP/im2col.txt" "$TMP/torch.txt"
