#!/usr/bin/env bash
# Installs what building and running scadles needs and is missing, then builds the release binary.
#   - a C compiler that links (cc + libc headers)
#   - an MPI: the one already on PATH (mpicc -show answers and builds an MPI program) is used;
#     otherwise Debian/Ubuntu's MPICH is installed
#   - a libclang that bindgen loads (rsmpi runs bindgen at build time) and clang's builtin headers
#   - OpenBLAS (the CPU GEMM; without it a pure-Rust GEMM is used, about half as fast)
#   - Fashion-MNIST (Debian's dataset-fashion-mnist), the real data of the main job and the tests
# Each check (scripts/lib/detect.sh) tests for the thing that is used, not for a package name.
# Safe to run repeatedly: it installs nothing that is already there. SCADLES_SETUP_NO_BUILD=1 stops
# before the build.
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=scripts/lib/detect.sh
. scripts/lib/detect.sh

SUDO=""
if [ "$(id -u)" != 0 ]; then SUDO="sudo"; fi
APT_UPDATED=0
apt_install() {
  command -v apt-get >/dev/null || { echo "setup: please install: $* (no apt-get here)" >&2; return 1; }
  if [ "$APT_UPDATED" = 0 ]; then $SUDO apt-get update -qq; APT_UPDATED=1; fi
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "$@" >/dev/null
}
have_pkg() {
  if [ "$APT_UPDATED" = 0 ] && command -v apt-get >/dev/null; then $SUDO apt-get update -qq; APT_UPDATED=1; fi
  apt-cache show "$1" >/dev/null 2>&1
}
die() { echo "setup: $*" >&2; exit 1; }

command -v cargo >/dev/null || die "cargo not found: install a Rust toolchain (1.85 or newer) first"

if ! detect_cc >/dev/null; then
  echo "setup: no C compiler that links a program: installing gcc and the C library headers"
  apt_install gcc libc6-dev || exit 1
  detect_cc >/dev/null || die "cc still cannot compile and link a C program"
fi

if mpi=$(detect_mpi); then
  echo "setup: using the MPI on PATH: $mpi"
else
  if command -v mpicc >/dev/null; then
    echo "setup: $(command -v mpicc) cannot build an MPI program (or no mpirun beside it): installing MPICH"
  else
    echo "setup: no MPI on PATH: installing MPICH"
  fi
  apt_install mpich libmpich-dev || exit 1
  mpi=$(detect_mpi) || die "MPICH installed but mpicc still cannot build an MPI program"
  echo "setup: using $mpi"
fi

if ! lib=$(detect_libclang) || ! detect_clang_headers >/dev/null; then
  if [ -z "${lib:-}" ]; then
    echo "setup: no libclang that bindgen can load${LIBCLANG_PATH:+ under LIBCLANG_PATH=$LIBCLANG_PATH}: installing it"
  else
    echo "setup: $lib has no clang builtin headers (stddef.h) beside it: installing them"
  fi
  if have_pkg libclang1-14 && have_pkg libclang-common-14-dev; then
    apt_install libclang1-14 libclang-common-14-dev || exit 1
  else
    apt_install libclang-dev || exit 1
  fi
  lib=$(detect_libclang) || die "libclang installed but bindgen's search still finds none${LIBCLANG_PATH:+ (LIBCLANG_PATH=$LIBCLANG_PATH)}"
  detect_clang_headers >/dev/null || die "clang's builtin headers not found beside $lib"
fi
echo "setup: bindgen finds libclang: $lib"

if ! blas=$(detect_openblas); then
  echo "setup: installing OpenBLAS (CPU GEMM)"
  if apt_install libopenblas-dev && ! detect_openblas >/dev/null; then
    # The static archive links against libgfortran, whose linker symlink is in libgfortran-N-dev.
    gccv=$(cc -dumpversion 2>/dev/null | cut -d. -f1)
    apt_install "libgfortran-${gccv}-dev" || true
  fi
  blas=$(detect_openblas) || { blas=""; echo "setup: OpenBLAS unavailable: building with the pure-Rust GEMM"; }
fi
[ -n "$blas" ] && echo "setup: CPU GEMM: $blas"

if ! fm=$(detect_fashion_mnist); then
  echo "setup: installing Fashion-MNIST (dataset-fashion-mnist)"
  if apt_install dataset-fashion-mnist && fm=$(detect_fashion_mnist); then
    echo "setup: Fashion-MNIST in $fm"
  else
    echo "setup: Fashion-MNIST unavailable: runs that ask for it fail, the synthetic set still works" >&2
  fi
else
  echo "setup: Fashion-MNIST in $fm"
fi

[ "${SCADLES_SETUP_NO_BUILD:-0}" = 1 ] && exit 0
cargo build --release --locked 2>/dev/null || cargo build --release
echo "setup: built target/release/scadles"
