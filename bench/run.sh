#!/usr/bin/env bash
# bench/run.sh — run the same workloads on a fresh daxref mount and on a tmpfs
# directory, and print a table: workload | daxref | tmpfs | daxref/tmpfs.
#
# usage: bench/run.sh [--size 4G] [--build-dir build] [--quick] [--pin CPU] [--tmpfs-only]
#
#   --size SIZE       size of the daxref pool given to mkfs.daxref (default 4G)
#   --build-dir DIR   meson build directory (default: <repo>/build). Created
#                     with `meson setup` if it is not configured yet, then
#                     brought up to date with `ninja -C DIR`.
#   --quick           smoke-test sizes: 64 MiB files, 3 s random runs,
#                     2,000 files. The figures are then not meaningful.
#   --pin CPU         run the daemon and every workload on that one CPU
#                     (taskset), for both targets. On a VM whose idle vCPUs
#                     halt, a wake-up across CPUs costs more than a FUSE
#                     request; pinning shows what the filesystem costs
#                     without that (see docs/design.md, "Request threads").
#   --tmpfs-only      skip daxref entirely (no build, no mkfs, no mount); only
#                     useful to test this script.
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
#   create/stat/unlink
#               daxref-bench-fileops (bench/fileops.cc) on 20,000 empty files
#               in one directory.
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
TMPFS_SIZE=6G
FIO_TIMEOUT=1800   # seconds; guards against a hung daemon

usage() {
  sed -n '5,15s/^# \{0,1\}//p' "$0"
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
    -h|--help) usage 0 ;;
    *) echo "run.sh: unknown argument: $1" >&2; usage 2 ;;
  esac
done

if [[ $QUICK -eq 1 ]]; then
  FILE_SIZE=64M; RUNTIME=3; NFILES=2000; WARMUP_MIB=256
else
  FILE_SIZE=1G; RUNTIME=10; NFILES=20000; WARMUP_MIB=4096
fi

[[ $(id -u) -eq 0 ]] || die "must run as root (mounts a tmpfs)"
for t in fio python3 mountpoint timeout; do
  command -v "$t" >/dev/null || die "$t not found"
done
if [[ $TMPFS_ONLY -eq 0 ]]; then
  command -v fusermount3 >/dev/null || die "fusermount3 not found"
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

# shellcheck source=bench/lib.sh
source "$SCRIPT_DIR/lib.sh"

# shellcheck disable=SC2317  # called through the trap trap_cleanup sets
cleanup() {
  local rc=$?
  set +e
  trap - EXIT INT TERM HUP
  teardown_daxref
  if [[ -n $TMPFS_MNT ]]; then
    unmount_dir "$TMPFS_MNT" tmpfs && rmdir "$TMPFS_MNT"
  fi
  if [[ -n $POOL_PARENT ]]; then
    rm -rf -- "$POOL_PARENT"
  fi
  if [[ -n $WORK ]]; then
    # Only plain files and the (now unmounted, empty) mount points live here;
    # never rm -r across something still mounted.
    if [[ -n $DAX_MNT && -d $DAX_MNT ]] || [[ -n $TMPFS_MNT && -d $TMPFS_MNT ]]; then
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

FILEOPS="$BUILD/bench/daxref-bench-fileops"
MKFS="$BUILD/tools/mkfs/mkfs.daxref"
DAXREF="$BUILD/fs/daxref"

if [[ $TMPFS_ONLY -eq 0 ]]; then
  if [[ ! -f $BUILD/build.ninja ]]; then
    note "configuring $BUILD"
    meson setup "$BUILD" "$REPO" >"$WORK/meson-setup.log" 2>&1 ||
      { cat "$WORK/meson-setup.log" >&2; die "meson setup $BUILD failed"; }
  fi
  note "building in $BUILD"
  ninja -C "$BUILD" >"$WORK/ninja.log" 2>&1 ||
    { tail -n 60 "$WORK/ninja.log" >&2; die "ninja -C $BUILD failed"; }
  [[ -x $MKFS ]] || die "$MKFS missing after build"
  [[ -x $DAXREF ]] || die "$DAXREF missing after build"
fi
# --tmpfs-only never touches the build directory (someone else may be building
# in it); it reuses an up-to-date fileops binary or compiles its own.
if [[ ! -x $FILEOPS || $FILEOPS -ot $SCRIPT_DIR/fileops.cc ]]; then
  [[ $TMPFS_ONLY -eq 1 ]] ||
    note "$FILEOPS missing or out of date (is subdir('bench') in meson.build?); compiling it privately"
  FILEOPS="$WORK/daxref-bench-fileops"
  "${CXX:-c++}" -std=c++20 -O2 -g -Wall -Wextra -D_FILE_OFFSET_BITS=64 \
    -o "$FILEOPS" "$SCRIPT_DIR/fileops.cc" || die "cannot compile bench/fileops.cc"
fi

# ---------------------------------------------------------------- targets --

TARGETS=()
declare -A DIR

if [[ $TMPFS_ONLY -eq 0 ]]; then
  POOL_PARENT=$(mktemp -d /dev/shm/daxref-bench.XXXXXX)
  POOL="$POOL_PARENT/pool"
  note "mkfs.daxref --size $SIZE $POOL"
  "$MKFS" --size "$SIZE" "$POOL" >"$WORK/mkfs.log" 2>&1 ||
    { cat "$WORK/mkfs.log" >&2; die "mkfs.daxref failed"; }
  DAX_MNT="$WORK/daxref"
  mkdir "$DAX_MNT"
  note "mounting daxref on $DAX_MNT"
  "${PIN[@]}" "$DAXREF" "$POOL" "$DAX_MNT" >"$WORK/daxref.log" 2>&1 ||
    { cat "$WORK/daxref.log" >&2; die "daxref $POOL $DAX_MNT failed"; }
  for ((i = 0; i < 50; i++)); do mountpoint -q "$DAX_MNT" && break; sleep 0.1; done
  mountpoint -q "$DAX_MNT" || { cat "$WORK/daxref.log" >&2; die "daxref returned but $DAX_MNT is not mounted"; }
  TARGETS+=(daxref); DIR[daxref]=$DAX_MNT
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
      --ioengine=psync --numjobs=1 --iodepth=1 --invalidate=1 --fallocate=none \
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
  if mkdir "$d" 2>"$out.err" && "${PIN[@]}" "$FILEOPS" "$d" "$NFILES" >"$out" 2>"$out.err"; then
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
    RES[$target,randread]=ERR; RES[$target,randwrite]=ERR; FAILED=1
  else
    run_fio "$target" randread read iops --filename=rand.dat --rw=randread --bs=4k \
      --size="$FILE_SIZE" --runtime="$RUNTIME" --time_based
    run_fio "$target" randwrite write iops --filename=rand.dat --rw=randwrite --bs=4k \
      --size="$FILE_SIZE" --runtime="$RUNTIME" --time_based
  fi
  rm -f "${DIR[$target]}/seq.dat" "${DIR[$target]}/rand.dat" || true
  run_fileops "$target"
done

# ------------------------------------------------------------------ table --

WORKLOADS=(seqwrite seqread randread randwrite create stat unlink)
declare -A LABEL=(
  [seqwrite]="seq write 1M (MiB/s)"
  [seqread]="seq read 1M (MiB/s)"
  [randread]="rand read 4k (IOPS)"
  [randwrite]="rand write 4k (IOPS)"
  [create]="create (ops/s)"
  [stat]="stat (ops/s)"
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
echo "files ${FILE_SIZE}iB, random runs ${RUNTIME}s, $NFILES files; pool $SIZE in /dev/shm; tmpfs size=$TMPFS_SIZE"
if [[ ${#PIN[@]} -gt 0 ]]; then echo "daemon and workloads pinned: ${PIN[*]}"; else echo "not pinned: the scheduler places daemon and workloads"; fi
echo
FMT="%-22s | %12s | %12s | %8s\n"
printf "$FMT" "workload" "daxref" "tmpfs" "ratio"
printf "%s\n" "-----------------------+--------------+--------------+---------"
for wl in "${WORKLOADS[@]}"; do
  d=${RES[daxref,$wl]:--}; t=${RES[tmpfs,$wl]:--}
  printf "$FMT" "${LABEL[$wl]}" "$d" "$t" "$(ratio "$d" "$t")"
done

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
  printf "  %-36s %s\n" "$desc" "$verdict"
}
target_line "seq write ratio >= 0.5" "$(ratio "${RES[daxref,seqwrite]:-}" "${RES[tmpfs,seqwrite]:-}")" 0.5
target_line "seq read ratio >= 0.5" "$(ratio "${RES[daxref,seqread]:-}" "${RES[tmpfs,seqread]:-}")" 0.5
target_line "rand read 4k ratio >= 0.5" "$(ratio "${RES[daxref,randread]:-}" "${RES[tmpfs,randread]:-}")" 0.5
target_line "rand write 4k >= 60000 IOPS" "${RES[daxref,randwrite]:-}" 60000
target_line "create >= 20000 ops/s" "${RES[daxref,create]:-}" 20000
target_line "unlink >= 20000 ops/s" "${RES[daxref,unlink]:-}" 20000
[[ $QUICK -eq 1 ]] && echo "  (--quick: sizes too small for the verdicts to mean anything)"

if [[ $FAILED -ne 0 ]]; then
  note "some workloads failed (ERR in the table); see the messages above"
  exit 1
fi
exit 0
