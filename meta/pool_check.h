// The pool file as fsck sees it: both superblock copies read and judged
// (the primary in block 0, the backup in the last block), and a damaged copy
// rewritten from the good one. Plain reads and writes of the file: no
// mapping, so a check touches nothing a daemon would map.
#pragma once

#include <cstdint>
#include <string>

#include "meta/status.h"
#include "meta/superblock.h"

namespace daxref {

struct PoolInspection {
  uint64_t file_bytes = 0;
  // Ok when the copy is valid; otherwise what is wrong with it.
  Status primary;
  Status backup;
  // Both copies valid but saying different things (the primary is trusted).
  bool copies_differ = false;
  // The superblock to trust: the primary when valid, else the backup.
  Superblock sb;
  bool have_sb = false;
  // The pool file is shorter than the superblock says.
  bool truncated = false;
};

// Reads both copies from `fd` (the pool file). Fails only when the file
// cannot be read at all.
Status InspectPool(int fd, PoolInspection* out);

// Writes `sb` over the primary (block 0) or the backup (block
// block_count - 1) and makes it durable.
Status WriteSuperblockCopy(int fd, const Superblock& sb, bool backup);

}  // namespace daxref
