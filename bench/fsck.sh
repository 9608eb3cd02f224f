#!/usr/bin/env bash
# bench/fsck.sh — how long `fsck.daxref -n` takes on a big store, and how much
# memory it needs: the issue 9 figure is a store of 1,000,000 extents in
# 100,000 files (target under 30 s, memory proportional to the inodes, not
# to the extents). Two more stores show what the memory follows: the same
# extents in 10,000 files, and 100,000 files of one extent each.
#
# usage: bench/fsck.sh [--build-dir DIR] [--quick] [--only-main] [--scrub]
#
#   --build-dir DIR   meson build directory (default: <repo>/build). Created
#                     with `meson setup -Dtests=false` if not configured,
#                     then only the programs used here are built.
#   --quick           smoke test: a tenth of every size. The figures are
#                     then not meaningful.
#   --only-main       only the 1,000,000-extent / 100,000-file store
#   --scrub           also mount the main store and time daxref-scrub on it
#
# Populating goes through the metadata library (bench/populate_files.cc,
# file bytes not stored: fsck reads metadata only) and takes a few minutes
# per million extents; it is not timed. Each fsck is run twice, the first to
# warm the page cache, and the second is reported: wall time and peak
# resident memory from /usr/bin/time -v. The store is also checked by
# `fsck.daxref -n` to exit 0 (a store fsck finds damaged would time a
# different path). Everything is made under /dev/shm and removed on exit.
set -euo pipefail
export LC_ALL=C

SCRIPT_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(cd "$SCRIPT_DIR/.." && pwd)
BUILD="$REPO/build"
QUICK=0
ONLY_MAIN=0
SCRUB=0

usage() { sed -n '8,16s/^# \{0,1\}//p' "$0"; }
note() { echo "fsck.sh: $*" >&2; }
die() {
  note "$*"
  exit 1
}

while [[ $# -gt 0 ]]; do
  case "$1" in
    --build-dir) BUILD=$2; shift 2 ;;
    --quick) QUICK=1; shift ;;
    --only-main) ONLY_MAIN=1; shift ;;
    --scrub) SCRUB=1; shift ;;
    -h | --help) usage; exit 0 ;;
    *) usage >&2; exit 2 ;;
  esac
done
[[ -x /usr/bin/time ]] || die "/usr/bin/time is missing (apt-get install time)"

WORK=$(mktemp -d /dev/shm/daxref-fsck-bench.XXXXXX)
MNT=""
DAX_MNT=""
POOL=""
# shellcheck source=bench/lib.sh
source "$SCRIPT_DIR/lib.sh"
cleanup() {
  teardown_daxref
  rm -rf "$WORK"
}
trap_cleanup

build_targets tools/mkfs/mkfs.daxref tools/fsck/fsck.daxref fs/daxref tools/scrub/daxref-scrub \
  bench/daxref-bench-populate-files
MKFS=$BUILD/tools/mkfs/mkfs.daxref
FSCK=$BUILD/tools/fsck/fsck.daxref
POPULATE=$BUILD/bench/daxref-bench-populate-files

# A store of $2 files and $3 extents in $1.
make_store() {
  local src=$1 files=$2 extents=$3
  # One pool block per extent, plus room.
  local size=$(((extents + 65536) * 4096))
  # Sparse: the file bytes are never stored, so the pool needs no space
  # (mkfs's warning that a sparse pool can fill its host is moot here).
  "$MKFS" -q --sparse --size "$size" "$src" 2> >(grep -v 'warning: the pool is sparse' >&2)
  note "populating $src: $files files, $extents extents (not timed)"
  "$POPULATE" "$src" "$files" "$extents" >&2
}

# Prints "SECONDS KIB" for one fsck -n of $1 (the second of two runs).
time_fsck() {
  local src=$1 out="$WORK/time.out" status
  "$FSCK" -n "$src" >/dev/null || die "fsck.daxref -n $src did not find it clean"
  set +e
  /usr/bin/time -v "$FSCK" -n "$src" >/dev/null 2>"$out"
  status=$?
  set -e
  [[ $status == 0 ]] || { cat "$out" >&2; die "fsck.daxref -n $src exited $status"; }
  local wall rss
  wall=$(awk -F': ' '/Elapsed \(wall clock\)/ {print $2}' "$out")
  rss=$(awk -F': ' '/Maximum resident set size/ {print $2}' "$out")
  # h:mm:ss or m:ss.ss to seconds
  wall=$(awk -v t="$wall" 'BEGIN { n = split(t, p, ":"); s = 0; for (i = 1; i <= n; i++) s = s * 60 + p[i]; print s }')
  echo "$wall $rss"
}

div=1
[[ $QUICK == 1 ]] && div=10
declare -a NAMES FILES EXTENTS
NAMES+=("main") FILES+=($((100000 / div))) EXTENTS+=($((1000000 / div)))
if [[ $ONLY_MAIN == 0 ]]; then
  NAMES+=("fewer files") FILES+=($((10000 / div))) EXTENTS+=($((1000000 / div)))
  NAMES+=("fewer extents") FILES+=($((100000 / div))) EXTENTS+=($((100000 / div)))
fi

results=()
for i in "${!NAMES[@]}"; do
  src="$WORK/fs$i"
  make_store "$src" "${FILES[$i]}" "${EXTENTS[$i]}"
  read -r secs kib < <(time_fsck "$src")
  results+=("$(printf '%-14s %8d files %9d extents   fsck -n %6.2f s   peak RSS %7.1f MiB' \
    "${NAMES[$i]}" "${FILES[$i]}" "${EXTENTS[$i]}" "$secs" "$(awk -v k="$kib" 'BEGIN{print k/1024}')")")
  if [[ $i == 0 && $SCRUB == 1 ]]; then
    POOL="$src/pool"
    DAX_MNT=$(mktemp -d /tmp/daxref-fsck-bench-mnt.XXXXXX)
    "$BUILD/fs/daxref" "$src" "$DAX_MNT"
    t0=$EPOCHREALTIME
    "$BUILD/tools/scrub/daxref-scrub" "$DAX_MNT" >/dev/null || die "daxref-scrub found problems"
    t1=$EPOCHREALTIME
    results+=("$(printf '%-14s daxref-scrub on the mounted main store: %.2f s' "" \
      "$(awk -v a="$t0" -v b="$t1" 'BEGIN{print b-a}')")")
    teardown_daxref
    DAX_MNT=""
  fi
  rm -rf "$src"
done
echo
printf '%s\n' "${results[@]}"
echo "(target for the main store: under 30 s; memory follows the files, not the extents)"
