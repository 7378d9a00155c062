#!/usr/bin/env bash
# Runs a command and keeps its output under results/ with the command line, the machine and the
# date in a header:  scripts/record.sh results/NAME.txt CMD ARGS...
set -euo pipefail
OUT=$1; shift
mkdir -p "$(dirname "$OUT")"
TMP="$OUT.tmp"
{
  echo "# command: $*"
  echo "# date: $(date -u +%Y-%m-%dT%H:%M:%SZ)  host: $(uname -n)  cores: $(nproc)  cpu: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //')"
  echo "# commit: $(git rev-parse --short HEAD 2>/dev/null || echo unknown)"
  "$@" 2>&1
} > "$TMP"
mv "$TMP" "$OUT"
cat "$OUT"
