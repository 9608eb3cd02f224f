#!/usr/bin/env bash
# bench/reflink.sh — reflink copies and clones on daxref and, in the same run,
# on XFS (reflink=1), and a table: workload | daxref | xfs | daxref/xfs.
#
# usage: bench/reflink.sh [--build-dir DIR] [--quick] [--pin CPU] [--reps N] [--big SIZE]
#
#   --build-dir DIR   meson build directory (default: <repo>/build). Created
#                     with `meson setup` if it is not configured yet, then
#                     brought up to date with `ninja -C DIR`.
#   --quick           smoke-test sizes: 64 MiB / 256 MiB files, 100 and 1,000
#                     extents, 3 repetitions. The figures are then not
#                     meaningful.
#   --pin CPU         run the daxref daemon and every timed command (both
#                     filesystems) on that one CPU (taskset), as run.sh does.
#   --reps N          timed repetitions of each workload (default 7, quick 3)
#   --big SIZE        size of the large one-extent file (default 4G; 2G is
#                     chosen by itself when less than 14 GiB of RAM is free)
#
# Must run as root (loop device, mount). Needs mkfs.xfs, xfs_io, losetup,
# fusermount3, GNU cp and a C++20 compiler. Everything it creates — the XFS
# image and the daxref pool under /dev/shm, the loop device, both mounts, the
# scratch directory — is removed on exit, also on error or Ctrl-C. A non-zero
# exit status means a workload or the setup failed; a missed target is not an
# error.
#
# Workloads, each on daxref then on XFS (full-run sizes):
#   cp          `cp --reflink=auto` of a 1 GiB file of pseudo-random data
#               (written, fsync'd, left in the page cache): the first copy,
#               then N more, each to a new name (copies are kept until all are
#               made). Wall time of the cp process. Then the growth of the
#               filesystem's used space (statfs, as df) over all copies.
#   stat        the first stat() of a freshly written 1 GiB file (in-process
#               time), which on FUSE is where the first cp above pays.
#   clone       whole-file clone into a new file by daxref-bench-clone
#               (bench/clone_file.cc): FICLONE on XFS, DAXREF_IOC_TOKEN +
#               DAXREF_IOC_CLONE_RANGE on daxref. Of 1 GiB and 4 GiB files of
#               one extent each, and of files of 1,000 and 10,000 extents
#               (every other 4 KiB block written). Timed: the ioctl(s) alone
#               (in-process, CLOCK_MONOTONIC) and the process end to end. The
#               clone is deleted (untimed) after each repetition. The extent
#               counts are verified on both filesystems (FIEMAP on XFS,
#               DAXREF_IOC_EXTENTS on daxref) before anything is timed.

set -euo pipefail
export LC_ALL=C   # decimal points in EPOCHREALTIME, awk and printf

SCRIPT_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(cd "$SCRIPT_DIR/.." && pwd)

BUILD="$REPO/build"
QUICK=0
PIN=()
REPS=""
BIG=""
STEP_TIMEOUT=900   # seconds for any one command; guards against a hung daemon

usage() {
  sed -n '5,17s/^# \{0,1\}//p' "$0"
  exit "${1:-0}"
}
die() { echo "reflink.sh: $*" >&2; exit 1; }
note() { echo "reflink.sh: $*" >&2; }

while [[ $# -gt 0 ]]; do
  case "$1" in
    --build-dir) [[ $# -ge 2 ]] || usage 2; BUILD=$2; shift 2 ;;
    --build-dir=*) BUILD=${1#*=}; shift ;;
    --quick) QUICK=1; shift ;;
    --pin) [[ $# -ge 2 ]] || usage 2; PIN=(taskset -c "$2"); shift 2 ;;
    --pin=*) PIN=(taskset -c "${1#*=}"); shift ;;
    --reps) [[ $# -ge 2 ]] || usage 2; REPS=$2; shift 2 ;;
    --reps=*) REPS=${1#*=}; shift ;;
    --big) [[ $# -ge 2 ]] || usage 2; BIG=$2; shift 2 ;;
    --big=*) BIG=${1#*=}; shift ;;
    -h|--help) usage 0 ;;
    *) echo "reflink.sh: unknown argument: $1" >&2; usage 2 ;;
  esac
done

if [[ $QUICK -eq 1 ]]; then
  CP_SIZE=64M; ONE_SIZE=64M; DEF_BIG=256M; EXT_FEW=100; EXT_MANY=1000; DEF_REPS=3
  POOL_SIZE=2G; XFS_SIZE=4G
else
  CP_SIZE=1G; ONE_SIZE=1G; DEF_BIG=4G; EXT_FEW=1000; EXT_MANY=10000; DEF_REPS=7
  POOL_SIZE=10G; XFS_SIZE=24G   # sparse; 2 AGs of 12 GiB hold a 4 GiB extent
fi
REPS=${REPS:-$DEF_REPS}
[[ $REPS =~ ^[1-9][0-9]*$ ]] || { echo "reflink.sh: --reps wants a positive integer" >&2; exit 2; }
if [[ ${#PIN[@]} -gt 0 && ! ${PIN[2]} =~ ^[0-9]+$ ]]; then
  echo "reflink.sh: --pin wants a CPU number" >&2; exit 2
fi

[[ $(id -u) -eq 0 ]] || die "must run as root (loop device, mounts)"
for t in mkfs.xfs xfs_io losetup mount umount mountpoint fusermount3 cp stat timeout numfmt awk; do
  command -v "$t" >/dev/null || die "$t not found (xfsprogs, util-linux, fuse3, coreutils)"
done
[[ ${#PIN[@]} -eq 0 ]] || command -v taskset >/dev/null || die "taskset not found (util-linux)"
[[ $(cp --help 2>/dev/null) == *--reflink* ]] || die "this cp has no --reflink (GNU coreutils >= 7.5 needed)"
grep -qw xfs /proc/filesystems || modprobe xfs 2>/dev/null || grep -qw xfs /proc/filesystems ||
  die "the kernel has no XFS"

# Memory: the pool and the XFS image live in /dev/shm (RAM); each holds up to
# cp file + big file + 1 GiB at a time, plus page cache for the cp files.
MEM_AVAIL_KIB=$(awk '/^MemAvailable:/ { print $2 }' /proc/meminfo)
if [[ -z $BIG ]]; then
  BIG=$DEF_BIG
  if [[ $QUICK -eq 0 && $MEM_AVAIL_KIB -lt $((14 << 20)) ]]; then
    BIG=2G
    note "only $((MEM_AVAIL_KIB >> 20)) GiB of RAM available: the large one-extent file is 2 GiB, not 4 GiB"
  fi
fi
bytes() { numfmt --from=iec "$1"; }
bytes "$BIG" >/dev/null 2>&1 || { echo "reflink.sh: bad --big size: $BIG" >&2; exit 2; }
NEED_KIB=$(( ( 2 * ($(bytes "$CP_SIZE") + $(bytes "$ONE_SIZE") + $(bytes "$BIG")) + (1 << 30) ) >> 10 ))
[[ $MEM_AVAIL_KIB -ge $NEED_KIB ]] ||
  die "needs about $((NEED_KIB >> 20)) GiB of free RAM, $((MEM_AVAIL_KIB >> 20)) GiB available (try --big 2G or --quick)"
if (( $(bytes "$BIG") + $(bytes "$ONE_SIZE") + (1 << 30) > $(bytes "$POOL_SIZE") )); then
  POOL_SIZE=$(( ($(bytes "$BIG") + $(bytes "$ONE_SIZE") + (2 << 30)) ))
fi

mkdir -p "$BUILD"
BUILD=$(cd "$BUILD" && pwd)

# ---------------------------------------------------------------- cleanup --

WORK=""       # /tmp/daxref-reflink.XXXXXX: mount points, logs, private binary
SHM=""        # /dev/shm/daxref-reflink.XXXXXX: the pool and the XFS image
POOL=""
DAX_MNT=""
XFS_MNT=""
XFS_IMG=""
LOOP=""

# shellcheck source=bench/lib.sh
source "$SCRIPT_DIR/lib.sh"

# shellcheck disable=SC2317  # called through the trap trap_cleanup sets
cleanup() {
  local rc=$?
  set +e
  trap - EXIT INT TERM HUP
  teardown_daxref
  if [[ -n $XFS_MNT ]]; then
    unmount_dir "$XFS_MNT" xfs && rmdir "$XFS_MNT"
  fi
  if [[ -n $LOOP ]]; then
    # Only the device we attached, and only while it still shows our image.
    if losetup "$LOOP" 2>/dev/null | grep -qF "$XFS_IMG"; then
      losetup -d "$LOOP" || note "warning: cannot detach $LOOP"
    fi
  fi
  if [[ -n $SHM ]]; then
    rm -rf -- "$SHM"
  fi
  if [[ -n $WORK ]]; then
    if [[ -n $DAX_MNT && -d $DAX_MNT ]] || [[ -n $XFS_MNT && -d $XFS_MNT ]]; then
      note "warning: leaving $WORK behind (a mount point could not be removed)"
    else
      rm -rf -- "$WORK"
    fi
  fi
  exit "$rc"
}
trap_cleanup

WORK=$(mktemp -d /tmp/daxref-reflink.XXXXXX)

# ------------------------------------------------------------------ build --

MKFS="$BUILD/tools/mkfs/mkfs.daxref"
DAXREF="$BUILD/fs/daxref"

build_targets fs/daxref tools/mkfs/mkfs.daxref
CLONE=$(bench_helper daxref-bench-clone clone_file.cc) || exit 1

# ---------------------------------------------------------------- targets --

SHM=$(mktemp -d /dev/shm/daxref-reflink.XXXXXX)
TARGETS=(daxref xfs)
declare -A DIR

POOL="$SHM/pool"
note "mkfs.daxref --size $POOL_SIZE $POOL"
"$MKFS" --size "$POOL_SIZE" "$POOL" >"$WORK/mkfs.daxref.log" 2>&1 ||
  { cat "$WORK/mkfs.daxref.log" >&2; die "mkfs.daxref failed"; }
DAX_MNT="$WORK/daxref"
mkdir "$DAX_MNT"
note "mounting daxref on $DAX_MNT"
"${PIN[@]}" "$DAXREF" "$POOL" "$DAX_MNT" >"$WORK/daxref.log" 2>&1 ||
  { cat "$WORK/daxref.log" >&2; die "daxref $POOL $DAX_MNT failed"; }
for ((i = 0; i < 50; i++)); do mountpoint -q "$DAX_MNT" && break; sleep 0.1; done
mountpoint -q "$DAX_MNT" || { cat "$WORK/daxref.log" >&2; die "daxref returned but $DAX_MNT is not mounted"; }
DIR[daxref]=$DAX_MNT

# mkfs.xfs runs on the image file, not on the loop device: for a block device
# it stat()s every mount point to see whether the device is in use, and hangs
# there if any FUSE mount on the machine is stuck.
XFS_IMG="$SHM/xfs.img"
truncate -s "$XFS_SIZE" "$XFS_IMG"
note "mkfs.xfs -m reflink=1 -d agcount=2 ($XFS_SIZE sparse image in /dev/shm)"
timeout 120 mkfs.xfs -q -f -m reflink=1 -d agcount=2 "$XFS_IMG" >"$WORK/mkfs.xfs.log" 2>&1 ||
  { cat "$WORK/mkfs.xfs.log" >&2; die "mkfs.xfs failed"; }
LOOP=$(losetup -f --show "$XFS_IMG") || die "losetup -f --show $XFS_IMG failed (no free loop device?)"
XFS_MNT="$WORK/xfs"
mkdir "$XFS_MNT"
note "mounting XFS ($LOOP) on $XFS_MNT"
timeout 120 mount -t xfs "$LOOP" "$XFS_MNT" || die "cannot mount $LOOP on $XFS_MNT"
DIR[xfs]=$XFS_MNT

# -------------------------------------------------------------- helpers --

declare -A RES     # RES[target,key] = figure (ms, KiB, ...), or ERR
declare -A NOTE    # NOTE[target,what] = extent counts etc., for the report
FAILED=0

now_us() { local t=$EPOCHREALTIME; echo "${t/[.,]/}"; }
us_to_ms() { awk -v u="$1" 'BEGIN { printf "%.3f", u / 1000 }'; }
s_to_ms() { awk -v s="$1" 'BEGIN { printf "%.3f", s * 1000 }'; }
median() { printf '%s\n' "$@" | sort -g | awk '{ v[NR] = $1 } END { if (NR % 2) printf "%.3f", v[(NR + 1) / 2]; else printf "%.3f", (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }
minimum() { printf '%s\n' "$@" | sort -g | head -n 1; }

# Used bytes as df computes them: (f_blocks - f_bfree) * f_frsize.
used_bytes() { stat -f -c '%b %f %S' "$1" | awk '{ printf "%d", ($1 - $2) * $3 }'; }

# run_e2e OUTFILE cmd...: runs the command (pinned if asked) with a timeout;
# sets E2E_US to its wall time in microseconds. Output goes to OUTFILE(.err).
run_e2e() {
  local out=$1 t0 t1; shift
  t0=$(now_us)
  timeout --kill-after=30 "$STEP_TIMEOUT" "${PIN[@]}" "$@" >"$out" 2>"$out.err" || {
    sed 's/^/    /' "$out.err" >&2; return 1; }
  t1=$(now_us)
  E2E_US=$((t1 - t0))
}

helper() {  # untimed helper step, with the same timeout
  timeout --kill-after=30 "$STEP_TIMEOUT" "$CLONE" "$@"
}

fstrim_xfs() {  # give freed XFS blocks back to /dev/shm (untimed)
  command -v fstrim >/dev/null && fstrim "$XFS_MNT" 2>/dev/null || true
}

# ------------------------------------------------------------ workloads --

# cp --reflink=auto: one first copy, then REPS more; all kept, then df.
wl_cp() {
  local t=$1 d=${DIR[$1]} i before after ms src
  local -a times=()
  src="$d/cp.src"
  helper fill "$src" "$CP_SIZE" || return 1
  NOTE[$t,cpsrc]=$(helper extents "$src") || return 1
  sync -f "$src" || return 1
  before=$(used_bytes "$d") || return 1
  run_e2e "$WORK/$t-cp.out" cp --reflink=auto "$src" "$d/cp.0" || return 1
  RES[$t,cp_first]=$(us_to_ms "$E2E_US")
  note "  cp first: ${RES[$t,cp_first]} ms"
  for ((i = 1; i <= REPS; i++)); do
    run_e2e "$WORK/$t-cp.out" cp --reflink=auto "$src" "$d/cp.$i" || return 1
    ms=$(us_to_ms "$E2E_US"); times+=("$ms")
    note "  cp $i: $ms ms"
  done
  RES[$t,cp_med]=$(median "${times[@]}")
  RES[$t,cp_min]=$(minimum "${times[@]}")
  sync -f "$src" || return 1
  after=$(used_bytes "$d") || return 1
  RES[$t,cp_df]=$(( (after - before) / 1024 ))
  note "  used space grew by ${RES[$t,cp_df]} KiB over $((REPS + 1)) copies of $CP_SIZE"
  # The last copy must hold the same bytes (untimed sanity check).
  cmp -s "$src" "$d/cp.$REPS" || { note "  cp.$REPS differs from its source"; return 1; }
  rm -f "$d"/cp.* || return 1
}

# The first stat() of a file just written (kept in the page cache).
wl_stat() {
  local t=$1 d=${DIR[$1]} s
  helper fill "$d/stat.probe" "$CP_SIZE" || return 1
  s=$(helper stat "$d/stat.probe") || return 1
  RES[$t,stat_first]=$(s_to_ms "${s#stat }")
  s=$(helper stat "$d/stat.probe") || return 1
  RES[$t,stat_second]=$(s_to_ms "${s#stat }")
  note "  first stat after write: ${RES[$t,stat_first]} ms (second: ${RES[$t,stat_second]} ms)"
  rm -f "$d/stat.probe" || return 1
}

# check_extents TARGET FILE:WANT...: count each file's extents (FIEMAP on
# XFS, DAXREF_IOC_EXTENTS on daxref) and warn about any unexpected count.
check_extents() {
  local t=$1 d=${DIR[$1]} f n want; shift
  for f in "$@"; do
    want=${f#*:}; f=${f%%:*}
    n=$(helper extents "$d/$f") || return 1
    NOTE[$t,$f]=$n
    if [[ $n -ne $want ]]; then
      note "  WARNING: $f has $n extents on $t, not $want: its clone figures do not compare"
      NOTE[$t,layout_ok]=0
    fi
  done
}

# The one-extent clone sources, made first, on the empty filesystem: later,
# freed space is fragmented and a large file may not get one extent.
mk_one_sources() {
  local t=$1 d=${DIR[$1]}
  NOTE[$t,layout_ok]=${NOTE[$t,layout_ok]:-1}
  helper fill "$d/one.small" "$ONE_SIZE" --drop-cache || return 1
  helper fill "$d/one.big" "$BIG" --drop-cache || return 1
  check_extents "$t" one.small:1 one.big:1
}

# The many-extent clone sources, made last: on daxref a file written after
# them could be placed in the 4 KiB gaps their blocks leave in the pool.
mk_hole_sources() {
  local t=$1 d=${DIR[$1]} n
  NOTE[$t,layout_ok]=${NOTE[$t,layout_ok]:-1}
  helper holes "$d/ext.few" "$EXT_FEW" || return 1
  helper holes "$d/ext.many" "$EXT_MANY" || return 1
  check_extents "$t" ext.few:"$EXT_FEW" ext.many:"$EXT_MANY" || return 1
  if [[ $t == xfs ]]; then
    # Cross-check with xfs_io's own FIEMAP listing (holes are listed as
    # lines of their own; the first line is the file name).
    n=$(xfs_io -r -c "fiemap" "$d/ext.many" | awk 'NR > 1 && $3 != "hole"' | wc -l)
    [[ $n -eq ${NOTE[$t,ext.many]} ]] ||
      note "  WARNING: xfs_io fiemap lists $n extents for ext.many, FIEMAP count ${NOTE[$t,ext.many]}"
  fi
}

# wl_clone TARGET KEY SOURCE: REPS clones of SOURCE, each deleted afterwards.
wl_clone() {
  local t=$1 key=$2 src=${DIR[$1]}/$3 dst=${DIR[$1]}/$3.clone i call total e2e line
  local -a calls=() e2es=()
  for ((i = 1; i <= REPS; i++)); do
    run_e2e "$WORK/$t-clone.out" "$CLONE" clone "$src" "$dst" || return 1
    read -r line <"$WORK/$t-clone.out"
    # "clone <method> <call s> <total s>"
    set -- $line
    [[ ${1:-} == clone && $# -eq 4 ]] || { note "  unexpected helper output: $line"; return 1; }
    call=$(s_to_ms "$3"); total=$(s_to_ms "$4"); e2e=$(us_to_ms "$E2E_US")
    calls+=("$call"); e2es+=("$e2e")
    note "  clone $key $i ($2): ioctl $call ms, in-process $total ms, end to end $e2e ms"
    rm -f "$dst" || return 1
  done
  RES[$t,${key}_call]=$(median "${calls[@]}")
  RES[$t,${key}_e2e]=$(median "${e2es[@]}")
  RES[$t,${key}_callmin]=$(minimum "${calls[@]}")
}

# run_wl TARGET NAME KEYS... -- cmd...: run a workload function; on failure
# mark its results ERR and go on with the next.
run_wl() {
  local t=$1 name=$2 k; shift 2
  local -a keys=()
  while [[ $1 != -- ]]; do keys+=("$1"); shift; done
  shift
  if ! "$@"; then
    FAILED=1
    note "  $name on $t: FAILED"
    for k in "${keys[@]}"; do RES[$t,$k]=ERR; done
  fi
}

LOAD_START=$(cut -d' ' -f1-3 /proc/loadavg)
for t in "${TARGETS[@]}"; do
  note "running on $t (${DIR[$t]})"
  run_wl "$t" "one-extent sources" one_call one_e2e big_call big_e2e -- mk_one_sources "$t"
  run_wl "$t" cp cp_first cp_med cp_min cp_df -- wl_cp "$t"
  if [[ $t == xfs ]]; then fstrim_xfs; fi
  run_wl "$t" stat stat_first stat_second -- wl_stat "$t"
  if [[ $t == xfs ]]; then fstrim_xfs; fi
  run_wl "$t" "many-extent sources" few_call few_e2e many_call many_e2e -- mk_hole_sources "$t"
  [[ ${RES[$t,one_call]:-} == ERR ]] ||
    run_wl "$t" "clone $ONE_SIZE" one_call one_e2e -- wl_clone "$t" one one.small
  [[ ${RES[$t,big_call]:-} == ERR ]] ||
    run_wl "$t" "clone $BIG" big_call big_e2e -- wl_clone "$t" big one.big
  [[ ${RES[$t,few_call]:-} == ERR ]] ||
    run_wl "$t" "clone $EXT_FEW extents" few_call few_e2e -- wl_clone "$t" few ext.few
  [[ ${RES[$t,many_call]:-} == ERR ]] ||
    run_wl "$t" "clone $EXT_MANY extents" many_call many_e2e -- wl_clone "$t" many ext.many
  rm -f "${DIR[$t]}"/one.* "${DIR[$t]}"/ext.* "${DIR[$t]}"/cp.* "${DIR[$t]}"/stat.* || true
  if [[ $t == xfs ]]; then fstrim_xfs; fi
done

# ------------------------------------------------------------------ table --

isnum() { [[ ${1:-} =~ ^[0-9]+(\.[0-9]+)?$ ]]; }
ratio() {  # ratio A B -> A/B with 2 decimals, or "-"
  if isnum "${1:-}" && isnum "${2:-}" && awk -v b="$2" 'BEGIN { exit !(b > 0) }'; then
    awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", a / b }'
  else
    echo "-"
  fi
}
# verdict KIND ...: PASS/MISS, or "-" for rows without a target.
#   clone20 D X      D <= 20 (ms) and D/X <= 10
#   atmost V MAX     V <= MAX
verdict() {
  case $1 in
    clone20)
      isnum "${2:-}" && isnum "${3:-}" || { echo "MISS (no result)"; return; }
      awk -v d="$2" -v x="$3" 'BEGIN { exit !(d <= 20 && (x > 0 ? d / x <= 10 : d <= 0)) }' &&
        echo PASS || echo MISS ;;
    atmost)
      isnum "${2:-}" || { echo "MISS (no result)"; return; }
      awk -v v="$2" -v m="$3" 'BEGIN { exit !(v <= m) }' && echo PASS || echo MISS ;;
    *) echo "-" ;;
  esac
}

NCOPIES=$((REPS + 1))
DF_MAX_KIB=$((64 * NCOPIES))   # 16 blocks of 4 KiB per copy
for t in "${TARGETS[@]}"; do
  RES[$t,scale_bytes]=$(ratio "${RES[$t,big_call]:-}" "${RES[$t,one_call]:-}")
  RES[$t,scale_ext]=$(ratio "${RES[$t,many_call]:-}" "${RES[$t,few_call]:-}")
done
BIG_X=$(( $(bytes "$BIG") / $(bytes "$ONE_SIZE") ))
EXT_X=$(( EXT_MANY / EXT_FEW ))

ROWS=(
  "cp_first|cp --reflink=auto $CP_SIZE, first (ms)|-"
  "cp_med|cp --reflink=auto $CP_SIZE, median (ms)|clone20"
  "cp_min|cp --reflink=auto $CP_SIZE, min (ms)|-"
  "cp_df|cp: used space growth, $NCOPIES copies (KiB)|df"
  "stat_first|first stat after writing $CP_SIZE (ms)|-"
  "one_call|clone $ONE_SIZE 1 extent, ioctl (ms)|-"
  "one_e2e|clone $ONE_SIZE 1 extent, end to end (ms)|clone20"
  "big_call|clone $BIG 1 extent, ioctl (ms)|-"
  "big_e2e|clone $BIG 1 extent, end to end (ms)|-"
  "few_call|clone $EXT_FEW extents, ioctl (ms)|-"
  "few_e2e|clone $EXT_FEW extents, end to end (ms)|-"
  "many_call|clone $EXT_MANY extents, ioctl (ms)|-"
  "many_e2e|clone $EXT_MANY extents, end to end (ms)|-"
  "scale_bytes|ioctl time ${BIG}/${ONE_SIZE} (x; bytes x$BIG_X)|scale"
  "scale_ext|ioctl time ${EXT_MANY}/${EXT_FEW} ext. (x; ext. x$EXT_X)|-"
)

echo
echo "daxref reflink benchmark — $(date -u '+%Y-%m-%d %H:%M:%S UTC'), kernel $(uname -r)," \
  "$(mkfs.xfs -V 2>&1 | head -n 1), $(cp --version | head -n 1)," \
  "git $(git -C "$REPO" rev-parse --short HEAD 2>/dev/null || echo '?')$([[ $QUICK -eq 1 ]] && echo ', QUICK (smoke test, figures not meaningful)')"
echo "pool $POOL_SIZE and XFS image $XFS_SIZE (reflink=1, agcount=2, loop) in /dev/shm;" \
  "$REPS repetitions, medians unless marked; end to end = wall time of the process"
if [[ ${#PIN[@]} -gt 0 ]]; then echo -n "daemon and timed commands pinned: ${PIN[*]}"; else echo -n "not pinned: the scheduler places daemon and commands"; fi
echo "; load average $LOAD_START at the start, $(cut -d' ' -f1-3 /proc/loadavg) at the end ($(nproc) CPUs)"
for t in "${TARGETS[@]}"; do
  echo "extents on $t: cp source ${NOTE[$t,cpsrc]:-?}, $ONE_SIZE file ${NOTE[$t,one.small]:-?}," \
    "$BIG file ${NOTE[$t,one.big]:-?}, hole-y files ${NOTE[$t,ext.few]:-?} and ${NOTE[$t,ext.many]:-?}" \
    "$([[ ${NOTE[$t,layout_ok]:-0} -eq 1 ]] && echo '(as intended)' || echo '(NOT as intended: see warnings)')"
done
echo
FMT="%-44s | %10s | %10s | %7s | %-20s | %s\n"
printf "$FMT" "workload" "daxref" "xfs" "ratio" "target" "verdict"
printf "%s\n" "---------------------------------------------+------------+------------+---------+----------------------+--------"
for row in "${ROWS[@]}"; do
  IFS='|' read -r key label kind <<<"$row"
  d=${RES[daxref,$key]:--}; x=${RES[xfs,$key]:--}
  case $kind in
    clone20) target="<= 20 ms, <= 10x xfs"; v=$(verdict clone20 "$d" "$x") ;;
    df) target="<= $DF_MAX_KIB KiB each"; ;;
    scale) target="<= 2 (daxref)"; v=$(verdict atmost "$d" 2) ;;
    *) target="-"; v="-" ;;
  esac
  if [[ $kind == df ]]; then
    vd=$(verdict atmost "$d" "$DF_MAX_KIB"); vx=$(verdict atmost "$x" "$DF_MAX_KIB")
    v="daxref $vd, xfs $vx"
  fi
  r=$(ratio "$d" "$x")
  [[ $kind == scale || $key == scale_ext || $kind == df ]] && r="-"
  printf "$FMT" "$label" "$d" "$x" "$r" "$target" "$v"
done
[[ $QUICK -eq 1 ]] && echo "(--quick: sizes too small for the verdicts to mean anything)"

if [[ $FAILED -ne 0 ]]; then
  note "some workloads failed (ERR in the table); see the messages above"
  exit 1
fi
exit 0
