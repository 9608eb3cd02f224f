// PoolSweep: one pass over the pool's block numbers in order, merging every
// record that claims pool blocks: the reverse map (R, one stream per length
// class, each sorted by pool block), free space (F), bad blocks (B) and
// refcounts (N). The sweep cuts the block space into runs over which the
// set of records covering a block does not change, and hands each run, with
// how many records of each kind cover it, to the caller. The checker uses
// it to verify that every block is exactly one of free, owned or bad and
// that refcounts equal owners; fsck's repair uses it to rebuild free space
// and refcounts and to find blocks that two files claim.
//
// Memory: the heads of the streams (at most 67) and the records open at the
// current block, kept in a heap by where they end. That is the sharing depth
// of the pool, never the number of records: a million extents cost the same
// as ten.
//
//   pool blocks      10        15        20
//   R class 3        |===================|       open 10..20
//   R class 2                  |=========|       open 15..20
//   F                                     |===   free from 20
//   runs:            [10,15) 1 owner, [15,20) 2 owners, [20,..) free
//
// Records that do not decode, or whose range wraps past 2^64, are handed to
// a separate callback and left out of the sweep.
#pragma once

#include <rocksdb/db.h>

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "meta/format.h"
#include "meta/status.h"

namespace daxref {

enum class SpaceKind : uint8_t { kOwner, kFree, kBad, kRefcount };

// A record claiming pool blocks [pblock, pblock + len), len >= 1.
struct SpaceRecord {
  SpaceKind kind = SpaceKind::kOwner;
  uint64_t pblock = 0;
  uint64_t len = 0;
  uint64_t ino = 0;     // kOwner: the owning inode
  uint64_t fblock = 0;  // kOwner: its file block
  uint64_t refs = 0;    // kRefcount: the count
  uint64_t end() const { return pblock + len; }
};

// How many records of each kind cover every block of a run.
struct Coverage {
  uint64_t owners = 0;
  uint64_t free = 0;
  uint64_t bad = 0;
  uint64_t counted = 0;  // refcount records
  uint64_t refs = 0;     // the sum of their counts
  bool any() const { return owners || free || bad || counted; }
};

class PoolSweep {
 public:
  // Reads through `ro` (its snapshot, if any); the bounds in it are ignored.
  PoolSweep(rocksdb::DB* db, const rocksdb::ReadOptions& ro);
  ~PoolSweep();
  PoolSweep(const PoolSweep&) = delete;
  PoolSweep& operator=(const PoolSweep&) = delete;

  // Each record as the sweep reaches its first block (all kinds merged in
  // pool order). False stops the sweep (Run returns ECANCELED).
  using RecordFn = std::function<bool(const SpaceRecord&)>;
  // Each run [a, b) of constant coverage, in order, from block 0 to
  // max(`limit`, the end of the last record); runs that nothing covers
  // included. open() lists the records covering it. False stops the sweep.
  using RunFn = std::function<bool(uint64_t a, uint64_t b, const Coverage&)>;
  // A record that cannot take part: its key, its value and why.
  using BadRecordFn =
      std::function<void(std::string_view key, std::string_view value, const Status& why)>;

  Status Run(uint64_t limit, const RecordFn& on_record, const RunFn& on_run,
             const BadRecordFn& on_bad);

  // The records covering the current run (valid inside RunFn), in no
  // particular order.
  const std::vector<SpaceRecord>& open() const { return open_; }
  // Records swept so far (for progress).
  uint64_t records() const { return records_; }

 private:
  struct Stream;
  bool Advance(Stream* s, const BadRecordFn& on_bad);

  rocksdb::DB* db_;
  rocksdb::ReadOptions ro_;
  std::vector<std::unique_ptr<Stream>> streams_;
  std::vector<SpaceRecord> open_;  // a min-heap by end()
  uint64_t records_ = 0;
};

}  // namespace daxref
