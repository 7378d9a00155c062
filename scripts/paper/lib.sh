# Shared by scripts/paper/<id>.sh, which reproduce one table or figure of the paper each:
#
#   source "$(dirname "$0")/lib.sh"
#   paper_init <id> "$@"          # parses the arguments, builds, starts $OUT/commands.txt
#   paper_config configs/X.toml   # copies a config the item uses into $OUT/configs/
#   paper_run "$BIN" report <id> --out "$OUT" --scale "$SCALE"   # logs the command, runs it
#   paper_done                    # lists what $OUT holds
#
# Arguments of every script:
#   --scale smoke|quick|paper   smoke: end to end in seconds; quick (default): a 2-core machine;
#                               paper: the paper's own configuration (a GPU cluster)
#   --out DIR                   default results/paper/<id> at quick scale,
#                               results/paper/<scale>/<id> at smoke and paper scale (so a smoke run
#                               never overwrites the committed quick results)
# Set by paper_init: PAPER_ID, SCALE, OUT, BIN (the scadles binary; SCADLES_BIN names one to use
# instead of building target/release/scadles), ROOT (the repository).
# commands.txt begins, as scripts/record.sh's outputs do, with the script's command line, the date,
# machine and commit, then holds every command paper_run ran, in order. Paths under the repository
# are written relative to it.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)

# $1 relative to the repository when it lies inside it.
paper_rel() {
  case $1 in
    "$ROOT"/*) echo "${1#"$ROOT"/}" ;;
    *) echo "$1" ;;
  esac
}

paper_usage() {
  echo "usage: scripts/paper/$PAPER_ID.sh [--scale smoke|quick|paper] [--out DIR]"
}

paper_init() {
  PAPER_ID=$1; shift
  SCALE=quick
  OUT=
  local args="$*"
  while [ $# -gt 0 ]; do
    case $1 in
      --scale) [ $# -ge 2 ] || { echo "$PAPER_ID.sh: --scale needs a value (smoke, quick or paper)" >&2; exit 2; }
               SCALE=$2; shift 2 ;;
      --scale=*) SCALE=${1#*=}; shift ;;
      --out) [ $# -ge 2 ] || { echo "$PAPER_ID.sh: --out needs a directory" >&2; exit 2; }
             OUT=$2; shift 2 ;;
      --out=*) OUT=${1#*=}; shift ;;
      -h|--help) paper_usage; exit 0 ;;
      *) echo "$PAPER_ID.sh: unknown argument '$1' ($(paper_usage))" >&2; exit 2 ;;
    esac
  done
  case $SCALE in
    smoke|quick|paper) ;;
    *) echo "$PAPER_ID.sh: --scale '$SCALE': expected smoke, quick or paper" >&2; exit 2 ;;
  esac
  if [ -z "$OUT" ]; then
    if [ "$SCALE" = quick ]; then OUT=$ROOT/results/paper/$PAPER_ID; else OUT=$ROOT/results/paper/$SCALE/$PAPER_ID; fi
  fi
  mkdir -p "$OUT"
  OUT=$(cd "$OUT" && pwd)
  if [ -n "${SCADLES_BIN:-}" ]; then
    BIN=$SCADLES_BIN
  else
    (cd "$ROOT" && cargo build --release --quiet --bin scadles)
    BIN=$ROOT/target/release/scadles
  fi
  [ -x "$BIN" ] || { echo "$PAPER_ID.sh: no scadles binary at $BIN" >&2; exit 1; }
  local commit dirty=
  commit=$(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo unknown)
  if ! git -C "$ROOT" diff --quiet HEAD -- src scripts assets Cargo.toml Cargo.lock 2>/dev/null; then
    dirty=" (with uncommitted changes to the sources)"
  fi
  {
    echo "# command: scripts/paper/$PAPER_ID.sh${args:+ $args}"
    echo "# scale: $SCALE  out: $(paper_rel "$OUT")"
    echo "# date: $(date -u +%Y-%m-%dT%H:%M:%SZ)  host: $(uname -n)  cores: $(nproc)  cpu: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //')"
    echo "# commit: $commit$dirty"
  } > "$OUT/commands.txt"
}

# Copies config files the item runs with into $OUT/configs/ and logs the copy.
paper_config() {
  mkdir -p "$OUT/configs"
  local f
  for f in "$@"; do
    cp "$f" "$OUT/configs/"
    echo "cp $(paper_rel "$(cd "$(dirname "$f")" && pwd)/$(basename "$f")") $(paper_rel "$OUT")/configs/" >> "$OUT/commands.txt"
  done
}

# Appends the command (repository paths made relative) to commands.txt, then runs it from the
# repository root.
paper_run() {
  local words=() w
  for w in "$@"; do words+=("$(paper_rel "$w")"); done
  echo "${words[*]}" >> "$OUT/commands.txt"
  (cd "$ROOT" && "$@")
}

paper_done() {
  echo "$PAPER_ID ($SCALE): $(paper_rel "$OUT")/: $(cd "$OUT" && find . -type f | sed 's|^\./||' | sort | tr '\n' ' ')"
}
