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
# Paper scale validates its inputs and logs what it would run (`# would run: ...` in commands.txt);
# PAPER_EXECUTE=1 runs it (on a cluster), PAPER_DATA_DIR names the CIFAR data, PAPER_NP the ranks
# (default: the paper's device count) and PAPER_ARGS extra flags put last (see paper_scale_args).
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

# The command line, repository paths made relative.
paper_words() {
  local words=() w
  for w in "$@"; do words+=("$(paper_rel "$w")"); done
  echo "${words[*]}"
}

# Appends the command (repository paths made relative) to commands.txt, then runs it from the
# repository root.
paper_run() {
  paper_words "$@" >> "$OUT/commands.txt"
  (cd "$ROOT" && "$@")
}

paper_done() {
  echo "$PAPER_ID ($SCALE): $(paper_rel "$OUT")/: $(cd "$OUT" && find . -type f | sed 's|^\./||' | sort | tr '\n' ' ')"
}

# The directory of an item's runs, made and printed as an absolute path: $2 when set, else
# results/paper/$1 at quick scale and results/paper/<scale>/$1 otherwise.
paper_runs_dir() {
  local d=$2
  if [ -z "$d" ]; then
    if [ "$SCALE" = quick ]; then d=$ROOT/results/paper/$1; else d=$ROOT/results/paper/$SCALE/$1; fi
  fi
  mkdir -p "$d"
  (cd "$d" && pwd)
}

# At quick scale the runs train on Fashion-MNIST, or on the synthetic set when it is not installed:
# sets the array QUICK_DATA to the flags that say so (empty with Fashion-MNIST) and warns, naming
# the runs ($1).
paper_quick_data() {
  QUICK_DATA=()
  . "$ROOT/scripts/lib/detect.sh"
  if ! detect_fashion_mnist >/dev/null; then
    echo "$PAPER_ID: Fashion-MNIST is not installed: $1 train on the synthetic set" >&2
    QUICK_DATA=(--dataset synthetic)
  fi
}

# One `scadles train` run into the directory $1 on $2 ranks with the flags $3...: kept when it
# finished before (summary.json), logged as `# would run:` at paper scale unless PAPER_EXECUTE=1,
# else run (its output in $1.log, shown on failure) with its command line in $1/commands.txt.
paper_train_run() {
  local dir=$1 np=$2; shift 2
  local name
  name=$(basename "$dir")
  if [ -f "$dir/summary.json" ]; then
    echo "# kept: $(paper_rel "$dir") (finished before)" >> "$OUT/commands.txt"
    return 0
  fi
  local cmd=("$ROOT/scripts/mpirun.sh" "$np" "$BIN" train "$@" --out "$dir" --overwrite)
  if [ "$SCALE" = paper ] && [ "${PAPER_EXECUTE:-0}" != 1 ]; then
    echo "# would run: $(paper_words "${cmd[@]}")" | tee -a "$OUT/commands.txt"
    return 0
  fi
  echo "$PAPER_ID: run $name ($SCALE)" >&2
  paper_run "${cmd[@]}" > "$dir.log" 2>&1 || { tail -20 "$dir.log" >&2; return 1; }
  rm -f "$dir.log"
  {
    echo "# run $name ($SCALE), by scripts/paper/$PAPER_ID.sh; $(date -u +%Y-%m-%dT%H:%M:%SZ) host $(uname -n) cores $(nproc) commit $(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo unknown)"
    paper_words "${cmd[@]}"
  } > "$dir/commands.txt"
}

# At paper scale: warns (once) when PAPER_DATA_DIR is not a directory; the runs are then only
# logged.
paper_check_data() {
  if [ "$SCALE" = paper ] && { [ -z "${PAPER_DATA_DIR:-}" ] || [ ! -d "${PAPER_DATA_DIR:-/nonexistent}" ]; }; then
    echo "$PAPER_ID: paper scale: PAPER_DATA_DIR (CIFAR-10 and CIFAR-100 binary versions, or their cifar-10-batches-bin/ and cifar-100-binary/ folders) is not set or not a directory; logging the runs only" >&2
  fi
}

# The paper's own configuration for the stand-in name $1 (resnet152 | vgg19), then the flags $2...
# of the item, then PAPER_ARGS, into the array PARGS:
# resnet152 / vgg19_bn in torchvision shape with 1000-way heads on CIFAR-10 / CIFAR-100 from
# PAPER_DATA_DIR, the paper's LR and weight decay, its K80 compute model and the link sized as the
# model, evaluated every 10 clock minutes on the 10,000 test images, to 95% / 84% top-5. Over the
# item's other settings from configs/paper-quick-<model>.toml (rates, policy, compression). A flag
# in PAPER_ARGS replaces the same flag before it: PAPER_NP=2 PAPER_ARGS="--steps 2 --rates 8,8"
# runs a paper-scale cell for two tiny steps.
paper_scale_args() {
  local m=resnet152 ds=cifar10 lr=0.1 wd=0.0001 cm=k80-resnet152 lp=60192808 t5=0.95
  if [ "$1" = vgg19 ]; then m=vgg19_bn ds=cifar100 lr=0.01 wd=0.0005 cm=k80-vgg19 lp=143678248 t5=0.84; fi
  PARGS=(--config "$ROOT/configs/paper-quick-$1.toml" --model "$m" --shape torchvision
         --num-classes 1000 --dataset "$ds" --data-dir "${PAPER_DATA_DIR:-DATA_DIR}" --lr "$lr"
         --weight-decay "$wd" --compute-model "$cm" --link-params "$lp" --steps 100000
         --eval-every-s 600 --eval-samples 10000 --target-top5 "$t5" "${@:2}")
  read -r -a PAPER_EXTRA <<< "${PAPER_ARGS:-}"
  # A flag given in PAPER_ARGS replaces the same flag (and its value) here: scadles takes a flag once.
  local keep=() i=0 w
  while [ $i -lt ${#PARGS[@]} ]; do
    w=${PARGS[$i]}
    if [[ $w == --* ]] && [[ " ${PAPER_EXTRA[*]} " == *" $w "* ]]; then i=$((i + 2)); continue; fi
    keep+=("$w"); i=$((i + 1))
  done
  PARGS=("${keep[@]}" "${PAPER_EXTRA[@]}")
}

# The shared ScaDLES/DDL runs of Table VI, Fig. 6, Fig. 7 and Table IV: for each rate set and model
# (stand-in), one `scadles compare` (ScaDLES with Table VI's configuration against the paper's DDL)
# into $RUNS/<set>-<model>/ (scadles/ and ddl/), and one ScaDLES run with --buffer persistence into
# $RUNS/<set>-<model>/persistence/ (Table IV's persistence column). A finished run (summary.json in
# each of its directories) is kept, so every item's script can call this; an unfinished one is run
# again with --overwrite. Sets RUNS: results/paper/runs at quick scale, results/paper/<scale>/runs
# otherwise (PAPER_RUNS overrides). PAPER_CELLS (e.g. "S1p-resnet152") limits the cells run.
# Scales: smoke: 2 ranks, synthetic data, a few steps; quick: configs/paper-quick-<model>.toml,
# 16 ranks, Fashion-MNIST (synthetic when it is not installed); paper: resnet152 / vgg19_bn in
# torchvision shape on CIFAR-10 / CIFAR-100 from PAPER_DATA_DIR, 16 ranks, the paper's schedule:
# validates the inputs and logs what it would run (PAPER_EXECUTE=1 runs it, on a cluster).
PAPER_SETS="S1 S2 S1p S2p"
PAPER_MODELS="resnet152 vgg19"

paper_cell_done() {
  local d=$1 s
  for s in scadles ddl persistence; do [ -f "$d/$s/summary.json" ] || return 1; done
}

paper_shared_runs() {
  RUNS=$(paper_runs_dir runs "${PAPER_RUNS:-}")
  local cells=${PAPER_CELLS:-} set model cell dir np args data=()
  if [ -z "$cells" ]; then
    for model in $PAPER_MODELS; do for set in $PAPER_SETS; do cells="$cells $set-$model"; done; done
  fi
  if [ "$SCALE" = quick ]; then paper_quick_data "the shared runs"; data=("${QUICK_DATA[@]}"); fi
  paper_check_data
  for cell in $cells; do
    set=${cell%-*}; model=${cell#*-}
    case " $PAPER_SETS " in *" $set "*) ;; *) echo "$PAPER_ID: unknown rate set in cell '$cell'" >&2; exit 2 ;; esac
    case " $PAPER_MODELS " in *" $model "*) ;; *) echo "$PAPER_ID: unknown model in cell '$cell'" >&2; exit 2 ;; esac
    dir=$RUNS/$cell
    if paper_cell_done "$dir"; then
      echo "# kept: $(paper_rel "$dir") (finished before)" >> "$OUT/commands.txt"
      continue
    fi
    case $SCALE in
      smoke)
        np=2
        args=(--config "$ROOT/configs/paper-quick-$model.toml" --rates "$set" --dataset synthetic
              --synthetic-train 2000 --synthetic-test 400 --steps 20 --eval-every-s 4 --eval-samples 200
              --target-top1 0.2 --threads 1) ;;
      quick)
        np=16
        args=(--config "$ROOT/configs/paper-quick-$model.toml" --rates "$set" "${data[@]}") ;;
      paper)
        np=${PAPER_NP:-16}
        paper_scale_args "$model" --rates "$set"
        args=("${PARGS[@]}") ;;
    esac
    local cmp=("$ROOT/scripts/mpirun.sh" "$np" "$BIN" compare "${args[@]}" --out "$dir" --overwrite)
    local per=("$ROOT/scripts/mpirun.sh" "$np" "$BIN" train "${args[@]}" --policy scadles --buffer persistence
               --out "$dir/persistence" --overwrite)
    if [ "$SCALE" = paper ] && [ "${PAPER_EXECUTE:-0}" != 1 ]; then
      echo "# would run: $(paper_words "${cmp[@]}")" | tee -a "$OUT/commands.txt"
      echo "# would run: $(paper_words "${per[@]}")" | tee -a "$OUT/commands.txt"
      continue
    fi
    echo "$PAPER_ID: shared run $cell ($SCALE)" >&2
    paper_run "${cmp[@]}"
    paper_run "${per[@]}"
    # The cell's own log, so that a later script's commands.txt (which only says "kept") never
    # hides how a cell was made.
    {
      echo "# cell $cell ($SCALE), run by scripts/paper/$PAPER_ID.sh; $(date -u +%Y-%m-%dT%H:%M:%SZ) host $(uname -n) cores $(nproc) commit $(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo unknown)"
      paper_words "${cmp[@]}"
      paper_words "${per[@]}"
    } > "$dir/commands.txt"
  done
}

# The non-IID runs of Figs. 2, 8 and 9: single `scadles train` runs into $NONIID/<name>/, shared by
# the three scripts (a finished run, summary.json present, is kept; an unfinished one is run again
# with --overwrite). NONIID is results/paper/noniid at quick scale, results/paper/<scale>/noniid
# otherwise (PAPER_NONIID overrides). Usage:
#   paper_noniid_init                       # sets NONIID and the scale's base arguments
#   paper_noniid_run NAME NP ARGS...        # ARGS: the run's own flags (--partition, --inject, ...)
# Every run starts from configs/noniid-fmnist.toml (tinycnn_bn, label-shard, S'1, the K80 ResNet152
# clock and 5 Gbps link), then the scale's arguments, then ARGS. Scales: smoke: synthetic data,
# 2 000 training samples; quick: Fashion-MNIST (synthetic when it is not installed); paper:
# resnet152 in torchvision shape with a 1000-way head on CIFAR-10 from PAPER_DATA_DIR, the paper's
# lr and weight decay: validates the inputs and logs what it would run (PAPER_EXECUTE=1 runs it).
paper_noniid_init() {
  NONIID=$(paper_runs_dir noniid "${PAPER_NONIID:-}")
  NONIID_BASE=(--config "$ROOT/configs/noniid-fmnist.toml")
  case $SCALE in
    smoke)
      NONIID_BASE+=(--dataset synthetic --synthetic-train 2000 --synthetic-test 400 --eval-samples 200 --threads 1) ;;
    quick)
      paper_quick_data "the non-IID runs"
      NONIID_BASE+=("${QUICK_DATA[@]}") ;;
    paper)
      paper_check_data
      NONIID_BASE+=(--model resnet152 --shape torchvision --num-classes 1000 --dataset cifar10
                    --data-dir "${PAPER_DATA_DIR:-DATA_DIR}" --lr 0.1 --weight-decay 0.0001
                    --milestones 75,150,225 --gamma 0.2 --compute-model k80-resnet152
                    --link-params 60192808 --eval-samples 10000) ;;
  esac
}

paper_noniid_run() {
  local name=$1 np=$2; shift 2
  paper_train_run "$NONIID/$name" "$np" "${NONIID_BASE[@]}" "$@"
}

# The (alpha, beta) settings of Figs. 8 and 9 [P], as run names and --inject values.
NONIID_INJECT="0.5,0.5 0.25,0.25 0.1,0.1 0.05,0.05 none"
paper_inject_name() { if [ "$1" = none ]; then echo none; else echo "a${1%,*}-b${1#*,}"; fi; }
