// RefcountMap: the refcount records (N) of shared blocks, kept in memory and
// mirrored by the store, as FreeSpace mirrors the F records.
//
// Why in memory: refcount records come and go with every clone, copy-on-write
// and delete of a shared file, and a RocksDB lookup of "the record covering
// block b" must step over every deleted record before it until compaction
// removes them; deleting a file with 10,000 shared extents would cost
// 10,000^2 / 2 such steps. The map costs memory per shared range (about 80
// bytes) and one scan of the N records at mount.
//
// Edits are remembered between BeginEdit and Finish, so a failed operation
// rolls back and a committed one writes exactly the records it changed.
// Not thread-safe by itself: the Volume's mutation lock serializes edits,
// and readers outside it (the overwrite fast path) take the Volume's
// refcount lock shared, which an edit holds exclusive until it commits or
// rolls back, so they never see a change that may yet be undone.
#pragma once

#include <cstdint>
#include <map>
#include <optional>

#include "meta/format.h"
#include "meta/status.h"

namespace rocksdb {
class DB;
class WriteBatchBase;
}  // namespace rocksdb

namespace daxref {

class RefcountMap {
 public:
  // Reads every N record.
  Status Load(rocksdb::DB* db, const PoolGeometry& geo);

  size_t size() const { return recs_.size(); }

  // Walks the records overlapping pool blocks [pb0, pb1) in pool order;
  // fn(const RefcountRecord&) returns false to stop.
  template <typename Fn>
  void ForEachOverlap(uint64_t pb0, uint64_t pb1, Fn&& fn) const {
    if (pb1 <= pb0) return;
    auto it = recs_.upper_bound(pb0);
    if (it != recs_.begin() && std::prev(it)->first + std::prev(it)->second.len > pb0) --it;
    for (; it != recs_.end() && it->first < pb1; ++it)
      if (!fn(RefcountRecord{it->first, it->second.len, it->second.refs})) return;
  }
  bool AnyShared(uint64_t pb0, uint64_t pb1) const {
    bool any = false;
    ForEachOverlap(pb0, pb1, [&](const RefcountRecord&) {
      any = true;
      return false;
    });
    return any;
  }

  // Record changes (only inside an edit).
  void Put(const RefcountRecord& r);
  void Erase(uint64_t pblock);

  void BeginEdit();
  // Writes the N-record changes since BeginEdit into batch.
  void EmitEdit(rocksdb::WriteBatchBase* batch) const;
  void Rollback();
  void Finish();

 private:
  struct Value {
    uint64_t len = 0;
    uint64_t refs = 0;
    bool operator==(const Value&) const = default;
  };
  void Touch(uint64_t key);

  std::map<uint64_t, Value> recs_;                   // start -> length, refs
  std::map<uint64_t, std::optional<Value>> before_;  // key -> value at BeginEdit
};

}  // namespace daxref
