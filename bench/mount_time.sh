#!/usr/bin/env bash
# bench/mount_time.sh — how long `daxref SOURCE MNT` takes to mount a store
# holding COUNT extents (default 1,000,000), after a clean unmount and after
# the daemon was killed (so the metadata log must be replayed).
#
# usage: bench/mount_time.sh [--count N] [--build-dir DIR]
# Populating goes through the metadata library (daxref-bench-populate) and
# takes a couple of minutes for a million extents; the mounts are timed.
set -euo pipefail
REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BUILD="$REPO/build"
COUNT=1000000
while [ $# -gt 0 ]; do
  case "$1" in
    --count) COUNT=$2; shift 2 ;;
    --build-dir) BUILD=$2; shift 2 ;;
    -h|--help) sed -n '2,8p' "$0"; exit 0 ;;
    *) echo "mount_time.sh: unknown argument $1" >&2; exit 2 ;;
  esac
done
[ -f "$BUILD/build.ninja" ] || meson setup "$BUILD" "$REPO" >/dev/null
ninja -C "$BUILD" >/dev/null
SRC=$(mktemp -u /dev/shm/daxref-mount-bench.XXXXXX)
MNT=$(mktemp -d)
cleanup() {
  fusermount3 -u -z "$MNT" 2>/dev/null || true
  sleep 0.5
  rm -rf "$SRC" && rmdir "$MNT" 2>/dev/null || true
}
trap cleanup EXIT
# 2 blocks per extent (data and gap) plus room.
size=$(( (COUNT * 2 * 4096) + (1 << 30) ))
"$BUILD/tools/mkfs/mkfs.daxref" -q --size "$size" "$SRC"
"$BUILD/bench/daxref-bench-populate" "$SRC" "$COUNT"
now() { date +%s.%N; }
t0=$(now); "$BUILD/fs/daxref" "$SRC" "$MNT"; t1=$(now)
clean=$(awk -v a="$t0" -v b="$t1" "BEGIN{print b-a}")
ls -l "$MNT/extents" >/dev/null
# Dirty the log, then kill the daemon so the next mount replays it.
for i in $(seq 1 2000); do echo "$i" > "$MNT/f$i"; done
pkill -KILL -f "daxref $SRC $MNT" || true
fusermount3 -u -z "$MNT" 2>/dev/null || true
sleep 0.5
t0=$(now); "$BUILD/fs/daxref" "$SRC" "$MNT"; t1=$(now)
crashed=$(awk -v a="$t0" -v b="$t1" "BEGIN{print b-a}")
[ "$(cat "$MNT/f2000")" = 2000 ] || { echo "mount_time.sh: data lost across kill" >&2; exit 1; }
printf 'mount with %d extents: %.3f s after clean unmount, %.3f s after SIGKILL (target < 2 s)\n' \
  "$COUNT" "$clean" "$crashed"
