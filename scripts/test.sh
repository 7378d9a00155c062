#!/usr/bin/env bash
# Installs what is missing, builds, and runs the whole test suite: unit tests, PyTorch-reference
# tests, multi-rank tests under mpirun (2, 3 and 4 ranks), the NVRTC compile test of every kernel and
# the CPU emulation of every kernel (g++).
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/setup.sh
# shellcheck source=scripts/lib/detect.sh
. scripts/lib/detect.sh
# A g++ that builds C++20 runs the CUDA kernels under CPU emulation (tests/kernel_emulation.rs) and
# builds the emulated GPU driver (tests/kernel_emu/libcuda.cpp).
if ! detect_cxx20 >/dev/null && command -v apt-get >/dev/null; then
  SUDO=""; [ "$(id -u)" != 0 ] && SUDO="sudo"
  echo "test: no g++ that builds C++20: installing g++"
  { $SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends g++ >/dev/null; } || true
  detect_cxx20 >/dev/null || echo "test: g++ unavailable: the kernel emulation and the GPU tests will be skipped" >&2
fi
# NVRTC 13.0 from PyPI compiles the CUDA kernels in the test suite (no GPU needed).
if [ -z "${SCADLES_NVRTC_DIR:-}" ] && [ -x scripts/install_nvrtc.sh ]; then
  SCADLES_NVRTC_DIR=$(./scripts/install_nvrtc.sh | tail -n 1) && export SCADLES_NVRTC_DIR || true
fi
cargo test --release "$@"
