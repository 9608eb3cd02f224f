#!/usr/bin/env bash
# bench/run.sh — run the same workloads on a fresh daxref mount and on a tmpfs
# directory, and print a table: workload | daxref | tmpfs | daxref/tmpfs.
#
# usage: bench/run.sh [--size 4G] [--build-dir build] [--quick] [--pin CPU] [--tmpfs-only]
#                     [--passthrough-hp PATH] [--xfs]
#
#   --size SIZE       size of the daxref pool given to mkfs.daxref (default 4G)
#   --build-dir DIR   meson build directory (default: <repo>/build). Created
#                     with `meson setup -Dtests=false` if not configured yet;
#                     then only fs/daxref, mkfs.daxref and the bench helpers
#                     are built in it.
#   --quick           smoke-test sizes: 64 MiB files, 3 s random runs,
#                     2,000 files. The figures are then not meaningful.
#   --pin CPU         run the daemon and every workload on that one CPU
#                     (taskset), for both targets. On a VM whose idle vCPUs
#                     halt, a wake-up across CPUs costs more than a FUSE
#                     request; pinning shows what the filesystem costs
#                     without that (see docs/design.md, "Request threads").
#   --tmpfs-only      skip daxref entirely (no build, no mkfs, no mount); only
#                     useful to test this script.
#   --passthrough-hp PATH  add a column: libfuse's example passthrough_hp (PATH)
#                     mirroring a directory of its own tmpfs; given
#                     --nopassthrough when it knows the option (libfuse >= 3.16)
#   --xfs             add a column: XFS on a loop device (image in /dev/shm)
#
# Must run as root (it mounts a tmpfs). Needs fio, python3 (standard library
# only) and fusermount3. Everything it creates — the pool under /dev/shm, the
# mount points, the tmpfs, the logs — is removed on exit, also on error or
# Ctrl-C. A non-zero exit status means a workload or the setup failed; a
# missed target is not an error.
#
# Workloads (per target, in this order; sizes are the full-run ones):
#   seq write   fio, 1 GiB written in 1 MiB requests, psync, one job,
#               end_fsync=1 (the final fsync is inside the timed part).
#   seq read    fio, the same file read back in 1 MiB requests.
#   rand read   fio, 4 KiB random reads over a 1 GiB file for 10 s (time based).
#   rand write  fio, 4 KiB random writes over the same file for 10 s.
#               The file is laid out (fully written) by fio beforehand, in an
#               untimed setup step (--create_only=1).
#   rand write 2 jobs
#               the same with numjobs=2 on the ONE file (both jobs name it),
#               IOPS of both together (group_reporting).
#   create/stat/unlink
#               daxref-bench-fileops (bench/fileops.cc) on 20,000 empty files
#               in one directory.
#   stat cold   daxref-bench-nsops (bench/nsops.cc): 20,000 files created,
#               the target remounted (daxref and passthrough_hp: unmount, the
#               daemon exits, mount again; XFS: umount, mount), then one stat()
#               of each, timed, so every lookup reaches the filesystem. tmpfs
#               cannot be remounted without losing its files: its figure is
#               warm (its dentries are its storage). The caches are never
#               dropped system-wide (no /proc/sys/vm/drop_caches).
# Before any of this, 4 GiB (256 MiB with --quick) are written to the tmpfs
# and deleted, untimed, so that first-touch costs of fresh RAM (large in VMs)
# do not land on whichever target happens to run first.
# All fio jobs use numjobs=1, iodepth=1, ioengine=psync and fallocate=none
# (fio would otherwise preallocate its files with fallocate() before the timed
# part, hiding the cost of block allocation in the sequential write).
#
# Page cache: we do NOT drop the system's caches between the write and the read
# phase. A FUSE file's data is cached by the kernel like any other file's, so
# after the seq write the pages just written may still be in the page cache
# and a read would never reach the daemon. Instead every fio job runs with
# --invalidate=1 (fio's default, made explicit here): before the job starts,
# fio calls posix_fadvise(POSIX_FADV_DONTNEED) over the file, which drops that
# file's clean cached pages. On daxref the reads then really go to the daemon
# (which copies out of the pool mapping). On tmpfs the page cache *is* the
# storage, so nothing is dropped — it is the in-memory baseline. Note that
# invalidation only happens at job start: during the 10 s random-read run,
# pages once read stay cached by the kernel, so on daxref that figure mixes
# FUSE round trips with page-cache hits (fio's fadvise_hint also turns off
# readahead for random jobs).

set -euo pipefail

SCRIPT_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(cd "$SCRIPT_DIR/.." && pwd)

SIZE=4G
BUILD="$REPO/build"
QUICK=0
PIN=()
TMPFS_ONLY=0
PTHP=""            # --passthrough-hp PATH
PTHP_ARGS=()
WITH_XFS=0
TMPFS_SIZE=6G
FIO_TIMEOUT=1800   # seconds; guards against a hung daemon

usage() {
  sed -n '5,20s/^# \{0,1\}//p' "$0"
  exit "${1:-0}"
}

die() { echo "run.sh: $*" >&2; exit 1; }
note() { echo "run.sh: $*" >&2; }

while [[ $# -gt 0 ]]; do
  case "$1" in
    --size) [[ $# -ge 2 ]] || usage 2; SIZE=$2; shift 2 ;;
    --size=*) SIZE=${1#*=}; shift ;;
    --build-dir) [[ $# -ge 2 ]] || usage 2; BUILD=$2; shift 2 ;;
    --build-dir=*) BUILD=${1#*=}; shift ;;
    --quick) QUICK=1; shift ;;
    --pin) [[ $# -ge 2 ]] || usage 2; PIN=(taskset -c "$2"); shift 2 ;;
    --pin=*) PIN=(taskset -c "${1#*=}"); shift ;;
    --tmpfs-only) TMPFS_ONLY=1; shift ;;
    --passthrough-hp) [[ $# -ge 2 ]] || usage 2; PTHP=$2; shift 2 ;;
    --passthrough-hp=*) PTHP=${1#*=}; shift ;;
    --xfs) WITH_XFS=1; shift ;;
    -h|--help) usage 0 ;;
    *) echo "run.sh: unknown argument: $1" >&2; usage 2 ;;
  esac
done

if [[ $QUICK -eq 1 ]]; then
  FILE_SIZE=64M; RUNTIME=3; NFILES=2000; WARMUP_MIB=256
else
  FILE_SIZE=1G; RUNTIME=10; NFILES=20000; WARMUP_MIB=4096
fi
# nfiles TARGET: the file count of the namespace phases on TARGET.
nfiles() {
  if [[ $1 == passthrough_hp && $PT_NFILES -gt 0 ]]; then echo "$PT_NFILES"; else echo "$NFILES"; fi
}

[[ $(id -u) -eq 0 ]] || die "must run as root (mounts a tmpfs)"
for t in fio python3 mountpoint timeout; do
  command -v "$t" >/dev/null || die "$t not found"
done
if [[ $TMPFS_ONLY -eq 0 || -n $PTHP ]]; then
  command -v fusermount3 >/dev/null || die "fusermount3 not found"
fi
if [[ -n $PTHP ]]; then
  [[ -x $PTHP && -f $PTHP ]] || die "--passthrough-hp $PTHP: not an executable file"
  PTHP=$(cd "$(dirname "$PTHP")" && pwd)/$(basename "$PTHP")
  pthp_help=$("$PTHP" --help 2>&1 || true)
  [[ $pthp_help == *--nopassthrough* ]] && PTHP_ARGS+=(--nopassthrough)
fi
# passthrough_hp keeps one descriptor open per inode the kernel knows. Where
# the hard RLIMIT_NOFILE cannot be raised (a container without
# CAP_SYS_RESOURCE: 20,000 on the development VM), 20,000 files would fail
# with EBADF; its namespace phases then use half the limit, and the table
# says so (the figures are rates, comparable across file counts).
PT_NFILES=0
if [[ -n $PTHP ]]; then
  pt_lim=$(ulimit -Hn)
  (ulimit -Hn 1048576) 2>/dev/null && pt_lim=1048576
  [[ $pt_lim == unlimited ]] && pt_lim=1048576
  if [[ $pt_lim -lt $((NFILES + 1000)) ]]; then
    PT_NFILES=$((pt_lim / 2))
    note "passthrough_hp: open-file hard limit $pt_lim cannot be raised; its namespace phases use $PT_NFILES files"
  fi
fi
if [[ $WITH_XFS -eq 1 ]] && ! command -v mkfs.xfs >/dev/null; then
  note "mkfs.xfs missing: installing xfsprogs"
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q xfsprogs >/dev/null ||
    die "apt-get install xfsprogs failed"
fi
if [[ $TMPFS_ONLY -eq 0 ]]; then
  mkdir -p "$BUILD"
  BUILD=$(cd "$BUILD" && pwd)
fi

# ---------------------------------------------------------------- cleanup --

WORK=""            # /tmp/daxref-bench.XXXXXX: mount points, logs, binaries
POOL_PARENT=""     # /dev/shm/daxref-bench.XXXXXX, holds the pool directory
POOL=""
DAX_MNT=""
TMPFS_MNT=""
PT_SRC=""          # tmpfs that passthrough_hp mirrors
PT_MNT=""
XFS_MNT=""
XFS_IMG=""

# shellcheck source=bench/lib.sh
source "$SCRIPT_DIR/lib.sh"

# Waits (never kills) for the passthrough_hp serving $PT_MNT to exit.
wait_for_pthp() {
  local i p cmd busy
  for ((i = 0; i < 100; i++)); do
    busy=""
    for p in /proc/[0-9]*; do
      cmd=$(tr '\0' ' ' 2>/dev/null <"$p/cmdline") || continue
      [[ $cmd == *"$PTHP"*"$PT_MNT"* ]] && busy="${p#/proc/}" && break
    done
    [[ -z $busy ]] && return 0
    sleep 0.1
  done
  note "warning: passthrough_hp (pid $busy) still running 10 s after unmount"
  return 1
}

# shellcheck disable=SC2317  # called through the trap trap_cleanup sets
cleanup() {
  local rc=$?
  set +e
  trap - EXIT INT TERM HUP
  teardown_daxref
  if [[ -n $PT_MNT && -d $PT_MNT ]]; then
    unmount_dir "$PT_MNT" fuse && rmdir "$PT_MNT" && wait_for_pthp
  fi
  local m
  for m in "$PT_SRC" "$XFS_MNT" "$TMPFS_MNT"; do
    [[ -n $m && -d $m ]] || continue
    unmount_dir "$m" other && rmdir "$m"
  done
  if [[ -n $POOL_PARENT ]]; then
    rm -rf -- "$POOL_PARENT"
  fi
  if [[ -n $WORK ]]; then
    # Only plain files and the (now unmounted, empty) mount points live here;
    # never rm -r across something still mounted.
    local stuck=0
    for m in "$DAX_MNT" "$PT_MNT" "$PT_SRC" "$XFS_MNT" "$TMPFS_MNT"; do
      [[ -n $m && -d $m ]] && stuck=1
    done
    if [[ $stuck -eq 1 ]]; then
      note "warning: leaving $WORK behind (a mount point could not be removed)"
    else
      rm -rf -- "$WORK"
    fi
  fi
  exit "$rc"
}
trap_cleanup

WORK=$(mktemp -d /tmp/daxref-bench.XXXXXX)

# ------------------------------------------------------------------ build --

MKFS="$BUILD/tools/mkfs/mkfs.daxref"
DAXREF="$BUILD/fs/daxref"

if [[ $TMPFS_ONLY -eq 0 ]]; then
  # Only what the benchmark runs (lib.sh): a test file being edited elsewhere
  # in the tree does not stop it, and a busy machine builds less.
  build_targets fs/daxref tools/mkfs/mkfs.daxref
  FILEOPS=$(bench_helper daxref-bench-fileops fileops.cc)
  NSOPS=$(bench_helper daxref-bench-nsops nsops.cc)
else
  # --tmpfs-only never touches the build directory (someone else may be
  # building in it): the helpers are compiled privately.
  FILEOPS="$WORK/daxref-bench-fileops"
  NSOPS="$WORK/daxref-bench-nsops"
  for prog in fileops nsops; do
    "${CXX:-c++}" -std=c++20 -O2 -g -Wall -Wextra -D_FILE_OFFSET_BITS=64 \
      -o "$WORK/daxref-bench-$prog" "$SCRIPT_DIR/$prog.cc" || die "cannot compile bench/$prog.cc"
  done
fi

# ---------------------------------------------------------------- targets --

TARGETS=()
declare -A DIR

mount_daxref() {
  local i
  "${PIN[@]}" "$DAXREF" "$POOL" "$DAX_MNT" >>"$WORK/daxref.log" 2>&1 ||
    { cat "$WORK/daxref.log" >&2; die "daxref $POOL $DAX_MNT failed"; }
  for ((i = 0; i < 100; i++)); do mountpoint -q "$DAX_MNT" && return 0; sleep 0.1; done
  cat "$WORK/daxref.log" >&2; die "daxref returned but $DAX_MNT is not mounted"
}

mount_pthp() {
  local i
  # passthrough_hp holds an O_PATH descriptor for every inode the kernel
  # knows, and raises its soft limit to the hard one only: give it room where
  # the hard limit can be raised (see PT_NFILES where it cannot).
  (ulimit -Hn 1048576 2>/dev/null || true; ulimit -Sn "$(ulimit -Hn)"
   exec "${PIN[@]}" "$PTHP" "${PTHP_ARGS[@]}" "$PT_SRC" "$PT_MNT") >>"$WORK/pthp.log" 2>&1 ||
    { cat "$WORK/pthp.log" >&2; die "passthrough_hp $PT_SRC $PT_MNT failed"; }
  for ((i = 0; i < 100; i++)); do mountpoint -q "$PT_MNT" && return 0; sleep 0.1; done
  cat "$WORK/pthp.log" >&2; die "passthrough_hp returned but $PT_MNT is not mounted"
}

# remount TARGET: drops what the kernel caches of the target's inodes and
# dentries by unmounting it (the daemons exit) and mounting it again.
remount() {
  case $1 in
    daxref)
      unmount_dir "$DAX_MNT" fuse && wait_for_daemon && mount_daxref ;;
    passthrough_hp)
      unmount_dir "$PT_MNT" fuse && wait_for_pthp && mount_pthp ;;
    xfs)
      unmount_dir "$XFS_MNT" other && mount -o loop "$XFS_IMG" "$XFS_MNT" ;;
    *) return 0 ;;
  esac
}

if [[ $TMPFS_ONLY -eq 0 ]]; then
  POOL_PARENT=$(mktemp -d /dev/shm/daxref-bench.XXXXXX)
  POOL="$POOL_PARENT/pool"
  note "mkfs.daxref --size $SIZE $POOL"
  "$MKFS" --size "$SIZE" "$POOL" >"$WORK/mkfs.log" 2>&1 ||
    { cat "$WORK/mkfs.log" >&2; die "mkfs.daxref failed"; }
  DAX_MNT="$WORK/daxref"
  mkdir "$DAX_MNT"
  note "mounting daxref on $DAX_MNT"
  mount_daxref
  TARGETS+=(daxref); DIR[daxref]=$DAX_MNT
fi

if [[ -n $PTHP ]]; then
  PT_SRC="$WORK/pthp-src"; mkdir "$PT_SRC"
  mount -t tmpfs -o size=3G daxref-bench-pthp "$PT_SRC" || die "cannot mount tmpfs for passthrough_hp"
  PT_MNT="$WORK/pthp"; mkdir "$PT_MNT"
  note "mounting $PTHP ${PTHP_ARGS[*]} $PT_SRC on $PT_MNT"
  mount_pthp
  TARGETS+=(passthrough_hp); DIR[passthrough_hp]=$PT_MNT
fi

if [[ $WITH_XFS -eq 1 ]]; then
  POOL_PARENT=${POOL_PARENT:-$(mktemp -d /dev/shm/daxref-bench.XXXXXX)}
  XFS_IMG="$POOL_PARENT/xfs.img"
  truncate -s "$SIZE" "$XFS_IMG"
  mkfs.xfs -q "$XFS_IMG" >"$WORK/mkfs.xfs.log" 2>&1 || { cat "$WORK/mkfs.xfs.log" >&2; die "mkfs.xfs failed"; }
  XFS_MNT="$WORK/xfs"; mkdir "$XFS_MNT"
  mount -o loop "$XFS_IMG" "$XFS_MNT" || die "cannot mount $XFS_IMG (loop)"
  TARGETS+=(xfs); DIR[xfs]=$XFS_MNT
fi

TMPFS_MNT="$WORK/tmpfs"
mkdir "$TMPFS_MNT"
mount -t tmpfs -o "size=$TMPFS_SIZE" daxref-bench "$TMPFS_MNT" || die "cannot mount tmpfs"
TARGETS+=(tmpfs); DIR[tmpfs]=$TMPFS_MNT

# Warm-up (untimed): write and delete WARMUP_MIB in the tmpfs so that the
# kernel has touched that much RAM before anything is measured. In a VM, the
# first touch of a guest page can be several times slower than reuse (seen
# here: 380 MB/s vs 2.4 GB/s for dd to /dev/shm), and whichever target ran
# first would otherwise pay for it alone.
note "warm-up: writing ${WARMUP_MIB} MiB to tmpfs (untimed)"
dd if=/dev/zero of="$TMPFS_MNT/warmup" bs=1M count="$WARMUP_MIB" status=none ||
  die "warm-up write failed"
rm -f "$TMPFS_MNT/warmup"

# -------------------------------------------------------------- workloads --

declare -A RES     # RES[target,workload] = figure, or ERR
FAILED=0

# fio_json_metric FILE rw KEY: prints jobs[0][rw][KEY] from fio's JSON output.
fio_json_metric() {
  python3 - "$@" <<'PY'
import json, sys
path, rw, key = sys.argv[1:4]
text = open(path).read()
doc = json.loads(text[text.index("{"):])  # skip any non-JSON preamble
job = doc["jobs"][0]
if job.get("error", 0):
    sys.exit("fio job error %d" % job["error"])
v = job[rw][key]
if key == "bw_bytes":
    v = v / 1048576.0
print("%.1f" % v if key == "bw_bytes" else "%.0f" % v)
PY
}

# run_fio TARGET WORKLOAD RW KEY fio-args...
run_fio() {
  local target=$1 wl=$2 rw=$3 key=$4; shift 4
  local out="$WORK/$target-$wl.json" err="$WORK/$target-$wl.err" v
  if timeout --kill-after=30 "$FIO_TIMEOUT" "${PIN[@]}" fio --name="$wl" --directory="${DIR[$target]}" \
      --ioengine=psync --numjobs="${NUMJOBS:-1}" --group_reporting --iodepth=1 --invalidate=1 --fallocate=none \
      --output-format=json --output="$out" "$@" >"$err" 2>&1 &&
     v=$(fio_json_metric "$out" "$rw" "$key" 2>>"$err"); then
    RES[$target,$wl]=$v
    note "  $wl: $v"
  else
    RES[$target,$wl]=ERR; FAILED=1
    note "  $wl: FAILED"; sed 's/^/    /' "$err" >&2 || true
  fi
}

run_fileops() {
  local target=$1 d="${DIR[$1]}/fileops" out="$WORK/$1-fileops.out" phase ops secs
  : >"$out"
  if mkdir "$d" 2>"$out.err" && "${PIN[@]}" "$FILEOPS" "$d" "$(nfiles "$target")" >"$out" 2>"$out.err"; then
    for phase in create stat unlink; do
      read -r _ ops secs < <(grep "^$phase " "$out")
      RES[$target,$phase]=$(awk -v n="$ops" -v s="$secs" 'BEGIN { printf "%.0f", (s > 0 ? n / s : 0) }')
      note "  $phase: ${RES[$target,$phase]}"
    done
  else
    FAILED=1
    for phase in create stat unlink; do
      grep -q "^$phase " "$out" 2>/dev/null && read -r _ ops secs < <(grep "^$phase " "$out") &&
        RES[$target,$phase]=$(awk -v n="$ops" -v s="$secs" 'BEGIN { printf "%.0f", n / s }') ||
        RES[$target,$phase]=ERR
    done
    note "  fileops: FAILED"; sed 's/^/    /' "$out.err" >&2 || true
  fi
}

# run_statcold TARGET: create NFILES, remount, time one stat() of each, unlink.
run_statcold() {
  local target=$1 out="$WORK/$1-statcold.out" err="$WORK/$1-statcold.err" ops secs
  if mkdir "${DIR[$target]}/cold" 2>"$err" &&
     "${PIN[@]}" "$NSOPS" create "${DIR[$target]}/cold" "$(nfiles "$target")" >/dev/null 2>>"$err" &&
     remount "$target" >>"$err" 2>&1 &&
     "${PIN[@]}" "$NSOPS" stat "${DIR[$target]}/cold" "$(nfiles "$target")" >"$out" 2>>"$err" &&
     "${PIN[@]}" "$NSOPS" unlink "${DIR[$target]}/cold" "$(nfiles "$target")" >/dev/null 2>>"$err" &&
     rmdir "${DIR[$target]}/cold" 2>>"$err"; then
    read -r _ ops secs <"$out"
    RES[$target,statcold]=$(awk -v n="$ops" -v s="$secs" 'BEGIN { printf "%.0f", (s > 0 ? n / s : 0) }')
    note "  stat cold: ${RES[$target,statcold]}$([[ $target == tmpfs ]] && echo ' (tmpfs: not remounted, warm)')"
  else
    RES[$target,statcold]=ERR; FAILED=1
    note "  stat cold: FAILED"; sed 's/^/    /' "$err" >&2 || true
  fi
}

for target in "${TARGETS[@]}"; do
  note "running on $target (${DIR[$target]})"
  run_fio "$target" seqwrite write bw_bytes --filename=seq.dat --rw=write --bs=1M \
    --size="$FILE_SIZE" --end_fsync=1
  run_fio "$target" seqread read bw_bytes --filename=seq.dat --rw=read --bs=1M \
    --size="$FILE_SIZE"
  # Lay out the random-I/O file (untimed): --create_only writes the whole file.
  # Without it the random figures would be meaningless: skip them.
  if ! timeout "$FIO_TIMEOUT" fio --name=layout --directory="${DIR[$target]}" \
      --filename=rand.dat --rw=randread --bs=1M --size="$FILE_SIZE" --fallocate=none \
      --create_only=1 >"$WORK/$target-layout.err" 2>&1 ||
     [[ $(stat -c %s "${DIR[$target]}/rand.dat" 2>/dev/null || echo 0) -lt \
        $(numfmt --from=iec "$FILE_SIZE") ]]; then
    note "  layout of rand.dat failed; skipping randread and randwrite"
    sed 's/^/    /' "$WORK/$target-layout.err" >&2 || true
    RES[$target,randread]=ERR; RES[$target,randwrite]=ERR; RES[$target,randwrite2]=ERR; FAILED=1
  else
    run_fio "$target" randread read iops --filename=rand.dat --rw=randread --bs=4k \
      --size="$FILE_SIZE" --runtime="$RUNTIME" --time_based
    run_fio "$target" randwrite write iops --filename=rand.dat --rw=randwrite --bs=4k \
      --size="$FILE_SIZE" --runtime="$RUNTIME" --time_based
    NUMJOBS=2 run_fio "$target" randwrite2 write iops --filename=rand.dat --rw=randwrite \
      --bs=4k --size="$FILE_SIZE" --runtime="$RUNTIME" --time_based
  fi
  rm -f "${DIR[$target]}/seq.dat" "${DIR[$target]}/rand.dat" || true
  run_fileops "$target"
  run_statcold "$target"
done

# ------------------------------------------------------------------ table --

WORKLOADS=(seqwrite seqread randread randwrite randwrite2 create stat statcold unlink)
declare -A LABEL=(
  [seqwrite]="seq write 1M (MiB/s)"
  [seqread]="seq read 1M (MiB/s)"
  [randread]="rand read 4k (IOPS)"
  [randwrite]="rand write 4k, 1 job (IOPS)"
  [randwrite2]="rand write 4k, 2 jobs 1 file"
  [create]="create (ops/s)"
  [stat]="stat, warm (ops/s)"
  [statcold]="stat, cold (ops/s)"
  [unlink]="unlink (ops/s)"
)

isnum() { [[ ${1:-} =~ ^[0-9]+(\.[0-9]+)?$ ]]; }
ratio() {  # ratio A B -> A/B with 2 decimals, or "-"
  if isnum "${1:-}" && isnum "${2:-}" && awk -v b="$2" 'BEGIN { exit !(b > 0) }'; then
    awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", a / b }'
  else
    echo "-"
  fi
}

echo
echo "daxref benchmark — $(date -u '+%Y-%m-%d %H:%M:%S UTC'), kernel $(uname -r), $(fio --version)," \
  "git $(git -C "$REPO" rev-parse --short HEAD 2>/dev/null || echo '?')$([[ $QUICK -eq 1 ]] && echo ', QUICK (smoke test, figures not meaningful)')"
echo "files ${FILE_SIZE}iB, random runs ${RUNTIME}s, $NFILES files; pool $SIZE in /dev/shm; tmpfs size=$TMPFS_SIZE; load $(cut -d' ' -f1-3 /proc/loadavg)"
if [[ ${#PIN[@]} -gt 0 ]]; then echo "daemon and workloads pinned: ${PIN[*]}"; else echo "not pinned: the scheduler places daemon and workloads"; fi
echo
# Columns: every target's figure, then daxref's ratios to tmpfs and, when they
# ran, to passthrough_hp and XFS. Plus one derived row: 2 jobs / 1 job.
COLS=(daxref tmpfs)
[[ -n $PTHP ]] && COLS+=(passthrough_hp)
[[ $WITH_XFS -eq 1 ]] && COLS+=(xfs)
RCOLS=(tmpfs)
[[ -n $PTHP ]] && RCOLS+=(passthrough_hp)
[[ $WITH_XFS -eq 1 ]] && RCOLS+=(xfs)
declare -A SHORT=([daxref]=daxref [tmpfs]=tmpfs [passthrough_hp]=pthp [xfs]=xfs)
header=$(printf "%-29s" "workload")
rule=$(printf "%-29s" "" | tr ' ' '-')
for c in "${COLS[@]}"; do
  header+=$(printf " | %14s" "$c"); rule+="-+---------------"
done
for c in "${RCOLS[@]}"; do
  header+=$(printf " | %12s" "daxref/${SHORT[$c]}"); rule+="-+-------------"
done
echo "$header"
echo "$rule"
for wl in "${WORKLOADS[@]}" jobs2to1; do
  if [[ $wl == jobs2to1 ]]; then
    line=$(printf "%-29s" "rand write 2 jobs / 1 job")
    for c in "${COLS[@]}"; do
      RES[$c,jobs2to1]=$(ratio "${RES[$c,randwrite2]:-}" "${RES[$c,randwrite]:-}")
    done
  else
    line=$(printf "%-29s" "${LABEL[$wl]}")
  fi
  for c in "${COLS[@]}"; do line+=$(printf " | %14s" "${RES[$c,$wl]:--}"); done
  for c in "${RCOLS[@]}"; do
    if [[ $wl == jobs2to1 ]]; then line+=$(printf " | %12s" "")
    else line+=$(printf " | %12s" "$(ratio "${RES[daxref,$wl]:-}" "${RES[$c,$wl]:-}")"); fi
  done
  echo "$line"
done
echo "(stat, cold: after a remount of the target; tmpfs is not remounted, its figure is warm)"
[[ $PT_NFILES -gt 0 ]] &&
  echo "(passthrough_hp: create/stat/unlink on $PT_NFILES files, its open-file limit could not be raised)"
if [[ -n $PTHP && ${#PTHP_ARGS[@]} -eq 0 ]]; then
  echo "(passthrough_hp: this libfuse has no --nopassthrough, FUSE passthrough came in 3.16; its data goes through the daemon anyway)"
fi

echo
echo "targets (daxref):"
target_line() {  # target_line DESCRIPTION VALUE THRESHOLD
  local desc=$1 v=$2 min=$3 verdict
  if [[ $TMPFS_ONLY -eq 1 ]]; then
    verdict="n/a (--tmpfs-only)"
  elif ! isnum "$v"; then
    verdict="MISS (no result)"
  elif awk -v v="$v" -v m="$min" 'BEGIN { exit !(v >= m) }'; then
    verdict="PASS ($v)"
  else
    verdict="MISS ($v)"
  fi
  printf "  %-40s %s\n" "$desc" "$verdict"
}
target_line "seq write ratio >= 0.5" "$(ratio "${RES[daxref,seqwrite]:-}" "${RES[tmpfs,seqwrite]:-}")" 0.5
target_line "seq read ratio >= 0.5" "$(ratio "${RES[daxref,seqread]:-}" "${RES[tmpfs,seqread]:-}")" 0.5
target_line "rand read 4k ratio >= 0.5" "$(ratio "${RES[daxref,randread]:-}" "${RES[tmpfs,randread]:-}")" 0.5
target_line "rand write 4k >= 60000 IOPS" "${RES[daxref,randwrite]:-}" 60000
target_line "rand write 2 jobs >= 1.6x 1 job" "$(ratio "${RES[daxref,randwrite2]:-}" "${RES[daxref,randwrite]:-}")" 1.6
if [[ -n $PTHP ]]; then
  target_line "seq write >= 1.0x passthrough_hp" "$(ratio "${RES[daxref,seqwrite]:-}" "${RES[passthrough_hp,seqwrite]:-}")" 1.0
  target_line "seq read >= 1.5x passthrough_hp" "$(ratio "${RES[daxref,seqread]:-}" "${RES[passthrough_hp,seqread]:-}")" 1.5
else
  echo "  seq write/read vs passthrough_hp        n/a (no --passthrough-hp)"
fi
target_line "create >= 20000 ops/s" "${RES[daxref,create]:-}" 20000
target_line "unlink >= 20000 ops/s" "${RES[daxref,unlink]:-}" 20000
[[ $QUICK -eq 1 ]] && echo "  (--quick: sizes too small for the verdicts to mean anything)"

if [[ $FAILED -ne 0 ]]; then
  note "some workloads failed (ERR in the table); see the messages above"
  exit 1
fi
exit 0
