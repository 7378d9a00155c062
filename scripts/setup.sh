#!/usr/bin/env bash
# Installs what building scadles needs and is missing, then builds the release binary.
#   - an MPI: the one already on PATH (mpicc) is used; otherwise Debian/Ubuntu's MPICH is installed
#   - libclang + clang's builtin headers (rsmpi runs bindgen at build time)
#   - OpenBLAS (the CPU GEMM; without it a pure-Rust GEMM is used, about half as fast)
# Safe to run repeatedly: it installs nothing that is already there.
set -euo pipefail
cd "$(dirname "$0")/.."

SUDO=""
if [ "$(id -u)" != 0 ]; then SUDO="sudo"; fi
APT_UPDATED=0
apt_install() {
  command -v apt-get >/dev/null || { echo "setup: please install: $* (no apt-get here)" >&2; exit 1; }
  if [ "$APT_UPDATED" = 0 ]; then $SUDO apt-get update -qq; APT_UPDATED=1; fi
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "$@" >/dev/null
}
have_pkg() { apt-cache show "$1" >/dev/null 2>&1; }

command -v cargo >/dev/null || { echo "setup: cargo not found: install a Rust toolchain (1.85 or newer) first" >&2; exit 1; }
command -v cc >/dev/null || apt_install gcc libc6-dev

if command -v mpicc >/dev/null && command -v mpirun >/dev/null; then
  echo "setup: using the MPI on PATH: $(command -v mpicc)"
else
  echo "setup: no MPI on PATH: installing MPICH"
  apt_install mpich libmpich-dev
fi

if [ -z "${LIBCLANG_PATH:-}" ] && ! ldconfig -p 2>/dev/null | grep -q 'libclang.*\.so'; then
  echo "setup: installing libclang (needed by bindgen at build time)"
  if [ "$APT_UPDATED" = 0 ]; then $SUDO apt-get update -qq; APT_UPDATED=1; fi
  if have_pkg libclang1-14 && have_pkg libclang-common-14-dev; then
    apt_install libclang1-14 libclang-common-14-dev
  else
    apt_install libclang-dev
  fi
fi

if ! ls /usr/lib/*/openblas-pthread/libopenblas.a /usr/lib/*/libopenblas.a /usr/lib/*/libopenblas.so >/dev/null 2>&1; then
  echo "setup: installing OpenBLAS (CPU GEMM)"
  apt_install libopenblas-dev || echo "setup: OpenBLAS unavailable: building with the pure-Rust GEMM"
fi

cargo build --release --locked 2>/dev/null || cargo build --release
echo "setup: built target/release/scadles"
