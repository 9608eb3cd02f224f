#!/usr/bin/env bash
# bench/churn.sh — the churn benchmark of issue 10 (item 7): the same
# deterministic fsx-like mix on one file (bench/churn.cc) run side by side on
# daxref, XFS on a loop device and tmpfs, in one run; first on a fresh file,
# then, after a long churn and a remount, again on the churned file.
#
# usage: bench/churn.sh [--quick] [--build-dir DIR] [--targets LIST] [--ops N]
#                       [--checkpoints LIST] [--long-ops N] [--seed N]
#                       [--max-size SIZE] [--time-limit S] [--size SIZE] [--pin CPU]
#
#   --quick            smoke test: checkpoints 100,1000,2000, long churn 2,000
#                      ops. Runs in seconds even where churn is slow.
#   --build-dir DIR    meson build directory (default: <repo>/build)
#   --targets LIST     comma-separated subset of daxref,xfs,tmpfs (default all)
#   --ops N            operations of each timed run (default: last checkpoint)
#   --checkpoints LIST where to report µs/op (default 1000,10000,100000)
#   --long-ops N       the long churn before the remount (default 100000)
#   --seed N           seed of the fresh run (default 1); the long churn uses
#                      N+1 and the run after the remount N+2
#   --max-size SIZE    largest size of the churned file (default 4M)
#   --time-limit S     stop each timed run after S seconds (partial figures)
#   --size SIZE        daxref pool and XFS image size (default 1G)
#   --pin CPU          run daemon and workloads under taskset -c CPU
#
# Must run as root. Installs xfsprogs with apt-get if mkfs.xfs is missing.
# Everything it creates (pool and XFS image under /dev/shm, mount points and
# logs under /tmp) is unmounted and removed on exit, also on error and Ctrl-C.
# Exit status: 0 if every run finished and verified (targets met or not),
# 1 if a run failed (a byte mismatch is a failure), 2 for bad usage.

set -euo pipefail

SCRIPT_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(cd "$SCRIPT_DIR/.." && pwd)

BUILD="$REPO/build"
QUICK=0
TARGETS_ARG="daxref,xfs,tmpfs"
OPS=""
CHECKPOINTS=""
LONG_OPS=""
SEED=1
MAX_SIZE=4M
TIME_LIMIT=""
SIZE=1G
PIN=()

usage() {
  sed -n '7,23s/^# \{0,1\}//p' "$0"
  exit "${1:-0}"
}
die() { echo "churn.sh: $*" >&2; exit 1; }
note() { echo "churn.sh: $*" >&2; }
need_arg() { [[ $# -ge 2 ]] || { echo "churn.sh: $1 needs a value" >&2; usage 2; }; }

while [[ $# -gt 0 ]]; do
  case "$1" in
    --quick) QUICK=1; shift ;;
    --build-dir) need_arg "$@"; BUILD=$2; shift 2 ;;
    --targets) need_arg "$@"; TARGETS_ARG=$2; shift 2 ;;
    --ops) need_arg "$@"; OPS=$2; shift 2 ;;
    --checkpoints) need_arg "$@"; CHECKPOINTS=$2; shift 2 ;;
    --long-ops) need_arg "$@"; LONG_OPS=$2; shift 2 ;;
    --seed) need_arg "$@"; SEED=$2; shift 2 ;;
    --max-size) need_arg "$@"; MAX_SIZE=$2; shift 2 ;;
    --time-limit) need_arg "$@"; TIME_LIMIT=$2; shift 2 ;;
    --size) need_arg "$@"; SIZE=$2; shift 2 ;;
    --pin) need_arg "$@"; PIN=(taskset -c "$2"); shift 2 ;;
    -h|--help) usage 0 ;;
    *) echo "churn.sh: unknown argument: $1" >&2; usage 2 ;;
  esac
done

if [[ $QUICK -eq 1 ]]; then
  : "${CHECKPOINTS:=100,1000,2000}"; : "${LONG_OPS:=2000}"
else
  : "${CHECKPOINTS:=1000,10000,100000}"; : "${LONG_OPS:=100000}"
fi
: "${OPS:=${CHECKPOINTS##*,}}"
[[ $OPS =~ ^[0-9]+$ && $LONG_OPS =~ ^[0-9]+$ && $SEED =~ ^[0-9]+$ ]] ||
  { echo "churn.sh: --ops, --long-ops and --seed take numbers" >&2; usage 2; }
[[ $CHECKPOINTS =~ ^[0-9]+(,[0-9]+)*$ ]] || { echo "churn.sh: bad --checkpoints" >&2; usage 2; }
# The table's rows: the checkpoints up to --ops, and --ops itself (the
# program always reports it).
_cps=""
IFS=, read -r -a _c <<<"$CHECKPOINTS"
for c in $(printf "%s\n" "${_c[@]}" "$OPS" | sort -n -u); do
  [[ $c -gt 0 && $c -le $OPS ]] && _cps+="${_cps:+,}$c"
done
CHECKPOINTS=$_cps
[[ -z $TIME_LIMIT || $TIME_LIMIT =~ ^[0-9]+(\.[0-9]+)?$ ]] ||
  { echo "churn.sh: bad --time-limit" >&2; usage 2; }

TARGETS=()
IFS=, read -r -a _t <<<"$TARGETS_ARG"
for t in daxref xfs tmpfs; do  # fixed order, whatever the order given
  for u in "${_t[@]}"; do [[ $u == "$t" ]] && TARGETS+=("$t"); done
done
for u in "${_t[@]}"; do
  [[ $u == daxref || $u == xfs || $u == tmpfs ]] || { echo "churn.sh: unknown target $u" >&2; usage 2; }
done
[[ ${#TARGETS[@]} -gt 0 ]] || { echo "churn.sh: no targets" >&2; usage 2; }
has_target() { [[ " ${TARGETS[*]} " == *" $1 "* ]]; }

[[ $(id -u) -eq 0 ]] || die "must run as root (mounts)"
for t in python3 mountpoint timeout; do command -v "$t" >/dev/null || die "$t not found"; done
if has_target daxref; then command -v fusermount3 >/dev/null || die "fusermount3 not found"; fi
if has_target xfs && ! command -v mkfs.xfs >/dev/null; then
  note "mkfs.xfs missing: installing xfsprogs"
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q xfsprogs >/dev/null ||
    die "apt-get install xfsprogs failed"
fi

# ---------------------------------------------------------------- cleanup --

WORK=""          # /tmp/daxref-churn.XXXXXX: mount points, logs, results
SHM=""           # /dev/shm/daxref-churn.XXXXXX: pool and XFS image
POOL=""
DAX_MNT=""
XFS_MNT=""
XFS_IMG=""
TMPFS_MNT=""

# shellcheck source=bench/lib.sh
source "$SCRIPT_DIR/lib.sh"

# shellcheck disable=SC2317  # called through the trap trap_cleanup sets
cleanup() {
  local rc=$? stuck=0
  set +e
  trap - EXIT INT TERM HUP
  teardown_daxref || stuck=1
  [[ -n $DAX_MNT && -d $DAX_MNT ]] && stuck=1
  for m in "$XFS_MNT" "$TMPFS_MNT"; do
    [[ -n $m && -d $m ]] || continue
    if unmount_dir "$m" other; then rmdir "$m"; else stuck=1; fi
  done
  [[ -n $SHM ]] && rm -rf -- "$SHM"
  if [[ -n $WORK ]]; then
    if [[ $stuck -eq 1 ]]; then
      note "warning: leaving $WORK behind (a mount point could not be removed)"
    else
      rm -rf -- "$WORK"
    fi
  fi
  exit "$rc"
}
trap_cleanup

WORK=$(mktemp -d /tmp/daxref-churn.XXXXXX)
SHM=$(mktemp -d /dev/shm/daxref-churn.XXXXXX)

# ------------------------------------------------------------------ build --

if has_target daxref; then
  build_targets fs/daxref tools/mkfs/mkfs.daxref
  MKFS="$BUILD/tools/mkfs/mkfs.daxref"
  DAXREF="$BUILD/fs/daxref"
  CHURN=$(bench_helper daxref-bench-churn churn.cc)
else
  # No build directory needed: compile the program privately.
  CHURN="$WORK/daxref-bench-churn"
  "${CXX:-c++}" -std=c++20 -O2 -g -Wall -Wextra -D_FILE_OFFSET_BITS=64 \
    -o "$CHURN" "$SCRIPT_DIR/churn.cc" || die "cannot compile bench/churn.cc"
fi

# ---------------------------------------------------------------- targets --

declare -A DIR

mount_daxref() {
  "${PIN[@]}" "$DAXREF" "$POOL" "$DAX_MNT" >>"$WORK/daxref.log" 2>&1 ||
    { cat "$WORK/daxref.log" >&2; die "daxref $POOL $DAX_MNT failed"; }
  local i
  for ((i = 0; i < 100; i++)); do mountpoint -q "$DAX_MNT" && return 0; sleep 0.1; done
  cat "$WORK/daxref.log" >&2
  die "daxref returned but $DAX_MNT is not mounted"
}

mount_xfs() { mount -o loop "$XFS_IMG" "$XFS_MNT" || die "cannot mount $XFS_IMG (loop)"; }

setup_targets() {
  if has_target daxref; then
    POOL="$SHM/pool"
    "$MKFS" --size "$SIZE" "$POOL" >"$WORK/mkfs.log" 2>&1 ||
      { cat "$WORK/mkfs.log" >&2; die "mkfs.daxref failed"; }
    DAX_MNT="$WORK/daxref"; mkdir "$DAX_MNT"
    mount_daxref
    DIR[daxref]=$DAX_MNT
  fi
  if has_target xfs; then
    XFS_IMG="$SHM/xfs.img"
    truncate -s "$SIZE" "$XFS_IMG"
    mkfs.xfs -q "$XFS_IMG" >"$WORK/mkfs.xfs.log" 2>&1 ||
      { cat "$WORK/mkfs.xfs.log" >&2; die "mkfs.xfs failed"; }
    XFS_MNT="$WORK/xfs"; mkdir "$XFS_MNT"
    mount_xfs
    DIR[xfs]=$XFS_MNT
  fi
  if has_target tmpfs; then
    TMPFS_MNT="$WORK/tmpfs"; mkdir "$TMPFS_MNT"
    mount -t tmpfs -o size=1G daxref-churn "$TMPFS_MNT" || die "cannot mount tmpfs"
    DIR[tmpfs]=$TMPFS_MNT
  fi
}

# The remount between the long churn and the run on the churned file. tmpfs
# keeps its files only while mounted: it is not remounted (said in the table).
remount_target() {
  case $1 in
    daxref)
      unmount_dir "$DAX_MNT" fuse || die "cannot unmount $DAX_MNT"
      wait_for_daemon || die "daxref daemon did not exit after unmount"
      mount_daxref ;;
    xfs)
      unmount_dir "$XFS_MNT" other || die "cannot unmount $XFS_MNT"
      mount_xfs ;;
    tmpfs) : ;;
  esac
}

# ------------------------------------------------------------------- runs --

FAILED=0
declare -A RES      # RES[target,phase,ops] = interval µs/op
declare -A INFO     # INFO[target,phase] = "ops_done seconds complete"

# run_churn TARGET PHASE SUBDIR churn-args...: runs the churn program, keeps
# its JSON in $WORK/TARGET-PHASE.json and fills RES and INFO.
run_churn() {
  local target=$1 phase=$2 sub=$3; shift 3
  local out="$WORK/$target-$phase.json" err="$WORK/$target-$phase.err" line
  local tl=()
  [[ -n $TIME_LIMIT ]] && tl=(--time-limit "$TIME_LIMIT")
  mkdir -p "${DIR[$target]}/$sub"
  if "${PIN[@]}" "$CHURN" --json --label "$target" --max-size "$MAX_SIZE" "${tl[@]}" "$@" \
      "${DIR[$target]}/$sub" >"$out" 2>"$err"; then
    while read -r line; do
      # shellcheck disable=SC2086
      set -- $line
      if [[ $1 == cp ]]; then RES[$target,$phase,$2]=$3; else INFO[$target,$phase]="$2 $3 $4"; fi
    done < <(python3 - "$out" <<'PY'
import json, sys
d = json.load(open(sys.argv[1]))
for c in d["checkpoints"]:
    print("cp %d %.2f" % (c["ops"], c["interval_us_per_op"]))
print("run %d %.3f %s" % (d["ops_done"], d["seconds"], "yes" if d["complete"] else "no"))
PY
    )
    local n s c
    read -r n s c <<<"${INFO[$target,$phase]}"
    note "  $phase: $n ops in $s s$([[ $c == no ]] && echo ' (stopped by --time-limit)')"
    grep -v '^daxref-bench-churn: fallocate(ZERO_RANGE) not supported' "$err" >&2 || true
  else
    FAILED=1
    INFO[$target,$phase]="ERR"
    note "  $phase on $target FAILED:"; sed 's/^/    /' "$err" >&2 || true
  fi
}

setup_targets
note "targets: ${TARGETS[*]}; fresh run $OPS ops (checkpoints $CHECKPOINTS), long churn $LONG_OPS ops"
for target in "${TARGETS[@]}"; do
  note "$target (${DIR[$target]})"
  run_churn "$target" fresh fresh --seed "$SEED" --ops "$OPS" --checkpoints "$CHECKPOINTS"
  if [[ $LONG_OPS -gt 0 ]]; then
    run_churn "$target" long long --seed "$((SEED + 1))" --ops "$LONG_OPS" --checkpoints "$LONG_OPS"
    [[ ${INFO[$target,long]} == ERR ]] && continue
    t0=$EPOCHREALTIME
    remount_target "$target"
    INFO[$target,remount]=$(awk -v a="$t0" -v b="$EPOCHREALTIME" 'BEGIN { printf "%.2f", b - a }')
    run_churn "$target" reuse long --reuse --seed "$((SEED + 2))" --ops "$OPS" \
      --checkpoints "$CHECKPOINTS"
  fi
done

# ------------------------------------------------------------------ table --

isnum() { [[ ${1:-} =~ ^[0-9]+(\.[0-9]+)?$ ]]; }
ratio() {
  if isnum "${1:-}" && isnum "${2:-}" && awk -v b="$2" 'BEGIN { exit !(b > 0) }'; then
    awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", a / b }'
  else
    echo "-"
  fi
}
# flatness TARGET PHASE: max/min of the interval µs/op over the checkpoints.
# Over the checkpoints reached: a run stopped by --time-limit is judged on
# what it reached, and PARTIAL[TARGET,PHASE] says so.
declare -A PARTIAL
flatness() {
  local v vals=() c
  IFS=, read -r -a cps <<<"$CHECKPOINTS"
  for c in "${cps[@]}"; do
    v=${RES[$1,$2,$c]:-}
    if isnum "$v"; then vals+=("$v"); else PARTIAL[$1,$2]=1; fi
  done
  [[ ${#vals[@]} -ge 2 ]] || { echo "-"; return; }
  printf "%s\n" "${vals[@]}" | awk 'NR == 1 { lo = hi = $1 } { if ($1 < lo) lo = $1; if ($1 > hi) hi = $1 }
    END { printf "%.2f", (lo > 0 ? hi / lo : 0) }'
}

echo
echo "daxref churn benchmark — $(date -u '+%Y-%m-%d %H:%M:%S UTC'), kernel $(uname -r)," \
  "git $(git -C "$REPO" rev-parse --short HEAD 2>/dev/null || echo '?')$([[ $QUICK -eq 1 ]] && echo ', QUICK (smoke test)')"
echo "one file, max size $MAX_SIZE, seed $SEED; pool/XFS image $SIZE in /dev/shm; load $(cut -d' ' -f1-3 /proc/loadavg)"
[[ ${#PIN[@]} -gt 0 ]] && echo "pinned: ${PIN[*]}"
echo "µs/op over the operations since the previous checkpoint (lower is better)"
echo
FMT="%-28s | %10s | %10s | %10s | %10s | %12s\n"
printf "$FMT" "run, ops" "daxref" "xfs" "tmpfs" "daxref/xfs" "daxref/tmpfs"
printf "%s\n" "-----------------------------+------------+------------+------------+------------+-------------"
IFS=, read -r -a CPS <<<"$CHECKPOINTS"
for phase in fresh reuse; do
  [[ $phase == reuse && $LONG_OPS -eq 0 ]] && continue
  for c in "${CPS[@]}"; do
    [[ $c -le $OPS ]] || continue
    label="fresh file, $c"; [[ $phase == reuse ]] && label="after churn+remount, $c"
    d=${RES[daxref,$phase,$c]:--}; x=${RES[xfs,$phase,$c]:--}; t=${RES[tmpfs,$phase,$c]:--}
    printf "$FMT" "$label" "$d" "$x" "$t" "$(ratio "$d" "$x")" "$(ratio "$d" "$t")"
  done
done
if [[ $LONG_OPS -gt 0 ]]; then
  row=()
  for target in daxref xfs tmpfs; do
    i=${INFO[$target,long]:-}
    if [[ -n $i && $i != ERR ]]; then
      read -r n s _ <<<"$i"; row+=("$(awk -v n="$n" -v s="$s" 'BEGIN { printf "%.2f", s * 1e6 / n }')")
    else
      row+=("-")
    fi
  done
  printf "$FMT" "long churn ($LONG_OPS), mean" "${row[0]}" "${row[1]}" "${row[2]}" \
    "$(ratio "${row[0]}" "${row[1]}")" "$(ratio "${row[0]}" "${row[2]}")"
  printf "$FMT" "remount (s)" "${INFO[daxref,remount]:--}" "${INFO[xfs,remount]:--}" "(none)" "" ""
fi
echo
for target in "${TARGETS[@]}"; do
  for phase in fresh long reuse; do
    i=${INFO[$target,$phase]:-}
    [[ $i == *" no" ]] && echo "note: $target $phase stopped by --time-limit after ${i%% *} ops; later checkpoints missing"
  done
done
echo "tmpfs has no FALLOC_FL_ZERO_RANGE: the program emulates it there (PUNCH_HOLE + ftruncate)."
echo "tmpfs is not remounted (it would lose the file): its 'after churn' rows follow the long churn directly."

echo
echo "targets (daxref):"
verdict() {  # verdict DESCRIPTION VALUE MAX [partial]
  local v p=""
  [[ ${4:-} == partial ]] && p=", checkpoints reached only"
  if [[ $2 == - ]] || ! isnum "$2"; then v="MISS (no result)"
  elif awk -v a="$2" -v m="$3" 'BEGIN { exit !(a <= m) }'; then v="PASS ($2$p)"
  else v="MISS ($2$p)"; fi
  printf "  %-52s %s\n" "$1" "$v"
}
if has_target daxref; then
  if has_target xfs; then
    worst="-"; part=""
    for phase in fresh reuse; do
      [[ $phase == reuse && $LONG_OPS -eq 0 ]] && continue
      for c in "${CPS[@]}"; do
        r=$(ratio "${RES[daxref,$phase,$c]:-}" "${RES[xfs,$phase,$c]:-}")
        [[ $r == - ]] && { part=partial; continue; }
        if [[ $worst == - ]] || awk -v a="$r" -v b="$worst" 'BEGIN { exit !(a > b) }'; then
          worst=$r
        fi
      done
    done
    verdict "daxref/xfs <= 3 at every checkpoint (worst)" "$worst" 3 "$part"
  else
    echo "  daxref/xfs <= 3: n/a (xfs not run)"
  fi
  flatness daxref fresh >/dev/null; flatness daxref reuse >/dev/null  # fills PARTIAL
  verdict "flat: max/min µs/op, fresh file, <= 1.30" "$(flatness daxref fresh)" 1.30 \
    "${PARTIAL[daxref,fresh]:+partial}"
  [[ $LONG_OPS -gt 0 ]] &&
    verdict "flat: max/min µs/op, after churn+remount, <= 1.30" "$(flatness daxref reuse)" 1.30 \
      "${PARTIAL[daxref,reuse]:+partial}"
  first=${CPS[0]}
  [[ $LONG_OPS -gt 0 ]] &&
    verdict "history: after-churn / fresh at $first ops, <= 1.30" \
      "$(ratio "${RES[daxref,reuse,$first]:-}" "${RES[daxref,fresh,$first]:-}")" 1.30
fi
[[ $QUICK -eq 1 ]] && echo "  (--quick: too few operations for the verdicts to mean much)"

if [[ $FAILED -ne 0 ]]; then
  note "a run failed (see the messages above)"
  exit 1
fi
exit 0
