// Reports over a daxref filesystem's committed records, for daxref-info and
// daxref-map fsmap: the same code runs in the daemon (the `info` and `fsmap`
// requests of the control channel, over its live store) and in the tools on
// an unmounted SOURCE (over the store opened read-only). Both read one
// RocksDB snapshot, so what they report is one batch boundary, a
// consistent filesystem, however far the daemon has moved on meanwhile; the
// in-memory mirrors (free space, refcounts) are never consulted.
//
// Every walk is a prefix walk with a callback; nothing is collected but
// counters (info) or the record in hand (fsmap). The free-space histogram
// is the one table: 64 buckets, one per power of two.
#pragma once

#include <array>
#include <cstdint>
#include <functional>
#include <string>

#include "admin/control_protocol.h"
#include "meta/status.h"
#include "meta/superblock.h"

namespace rocksdb {
class DB;
}  // namespace rocksdb

namespace daxref {

// What daxref-info shows beyond the geometry. Counts of blocks are pool
// blocks (4096 bytes). How the space figures relate (every data block is
// exactly one of free, owned, retired; invariant 1 of docs/design.md):
//   owned     = exclusive + shared
//   retired   = data blocks - free - owned        (bad blocks no file holds)
//   referenced= exclusive + shared_references     (what the files add up to)
//   saved     = referenced - owned                (what sharing saves)
struct FsInfo {
  // The pool's superblock, as the daemon (or the offline reader) has it:
  // the geometry. The tools need not read the pool file themselves (a user
  // the daemon answers may not be able to).
  Superblock sb;
  // Identity (the store's M records).
  uint32_t meta_format = 0;
  uint64_t generation = 0;  // the store's
  std::string label;

  // Space, in blocks.
  uint64_t data_blocks = 0;
  uint64_t free_blocks = 0;
  uint64_t referenced_blocks = 0;    // the sum of every extent's length
  uint64_t shared_blocks = 0;        // blocks with two or more references
  uint64_t shared_references = 0;    // references to them
  uint64_t bad_blocks = 0;           // every bad block of the pool
  uint64_t bad_reserved_blocks = 0;  // of those, superblock copies
  // Of the bad blocks, by where they came from (Q records, docs/format.md);
  // the rest were recorded before metadata format 4 (bad_unknown_blocks).
  uint64_t bad_injected_blocks = 0;
  uint64_t bad_machine_check_blocks = 0;
  uint64_t bad_machine_check_async_blocks = 0;
  uint64_t bad_device_blocks = 0;
  uint64_t bad_unknown_blocks() const {
    return Sub(bad_blocks, bad_injected_blocks + bad_machine_check_blocks +
                               bad_machine_check_async_blocks + bad_device_blocks);
  }
  // Derived (above); each saturates at 0 in a store whose records do not
  // add up.
  uint64_t exclusive_blocks() const { return Sub(referenced_blocks, shared_references); }
  uint64_t owned_blocks() const { return exclusive_blocks() + shared_blocks; }
  uint64_t retired_blocks() const { return Sub(Sub(data_blocks, free_blocks), owned_blocks()); }
  uint64_t bad_owned_blocks() const {
    return Sub(Sub(bad_blocks, bad_reserved_blocks), retired_blocks());
  }
  uint64_t saved_blocks() const { return Sub(referenced_blocks, owned_blocks()); }
  static uint64_t Sub(uint64_t a, uint64_t b) { return a > b ? a - b : 0; }
  // False when the records do not add up (a damaged store): the derived
  // figures above are then meaningless, and fsck.daxref is the tool.
  bool consistent() const;

  // Free space: extents, and per bucket b (extents of 2^b to 2^(b+1)-1
  // blocks) how many and how many blocks.
  uint64_t free_extents = 0;
  struct Bucket {
    uint64_t extents = 0;
    uint64_t blocks = 0;
  };
  std::array<Bucket, 64> freesp{};

  // Namespace.
  uint64_t inodes = 0;
  uint64_t directories = 0;
  uint64_t regular_files = 0;
  uint64_t symlinks = 0;
  uint64_t special_files = 0;  // devices, FIFOs, sockets
  uint64_t orphans = 0;        // unlinked, still open when last mounted
  uint64_t extents = 0;        // E records

  // The store's directory: bytes its files take on disk (st_blocks) and
  // their apparent size.
  uint64_t store_files = 0;
  uint64_t store_bytes = 0;
  uint64_t store_disk_bytes = 0;

  // The host filesystem of the pool file (/proc/self/mountinfo).
  std::string host_fstype;
  std::string host_mount_point;
  std::string host_device;

  // Where the daemon's log lines go (fs/logging.h, LogDestination): only a
  // daemon knows; empty offline.
  std::string log_destination;
};

// Walks `db` (one snapshot) for the pool `sb`; `source` names the SOURCE
// directory (its store is measured, its pool file's host found).
// `progress` (may be empty) hears of the walk's phases as fsck's checker
// reports them (check::Progress); it never stops the walk.
using InfoProgressFn = std::function<bool(std::string_view phase, double done)>;
Status CollectFsInfo(rocksdb::DB* db, const Superblock& sb, const std::string& source,
                     const InfoProgressFn& progress, FsInfo* out);

// The info as control records: one `info` record with the scalars, one
// `freesp bucket= extents= blocks=` per non-empty bucket, then `done`. The
// reader is FsInfoFromRecord / FsInfoAddBucket.
using RecordSink = std::function<bool(const control::Record&)>;
void SendFsInfo(const FsInfo& info, const RecordSink& sink);
// EPROTO when a field is missing or not a number.
Status FsInfoFromRecord(const control::Record& r, FsInfo* out);
Status FsInfoAddBucket(const control::Record& r, FsInfo* out);

// One row of the pool-wide map (daxref-map fsmap), blocks [pblock,
// pblock+len): what holds them. Rows come in pool order; owners of shared
// blocks overlap, one row each, as xfs_io's fsmap lists reflinked extents.
struct FsmapRow {
  enum Kind { kReserved, kFree, kBad, kOwner };
  Kind kind = kFree;
  uint64_t pblock = 0;
  uint64_t len = 0;
  uint64_t ino = 0;     // kOwner
  uint64_t fblock = 0;  // kOwner: the file block at pblock
};
const char* FsmapKindName(FsmapRow::Kind k);

// Walks the rows that overlap [pb0, pb1), clipped to it, in pool order (by
// first block; at one block: reserved, bad, free, then owners by inode).
// fn returns false to stop.
Status WalkFsmap(rocksdb::DB* db, const Superblock& sb, uint64_t pb0, uint64_t pb1,
                 const std::function<bool(const FsmapRow&)>& fn);
// As records: `row kind= pblock= blocks= [ino= fblock=]` each, then `done`.
void SendFsmap(rocksdb::DB* db, const Superblock& sb, uint64_t pb0, uint64_t pb1,
               const RecordSink& sink);
Status FsmapRowFromRecord(const control::Record& r, FsmapRow* out);

}  // namespace daxref

namespace daxref {

// The paths ("/a/b") that name `ino`, from its P records and its
// directories' (the store opened read-only, no daemon: daxref-map owners on
// an unmounted SOURCE). fn returns false to stop. Corruption for a chain of
// directories that does not reach the root.
Status WalkStorePaths(rocksdb::DB* db, uint64_t ino,
                      const std::function<bool(const std::string&)>& fn);

}  // namespace daxref
