#!/usr/bin/env bash
# Installs what is missing, builds, and runs the whole test suite: unit tests, PyTorch-reference
# tests, multi-rank tests under mpirun (2, 3 and 4 ranks) and the NVRTC compile test of every kernel.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/setup.sh
# NVRTC 13.0 from PyPI compiles the CUDA kernels in the test suite (no GPU needed).
if [ -z "${SCADLES_NVRTC_DIR:-}" ] && [ -x scripts/install_nvrtc.sh ]; then
  SCADLES_NVRTC_DIR=$(./scripts/install_nvrtc.sh | tail -n 1) && export SCADLES_NVRTC_DIR || true
fi
cargo test --release "$@"
