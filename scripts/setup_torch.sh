#!/usr/bin/env bash
# Creates the PyTorch venv used to regenerate tests/data/torch_ref (scripts/torch_reference.py) and to
# run the PyTorch side of the CPU benchmark (scripts/bench_torch.py, scripts/bench_cpu.sh).
# Not part of CI: the crate builds and tests without it.
#
#   scripts/setup_torch.sh                 # venv at /opt/scadles-torch
#   SCADLES_TORCH_VENV=~/venvs/t scripts/setup_torch.sh
#
# PyPI has only the CUDA build of torch (about 5.4 GB installed with its CUDA wheels); it runs on CPU.
# torchvision is optional: bench_torch.py falls back to identical plain-torch models without it, so a
# torchvision that cannot be installed next to the pinned torch is skipped rather than allowed to
# replace torch.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
VENV=${SCADLES_TORCH_VENV:-/opt/scadles-torch}
PY=${PYTHON:-python3}
REQ="$ROOT/scripts/requirements-torch.txt"

if [ ! -x "$VENV/bin/python" ]; then
    "$PY" -m venv "$VENV"
fi
PIP=("$VENV/bin/python" -m pip install --disable-pip-version-check)
TORCH=$(grep -E '^torch==' "$REQ")
"${PIP[@]}" "$TORCH" "$(grep -E '^numpy==' "$REQ")"
# Constrain torch so that pip fails instead of swapping it for the version torchvision prefers.
"${PIP[@]}" "$(grep -E '^torchvision==' "$REQ")" "$TORCH" \
    || echo "setup_torch.sh: torchvision not installed; bench_torch.py will use its plain-torch models" >&2
"$VENV/bin/python" -c 'import torch; print("torch", torch.__version__, "threads", torch.get_num_threads())'
echo "$VENV"
