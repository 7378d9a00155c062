#!/usr/bin/env bash
# Builds the emulated GPU: tests/kernel_emu/libcuda.cpp, a CUDA driver library (libcuda.so.1)
# that runs the real kernels of kernels/*.cu on the CPU (see the file's header), and prints the
# directory that holds it. With that directory first on LD_LIBRARY_PATH, scadles sees one sm_90
# GPU and runs its whole GPU path there, on a machine without a GPU:
#
#   export LD_LIBRARY_PATH=$(scripts/emulated_gpu.sh):$LD_LIBRARY_PATH
#   target/release/scadles devices
#   mpirun -np 2 target/release/scadles train --device cuda --model tinycnn --steps 5
#
# It is slow (kernels run as CPU fibers, one thread at a time) and its timings mean nothing; it is
# for checking that the host code drives the kernels correctly. The test suite uses it for every
# GPU test when there is no GPU (tests/common/gpu.rs). Needs g++ (C++20).
#
# Usage: scripts/emulated_gpu.sh [DIR]   (default: target/emulated-gpu). The library is rebuilt
# only when the emulator's or the kernels' sources change (a hash of them is kept beside it).
# Environment read by the library at run time: SCADLES_EMU_GPUS, SCADLES_EMU_GPU_MEM_MB,
# SCADLES_EMU_TRACE.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
dir=${1:-$root/target/emulated-gpu}
command -v g++ >/dev/null || { echo "emulated_gpu.sh: g++ not found (apt-get install g++)" >&2; exit 1; }

sources=("$root/tests/kernel_emu/shim.h" "$root/tests/kernel_emu/libcuda.cpp" "$root"/kernels/*)
hash=$(cat "${sources[@]}" | sha256sum | cut -c1-16)
if [ -e "$dir/libcuda.so.1" ] && [ "$(cat "$dir/sources.sha256" 2>/dev/null)" = "$hash" ]; then
    echo "$dir"
    exit 0
fi

# Built in a private directory and moved into place, so that a concurrent user never loads a
# half-written library.
mkdir -p "$(dirname "$dir")"
tmp=$(mktemp -d "$(dirname "$dir")/.emulated-gpu.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
# Every kernel entry point of kernels/*.cu, as EMU_KERNEL(name) lines (declarations may span lines).
perl -0777 -ne 'print "EMU_KERNEL($1)\n" while /extern "C" __global__ void\s+(?:__launch_bounds__\([^)]*\)\s+)?(\w+)\s*\(/g' \
    "$root"/kernels/*.cu > "$tmp/kernel_names.h"
[ -s "$tmp/kernel_names.h" ] || { echo "emulated_gpu.sh: no kernels found in $root/kernels" >&2; exit 1; }
# Built and run on this machine, so -march=native is safe; contraction stays off so that arithmetic
# rounds as written (explicit fmaf calls become FMA instructions).
g++ -std=c++20 -O2 -march=native -ffp-contract=off -shared -fPIC -fvisibility=hidden -pthread -I "$tmp" \
    -o "$tmp/libcuda.so.1" "$root/tests/kernel_emu/libcuda.cpp"
ln -s libcuda.so.1 "$tmp/libcuda.so"
echo "$hash" > "$tmp/sources.sha256"
rm -rf "$dir"
mv -T "$tmp" "$dir" 2>/dev/null || rm -rf "$tmp"  # or another build got there first
trap - EXIT
echo "emulated_gpu.sh: built $dir/libcuda.so.1 ($(wc -l < "$dir/kernel_names.h") kernels)" >&2
echo "$dir"
