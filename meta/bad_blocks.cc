#include "meta/bad_blocks.h"

#include <rocksdb/db.h>

#include <algorithm>
#include <cassert>
#include <memory>

#include "meta/format.h"
#include "meta/store_scan.h"

namespace daxref {

Status BadBlocks::Load(rocksdb::DB* db, const PoolGeometry& geo) {
  ranges_.clear();
  blocks_ = 0;
  uint64_t prev_end = 0;
  return WalkPrefix(db, prefix::kBad, [&](std::string_view k, std::string_view v) {
    uint64_t start = 0, len = 0;
    DAXREF_RETURN_IF_ERROR(DecodeBad(k, v, geo, &start, &len));
    if (start < prev_end)
      return Status::Corruption("bad-block records overlap at pool block " + std::to_string(start));
    ranges_[start] = len;
    blocks_ += len;
    prev_end = start + len;
    return Status::Ok();
  });
}

std::optional<uint64_t> BadBlocks::First(uint64_t pb0, uint64_t pb1) const {
  if (ranges_.empty() || pb1 <= pb0) return std::nullopt;
  auto it = ranges_.upper_bound(pb0);
  if (it != ranges_.begin()) {
    auto prev = std::prev(it);
    if (prev->first + prev->second > pb0) return pb0;
  }
  if (it != ranges_.end() && it->first < pb1) return it->first;
  return std::nullopt;
}

BadBlocks::Change BadBlocks::PlanAdd(uint64_t pb0, uint64_t pb1) const {
  assert(pb0 < pb1);  // the Volume checked the range (CheckPoolRange)
  Change c;
  uint64_t s = pb0, e = pb1;
  // Every range that overlaps or touches [pb0, pb1) merges into one.
  auto it = ranges_.upper_bound(pb0);
  if (it != ranges_.begin()) --it;
  for (; it != ranges_.end() && it->first <= pb1; ++it) {
    if (it->first + it->second < pb0) continue;
    c.old[it->first] = it->second;
    s = std::min(s, it->first);
    e = std::max(e, it->first + it->second);
  }
  c.now[s] = e - s;
  return c;
}

BadBlocks::Change BadBlocks::PlanRemove(uint64_t pb0, uint64_t pb1) const {
  assert(pb0 < pb1);
  Change c;
  auto it = ranges_.upper_bound(pb0);
  if (it != ranges_.begin()) --it;
  for (; it != ranges_.end() && it->first < pb1; ++it) {
    uint64_t rs = it->first, re = it->first + it->second;
    if (re <= pb0) continue;
    c.old[rs] = it->second;
    if (rs < pb0) c.now[rs] = pb0 - rs;
    if (re > pb1) c.now[pb1] = re - pb1;
  }
  return c;
}

void BadBlocks::Apply(const Change& c) {
  // A change is applied to the ranges it was planned against: every range
  // it removes is there as planned, and what it puts overlaps nothing left.
  for (const auto& [start, len] : c.old) {
    assert(ranges_.count(start) && ranges_.at(start) == len && blocks_ >= len);
    ranges_.erase(start);
    blocks_ -= len;
  }
  for (const auto& [start, len] : c.now) {
    assert(len > 0);
    auto [it, added] = ranges_.insert_or_assign(start, len);
    assert(added);
    assert(it == ranges_.begin() || std::prev(it)->first + std::prev(it)->second <= start);
    assert(std::next(it) == ranges_.end() || start + len <= std::next(it)->first);
    (void)it;
    (void)added;
    blocks_ += len;
  }
}

}  // namespace daxref
