// BadBlocks: the pool's bad (poisoned) blocks, in memory, mirrored by the B
// records of the store. Ranges never overlap and are kept coalesced, as the
// B records are. Not thread-safe: the Volume guards it (volume.h).
#pragma once

#include <cstdint>
#include <map>
#include <optional>

#include "meta/format.h"
#include "meta/status.h"

namespace rocksdb {
class DB;
}  // namespace rocksdb

namespace daxref {

class BadBlocks {
 public:
  // Reads every B record.
  Status Load(rocksdb::DB* db, const PoolGeometry& geo);

  uint64_t blocks() const { return blocks_; }
  bool empty() const { return ranges_.empty(); }
  // Is any block of [pb0, pb1) bad?
  bool Any(uint64_t pb0, uint64_t pb1) const { return First(pb0, pb1).has_value(); }
  // The first bad block of [pb0, pb1), if any.
  std::optional<uint64_t> First(uint64_t pb0, uint64_t pb1) const;
  // Walks the bad pieces of [pb0, pb1), clipped to it, in pool order:
  // fn(start, len) returns false to stop.
  template <typename Fn>
  void ForEachIn(uint64_t pb0, uint64_t pb1, Fn&& fn) const {
    auto it = ranges_.upper_bound(pb0);
    if (it != ranges_.begin()) --it;
    for (; it != ranges_.end() && it->first < pb1; ++it) {
      uint64_t s = std::max(it->first, pb0), e = std::min(it->first + it->second, pb1);
      if (e > s && !fn(s, e - s)) return;
    }
  }
  // Walks every range (unclipped) in pool order.
  template <typename Fn>
  void ForEach(Fn&& fn) const {
    for (const auto& [start, len] : ranges_)
      if (!fn(start, len)) return;
  }

  // The records that change when [pb0, pb1) is added or removed: every
  // existing range the change touches (`old`, to delete) and the ranges that
  // replace them (`now`, to put). Apply makes the same change in memory.
  struct Change {
    std::map<uint64_t, uint64_t> old, now;
  };
  Change PlanAdd(uint64_t pb0, uint64_t pb1) const;
  Change PlanRemove(uint64_t pb0, uint64_t pb1) const;
  void Apply(const Change& c);

 private:
  std::map<uint64_t, uint64_t> ranges_;  // start -> length, never adjacent
  uint64_t blocks_ = 0;
};

}  // namespace daxref
