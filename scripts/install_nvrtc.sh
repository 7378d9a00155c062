#!/usr/bin/env bash
# Installs the pinned NVRTC 13.0 wheel into .venv-cuda (repo root) so that tests/cuda_nvrtc.rs can
# compile every kernel without a GPU or a CUDA install. Prints the library directory on stdout.
#
# Pinned to 13.0.x on purpose: NVRTC 13.2 emits PTX ISA 9.2, which a CUDA 13.0 / R580 driver cannot
# load. The kernels need no CUDA headers, so the runtime wheel (headers) is installed only with
# --headers.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
VENV=${SCADLES_CUDA_VENV:-$ROOT/.venv-cuda}
PY=${PYTHON:-python3}
pkgs=("nvidia-cuda-nvrtc==13.0.88")
if [ "${1:-}" = "--headers" ]; then pkgs+=("nvidia-cuda-runtime==13.0.96"); fi

if [ ! -x "$VENV/bin/python" ]; then
    if ! "$PY" -m venv "$VENV" >&2; then
        # Debian/Ubuntu ship venv (and pip) separately from python3.
        rm -rf "$VENV"
        SUDO=""; [ "$(id -u)" != 0 ] && SUDO="sudo"
        command -v "$PY" >/dev/null || pkgs_py=python3
        $SUDO apt-get update -qq >&2 && DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends ${pkgs_py:-} python3-venv python3-pip >&2
        "$PY" -m venv "$VENV" >&2
    fi
fi
"$VENV/bin/python" -m pip install --quiet --disable-pip-version-check "${pkgs[@]}" >&2
SITE=$("$VENV/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
LIB="$SITE/nvidia/cu13/lib"
if [ ! -e "$LIB/libnvrtc.so.13" ] || [ ! -e "$LIB/libnvrtc-builtins.so.13.0" ]; then
    echo "install_nvrtc.sh: libnvrtc.so.13 / libnvrtc-builtins.so.13.0 not found under $LIB" >&2
    exit 1
fi
echo "NVRTC 13.0 installed; export SCADLES_NVRTC_DIR=$LIB (tests also find it there by default)" >&2
echo "$LIB"
