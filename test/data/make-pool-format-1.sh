#!/bin/sh
# Makes test/data/pool-format-1.tar.gz: a small daxref filesystem written by
# the code of commit 3188243 (pool format 1, metadata format 3; the last
# commit before pool format 2), for test/meta_upgrade_test.cc and
# test/fs_upgrade_test.cc. See README.md next to this script.
#
# Usage: make-pool-format-1.sh OLD_BUILD_DIR OUT.tar.gz
#   OLD_BUILD_DIR holds tools/mkfs/mkfs.daxref and fs/daxref built from
#   3188243. Run as root (it mounts).
set -eu
old=$1
out=$2
work=$(mktemp -d /tmp/daxref-fmt1-XXXXXX)
src=$work/fs
mnt=$work/mnt
mkdir "$mnt"

"$old/tools/mkfs/mkfs.daxref" --size 1M "$src"
# In the foreground, so that its exit (the store closed) can be waited for.
"$old/fs/daxref" -f "$src" "$mnt" &
daemon=$!
trap 'umount "$mnt" 2>/dev/null || true' EXIT
for _ in $(seq 100); do
  if mountpoint -q "$mnt"; then break; fi
  sleep 0.1
done
mountpoint -q "$mnt"

# The contents the upgrade tests expect, byte for byte.
python3 - "$mnt" <<'PY'
import os, sys
m = sys.argv[1]
def pattern(n):
    # byte i: low byte of i * 7 + (i >> 12), so that every block differs
    return bytes(((i * 7) + (i >> 12)) & 0xFF for i in range(n))
with open(f"{m}/hello.txt", "wb") as f:
    f.write(b"hello from pool format 1\n")
os.setxattr(f"{m}/hello.txt", "user.note", b"made by 3188243")
os.mkdir(f"{m}/dir")
os.mkdir(f"{m}/dir/sub")
open(f"{m}/dir/sub/empty", "wb").close()
with open(f"{m}/dir/pattern.bin", "wb") as f:
    f.write(pattern(5 * 4096 + 100))
# The reflinked pair: copy_file_range shares the blocks, then a write to
# the copy's first block gives it its own (copy-on-write); blocks 1-4 stay
# shared.
src_fd = os.open(f"{m}/dir/pattern.bin", os.O_RDONLY)
dst_fd = os.open(f"{m}/dir/pattern-clone.bin", os.O_WRONLY | os.O_CREAT, 0o644)
left = 5 * 4096 + 100
while left > 0:
    n = os.copy_file_range(src_fd, dst_fd, left)
    assert n > 0
    left -= n
os.pwrite(dst_fd, b"CLONE", 0)
os.close(src_fd)
os.close(dst_fd)
os.link(f"{m}/hello.txt", f"{m}/dir/hello-link")
os.symlink("dir/pattern.bin", f"{m}/link")
with open(f"{m}/sparse.bin", "wb") as f:
    f.seek(40000)
    f.write(b"!")
PY

umount "$mnt"
trap - EXIT
wait "$daemon"  # its clean close flushes the store
# RocksDB's own info logs are not part of the store.
rm -f "$src"/meta/LOG "$src"/meta/LOG.old.*
tar -C "$work" --sparse --owner=0 --group=0 --numeric-owner -czf "$out" fs
rm -rf "$work"
ls -l "$out"
