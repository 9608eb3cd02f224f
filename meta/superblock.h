// The pool superblock: the first 4 KiB block of the pool file, with an
// identical copy in the pool's last block so that a damaged primary can be
// recovered. Both blocks are reserved: never free, never owned by a file.
//
// Layout (big-endian, offsets in bytes; do not change, bump kPoolFormatVersion):
//    0  magic        8  "DAXREFPL"
//    8  version      4  2 (version 1 had no generation: its crc is at 48)
//   12  block_size   4  always 4096
//   16  block_count  8  blocks in the pool, both superblock copies included
//   24  uuid        16  also recorded in the metadata store
//   40  created      8  seconds since the epoch
//   48  generation   8  advanced by every read-write open, with the store's
//   56  store_seq    8  the store's last update (RocksDB sequence number) when
//                       the pool was last written: at each open and clean close
//   64  crc32c       4  over bytes [0, 64)
// The rest of the block is zero.
//
// The generation pairs a pool with the one store that is as new as it: both
// carry it, every read-write open advances both (store, then pool, then
// store again: docs/format.md "Generation"), and an open refuses a pool and
// a store whose generations disagree, so an older copy of either half (a
// backup restored over one of them) is never served with the other. Within
// one generation, store_seq catches a store that lost updates it had (a
// damaged MANIFEST that forgets a table file): its last update must be at
// least the one the pool recorded.
#pragma once

#include <cstdint>
#include <string>

#include "meta/format.h"
#include "meta/status.h"

namespace daxref {

inline constexpr char kPoolMagic[8] = {'D', 'A', 'X', 'R', 'E', 'F', 'P', 'L'};
inline constexpr uint32_t kPoolFormatVersion = 2;
// Read, and rewritten as version 2 by the first read-write open.
inline constexpr uint32_t kPoolFormatPreviousVersion = 1;
// Smallest pool: two superblock copies plus 14 data blocks.
inline constexpr uint64_t kMinPoolBlocks = 16;

struct Superblock {
  uint32_t version = kPoolFormatVersion;
  uint32_t block_size = kBlockSize;
  uint64_t block_count = 0;
  Uuid uuid{};
  uint64_t created = 0;
  uint64_t generation = 0;
  uint64_t store_sequence = 0;

  // Data blocks are [first_data_block(), data_end()).
  uint64_t first_data_block() const { return 1; }
  uint64_t data_end() const { return block_count - 1; }
  uint64_t data_blocks() const { return block_count - 2; }
  PoolGeometry geometry() const { return PoolGeometry{block_count}; }
};

uint32_t Crc32c(const void* data, size_t len);

// Fills a 4096-byte buffer.
void EncodeSuperblock(const Superblock& sb, char* block);
// Validates magic, version, checksum and geometry. Version 1 decodes with
// generation 0 (and `version` 1).
Status DecodeSuperblock(const char* block, Superblock* out);

// Reads the superblock of the pool file at `path`: the primary, or, if that is
// damaged, the backup in the last block of the file. `used_backup` says which.
Status ReadPoolSuperblock(const std::string& path, Superblock* out, bool* used_backup);

// Writes `sb` (as the current version) to both copies in the pool file at
// `path` and makes them durable (fdatasync). A write through a separate
// descriptor is coherent with a shared mapping of the file.
Status WritePoolSuperblocks(const std::string& path, const Superblock& sb);

// Where a daxref filesystem's parts live under SOURCE.
std::string PoolPath(const std::string& source);
std::string MetaPath(const std::string& source);

}  // namespace daxref
