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
  origins_.clear();
  blocks_ = 0;
  uint64_t prev_end = 0;
  DAXREF_RETURN_IF_ERROR(WalkPrefix(db, prefix::kBad, [&](std::string_view k, std::string_view v) {
    uint64_t start = 0, len = 0;
    DAXREF_RETURN_IF_ERROR(DecodeBad(k, v, geo, &start, &len));
    if (start < prev_end)
      return Status::Corruption("bad-block records overlap at pool block " + std::to_string(start));
    ranges_[start] = len;
    blocks_ += len;
    prev_end = start + len;
    return Status::Ok();
  }));
  BadOriginFit fit;
  for (const auto& [start, len] : ranges_) fit.AddBad(start, len);
  return WalkPrefix(db, prefix::kBadOrigin, [&](std::string_view k, std::string_view v) {
    BadOriginRecord r;
    DAXREF_RETURN_IF_ERROR(DecodeBadOrigin(k, v, geo, &r));
    if (std::string why = fit.Check(r); !why.empty()) return Status::Corruption(why);
    origins_[r.pblock] = r;
    return Status::Ok();
  });
}

std::string BadOriginFit::Check(const BadOriginRecord& r) {
  const std::string who = "bad-block origin record at pool block " + std::to_string(r.pblock);
  if (r.pblock < prev_end_) return who + " overlaps the one before it";
  prev_end_ = r.pend();
  auto it = bad_.upper_bound(r.pblock);
  if (it == bad_.begin() || std::prev(it)->first + std::prev(it)->second < r.pend())
    return who + " covers blocks that are not bad";
  return "";
}

bool BadBlocks::Covers(uint64_t pb0, uint64_t pb1) const {
  auto it = ranges_.upper_bound(pb0);
  if (it == ranges_.begin()) return false;
  --it;
  return it->first <= pb0 && it->first + it->second >= pb1;
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

BadBlocks::Change BadBlocks::PlanAdd(uint64_t pb0, uint64_t pb1, const BadOrigin& origin) const {
  assert(pb0 < pb1);  // the Volume checked the range (CheckPoolRange)
  assert(!Any(pb0, pb1));
  Change c;
  // The new blocks are one origin piece, whatever ranges they join.
  if (origin.kind != BadOriginKind::kUnknown)
    c.origin_now[pb0] = BadOriginRecord{pb0, pb1 - pb0, origin};
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
  // Origin pieces are cut at the edges of the range, as the ranges are.
  auto ot = origins_.upper_bound(pb0);
  if (ot != origins_.begin()) --ot;
  for (; ot != origins_.end() && ot->first < pb1; ++ot) {
    const BadOriginRecord& r = ot->second;
    if (r.pend() <= pb0) continue;
    c.origin_old[r.pblock] = r;
    if (r.pblock < pb0)
      c.origin_now[r.pblock] = BadOriginRecord{r.pblock, pb0 - r.pblock, r.origin};
    if (r.pend() > pb1) c.origin_now[pb1] = BadOriginRecord{pb1, r.pend() - pb1, r.origin};
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
  for (const auto& [start, r] : c.origin_old) {
    assert(origins_.count(start));
    origins_.erase(start);
  }
  for (const auto& [start, r] : c.origin_now) {
    assert(r.len > 0 && Covers(r.pblock, r.pend()));
    origins_[start] = r;
  }
}

}  // namespace daxref
