// The pool superblock: the first 4 KiB block of the pool file, with an
// identical copy in the pool's last block so that a damaged primary can be
// recovered. Both blocks are reserved: never free, never owned by a file.
//
// Layout (big-endian, offsets in bytes; do not change, bump kPoolFormatVersion):
//    0  magic        8  "DAXREFPL"
//    8  version      4
//   12  block_size   4  always 4096
//   16  block_count  8  blocks in the pool, both superblock copies included
//   24  uuid        16  also recorded in the metadata store
//   40  created      8  seconds since the epoch
//   48  crc32c       4  over bytes [0, 48)
// The rest of the block is zero.
#pragma once

#include <cstdint>
#include <string>

#include "meta/format.h"
#include "meta/status.h"

namespace daxref {

inline constexpr char kPoolMagic[8] = {'D', 'A', 'X', 'R', 'E', 'F', 'P', 'L'};
inline constexpr uint32_t kPoolFormatVersion = 1;
// Smallest pool: two superblock copies plus 14 data blocks.
inline constexpr uint64_t kMinPoolBlocks = 16;

struct Superblock {
  uint32_t version = kPoolFormatVersion;
  uint32_t block_size = kBlockSize;
  uint64_t block_count = 0;
  Uuid uuid{};
  uint64_t created = 0;

  // Data blocks are [first_data_block(), data_end()).
  uint64_t first_data_block() const { return 1; }
  uint64_t data_end() const { return block_count - 1; }
  uint64_t data_blocks() const { return block_count - 2; }
};

uint32_t Crc32c(const void* data, size_t len);

// Fills a 4096-byte buffer.
void EncodeSuperblock(const Superblock& sb, char* block);
// Validates magic, version, checksum and geometry.
Status DecodeSuperblock(const char* block, Superblock* out);

// Reads the superblock of the pool file at `path`: the primary, or, if that is
// damaged, the backup in the last block of the file. `used_backup` says which.
Status ReadPoolSuperblock(const std::string& path, Superblock* out, bool* used_backup);

// Where a daxref filesystem's parts live under SOURCE.
std::string PoolPath(const std::string& source);
std::string MetaPath(const std::string& source);

}  // namespace daxref
