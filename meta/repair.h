// Repair: what fsck.daxref -p/-y does to a store the checker found damaged.
//
// The extent maps (E records) are the truth; everything else that describes
// pool space is derived from them and rebuilt:
//   - records that do not decode, and keys of no known kind, are deleted;
//   - extents outside the data area, at reserved blocks, wrapping, or
//     overlapping an earlier extent of the same file, are dropped (the range
//     becomes a hole); extents of an inode that has no record keep their
//     data: the inode is recreated as a regular file and lands in
//     /lost+found;
//   - the namespace: entries naming nothing, or in something that is not a
//     directory, are removed with their cookie and parent records; an entry
//     whose cookie record survived but whose D record did not is restored;
//     cookie records and parent pointers are rebuilt from the entries;
//     inodes no entry reaches (and that are not orphans) are linked under
//     /lost+found (made if missing) as "#INO"; nlink, a directory's parent
//     and next cookie, the block count and the xattr flag are recomputed;
//     orphans (nlink 0) are reclaimed, as a mount would;
//   - the reverse map is rebuilt from the extents;
//   - blocks that several extents claim with no refcount record counting
//     exactly them (a double claim, not a consistent share) are copied, so that every
//     claimant past the first gets its own blocks holding the same bytes
//     (through the DataPlane, persisted before the extent moves); a claim
//     the pool has no room to copy, or over a bad block, is recorded as
//     shared instead, which keeps every claimant's bytes too;
//   - refcounts, free space and bad-block records are rebuilt from one
//     sweep of the pool: owned blocks get a refcount record when shared,
//     blocks neither owned nor bad are free (leaked blocks come back), bad
//     blocks stay bad: fsck never frees one;
//   - the inode count and the inode counter are recomputed;
//   - layout leases (G records) are deleted: no daemon runs, so none is
//     live (fsck.daxref refuses to repair while a recorded holder is still
//     alive and maps the pool: admin/lease_holders.h).
// Each change is its own small batch, so a repair that stops half way leaves
// a store that a second run repairs further; each is reported with a class
// and a one-line text. A store that belongs to another pool (UUID or block
// count), or of an unknown format, is not touched at all.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <string_view>

#include "meta/checker.h"
#include "meta/data_plane.h"
#include "meta/status.h"
#include "meta/superblock.h"

namespace rocksdb {
class DB;
}

namespace daxref {

struct RepairOptions {
  // The pool the store belongs to (its UUID and block count).
  Superblock pool;
  // Where double-claimed blocks are copied (fsck: the pool file). Null: no
  // copies; double claims are recorded as shared.
  DataPlane* data = nullptr;
  std::function<bool(std::string_view phase, double done)> progress;
};

// One change made. `ino` is the inode it concerns, 0 if none.
struct RepairAction {
  ProblemClass cls = ProblemClass::kUndecodable;
  std::string text;
  uint64_t ino = 0;
};
using RepairFn = std::function<void(const RepairAction&)>;

// Repairs the store; `done` hears of each change. An error means the
// repair stopped (the store unreadable or unwritable, or not this pool's:
// EINVAL, nothing changed); the changes reported so far are made.
Status RepairStore(rocksdb::DB* db, const RepairOptions& opts, const RepairFn& done);

// Opens the store in `meta_dir` for repair: read-write, creating nothing.
Result<std::unique_ptr<rocksdb::DB>> OpenStoreForRepair(const std::string& meta_dir);

}  // namespace daxref
