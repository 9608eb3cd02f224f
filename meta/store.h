// The metadata store as a whole: how it is opened, what it must prove before
// anything trusts it, and the generation it shares with its pool.
//
// A store is never trusted blindly (docs/design.md, "Opening a store"):
//   - RocksDB may not "recover" by dropping data. A missing or damaged
//     MANIFEST, table file or log record fails the open; the only loss it
//     tolerates is a torn record at the very end of the log, which is an
//     operation that never returned (docs/design.md says why).
//   - An open looks at the store read-only first, writing nothing into its
//     directory (not even RocksDB's info log), and checks that it holds the
//     filesystem it claims: this pool's UUID and size, a known format, a
//     root directory, inode counters that cover every inode, and the
//     generation the pool carries. Only then is it opened for writing, so a
//     refused store is left byte for byte as it was.
//
// Nothing here holds a lock; callers serialize opens of one store (the pool's
// flock does, in the daemon and the tools).
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>

#include "meta/format.h"
#include "meta/status.h"
#include "meta/superblock.h"

namespace rocksdb {
class DB;
struct Options;
struct ReadOptions;
}  // namespace rocksdb

namespace daxref {

// The options every read-write open of a store uses (cache_bytes: the block
// cache).
rocksdb::Options StoreOptions(size_t cache_bytes);

// Opens the store in `dir` read-only: nothing in `dir` is created, written
// or renamed. ENOENT if there is no store there.
Result<std::unique_ptr<rocksdb::DB>> OpenStoreReadOnly(const std::string& dir);

// The M records that say which filesystem a store holds.
struct StoreIdentity {
  Uuid uuid{};
  uint32_t format = 0;
  uint64_t blocks = 0;
  uint64_t next_ino = 0;
  uint64_t inodes = 0;
  uint64_t generation = 0;  // 0 in a store made before generations existed
  std::optional<uint64_t> generation_pending;
};

// Reads and decodes the identity records (`ro` may carry a snapshot).
// Corruption if one is missing or malformed.
Status ReadStoreIdentity(rocksdb::DB* db, const rocksdb::ReadOptions& ro, StoreIdentity* out);

// Everything an open checks before it trusts the store for the pool `sb`:
// the identity against the superblock (uuid, size, format, generation),
// the root directory, and that next_ino lies past every inode. One line
// naming what is wrong when something is.
Status VerifyStore(rocksdb::DB* db, const StoreIdentity& id, const Superblock& sb);

// The generation rule alone: a pool at `pool_generation` goes with store
// `id`. Equal generations match; while an advance is pending, the pool may
// be at either end of it.
Status CheckGeneration(uint64_t pool_generation, const StoreIdentity& id);

// Moves store and pool to a new generation, in the order that leaves a
// matching pair after a crash at any point: the store records the target
// as pending (synced), both pool superblock copies are rewritten with it
// and the store's last update (synced), then the store takes it as its
// generation. Updates *sb (and upgrades a version 1 superblock to the
// current version).
Status AdvanceGeneration(rocksdb::DB* db, const std::string& pool_path, Superblock* sb);

// At a clean close, after the store is flushed: records the store's last
// update in the pool's superblock copies (*sb updated).
Status RecordStoreSequence(rocksdb::DB* db, const std::string& pool_path, Superblock* sb);

}  // namespace daxref
