// BadBlocks: the pool's bad (poisoned) blocks, in memory, mirrored by the B
// records of the store, and where each piece came from, mirrored by the Q
// records. Ranges never overlap and are kept coalesced, as the B records
// are; origins are never coalesced: each MarkBad of a fresh piece is one
// origin, and a B range merged from pieces of different origins keeps each
// (docs/format.md, "Q"). Not thread-safe: the Volume guards it (volume.h).
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>

#include "meta/format.h"
#include "meta/status.h"

namespace rocksdb {
class DB;
}  // namespace rocksdb

namespace daxref {

// Whether Q records fit the B records (docs/format.md, "Q"): every B record
// goes to AddBad first, then each Q record, in key order, to Check, which
// says why it does not fit ("" when it does): it overlaps the Q record
// before it, or covers blocks that no one B record holds. Used by the load
// at open, the checker and the repair alike.
class BadOriginFit {
 public:
  void AddBad(uint64_t pblock, uint64_t len) { bad_[pblock] = len; }
  std::string Check(const BadOriginRecord& r);

 private:
  std::map<uint64_t, uint64_t> bad_;
  uint64_t prev_end_ = 0;
};

class BadBlocks {
 public:
  // Reads every B and Q record; a Q record outside the B ranges, or one
  // overlapping another, is corruption.
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

  // Walks every range cut into pieces of one origin, in pool order:
  // fn(start, len, origin) returns false to stop. Blocks without a Q record
  // (recorded before metadata format 4) come as BadOriginKind::kUnknown.
  template <typename Fn>
  void ForEachPiece(Fn&& fn) const {
    for (const auto& [start, len] : ranges_) {
      uint64_t pos = start, end = start + len;
      auto it = origins_.lower_bound(start);
      for (; it != origins_.end() && it->first < end; ++it) {
        if (it->first > pos && !fn(pos, it->first - pos, BadOrigin{})) return;
        if (!fn(it->first, it->second.len, it->second.origin)) return;
        pos = it->second.pend();
      }
      if (end > pos && !fn(pos, end - pos, BadOrigin{})) return;
    }
  }

  // The records that change when [pb0, pb1) is added or removed: every
  // existing range the change touches (`old`, to delete) and the ranges that
  // replace them (`now`, to put); the same for origins. Apply makes the
  // same change in memory.
  struct Change {
    std::map<uint64_t, uint64_t> old, now;
    std::map<uint64_t, BadOriginRecord> origin_old, origin_now;
  };
  // [pb0, pb1) must not be bad yet: it becomes one origin piece.
  Change PlanAdd(uint64_t pb0, uint64_t pb1, const BadOrigin& origin) const;
  Change PlanRemove(uint64_t pb0, uint64_t pb1) const;
  void Apply(const Change& c);

 private:
  // Is all of [pb0, pb1) inside one range?
  bool Covers(uint64_t pb0, uint64_t pb1) const;

  std::map<uint64_t, uint64_t> ranges_;          // start -> length, never adjacent
  std::map<uint64_t, BadOriginRecord> origins_;  // start -> piece, inside ranges_
  uint64_t blocks_ = 0;
};

}  // namespace daxref
