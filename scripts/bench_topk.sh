#!/usr/bin/env bash
# Top-k selection of a ResNet152-sized gradient (60,192,808 f32, N(0,1)) at cr 0.1 and 0.01:
# scadles's CPU top-k next to torch.topk (+ gather of the signed values) on the same machine,
# same thread count, one after the other, and their ratio.
#   scripts/bench_topk.sh [--threads 2] [--reps 5]
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
VENV=${SCADLES_TORCH_VENV:-/opt/scadles-torch}
THREADS=2; REPS=5
while [ $# -gt 0 ]; do
  case "$1" in
    --threads) THREADS=$2; shift 2 ;;
    --reps) REPS=$2; shift 2 ;;
    *) echo "bench_topk.sh: unknown argument '$1'; expected --threads N or --reps N" >&2; exit 2 ;;
  esac
done
BIN="$ROOT/target/release/scadles"
[ -x "$BIN" ] || (cd "$ROOT" && cargo build --release)
[ -x "$VENV/bin/python" ] || { echo "bench_topk.sh: no PyTorch venv at $VENV; run scripts/setup_torch.sh" >&2; exit 1; }
TMP=$(mktemp -d); trap 'rm -rf "$TMP"' EXIT
echo "== scadles"
"$BIN" bench topk --threads "$THREADS" --reps "$REPS" | tee "$TMP/a.txt"
echo "== PyTorch"
"$VENV/bin/python" "$ROOT/scripts/bench_topk_torch.py" --threads "$THREADS" --reps "$REPS" | tee "$TMP/b.txt"
echo
echo "== scadles / torch.topk (elements per second), $THREADS threads"
awk '
  function field(key,   i, kv) { for (i = 2; i <= NF; i++) { split($i, kv, "="); if (kv[1] == key) return kv[2] } return "" }
  FNR == NR && /^topk / { a[field("cr")] = field("elems_per_s"); next }
  /^topk / { cr = field("cr"); if (cr in a) printf "cr %-6s scadles %.3g  torch %.3g  ratio %.1f\n", cr, a[cr], field("elems_per_s"), a[cr] / field("elems_per_s") }
' "$TMP/a.txt" "$TMP/b.txt"
