// Free space: the pool's free extents, kept in memory and mirrored by the F
// records of the store. Every change is made inside an operation's batch and
// remembered, so a failed operation rolls back and a committed one writes
// exactly the F records it touched (see Edit). Not thread-safe: the Volume's
// mutation lock guards it.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <vector>

#include "meta/format.h"
#include "meta/status.h"

namespace rocksdb {
class DB;
class WriteBatchBase;
}  // namespace rocksdb

namespace daxref {

class FreeSpace {
 public:
  // Reads every F record.
  Status Load(rocksdb::DB* db, const PoolGeometry& geo);

  uint64_t free_blocks() const { return free_; }
  uint64_t extent_count() const { return extents_.size(); }

  // Takes up to `want` contiguous blocks, preferring ones at `goal`, then the
  // next free extent after it, then the lowest. Returns nullopt when the pool
  // is full.
  std::optional<Extent> Allocate(uint64_t goal, uint64_t want);
  // The first pool block at or after `from` (wrapping to the lowest once)
  // that starts `want` free blocks in a row and is a multiple of `align`:
  // room for a run that is to grow (docs/design.md, "Where new blocks
  // go"). Looks at no more than kRoomScan free extents; nullopt if none of
  // them has the room. Changes nothing.
  static constexpr size_t kRoomScan = 512;
  std::optional<uint64_t> FindRoom(uint64_t from, uint64_t want, uint64_t align) const;
  // Returns [pblock, pblock+len) to the pool. The range must not be free.
  // Inside an edit the blocks stay busy until EmitEdit: the committed store
  // still points at them, so an allocation in the same batch, whose data
  // would be written before the batch commits, must not get them.
  void Release(uint64_t pblock, uint64_t len);
  // Removes a specific range (it must be free) from free space.
  Status Claim(uint64_t pblock, uint64_t len);
  bool IsFree(uint64_t pblock, uint64_t len) const;

  // Starts remembering changes. EmitEdit writes the F-record changes since
  // BeginEdit into `batch`; Rollback undoes them; Finish forgets them.
  // EmitEdit is the last step before the batch is written: it frees the
  // busy blocks, after which nothing may be allocated in this edit.
  void BeginEdit();
  void EmitEdit(rocksdb::WriteBatchBase* batch);
  void Rollback();
  void Finish();

  // Walks the free pieces of [pb0, pb1), clipped to it, in pool order:
  // fn(start, len) returns false to stop.
  template <typename Fn>
  void ForEachIn(uint64_t pb0, uint64_t pb1, Fn&& fn) const {
    auto it = extents_.upper_bound(pb0);
    if (it != extents_.begin()) --it;
    for (; it != extents_.end() && it->first < pb1; ++it) {
      uint64_t s = it->first > pb0 ? it->first : pb0;
      uint64_t e = it->first + it->second < pb1 ? it->first + it->second : pb1;
      if (e > s && !fn(s, e - s)) return;
    }
  }
  // Walks the free extents in pool order; stop early by returning false.
  template <typename Fn>
  void ForEach(Fn&& fn) const {
    for (const auto& [start, len] : extents_)
      if (!fn(start, len)) return;
  }

 private:
  void Touch(uint64_t key);
  void Set(uint64_t key, uint64_t len);
  void Erase(uint64_t key);
  void ReleaseNow(uint64_t pblock, uint64_t len);

  std::map<uint64_t, uint64_t> extents_;  // start -> length, never adjacent
  uint64_t free_ = 0;
  uint64_t cursor_ = 0;  // next-fit hint
  bool editing_ = false;
  std::map<uint64_t, std::optional<uint64_t>> before_;  // key -> length at BeginEdit
  uint64_t free_before_ = 0;
  std::vector<Extent> busy_;  // released in this edit, freed at EmitEdit
};

}  // namespace daxref
