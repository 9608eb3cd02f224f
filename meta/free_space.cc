#include "meta/free_space.h"

#include <rocksdb/db.h>
#include <rocksdb/write_batch_base.h>

#include <algorithm>
#include <cassert>
#include <memory>

#include "meta/store_scan.h"

namespace daxref {

Status FreeSpace::Load(rocksdb::DB* db, const PoolGeometry& geo) {
  extents_.clear();
  free_ = 0;
  uint64_t prev_end = 0;
  return WalkPrefix(db, prefix::kFree, [&](std::string_view k, std::string_view v) {
    uint64_t start = 0, len = 0;
    DAXREF_RETURN_IF_ERROR(DecodeFree(k, v, geo, &start, &len));
    if (start < prev_end)
      return Status::Corruption("free-space records overlap at pool block " +
                                std::to_string(start));
    extents_.emplace_hint(extents_.end(), start, len);
    free_ += len;
    prev_end = start + len;
    return Status::Ok();
  });
}

void FreeSpace::Touch(uint64_t key) {
  if (!editing_ || before_.count(key)) return;
  auto it = extents_.find(key);
  before_[key] = it == extents_.end() ? std::nullopt : std::optional<uint64_t>(it->second);
}
void FreeSpace::Set(uint64_t key, uint64_t len) {
  Touch(key);
  extents_[key] = len;
}
void FreeSpace::Erase(uint64_t key) {
  Touch(key);
  extents_.erase(key);
}

std::optional<Extent> FreeSpace::Allocate(uint64_t goal, uint64_t want) {
  if (extents_.empty() || want == 0) return std::nullopt;
  // The extent containing goal, else the first after it, else the first.
  auto it = extents_.upper_bound(goal);
  uint64_t at;
  if (it != extents_.begin() && std::prev(it)->first + std::prev(it)->second > goal) {
    --it;
    at = goal;
  } else {
    if (it == extents_.end()) it = extents_.lower_bound(cursor_);
    if (it == extents_.end()) it = extents_.begin();
    at = it->first;
  }
  uint64_t start = it->first, len = it->second, end = start + len;
  assert(start <= at && at < end);
  uint64_t take = std::min(want, end - at);
  assert(take > 0 && take <= free_);
  Erase(start);
  if (at > start) Set(start, at - start);
  if (at + take < end) Set(at + take, end - at - take);
  free_ -= take;
  cursor_ = at + take;
  return Extent{0, at, take};
}

std::optional<uint64_t> FreeSpace::FindRoom(uint64_t from, uint64_t want, uint64_t align) const {
  if (want == 0 || align == 0 || extents_.empty()) return std::nullopt;
  // Start with the extent holding `from`, if any.
  auto it = extents_.upper_bound(from);
  if (it != extents_.begin() && std::prev(it)->first + std::prev(it)->second > from) --it;
  auto first = it;
  for (size_t seen = 0; seen < kRoomScan && seen < extents_.size(); ++seen, ++it) {
    if (it == extents_.end()) it = extents_.begin();
    if (seen > 0 && it == first) break;
    uint64_t lo = it == first ? std::max(it->first, from) : it->first;
    uint64_t at = (lo + align - 1) / align * align, end = it->first + it->second;
    if (at + want <= end) return at;
  }
  return std::nullopt;
}

void FreeSpace::Release(uint64_t pblock, uint64_t len) {
  // Callers release what a decoded record or an allocation named: never an
  // empty run, never one that wraps.
  assert(len > 0 && pblock + len > pblock);
  if (editing_) {
    busy_.push_back(Extent{0, pblock, len});
    return;
  }
  ReleaseNow(pblock, len);
}

void FreeSpace::ReleaseNow(uint64_t pblock, uint64_t len) {
  uint64_t start = pblock, end = pblock + len;
  auto next = extents_.lower_bound(pblock);
  if (next != extents_.begin()) {
    auto prev = std::prev(next);
    if (prev->first + prev->second == pblock) {
      start = prev->first;
      Erase(prev->first);
    }
  }
  if (next != extents_.end() && next->first == end) {
    end = next->first + next->second;
    Erase(next->first);
  }
  Set(start, end - start);
  free_ += len;
}

bool FreeSpace::IsFree(uint64_t pblock, uint64_t len) const {
  auto it = extents_.upper_bound(pblock);
  if (it == extents_.begin()) return false;
  --it;
  return it->first <= pblock && it->first + it->second >= pblock + len;
}

Status FreeSpace::Claim(uint64_t pblock, uint64_t len) {
  if (!IsFree(pblock, len)) return Status::Invalid("range is not free");
  auto it = std::prev(extents_.upper_bound(pblock));
  uint64_t start = it->first, end = it->first + it->second;
  assert(len <= free_);
  Erase(start);
  if (pblock > start) Set(start, pblock - start);
  if (pblock + len < end) Set(pblock + len, end - pblock - len);
  free_ -= len;
  return Status::Ok();
}

void FreeSpace::BeginEdit() {
  // One edit at a time (the Volume's mutation lock), and the last one ended
  // in EmitEdit and Finish, or in Rollback.
  assert(!editing_ && before_.empty() && busy_.empty());
  editing_ = true;
  before_.clear();
  free_before_ = free_;
}

void FreeSpace::EmitEdit(rocksdb::WriteBatchBase* batch) {
  for (const Extent& e : busy_) ReleaseNow(e.pblock, e.len);
  busy_.clear();
  for (const auto& [key, old] : before_) {
    auto it = extents_.find(key);
    if (it == extents_.end()) {
      if (old) batch->Delete(keys::Free(key));
    } else if (!old || *old != it->second) {
      batch->Put(keys::Free(key), EncodeLength(it->second));
    }
  }
}

void FreeSpace::Rollback() {
  assert(editing_);
  for (const auto& [key, old] : before_) {
    if (old)
      extents_[key] = *old;
    else
      extents_.erase(key);
  }
  free_ = free_before_;
  busy_.clear();
  Finish();
}

void FreeSpace::Finish() {
  editing_ = false;
  busy_.clear();
  before_.clear();
}

}  // namespace daxref
