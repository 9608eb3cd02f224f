#!/usr/bin/env bash
# bench/dax.sh — direct access (docs/dax.md) against the ordinary paths, in
# one run: 4 KiB random writes and reads through a leased mapping (each
# write followed by daxref_dax_persist), sequential 1 MiB stores through
# it, the same workloads through the FUSE path (pwrite/pread) and on tmpfs
# (pwrite/pread and an ordinary shared mmap), single-thread memcpy
# bandwidth, and the time a truncate takes to revoke a lease held by one
# other process. Prints a table and the issue's ratios.
#
# usage: bench/dax.sh [--build-dir DIR] [--quick] [--reps R]
#
#   --build-dir DIR   meson build directory (default: <repo>/build)
#   --quick           smoke test: 64 MiB file, 1 s per run, one rep. The
#                     figures are then not meaningful.
#   --reps R          rounds of every workload (default 3); the median is
#                     printed. Rounds alternate between targets, so drift
#                     on a shared machine falls on all of them alike.
#
# Must run as root (it mounts). Everything it makes (the pool and the tmpfs
# file under /dev/shm, the mount) is removed on exit, also on error or
# Ctrl-C. A non-zero exit means a workload or the setup failed; a missed
# target is not an error.
#
# Targets (issue 13): lease random writes >= 2x tmpfs pwrite and >= 30x
# daxref pwrite; lease sequential >= 0.7x memcpy; revocation < 10 ms.

set -euo pipefail
export LC_ALL=C

SCRIPT_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(cd "$SCRIPT_DIR/.." && pwd)
BUILD="$REPO/build"
QUICK=0
REPS=3

usage() {
  sed -n '10,17s/^# \{0,1\}//p' "$0"
  exit "${1:-0}"
}
die() { echo "dax.sh: $*" >&2; exit 1; }
note() { echo "dax.sh: $*" >&2; }

while [[ $# -gt 0 ]]; do
  case "$1" in
    --build-dir) [[ $# -ge 2 ]] || usage 2; BUILD=$2; shift 2 ;;
    --build-dir=*) BUILD=${1#*=}; shift ;;
    --quick) QUICK=1; REPS=1; shift ;;
    --reps) [[ $# -ge 2 ]] || usage 2; REPS=$2; shift 2 ;;
    --reps=*) REPS=${1#*=}; shift ;;
    -h|--help) usage 0 ;;
    *) echo "dax.sh: unknown argument: $1" >&2; usage 2 ;;
  esac
done
[[ $REPS =~ ^[1-9][0-9]*$ ]] || { echo "dax.sh: --reps wants a positive integer" >&2; exit 2; }
if [[ $QUICK -eq 1 ]]; then BYTES=$((64 << 20)); SECS=1; else BYTES=$((1 << 30)); SECS=5; fi

[[ $(id -u) -eq 0 ]] || die "must run as root (it mounts a daxref filesystem)"
for t in mountpoint fusermount3 awk; do command -v "$t" >/dev/null || die "$t not found"; done
mkdir -p "$BUILD"
BUILD=$(cd "$BUILD" && pwd)

WORK=""
SHM=""
POOL=""
DAX_MNT=""
# shellcheck source=bench/lib.sh
source "$SCRIPT_DIR/lib.sh"

# shellcheck disable=SC2317  # called through the trap trap_cleanup sets
cleanup() {
  local rc=$?
  set +e
  trap - EXIT INT TERM HUP
  teardown_daxref
  [[ -n $SHM ]] && rm -rf -- "$SHM"
  [[ -n $WORK ]] && rm -rf -- "$WORK"
  exit "$rc"
}
trap_cleanup
WORK=$(mktemp -d /tmp/daxref-dax.XXXXXX)
SHM=$(mktemp -d /dev/shm/daxref-dax.XXXXXX)

build_targets fs/daxref tools/mkfs/mkfs.daxref bench/daxref-bench-dax
BENCH="$BUILD/bench/daxref-bench-dax"

POOL="$SHM/pool"
"$BUILD/tools/mkfs/mkfs.daxref" --size $((BYTES * 2 + (256 << 20))) "$POOL" >"$WORK/mkfs.log" 2>&1 ||
  { cat "$WORK/mkfs.log" >&2; die "mkfs.daxref failed"; }
DAX_MNT="$WORK/mnt"
mkdir "$DAX_MNT"
"$BUILD/fs/daxref" "$POOL" "$DAX_MNT" >"$WORK/daxref.log" 2>&1 ||
  { cat "$WORK/daxref.log" >&2; die "daxref failed to mount"; }
for ((i = 0; i < 50; i++)); do mountpoint -q "$DAX_MNT" && break; sleep 0.1; done
mountpoint -q "$DAX_MNT" || die "$DAX_MNT is not mounted"

DAXF="$DAX_MNT/file"
TMPF="$SHM/file"
note "laying out $((BYTES >> 20)) MiB on daxref and on tmpfs"
for f in "$DAXF" "$TMPF"; do
  dd if=/dev/zero of="$f" bs=1M count=$((BYTES >> 20)) conv=fsync status=none || die "dd $f"
done
# The revocation runs truncate a file of their own, so the others keep theirs whole.
REVF="$DAX_MNT/revoke"
REV_BYTES=$((64 << 20))
dd if=/dev/zero of="$REVF" bs=1M count=$((REV_BYTES >> 20)) conv=fsync status=none || die "dd $REVF"

median() { printf '%s\n' "$@" | sort -g | awk '{ v[NR] = $1 } END { if (NR % 2) print v[(NR + 1) / 2]; else print (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }
run() {  # run MODE FILE: one figure
  local out
  out=$(timeout 300 "$BENCH" "$1" "$2" "$BYTES" "$SECS") || die "daxref-bench-dax $1 $2 failed"
  echo "$out"
}

declare -A R
WORKLOADS=(
  "lease 4k rand write|dax-rand-write|$DAXF"
  "lease 4k rand read|dax-rand-read|$DAXF"
  "lease 1M seq write MiB/s|dax-seq-write|$DAXF"
  "daxref pwrite 4k|pwrite-rand|$DAXF"
  "daxref pread 4k|pread-rand|$DAXF"
  "tmpfs pwrite 4k|pwrite-rand|$TMPF"
  "tmpfs pread 4k|pread-rand|$TMPF"
  "tmpfs mmap 4k write|mmap-rand-write|$TMPF"
  "memcpy 1M MiB/s|memcpy|$TMPF"
)
REVOKE=()
for ((r = 1; r <= REPS; r++)); do
  note "round $r of $REPS"
  for w in "${WORKLOADS[@]}"; do
    IFS='|' read -r name mode file <<<"$w"
    R[$name]="${R[$name]:-} $(run "$mode" "$file")"
  done
  REVOKE+=("$(timeout 300 "$BENCH" revoke "$REVF" "$REV_BYTES" 1)") || die "daxref-bench-dax revoke failed"
done

printf '%-28s %14s\n' workload "median (IOPS or MiB/s)"
declare -A M
for w in "${WORKLOADS[@]}"; do
  IFS='|' read -r name _ _ <<<"$w"
  # shellcheck disable=SC2086  # the figures are space-separated on purpose
  M[$name]=$(median ${R[$name]})
  printf '%-28s %14s   (rounds:%s)\n' "$name" "${M[$name]}" "${R[$name]}"
done
lease_us=() plain_us=()
for x in "${REVOKE[@]}"; do lease_us+=("${x% *}"); plain_us+=("${x#* }"); done
rl=$(median "${lease_us[@]}")
rp=$(median "${plain_us[@]}")
printf '%-28s %14s   (rounds: %s; the same truncate with no lease: %s us)\n' \
  "truncate revoking, us" "$rl" "${lease_us[*]}" "$rp"

ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.2f", a / b; else print "n/a" }'; }
echo
echo "lease rand write / tmpfs pwrite:  $(ratio "${M[lease 4k rand write]}" "${M[tmpfs pwrite 4k]}")  (target >= 2)"
echo "lease rand write / daxref pwrite: $(ratio "${M[lease 4k rand write]}" "${M[daxref pwrite 4k]}")  (target >= 30)"
echo "lease seq write / memcpy:         $(ratio "${M[lease 1M seq write MiB/s]}" "${M[memcpy 1M MiB/s]}")  (target >= 0.7)"
echo "revocation (truncate with lease minus without): $(awk -v a="$rl" -v b="$rp" 'BEGIN { printf "%.2f", (a - b) / 1000 }') ms  (target < 10)"
