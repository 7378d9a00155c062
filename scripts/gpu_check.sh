#!/usr/bin/env bash
# The GPU check, run on the GPU machine from a bundle made by scripts/bundle.sh (no Rust needed):
#   scripts/gpu_check.sh [BUNDLE_DIR]      (default: ./bundle, or the directory of this script)
# Writes under results/gpu/ (or $SCADLES_GPU_OUT): the machine (nvidia-smi, OS, NVRTC), the probe,
# the NVRTC compile test with the box's own NVRTC, the CUDA op tests against the CPU backend, short
# `train --device cuda` runs under MPI, and the benchmarks. Each step's exit status is recorded in
# summary.txt; the script exits non-zero if any step failed.
set -uo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
B=${1:-}
if [ -z "$B" ]; then
    if [ -x "$HERE/scadles" ]; then B=$HERE; else B=$(pwd)/bundle; fi
fi
B=$(cd "$B" && pwd)
OUT=${SCADLES_GPU_OUT:-$(pwd)/results/gpu}
mkdir -p "$OUT"
SUMMARY=$OUT/summary.txt
: > "$SUMMARY"
fail=0

# step NAME CMD...: runs CMD with output to $OUT/NAME.txt and records its status.
step() {
    local name=$1
    shift
    local t0=$(date +%s)
    echo "== $name: $*" | tee -a "$SUMMARY"
    { echo "\$ $*"; "$@"; } > "$OUT/$name.txt" 2>&1
    local rc=$?
    echo "   rc=$rc ($(( $(date +%s) - t0 )) s) -> $OUT/$name.txt" | tee -a "$SUMMARY"
    [ $rc -eq 0 ] || fail=1
    tail -n 5 "$OUT/$name.txt" | sed 's/^/   | /'
}

# NVRTC: the box's own 13.0 library (PTX 9.0 for the R580 driver).
if [ -z "${SCADLES_NVRTC_DIR:-}" ]; then
    for d in /usr/local/cuda/lib64 /opt/torch/.venv/lib/python3*/site-packages/nvidia/cu13/lib; do
        if [ -e "$d/libnvrtc.so.13" ]; then export SCADLES_NVRTC_DIR=$d; break; fi
    done
fi
export LD_LIBRARY_PATH="${SCADLES_NVRTC_DIR:+$SCADLES_NVRTC_DIR:}${LD_LIBRARY_PATH:-}"

machine() {
    nvidia-smi
    nvidia-smi --query-gpu=name,compute_cap,driver_version,memory.total,clocks.max.sm --format=csv
    cat /etc/os-release
    ldd --version | head -1
    nproc
    echo "SCADLES_NVRTC_DIR=${SCADLES_NVRTC_DIR:-<none found>}"
    ls -l "${SCADLES_NVRTC_DIR:-/nonexistent}"/libnvrtc* 2>&1
    ldconfig -p | grep -E 'libcuda\.so|libnvrtc' || true
    which nvcc && nvcc --version
    echo "== ldd scadles"
    ldd "$B/scadles"
}
step machine machine
step devices "$B/scadles" devices
step mpi_devices "$B/run.sh" 2 devices
step cuda_nvrtc "$B/tests/cuda_nvrtc" --test-threads=1 --nocapture
step cuda_ops "$B/tests/cuda_ops" --test-threads=1 --nocapture
step cuda_train "$B/tests/cuda_train" --test-threads=1 --nocapture
# Every op and step test must have compared numbers: a SKIPPED line means the GPU was not used.
for t in cuda_ops cuda_train; do
    if grep -q "SKIPPED" "$OUT/$t.txt"; then
        echo "   $t: tests SKIPPED on the GPU machine (probe failed)" | tee -a "$SUMMARY"
        fail=1
    fi
done

# Training on the GPU under MPI (2 ranks sharing the GPUs round-robin): short runs of each model
# family's smallest member; each must exit 0 and record a CUDA device in summary.json.
step train_cuda_tinycnn "$B/run.sh" 2 train --device cuda --model tinycnn --steps 30 --eval-every 30 --out "$OUT/train_cuda_tinycnn"
step train_cuda_resnet18 "$B/run.sh" 2 train --device cuda --model resnet18 --shape cifar --steps 30 --eval-every 30 --out "$OUT/train_cuda_resnet18"
for t in train_cuda_tinycnn train_cuda_resnet18; do
    if ! grep -q '"device": "cuda:' "$OUT/$t/summary.json" 2>/dev/null; then
        echo "   $t: summary.json does not record a CUDA device" | tee -a "$SUMMARY"
        fail=1
    fi
done

# Benchmarks. `bench step --device` is the training-step benchmark's device flag.
step bench_step_cpu "$B/scadles" bench step --device cpu
step bench_step_cuda "$B/scadles" bench step --device cuda
step bench_topk "$B/scadles" bench topk
step bench_exchange_np4 "$B/run.sh" 4 bench exchange

echo "== overall: $([ $fail -eq 0 ] && echo PASS || echo FAIL)" | tee -a "$SUMMARY"
exit $fail
