// The G record: a layout lease (docs/dax.md) as the store keeps it, so that
// the next mount after a daemon crash can revoke its holder before it
// reuses a block, and fsck can tell leased blocks that moved. Layout in
// docs/format.md ("G — layout lease"); the decoder validates everything
// against the pool's geometry, as meta/format.h's decoders do.
#pragma once

#include <array>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "meta/format.h"
#include "meta/status.h"

namespace daxref {

// The mode byte is on disk: do not change these values.
enum class LeaseMode : uint8_t { kRead = 1, kWrite = 2 };
const char* LeaseModeName(LeaseMode m);  // "read", "write"

// File blocks [fblock, fblock+blocks) are stored at pool blocks
// [pblock, pblock+blocks).
struct LeasedExtent {
  uint64_t fblock, pblock, blocks;
  uint64_t fend() const { return fblock + blocks; }
  uint64_t pend() const { return pblock + blocks; }
  bool operator==(const LeasedExtent&) const = default;
};

// Lease `id` on file blocks [fblock, fblock+blocks) of inode `ino`, held by
// process `pid` (started `start_time` clock ticks after boot `boot_id`,
// uid `uid`). `extents` are the range's mapped pieces in file order; holes
// of a read lease are not recorded, a write lease has none.
struct LeaseRecord {
  uint64_t id = 0;  // not encoded in the value; from the key
  uint64_t ino = 0;
  uint64_t fblock = 0;
  uint64_t blocks = 0;
  LeaseMode mode = LeaseMode::kRead;
  uint32_t uid = 0;
  uint32_t pid = 0;
  uint64_t start_time = 0;
  std::array<uint8_t, 16> boot_id{};
  std::vector<LeasedExtent> extents;
  uint64_t fend() const { return fblock + blocks; }
};

// Size of the value before the extents, and of each extent.
inline constexpr size_t kLeaseHeaderSize = 61;
inline constexpr size_t kLeaseExtentSize = 24;

std::string EncodeLease(const LeaseRecord& r);  // key carries the id
// Corruption (EUCLEAN) naming the record when the value is not a valid
// lease for this pool: size, blocks 0 or past kMaxFileBlocks, inode 0, an
// unknown mode, pid 0, an extent count that does not match the size, an
// extent of length 0, outside the data area, outside the lease's file
// range, out of order or overlapping the one before it, a write lease
// whose extents do not cover its whole range.
Status DecodeLease(std::string_view key, std::string_view v, const PoolGeometry& geo,
                   LeaseRecord* out);
// The same checks on a record about to be written (EINVAL, same message).
Status ValidateLease(const LeaseRecord& r, const PoolGeometry& geo);

}  // namespace daxref
