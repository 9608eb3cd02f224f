// Checker: verifies the invariants of the design brief over a whole store,
// cross-referencing the indexes against each other (XFS's scrub idea):
//   1. every data block is exactly one of free, owned, bad; reserved blocks
//      (the superblock copies) are none of them;
//   2. for every owned block, refcount = reverse-map owners = extent-map
//      references (a block with one owner has no refcount record);
//   3. bad blocks are neither free nor owned;
//   4. the tree is connected, nlink matches the entries, orphans have nlink 0,
//      the inode count matches the inodes, extended attributes and symlink
//      targets belong to inodes that exist (and say so);
//   5. every directory entry has its parent pointer, and the reverse;
//   and every record decodes.
// It reads a quiescent store (a closed filesystem, or a Volume no one is
// changing) and builds in-memory indexes, so it is a tool for tests and fsck,
// not for the request path.
#pragma once

#include <cstdint>
#include <functional>
#include <string>

#include "meta/status.h"

namespace rocksdb {
class DB;
}

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
  uint64_t problems = 0;
};

// Calls `problem` once for each violation found (with a one-line text).
Status CheckStore(rocksdb::DB* db, uint64_t block_count,
                  const std::function<void(const std::string&)>& problem, CheckReport* report);

// Opens the store in `meta_dir` read-only and checks it.
Status CheckStoreAt(const std::string& meta_dir, uint64_t block_count,
                    const std::function<void(const std::string&)>& problem, CheckReport* report);

}  // namespace daxref
