#include "meta/refcount_map.h"

#include <rocksdb/db.h>
#include <rocksdb/write_batch_base.h>

#include <cassert>
#include <memory>

#include "meta/store_scan.h"

namespace daxref {

Status RefcountMap::Load(rocksdb::DB* db, const PoolGeometry& geo) {
  recs_.clear();
  before_.clear();
  uint64_t prev_end = 0;
  return WalkPrefix(db, prefix::kRefcount, [&](std::string_view k, std::string_view v) {
    RefcountRecord r;
    DAXREF_RETURN_IF_ERROR(DecodeRefcount(k, v, geo, &r));
    if (r.pblock < prev_end)
      return Status::Corruption("refcount records overlap at pool block " +
                                std::to_string(r.pblock));
    recs_.emplace_hint(recs_.end(), r.pblock, Value{r.len, r.refs});
    prev_end = r.pend();
    return Status::Ok();
  });
}

void RefcountMap::Touch(uint64_t key) {
  if (before_.count(key)) return;
  auto it = recs_.find(key);
  before_[key] = it == recs_.end() ? std::nullopt : std::optional<Value>(it->second);
}

void RefcountMap::Put(const RefcountRecord& r) {
  // Only shared blocks have a record (AdjustRefs drops counts below 2), and
  // a record that does not encode would be refused by the next mount.
  assert(r.len > 0 && r.refs >= 2 && r.pblock + r.len > r.pblock);
  Touch(r.pblock);
  recs_[r.pblock] = Value{r.len, r.refs};
}

void RefcountMap::Erase(uint64_t pblock) {
  Touch(pblock);
  recs_.erase(pblock);
}

void RefcountMap::BeginEdit() {
  before_.clear();
}

void RefcountMap::EmitEdit(rocksdb::WriteBatchBase* batch) const {
  for (const auto& [key, old] : before_) {
    auto it = recs_.find(key);
    // Records never overlap: Load refuses a store where they do, and every
    // edit rebuilds a whole window of them (Volume::AdjustRefs). Checked
    // where this edit wrote, against the next record.
    assert(it == recs_.end() || std::next(it) == recs_.end() ||
           it->first + it->second.len <= std::next(it)->first);
    if (it == recs_.end()) {
      if (old) batch->Delete(keys::Refcount(key));
    } else if (!old || !(*old == it->second)) {
      batch->Put(keys::Refcount(key),
                 EncodeRefcount(RefcountRecord{key, it->second.len, it->second.refs}));
    }
  }
}

void RefcountMap::Rollback() {
  for (const auto& [key, old] : before_) {
    if (old)
      recs_[key] = *old;
    else
      recs_.erase(key);
  }
  before_.clear();
}

void RefcountMap::Finish() {
  before_.clear();
}

}  // namespace daxref
