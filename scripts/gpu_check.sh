#!/usr/bin/env bash
# The GPU check, run on the GPU machine from a bundle made by scripts/bundle.sh (no Rust needed):
#   scripts/gpu_check.sh [BUNDLE_DIR]      (default: ./bundle, or the directory of this script)
# Writes under results/gpu/ (or $SCADLES_GPU_OUT): the machine (nvidia-smi, OS, NVRTC, PyTorch), the
# probe, the NVRTC compile test with the box's own NVRTC, the CUDA op tests against the CPU backend,
# short `train --device cuda` runs under MPI, and the benchmarks. The GPU benchmarks run against
# PyTorch on the same GPU and end in ratio tables (scripts/gpu_ratios.py):
#   bench_step.txt  training-step images/s, resnet18 (CIFAR), resnet152, vgg19_bn at batch 8, 32, 64
#   bench_topk.txt  top-k of a 60,192,808-element buffer at cr 0.1 and 0.01 vs torch.topk
#   bench_gemm.txt  GEMM TFLOP/s (FP32 and TF32 kernels) vs cuBLAS (torch.mm) at the same precision
# each beginning with its command lines (as scripts/record.sh writes them). The work comes in phases
# that can run as separate commands (each well under 10 minutes), named in SCADLES_GPU_PHASES
# (default: all four, in this order):
#   tests  machine report, probe, NVRTC, cuda_ops, cuda_train, cuda_aggregation
#   train  short `train --device cuda` runs under MPI (dense and compressed)
#   bench  the three GPU benchmarks against PyTorch
#   cpu    the CPU benchmarks on the GPU machine's cores PyTorch is looked for in
# $SCADLES_TORCH_PY, /opt/torch/.venv (the box's, toolchain.md §6), then python3 on PATH; without it
# the benchmarks still run, the ratios are missing and their steps fail. Each step's exit status is
# recorded in summary.txt; the script exits non-zero if any step failed.
set -uo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
B=${1:-}
if [ -z "$B" ]; then
    if [ -x "$HERE/scadles" ]; then B=$HERE; else B=$(pwd)/bundle; fi
fi
B=$(cd "$B" && pwd)
# The Python scripts: bundle/scripts, or this script's directory when run from the repository.
SCRIPTS=$B/scripts
[ -e "$SCRIPTS/gpu_ratios.py" ] || SCRIPTS=$HERE
OUT=${SCADLES_GPU_OUT:-$(pwd)/results/gpu}
mkdir -p "$OUT"
PHASES=${SCADLES_GPU_PHASES:-tests train bench cpu}
has_phase() { [[ " $PHASES " == *" $1 "* ]]; }
for ph in $PHASES; do
    case $ph in
        tests | train | bench | cpu) ;;
        *) echo "gpu_check.sh: unknown phase '$ph' in SCADLES_GPU_PHASES (phases: tests train bench cpu)" >&2; exit 2 ;;
    esac
done
SUMMARY=$OUT/summary.txt
# summary.txt collects every phase run into this directory; a run of all phases starts it afresh.
[ "$PHASES" = "tests train bench cpu" ] && : > "$SUMMARY"
echo "== gpu_check phases: $PHASES ($(date -u +%Y-%m-%dT%H:%M:%SZ))" >> "$SUMMARY"
fail=0
COMMIT=$(cat "$B/COMMIT" 2>/dev/null || git -C "$HERE" rev-parse --short HEAD 2>/dev/null || echo unknown)
# Wall-clock limit of each benchmark command (a hung GPU must not eat the session).
BENCH_TIMEOUT=${SCADLES_BENCH_TIMEOUT:-480}

# PyTorch for the benchmarks' peers, run with the caller's LD_LIBRARY_PATH (not the NVRTC directory
# exported below, so torch loads its own CUDA libraries).
if [ -n "${LD_LIBRARY_PATH:-}" ]; then TORCH_ENV=(env "LD_LIBRARY_PATH=$LD_LIBRARY_PATH"); else TORCH_ENV=(env -u LD_LIBRARY_PATH); fi
TORCH_PY=""
for p in "${SCADLES_TORCH_PY:-}" /opt/torch/.venv/bin/python /opt/torch/.venv/bin/python3 "$(command -v python3 || true)"; do
    if [ -n "$p" ] && [ -x "$p" ] && "${TORCH_ENV[@]}" "$p" -c 'import torch' > /dev/null 2>&1; then TORCH_PY=$p; break; fi
done
TORCH_WHY="no Python with torch in \$SCADLES_TORCH_PY, /opt/torch/.venv/bin/python or python3 on PATH"
# The ratio tables need only the standard library.
JOIN_PY=${TORCH_PY:-$(command -v python3 || true)}
# Our kernels use TF32 tensor cores (sm_80+) unless SCADLES_CUDA_TF32=0: PyTorch is set to match.
TF32=on
[ "${SCADLES_CUDA_TF32:-1}" = 0 ] && TF32=off

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
# Here the GPU tests must use the real GPU: without one they report SKIPPED instead of running on
# the emulated GPU that the test suite uses on machines without one (tests/common/gpu.rs).
export SCADLES_TEST_NO_EMULATED_GPU=1

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
    echo "== PyTorch: ${TORCH_PY:-none ($TORCH_WHY)}"
    if [ -n "$TORCH_PY" ]; then
        "${TORCH_ENV[@]}" "$TORCH_PY" -c 'import torch
print("torch", torch.__version__, "CUDA", torch.version.cuda, "cuDNN", torch.backends.cudnn.version(), "available", torch.cuda.is_available())
if torch.cuda.is_available():
    print("device", torch.cuda.get_device_name(0), "capability", torch.cuda.get_device_capability(0))
try:
    import torchvision
    print("torchvision", torchvision.__version__)
except ImportError:
    print("torchvision: not installed (bench_torch.py builds the same models in plain torch)")'
    fi
    echo "== bundled Open MPI: CUDA support (dense steps pass device buffers to MPI when it is built in)"
    "$B/mpi/bin/ompi_info" --parsable --all 2>/dev/null | grep -i "cuda_support" || echo "ompi_info: no CUDA support entries"
    echo "== ldd scadles"
    ldd "$B/scadles"
}
if has_phase tests; then
step machine machine
step devices "$B/scadles" devices
step mpi_devices "$B/run.sh" 2 devices
step cuda_nvrtc "$B/tests/cuda_nvrtc" --test-threads=1 --nocapture
step cuda_ops "$B/tests/cuda_ops" --test-threads=1 --nocapture
step cuda_train "$B/tests/cuda_train" --test-threads=1 --nocapture
# The GPU aggregation against the host's under the bundled MPI (the test launches itself).
step cuda_aggregation env MPIRUN="$B/mpi/bin/mpirun" "$B/tests/cuda_aggregation" --test-threads=1 --nocapture
# Every op and step test must have compared numbers: a SKIPPED line means the GPU was not used.
for t in cuda_ops cuda_train cuda_aggregation; do
    if grep -q "SKIPPED" "$OUT/$t.txt"; then
        echo "   $t: tests SKIPPED on the GPU machine (probe failed)" | tee -a "$SUMMARY"
        fail=1
    fi
done
fi

# Training on the GPU under MPI (2 ranks sharing the GPUs round-robin): short runs of each model
# family's smallest member; each must exit 0 and record a CUDA device in summary.json.
if has_phase train; then
step train_cuda_tinycnn "$B/run.sh" 2 train --device cuda --model tinycnn --steps 30 --eval-every 30 --out "$OUT/train_cuda_tinycnn"
step train_cuda_resnet18 "$B/run.sh" 2 train --device cuda --model resnet18 --shape cifar --steps 30 --eval-every 30 --out "$OUT/train_cuda_resnet18"
# Compressed steps keep the gradient and the residual on the GPU; only the pairs travel.
step train_cuda_resnet18_adaptive "$B/run.sh" 2 train --device cuda --model resnet18 --shape cifar --steps 30 --eval-every 30 \
    --compression adaptive --cr 0.01 --warmup-steps 5 --out "$OUT/train_cuda_resnet18_adaptive"
for t in train_cuda_tinycnn train_cuda_resnet18 train_cuda_resnet18_adaptive; do
    if ! grep -q '"device": "cuda:' "$OUT/$t/summary.json" 2>/dev/null; then
        echo "   $t: summary.json does not record a CUDA device" | tee -a "$SUMMARY"
        fail=1
    fi
done
fi

# GPU benchmarks against PyTorch on the same GPU.
# cmdline ARGS...: the arguments as one line a shell can run again (single quotes where needed).
cmdline() {
    local out="" a q="'"
    for a in "$@"; do
        if [[ -n $a && $a != *[!A-Za-z0-9_./,:=+@%-]* ]]; then
            out+="$a "
        else
            out+="'${a//$q/$q\\$q$q}' "
        fi
    done
    echo "${out% }"
}
with_timeout() {
    if command -v timeout > /dev/null; then timeout "$BENCH_TIMEOUT" "$@"; else "$@"; fi
}
# bench_pair NAME KIND: runs the command in the array OURS (scadles) and then the one in PEER
# (PyTorch), one after the other, and writes $OUT/NAME.txt: a header with the command lines, the
# date, machine, GPU and commit (as scripts/record.sh writes it), both outputs, and the ratio table
# of `gpu_ratios.py KIND`. Fails when either side or the join fails, or when PyTorch is missing.
bench_pair() {
    local name=$1 kind=$2 file=$OUT/$1.txt t0 rc=0 r tmp
    t0=$(date +%s)
    tmp=$(mktemp -d)
    echo "== $name: $(cmdline "${OURS[@]}")" | tee -a "$SUMMARY"
    {
        echo "# command: $(cmdline "${OURS[@]}")"
        if [ -n "$TORCH_PY" ]; then
            echo "# command: $(cmdline "${PEER[@]}")"
        else
            echo "# command: (PyTorch peer not run: $TORCH_WHY)"
        fi
        echo "# command: ${JOIN_PY:-python3} $SCRIPTS/gpu_ratios.py $kind SCADLES_OUTPUT TORCH_OUTPUT   (the two sections below)"
        echo "# date: $(date -u +%Y-%m-%dT%H:%M:%SZ)  host: $(uname -n)  cores: $(nproc)  cpu: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //')"
        echo "# gpu: $(nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader 2>/dev/null | head -1)"
        echo "# commit: $COMMIT"
        echo "== scadles"
        with_timeout "${OURS[@]}" > "$tmp/scadles.txt" 2>&1
        r=$?
        cat "$tmp/scadles.txt"
        [ $r -eq 0 ] || { echo "(scadles exited with status $r)"; rc=1; }
        echo "== PyTorch"
        if [ -n "$TORCH_PY" ]; then
            with_timeout "${PEER[@]}" > "$tmp/torch.txt" 2>&1
            r=$?
            cat "$tmp/torch.txt"
            [ $r -eq 0 ] || { echo "(PyTorch exited with status $r)"; rc=1; }
        else
            echo "PyTorch not run: $TORCH_WHY"
            : > "$tmp/torch.txt"
            rc=1
        fi
        echo "== ratios"
        if [ -n "$JOIN_PY" ]; then
            "$JOIN_PY" "$SCRIPTS/gpu_ratios.py" "$kind" "$tmp/scadles.txt" "$tmp/torch.txt" 2>&1 || rc=1
        else
            echo "no python3 to run gpu_ratios.py"
            rc=1
        fi
    } > "$file"
    rm -rf "$tmp"
    echo "   rc=$rc ($(( $(date +%s) - t0 )) s) -> $file" | tee -a "$SUMMARY"
    [ $rc -eq 0 ] || fail=1
    if [ $rc -ne 0 ]; then
        grep -E '^\(|error|not run|WARNING' "$file" | head -n 6 | sed 's/^/   | /'
    fi
    sed -n '/^== ratios/,$p' "$file" | sed 's/^/   | /'
}

if has_phase bench; then
# 1. Training step (forward + backward + SGD), 3 warm-up + median of 10 timed steps per model and batch.
STEP_ARGS=(--models resnet18-cifar,resnet152,vgg19_bn --batches 8,32,64 --warmup 3 --steps 10)
OURS=("$B/scadles" bench step --device cuda "${STEP_ARGS[@]}")
PEER=("${TORCH_ENV[@]}" "$TORCH_PY" "$SCRIPTS/bench_torch.py" --device cuda --tf32 "$TF32" "${STEP_ARGS[@]}")
bench_pair bench_step step
# 2. Top-k of resnet152's gradient size (60,192,808) at cr 0.1 and 0.01, median of 20 calls.
OURS=("$B/scadles" bench topk --device cuda --n 60192808 --cr 0.1,0.01 --reps 20)
PEER=("${TORCH_ENV[@]}" "$TORCH_PY" "$SCRIPTS/bench_topk_torch.py" --device cuda --n 60192808 --crs 0.1,0.01 --reps 20)
bench_pair bench_topk topk
# 3. GEMM, FP32 and TF32 kernels, against cuBLAS with TF32 off and on.
GEMM_ARGS=(--sizes 1024,2048,4096,8192,256x4096x2304 --precision fp32,tf32 --reps 5)
OURS=("$B/scadles" bench gemm --device cuda "${GEMM_ARGS[@]}")
PEER=("${TORCH_ENV[@]}" "$TORCH_PY" "$SCRIPTS/bench_gemm_torch.py" --device cuda "${GEMM_ARGS[@]}")
bench_pair bench_gemm gemm
fi

# CPU benchmarks on this machine (2 threads, as in results/bench_cpu_step.txt and bench_topk.txt).
if has_phase cpu; then
step bench_step_cpu "$B/scadles" bench step --device cpu
step bench_topk_cpu "$B/scadles" bench topk --device cpu
step bench_exchange_np4 "$B/run.sh" 4 bench exchange
fi

echo "== overall ($PHASES): $([ $fail -eq 0 ] && echo PASS || echo FAIL)" | tee -a "$SUMMARY"
exit $fail
