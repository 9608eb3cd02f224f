#!/usr/bin/env bash
# bench/poison.sh — the cost of one poisoned block shared by many files:
# time from `daxref-poison inject` to the command's return (every cache
# invalidated, every holder signalled) and the daemon's peak memory during
# it, for N files sharing the block and H processes holding some of them.
#
# usage: bench/poison.sh [--build-dir DIR] [--quick] [--pin CPU] [--reps R] [--log-level LEVEL]
#
#   --build-dir DIR   meson build directory (default: <repo>/build). Created
#                     with `meson setup` if it is not configured yet, then
#                     the four programs used here are built with ninja.
#   --quick           smoke test: 1,000 and 100 sharers, 20 holders, one run
#                     each. The figures are then not meaningful.
#   --pin CPU         run the daemon, the holders and the inject command on
#                     that one CPU (taskset), as run.sh does.
#   --reps R          runs per sharer count, each on a fresh filesystem
#                     (default 3, quick 1)
#   --log-level LEVEL the daemon's --log-level (default: its own, info, which
#                     logs one warn line per owner); `error` shows what that
#                     logging costs
#
# Must run as root (mounts, /proc/PID/clear_refs, signalling). Needs
# fusermount3 and a C++20 compiler. Everything it makes — the pool under
# /dev/shm, the mount, the holder processes, the scratch directory — is
# removed on exit, also on error or Ctrl-C. A non-zero exit status means the
# setup failed or a run did not do its job (an owner missing from the
# report, a holder not signalled, a cached block still readable); a missed
# target is not an error.
#
# Each run (sharer counts N = 10,000 and 100, H = 100 holders):
#   1. mkfs.daxref --size 512M a pool in /dev/shm, mount it;
#   2. daxref-bench-poison make (bench/poison_holders.cc): f0, one 4 KiB
#      block, and N-1 copies made with copy_file_range, all sharing its
#      block (its reference count is checked);
#   3. daxref-bench-poison hold: H processes, holder i holding f<i*N/H>,
#      half by descriptor, half by a mapping only, each having read the
#      block (so the kernel caches it) and waiting with a SIGBUS handler;
#   4. the daemon's peak RSS reset (echo 5 > /proc/PID/clear_refs);
#   5. timed: `daxref-poison --json inject MNT PBLOCK 1 --blocks`;
#   6. checked: N owners in the report, H processes signalled by the daemon
#      and received by the holders (with the documented siginfo), and every
#      holder's file now failing to read with EIO; the daemon's VmHWM read.
# Runs of the two counts alternate, so that drift on the machine falls on
# both alike.

set -euo pipefail
export LC_ALL=C   # decimal points in EPOCHREALTIME, awk and printf

SCRIPT_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(cd "$SCRIPT_DIR/.." && pwd)

BUILD="$REPO/build"
QUICK=0
PIN=()
REPS=""
LOG_LEVEL=""
STEP_TIMEOUT=300   # seconds for any one command; guards against a hung daemon

usage() {
  sed -n '7,20s/^# \{0,1\}//p' "$0"
  exit "${1:-0}"
}
die() { echo "poison.sh: $*" >&2; exit 1; }
note() { echo "poison.sh: $*" >&2; }

while [[ $# -gt 0 ]]; do
  case "$1" in
    --build-dir) [[ $# -ge 2 ]] || usage 2; BUILD=$2; shift 2 ;;
    --build-dir=*) BUILD=${1#*=}; shift ;;
    --quick) QUICK=1; shift ;;
    --pin) [[ $# -ge 2 ]] || usage 2; PIN=(taskset -c "$2"); shift 2 ;;
    --pin=*) PIN=(taskset -c "${1#*=}"); shift ;;
    --reps) [[ $# -ge 2 ]] || usage 2; REPS=$2; shift 2 ;;
    --reps=*) REPS=${1#*=}; shift ;;
    --log-level) [[ $# -ge 2 ]] || usage 2; LOG_LEVEL=$2; shift 2 ;;
    --log-level=*) LOG_LEVEL=${1#*=}; shift ;;
    -h|--help) usage 0 ;;
    *) echo "poison.sh: unknown argument: $1" >&2; usage 2 ;;
  esac
done

if [[ $QUICK -eq 1 ]]; then
  N_BIG=1000; N_SMALL=100; HOLDERS=20; DEF_REPS=1
else
  N_BIG=10000; N_SMALL=100; HOLDERS=100; DEF_REPS=3
fi
POOL_SIZE=512M
TARGET_MS=200
REPS=${REPS:-$DEF_REPS}
[[ $REPS =~ ^[1-9][0-9]*$ ]] || { echo "poison.sh: --reps wants a positive integer" >&2; exit 2; }
if [[ ${#PIN[@]} -gt 0 && ! ${PIN[2]} =~ ^[0-9]+$ ]]; then
  echo "poison.sh: --pin wants a CPU number" >&2; exit 2
fi
case $LOG_LEVEL in
  ""|trace|debug|info|warn|error) ;;
  *) echo "poison.sh: --log-level wants trace, debug, info, warn or error" >&2; exit 2 ;;
esac
DAEMON_OPTS=()
[[ -z $LOG_LEVEL ]] || DAEMON_OPTS=(--log-level "$LOG_LEVEL")

[[ $(id -u) -eq 0 ]] || die "must run as root (mounts, /proc/PID/clear_refs)"
for t in mountpoint fusermount3 umount timeout awk grep; do
  command -v "$t" >/dev/null || die "$t not found (util-linux, fuse3, coreutils)"
done
[[ ${#PIN[@]} -eq 0 ]] || command -v taskset >/dev/null || die "taskset not found (util-linux)"

mkdir -p "$BUILD"
BUILD=$(cd "$BUILD" && pwd)

# ---------------------------------------------------------------- cleanup --

WORK=""       # /tmp/daxref-poison.XXXXXX: mount point, logs, private binary
SHM=""        # /dev/shm/daxref-poison.XXXXXX: the pool, the inject reports
POOL=""
DAX_MNT=""
HOLD_PID=""   # the running `daxref-bench-poison hold` (its holders die with it)
GO_FD=""      # the script's end of its stdin

# shellcheck source=bench/lib.sh
source "$SCRIPT_DIR/lib.sh"

stop_holders() {
  if [[ -n $GO_FD ]]; then exec {GO_FD}>&-; GO_FD=""; fi
  [[ -n ${HOLD_PID:-} ]] || return 0
  kill "$HOLD_PID" 2>/dev/null || true
  wait "$HOLD_PID" 2>/dev/null || true
  HOLD_PID=""
}

# shellcheck disable=SC2317  # called through the trap trap_cleanup sets
cleanup() {
  local rc=$?
  set +e
  trap - EXIT INT TERM HUP
  stop_holders
  teardown_daxref
  [[ -n $SHM ]] && rm -rf -- "$SHM"
  if [[ -n $WORK ]]; then
    if [[ -n $DAX_MNT && -d $DAX_MNT ]]; then
      note "warning: leaving $WORK behind (the mount point could not be removed)"
    else
      rm -rf -- "$WORK"
    fi
  fi
  exit "$rc"
}
trap_cleanup

WORK=$(mktemp -d /tmp/daxref-poison.XXXXXX)

# ------------------------------------------------------------------ build --

MKFS="$BUILD/tools/mkfs/mkfs.daxref"
DAXREF="$BUILD/fs/daxref"
POISON="$BUILD/tools/poison/daxref-poison"

build_targets fs/daxref tools/mkfs/mkfs.daxref tools/poison/daxref-poison
HELPER=$(bench_helper daxref-bench-poison poison_holders.cc) || exit 1

SHM=$(mktemp -d /dev/shm/daxref-poison.XXXXXX)

# -------------------------------------------------------------- helpers --

now_us() { local t=$EPOCHREALTIME; echo "${t/[.,]/}"; }
us_to_ms() { awk -v u="$1" 'BEGIN { printf "%.1f", u / 1000 }'; }
median() { printf '%s\n' "$@" | sort -g | awk '{ v[NR] = $1 } END { if (NR % 2) printf "%s", v[(NR + 1) / 2]; else print (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }
isnum() { [[ ${1:-} =~ ^-?[0-9]+(\.[0-9]+)?$ ]]; }

# The pid of the daemon serving $POOL (the one process whose command line
# names it; the script's own children name the mount, not the pool).
daemon_pid() {
  local p cmd found=""
  for p in /proc/[0-9]*; do
    cmd=$(tr '\0' ' ' 2>/dev/null <"$p/cmdline") || continue
    if [[ $cmd == *"$POOL "* && ${p#/proc/} != "$$" ]]; then
      [[ -z $found ]] || { note "two processes name $POOL: $found and ${p#/proc/}"; return 1; }
      found=${p#/proc/}
    fi
  done
  [[ -n $found ]] || { note "no daemon process for $POOL"; return 1; }
  echo "$found"
}

status_kib() {  # status_kib PID FIELD: a /proc/PID/status figure in KiB
  awk -v f="$2:" '$1 == f { print $2; found = 1 } END { exit !found }' "/proc/$1/status"
}

mount_daxref() {
  local i
  POOL="$SHM/pool"
  "$MKFS" --size "$POOL_SIZE" "$POOL" >"$WORK/mkfs.log" 2>&1 ||
    { cat "$WORK/mkfs.log" >&2; note "mkfs.daxref failed"; return 1; }
  DAX_MNT="$WORK/mnt"
  mkdir "$DAX_MNT"
  "${PIN[@]}" "$DAXREF" "${DAEMON_OPTS[@]}" "$POOL" "$DAX_MNT" >"$WORK/daxref.log" 2>&1 ||
    { cat "$WORK/daxref.log" >&2; note "daxref $POOL $DAX_MNT failed"; return 1; }
  for ((i = 0; i < 50; i++)); do mountpoint -q "$DAX_MNT" && break; sleep 0.1; done
  mountpoint -q "$DAX_MNT" || { cat "$WORK/daxref.log" >&2; note "$DAX_MNT is not mounted"; return 1; }
}

unmount_daxref() {
  teardown_daxref
  DAX_MNT=""
  rm -rf -- "$POOL"
  POOL=""
}

# Results, per run: RUN[N,r,key].
declare -A RUN
FAILED=0
RESET_OK=1

# one_run N R: a fresh filesystem, N sharers, HOLDERS holders, one inject.
one_run() {
  local n=$1 r=$2 line pblock refcount dpid t0 t1 rc rss0 hwm0 anon0 hwm1 anon1 out
  local owners listed signalled pids_listed elapsed
  local -a f
  note "run $r, N=$n: mkfs, mount, $((n - 1)) copies of f0"
  mount_daxref || return 1
  dpid=$(daemon_pid) || return 1
  line=$(timeout "$STEP_TIMEOUT" "${PIN[@]}" "$HELPER" make "$DAX_MNT/d" "$n") || return 1
  read -r -a f <<<"$line"  # made N seconds pblock P refcount C
  [[ ${f[0]:-} == made && ${f[3]:-} == pblock ]] || { note "unexpected helper output: $line"; return 1; }
  pblock=${f[4]}; refcount=${f[6]}
  RUN[$n,$r,make_s]=$(awk -v s="${f[2]}" 'BEGIN { printf "%.2f", s }')
  [[ $refcount -eq $n ]] || { note "f0's block has $refcount references, not $n"; return 1; }
  note "  $((n - 1)) copies in ${f[2]} s; the shared block is pool block $pblock ($refcount references)"

  # The holders; the coprocess's pipes are how the script talks to it.
  # (coproc HOLD sets HOLD_PID, which stop_holders kills.)
  coproc HOLD { exec "${PIN[@]}" "$HELPER" hold "$DAX_MNT/d" "$n" "$HOLDERS"; }
  # The coprocess's descriptors are not visible in subshells: a copy is.
  exec {GO_FD}>&"${HOLD[1]}"
  read -r -t 60 -u "${HOLD[0]}" line || { note "holders did not get ready"; return 1; }
  read -r -a f <<<"$line"  # ready H mapped M
  [[ ${f[0]} == ready && ${f[1]} == "$HOLDERS" ]] || { note "unexpected helper output: $line"; return 1; }
  note "  $HOLDERS holders ready, ${f[3]} of them holding their file through a mapping only"

  # The floor: what the daemon's holder scan reads, on its own.
  line=$("${PIN[@]}" "$HELPER" scan "$DAX_MNT" 5) || return 1
  read -r -a f <<<"$line"  # scan procs P fds F maps M held X min_us A median_us B
  RUN[$n,$r,scan_ms]=$(us_to_ms "${f[12]}")
  RUN[$n,$r,scan_procs]=${f[2]}
  [[ ${f[8]} -eq $HOLDERS ]] ||
    note "  warning: the scan found ${f[8]} holdings on the mount, not $HOLDERS"

  # The daemon's peak RSS back to its current RSS, then the inject.
  echo 5 >"/proc/$dpid/clear_refs" || RESET_OK=0
  rss0=$(status_kib "$dpid" VmRSS); hwm0=$(status_kib "$dpid" VmHWM)
  anon0=$(status_kib "$dpid" RssAnon)
  (( hwm0 - rss0 <= 64 )) || RESET_OK=0
  RUN[$n,$r,rss0]=$rss0
  out="$SHM/inject.$n.$r.json"
  t0=$(now_us)
  rc=0
  timeout "$STEP_TIMEOUT" "${PIN[@]}" "$POISON" --json inject "$DAX_MNT" "$pblock" 1 --blocks \
    >"$out" 2>"$out.err" || rc=$?
  t1=$(now_us)
  hwm1=$(status_kib "$dpid" VmHWM); anon1=$(status_kib "$dpid" RssAnon)
  # The holders check what they got. In a subshell: a helper that died
  # would have the write kill the script with SIGPIPE.
  ( echo go >&"$GO_FD" ) 2>/dev/null || true
  exec {GO_FD}>&-
  GO_FD=""
  read -r -t 60 -u "${HOLD[0]:-}" line || line="(no answer from the holders' parent)"
  wait "${HOLD_PID:-}" 2>/dev/null || true
  HOLD_PID=""
  if [[ $rc -ne 0 ]]; then
    sed 's/^/    /' "$out.err" >&2
    note "  daxref-poison inject failed (status $rc)"
    return 1
  fi
  RUN[$n,$r,wall_ms]=$(us_to_ms $((t1 - t0)))
  RUN[$n,$r,peak_kib]=$((hwm1 - (RESET_OK ? hwm0 : rss0)))
  RUN[$n,$r,anon_kib]=$((anon1 - anon0))

  # The report: N owners, H signalled, each holder listed once.
  listed=$(grep -c '^  {"ino": ' "$out" || true)
  owners=$(sed -n 's/.*"summary": {.*"owners": \([0-9]*\).*/\1/p' "$out")
  signalled=$(sed -n 's/.*"summary": {.*"signalled": \([0-9]*\).*/\1/p' "$out")
  elapsed=$(sed -n 's/.*"summary": {.*"elapsed_us": \([0-9]*\).*/\1/p' "$out")
  pids_listed=$(grep -o '"pids": \[[0-9, ]*\]' "$out" | grep -o '[0-9][0-9]*' | wc -l)
  RUN[$n,$r,owners]=${owners:-?}
  RUN[$n,$r,signalled]=${signalled:-?}
  RUN[$n,$r,daemon_ms]=$(us_to_ms "${elapsed:-0}")

  # The holders' side: "signalled S of H valid V first_us T0 last_us T1 eio E of H"
  read -r -a f <<<"$line"
  RUN[$n,$r,received]=${f[1]:-?}
  RUN[$n,$r,eio]=${f[11]:-?}
  if isnum "${f[9]:-}" && [[ ${f[9]} -gt 0 ]]; then
    RUN[$n,$r,last_ms]=$(us_to_ms $((f[9] - t0)))
  fi
  note "  inject: ${RUN[$n,$r,wall_ms]} ms (daemon ${RUN[$n,$r,daemon_ms]} ms), $listed owners listed," \
    "$signalled signalled, holders: $line; daemon peak +${RUN[$n,$r,peak_kib]} KiB"

  local bad=""
  [[ $listed -eq $n && ${owners:-} == "$n" ]] || bad+=" owners listed $listed, summary ${owners:-?}, want $n;"
  [[ ${signalled:-} == "$HOLDERS" && $pids_listed -eq $HOLDERS ]] ||
    bad+=" daemon signalled ${signalled:-?} (pids listed $pids_listed), want $HOLDERS;"
  [[ $line == "signalled $HOLDERS of $HOLDERS valid $HOLDERS "*" eio $HOLDERS of $HOLDERS" ]] ||
    bad+=" holders: $line;"
  if [[ -n $bad ]]; then
    note "  RUN FAILED (N=$n, run $r):$bad"
    RUN[$n,$r,failed]=1
    return 1
  fi
  rm -f "$out" "$out.err"
}

# ------------------------------------------------------------------- runs --

LOAD_START=$(cut -d' ' -f1-3 /proc/loadavg)
# Process overhead of the timed command: fork, exec, timeout(1), exit.
t0=$(now_us); timeout "$STEP_TIMEOUT" "${PIN[@]}" true; t1=$(now_us)
PROC_MS=$(us_to_ms $((t1 - t0)))

COUNTS=("$N_BIG" "$N_SMALL")
for ((r = 1; r <= REPS; r++)); do
  for n in "${COUNTS[@]}"; do
    if ! one_run "$n" "$r"; then
      FAILED=1
      RUN[$n,$r,failed]=1
      stop_holders
    fi
    unmount_daxref
  done
done

# ------------------------------------------------------------------ table --

# col N KEY: sets MED[N,KEY] (median over the runs) and COL, the cell:
# "median (run1 run2 ...)", or the one value.
declare -A MED
COL=""
col() {
  local n=$1 key=$2 r v
  local -a vals=() nums=()
  for ((r = 1; r <= REPS; r++)); do
    v=${RUN[$n,$r,$key]:-}
    [[ -n ${RUN[$n,$r,failed]:-} && -z $v ]] && v=ERR
    vals+=("${v:--}")
    if isnum "$v"; then nums+=("$v"); fi
  done
  if [[ ${#nums[@]} -gt 0 ]]; then MED[$n,$key]=$(median "${nums[@]}"); else MED[$n,$key]="-"; fi
  if [[ $REPS -eq 1 ]]; then COL=${vals[0]}; else COL="${MED[$n,$key]} (${vals[*]})"; fi
}

echo
echo "daxref poison benchmark — $(date -u '+%Y-%m-%d %H:%M:%S UTC'), kernel $(uname -r)," \
  "git $(git -C "$REPO" rev-parse --short HEAD 2>/dev/null || echo '?')$(git -C "$REPO" diff --quiet HEAD -- 2>/dev/null || echo '+changes')$([[ $QUICK -eq 1 ]] && echo ', QUICK (smoke test, figures not meaningful)')"
echo "one 4 KiB block shared by N files (copy_file_range); $HOLDERS holder processes, half by" \
  "descriptor, half by a mapping only; pool $POOL_SIZE in /dev/shm; $REPS run(s) per N, each on" \
  "a fresh filesystem: median (each run)"
echo "daemon log level ${LOG_LEVEL:-info (default)}, logging to syslog ($([[ -S /dev/log ]] && echo '/dev/log present' || echo 'no /dev/log: messages are dropped'));" \
  "$([[ ${#PIN[@]} -gt 0 ]] && echo "daemon, holders and inject pinned: ${PIN[*]}" || echo "not pinned")"
echo "load average $LOAD_START at the start, $(cut -d' ' -f1-3 /proc/loadavg) at the end ($(nproc) CPUs);" \
  "process overhead in the wall time (fork, exec, timeout(1)): $PROC_MS ms"
echo
line3() { printf '%-30s | %-26s | %-26s\n' "$@"; }
line3 "" "N = $N_BIG" "N = $N_SMALL"
printf "%s\n" "-------------------------------+----------------------------+---------------------------"
row() {  # row LABEL KEY
  local big
  col "$N_BIG" "$2"; big=$COL
  col "$N_SMALL" "$2"
  line3 "$1" "$big" "$COL"
}
row "inject, wall (ms)" wall_ms
row "inject, daemon elapsed_us (ms)" daemon_ms
row "last holder's signal at (ms)" last_ms
row "owners reported" owners
row "processes signalled (daemon)" signalled
row "holders that got SIGBUS" received
row "holders' reads now EIO" eio
row "daemon peak RSS growth (KiB)" peak_kib
row "daemon RssAnon growth (KiB)" anon_kib
row "daemon RSS before (KiB)" rss0
row "/proc scan alone (ms)" scan_ms
row "setup: N-1 copies (s)" make_s
echo
echo "\"last holder's signal at\": when the last holder's handler ran, from the start of the timed command."
echo "\"/proc scan alone\": daxref-bench-poison scan, the /proc/PID/fd statx and /proc/PID/maps reads the"
echo "daemon's holder scan does, over the ${RUN[$N_BIG,1,scan_procs]:-?} processes there were: a floor, not a reference."
echo "No in-kernel reference: the kernel's memory-failure path needs real persistent memory or MCE"
echo "injection, neither of which this machine has."
[[ $RESET_OK -eq 1 ]] ||
  echo "WARNING: resetting the daemon's VmHWM (clear_refs 5) did not work: peak growth is from RSS before."

# Targets.
big_wall=${MED[$N_BIG,wall_ms]}; pk_big=${MED[$N_BIG,peak_kib]}; pk_small=${MED[$N_SMALL,peak_kib]}
verdict_le() { isnum "$1" && awk -v v="$1" -v m="$2" 'BEGIN { exit !(v <= m) }' && echo PASS || echo MISS; }
MEM_SLACK_KIB=256
if isnum "$pk_big" && isnum "$pk_small"; then
  diff_kib=$(awk -v a="$pk_big" -v b="$pk_small" 'BEGIN { printf "%d", a - b }')
  ratio=$(awk -v a="$pk_big" -v b="$pk_small" 'BEGIN { if (b > 0) printf "%.2f", a / b; else print "-" }')
else
  diff_kib="-"; ratio="-"
fi
echo
echo "targets:"
printf "  %-58s %s (%s ms)\n" "inject with N = $N_BIG, $HOLDERS holders, median wall <= $TARGET_MS ms" \
  "$(verdict_le "$big_wall" "$TARGET_MS")" "$big_wall"
printf "  %-58s %s (%s KiB more; ratio %s)\n" \
  "peak growth N = $N_BIG vs N = $N_SMALL: at most $MEM_SLACK_KIB KiB more" \
  "$(verdict_le "$diff_kib" "$MEM_SLACK_KIB")" "$diff_kib" "$ratio"
[[ $QUICK -eq 1 ]] && echo "(--quick: sizes too small for the verdicts to mean anything)"

if [[ $FAILED -ne 0 ]]; then
  note "SOME RUNS FAILED (see RUN FAILED above): not every owner was reported, holder signalled or cache invalidated"
  exit 1
fi
exit 0
