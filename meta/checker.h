// Checker: verifies the store's invariants (docs/design.md, docs/format.md)
// over a whole store, cross-referencing the indexes against each other
// (XFS's scrub idea):
//   1. every data block is exactly one of free, owned, or bad and unowned
//      (retired); reserved blocks (the superblock copies) are never free or
//      owned, only possibly bad;
//   2. for every owned block, refcount = reverse-map owners = extent-map
//      references (a block with one owner has no refcount record), and
//      every owner of a shared block is marked reflinked;
//   3. bad blocks are never free (files that referenced a block when it went
//      bad may still own it: owned and bad);
//   4. the tree is connected, nlink matches the entries, orphans have nlink 0,
//      the inode count and counter match the inodes, extended attributes and
//      symlink targets belong to inodes that exist (and say so);
//   5. every directory entry has its readdir cookie record and its parent
//      pointer, and the reverse;
//   6. every layout lease (G record) names a regular file, inside its size
//      rounded up to a block, and each pool block it recorded is still that
//      file's at the recorded file block (and, for a write lease, unshared):
//      no block under a lease was moved, freed or shared (docs/dax.md);
//   and every record decodes and lies inside the pool's geometry.
//
// How it scales: memory is proportional to the number of inodes, never to
// the number of extents or reverse-map records. The store is read prefix
// by prefix, in key order; one fact record per inode is kept (InodeFacts,
// meta/check_census.h). Indexes kept in different orders (E by inode, R by pool
// block; D by name, C by cookie; D and P) are compared as sets with
// order-independent digests (meta/set_digest.h), and looked up record by
// record only when the digests differ, to name what is wrong. The pool
// space is one merged sweep of the R, F, B and N records (meta/pool_sweep.h),
// holding only the records open at the current block.
//
// It reads one consistent view: a snapshot when given (the daemon checks a
// live store that way, see docs/fsck.md), else an implicit one per scan, so
// the store must then be quiescent (a closed filesystem or a Volume no one
// is changing). It never writes.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>

#include "meta/status.h"
#include "meta/superblock.h"

namespace rocksdb {
class DB;
class Snapshot;
}  // namespace rocksdb

namespace daxref {

struct CheckReport {
  uint64_t inodes = 0;
  uint64_t directories = 0;
  uint64_t extents = 0;
  uint64_t owned_blocks = 0;   // blocks with at least one owner, each counted once
  uint64_t shared_blocks = 0;  // blocks with two or more owners
  uint64_t free_blocks = 0;
  uint64_t bad_blocks = 0;
  uint64_t poisoned_blocks = 0;  // bad blocks that files still reference
  uint64_t orphans = 0;
  // G records: layout leases a daemon recorded and did not drop (it died,
  // or runs now: docs/dax.md).
  uint64_t leases = 0;
  uint64_t problems = 0;
};

// What kind of damage a problem is. The names (ProblemClassName) appear in
// fsck's JSON report and the scrub protocol: do not change them.
enum class ProblemClass : uint8_t {
  kUndecodable,     // a record that does not decode
  kUnknownRecord,   // a key with no known prefix
  kMisc,            // M records: missing, undecodable, wrong format or block count
  kUuid,            // the store belongs to another pool
  kGeneration,      // the store and the pool disagree on the generation
  kSuperblock,      // a pool superblock copy (fsck's own check of the pool)
  kCounters,        // M inodes / M next_ino disagree with the inodes
  kExtentGeometry,  // an extent outside the data area, or wrapping
  kExtentOverlap,   // two extents of one file over the same file blocks
  kExtentOwner,     // extents of a missing inode, or of one that is not a file
  kRmap,            // extent map and reverse map disagree
  kFreeSpace,       // free records overlapping something, or reaching reserved blocks
  kLeaked,          // blocks neither free, owned nor bad
  kBadBlocks,       // bad-block records overlapping each other or past the pool
  kRefcount,        // refcount records where they do not belong
  kDoubleClaim,     // blocks with more owners than their refcount says
  kReflinkFlag,     // a sharer of blocks without the reflinked flag
  kDirent,          // an entry naming nothing, in a non-directory, or wrong
  kCookie,          // directory entries and the readdir cookie index disagree
  kParentPointer,   // directory entries and parent pointers disagree
  kNlink,           // an inode's link count
  kBlocks,          // an inode's block count
  kDirParent,       // a directory's parent field
  kUnreachable,     // an inode not reachable from the root and not an orphan
  kOrphan,          // the orphan list
  kXattr,           // extended attributes
  kSymlink,         // symlink targets
  kInode,           // an inode itself (missing root, unknown type)
  kLease,           // a layout lease (G record) whose file or blocks are not what it recorded
};
inline constexpr int kProblemClasses = static_cast<int>(ProblemClass::kLease) + 1;
const char* ProblemClassName(ProblemClass c);

struct Problem {
  ProblemClass cls = ProblemClass::kUndecodable;
  std::string text;  // one line
  uint64_t ino = 0;  // the inode it concerns, when there is one (fsck names it by path)
};
using ProblemFn = std::function<void(const Problem&)>;

struct CheckOptions {
  uint64_t block_count = 0;
  // The pool the store must belong to: its UUID, generation and last
  // recorded store update are compared with the store's. Null: not compared.
  const Superblock* pool = nullptr;
  // Read through this snapshot; null: the store as it is.
  const rocksdb::Snapshot* snapshot = nullptr;
  // Called now and then with the phase and how far into it (0 to 1); false
  // cancels the check (ECANCELED).
  std::function<bool(std::string_view phase, double done)> progress;
};

// Calls `problem` once for each violation found. The Status is an error only
// when the check itself could not run (the store unreadable, cancelled).
Status CheckStore(rocksdb::DB* db, const CheckOptions& opts, const ProblemFn& problem,
                  CheckReport* report);
Status CheckStore(rocksdb::DB* db, uint64_t block_count,
                  const std::function<void(const std::string&)>& problem, CheckReport* report);

// Opens the store in `meta_dir` read-only (OpenStoreReadOnly, meta/store.h:
// nothing in it is written, not even RocksDB's info log) and checks it.
Status CheckStoreAt(const std::string& meta_dir, const CheckOptions& opts, const ProblemFn& problem,
                    CheckReport* report);
Status CheckStoreAt(const std::string& meta_dir, uint64_t block_count,
                    const std::function<void(const std::string&)>& problem, CheckReport* report);

// One path naming `ino` ("/a/b"), found by following parent pointers up to
// the root in `snapshot` (null: the store as it is); "" when none leads
// there. For naming the inodes problems and repairs concern.
std::string InodePath(rocksdb::DB* db, const rocksdb::Snapshot* snapshot, uint64_t ino);

}  // namespace daxref
