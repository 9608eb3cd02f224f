#!/usr/bin/env bash
# Installs what daxref needs (Debian 12 packages), builds it, and shows it
# working: a 1 GiB filesystem in /dev/shm is made, mounted, written to, a
# file copied as a shared copy and the copy changed, unmounted, mounted again
# and read back. Prints "OK" at the end and exits 0
# if everything read back matches; exits non-zero otherwise.
#
# Usage: scripts/demo.sh [BUILD_DIR]     (BUILD_DIR defaults to build)
#        scripts/demo.sh --installed     the installed binaries (/usr/bin,
#                                        /usr/sbin, the library path): no
#                                        build (scripts/package.sh runs this)
#
# Everything it creates (the filesystem under /dev/shm and the mountpoint
# under /tmp) is removed on exit, also on failure or Ctrl-C.
set -euo pipefail
cd "$(dirname "$0")/.."
installed=0
if [ "${1:-}" = --installed ]; then
  installed=1
  shift
fi
build=${1:-build}

# The demo's defaults.
pool_size=1G      # given to mkfs.daxref --size
random_mib=64     # size of the random file, in MiB

say() { printf '\n==> %s\n' "$*"; }

if [ "$installed" -eq 1 ]; then
  mkfs=/usr/sbin/mkfs.daxref
  daemon=/usr/bin/daxref
  map=/usr/bin/daxref-map
  poison=/usr/sbin/daxref-poison
  reflink_lib=libdaxref-reflink.so  # found by ld.so in the library path
  say "using the installed binaries: $daemon, $mkfs, $map, $poison, $reflink_lib"
else
  say "installing dependencies (scripts/install-deps.sh)"
  scripts/install-deps.sh

  say "building in $build/"
  [ -f "$build/build.ninja" ] || meson setup "$build" >/dev/null
  ninja -C "$build"

  mkfs=$build/tools/mkfs/mkfs.daxref
  daemon=$build/fs/daxref
  map=$build/tools/map/daxref-map
  poison=$build/tools/poison/daxref-poison
  reflink_lib=$(cd "$build" && pwd)/tools/reflink/libdaxref-reflink.so.0
fi

src=$(mktemp -u /dev/shm/daxref-demo.XXXXXX)
mnt=$(mktemp -d /tmp/daxref-demo-mnt.XXXXXX)

# Unmounts if still mounted, waits for the daemon to let go of the pool (it
# holds flock on it until it has closed everything), removes what we made.
cleanup() {
  local rc=$?
  trap - EXIT
  set +e
  if mountpoint -q "$mnt"; then
    fusermount3 -u "$mnt" 2>/dev/null || fusermount3 -u -z "$mnt"
  fi
  [ -f "$src/pool" ] && flock -w 30 "$src/pool" true
  rm -rf "$src"
  rmdir "$mnt" 2>/dev/null
  if [ "$rc" -ne 0 ]; then
    echo "demo FAILED (exit status $rc); cleaned up $src and $mnt" >&2
  else
    echo "cleaned up $src and $mnt"
  fi
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

say "making a $pool_size filesystem: mkfs.daxref --size $pool_size $src"
"$mkfs" --size "$pool_size" "$src"

say "mounting it: daxref $src $mnt (returns once mounted; the daemon runs on)"
"$daemon" "$src" "$mnt"
findmnt -n -o SOURCE,TARGET,FSTYPE "$mnt"

say "writing files"
echo "hello, persistent memory" > "$mnt/hello.txt"
mkdir "$mnt/notes"
echo "file data lives in $src/pool, metadata in $src/meta" > "$mnt/notes/where.txt"
echo "writing $random_mib MiB of random data to random.bin"
want_md5=$(dd if=/dev/urandom bs=1M count="$random_mib" status=none |
           tee "$mnt/random.bin" | md5sum | cut -d' ' -f1)
echo "md5 of the data written: $want_md5"

say "ls -l of the mount"
ls -l "$mnt" "$mnt/notes"

say "df -h of the mount"
df -h "$mnt"

say "reading the files back"
cat "$mnt/hello.txt" "$mnt/notes/where.txt"
md5sum "$mnt/random.bin"

say "a shared copy: cp random.bin copy.bin (copy_file_range shares the blocks)"
used_before=$(df --output=used -B4K "$mnt" | tail -1)
cp "$mnt/random.bin" "$mnt/copy.bin"
used_after=$(df --output=used -B4K "$mnt" | tail -1)
echo "4 KiB blocks in use: $used_before before the copy, $used_after after"
"$map" extents "$mnt/copy.bin" | tail -n 3
echo "changing the first 5 bytes of copy.bin; random.bin keeps its own"
printf 'HELLO' | dd of="$mnt/copy.bin" conv=notrunc status=none
copy_md5=$(md5sum < "$mnt/copy.bin" | cut -d' ' -f1)

say "cp --reflink=always through the preload library: LD_PRELOAD=$reflink_lib"
LD_PRELOAD=$reflink_lib cp --reflink=always "$mnt/random.bin" "$mnt/clone.bin"
cmp "$mnt/random.bin" "$mnt/clone.bin" || { echo "clone.bin differs from random.bin"; fail_early=1; }
"$map" extents -c "$mnt/clone.bin"

say "unmounting: fusermount3 -u $mnt"
fusermount3 -u "$mnt"

say "mounting again at once (the new daemon waits for the old one to finish exiting)"
"$daemon" "$src" "$mnt"

say "the files after the remount"
ls -l "$mnt" "$mnt/notes"
cat "$mnt/hello.txt" "$mnt/notes/where.txt"
got_md5=$(md5sum < "$mnt/random.bin" | cut -d' ' -f1)
echo "md5 of random.bin now:   $got_md5"

say "checking"
fail=${fail_early:-0}
[ "$(cat "$mnt/hello.txt")" = "hello, persistent memory" ] || { echo "hello.txt differs"; fail=1; }
[ "$got_md5" = "$want_md5" ] || { echo "random.bin differs: md5 $got_md5, wrote $want_md5"; fail=1; }
[ "$(stat -c %s "$mnt/random.bin")" -eq $((random_mib << 20)) ] || { echo "random.bin has the wrong size"; fail=1; }
[ $((used_after - used_before)) -le 2 ] || { echo "the copy took $((used_after - used_before)) blocks: not shared"; fail=1; }
[ "$(md5sum < "$mnt/copy.bin" | cut -d' ' -f1)" = "$copy_md5" ] || { echo "copy.bin differs"; fail=1; }
[ "$copy_md5" != "$want_md5" ] || { echo "the change to copy.bin did not happen"; fail=1; }

say "memory poison: a block shared by two files goes bad"
head -c 12288 /dev/urandom > "$mnt/victim.bin"
cp "$mnt/victim.bin" "$mnt/victim-copy.bin"
"$poison" inject --file "$mnt/victim.bin" --offset 4096
for f in victim.bin victim-copy.bin; do
  if dd if="$mnt/$f" of=/dev/null bs=4096 skip=1 count=1 status=none 2>/dev/null; then
    echo "$f: the poisoned block still reads"; fail=1
  else
    echo "$f: reading the poisoned block fails (EIO), as it must"
  fi
  dd if="$mnt/$f" of=/dev/null bs=4096 count=1 status=none || { echo "$f: block 0 unreadable"; fail=1; }
done
"$poison" list "$mnt"

say "unmounting"
fusermount3 -u "$mnt"

if [ "$fail" -ne 0 ]; then
  echo "FAIL: the files did not survive the remount"
  exit 1
fi
echo "OK: every file read back the same after unmount and remount"
