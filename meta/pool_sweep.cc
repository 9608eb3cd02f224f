#include "meta/pool_sweep.h"

#include <algorithm>
#include <queue>

#include "meta/check_census.h"

namespace daxref {

namespace {

// Records ending here or later cannot be told from "no more records".
constexpr uint64_t kNever = UINT64_MAX;

bool EndsFirst(const SpaceRecord& a, const SpaceRecord& b) {
  return a.end() > b.end();  // std heap functions keep the largest first: invert
}

void Count(Coverage* c, const SpaceRecord& r, int sign) {
  const uint64_t one = static_cast<uint64_t>(sign);
  switch (r.kind) {
    case SpaceKind::kOwner:
      c->owners += one;
      break;
    case SpaceKind::kFree:
      c->free += one;
      break;
    case SpaceKind::kBad:
      c->bad += one;
      break;
    case SpaceKind::kRefcount:
      c->counted += one;
      c->refs += sign > 0 ? r.refs : -r.refs;
      break;
  }
}

}  // namespace

// One key range of the store read in order: one length class of R, or all
// of F, B or N. `kind` says how to decode; a junk stream (R keys with a
// class byte past 63) only reports what it finds.
struct PoolSweep::Stream {
  SpaceKind kind;
  bool junk = false;
  std::string lo, hi;
  rocksdb::Slice lo_s, hi_s;
  std::unique_ptr<rocksdb::Iterator> it;
  SpaceRecord cur;
  bool valid = false;
};

PoolSweep::PoolSweep(rocksdb::DB* db, const rocksdb::ReadOptions& ro) : db_(db), ro_(ro) {
  ro_.iterate_lower_bound = nullptr;
  ro_.iterate_upper_bound = nullptr;
}

PoolSweep::~PoolSweep() = default;

bool PoolSweep::Advance(Stream* s, const BadRecordFn& on_bad) {
  s->valid = false;
  for (; s->it->Valid(); s->it->Next()) {
    std::string_view k = s->it->key().ToStringView(), v = s->it->value().ToStringView();
    SpaceRecord r;
    r.kind = s->kind;
    Status st;
    if (s->junk) {
      st = Status::Corruption("reverse-map key with no valid length class");
    } else if (s->kind == SpaceKind::kOwner) {
      RmapRecord m;
      st = check::DecodeRmapShape(k, v, &m);
      r.pblock = m.pblock, r.len = m.len, r.ino = m.ino, r.fblock = m.fblock;
    } else if (s->kind == SpaceKind::kRefcount) {
      RefcountRecord n;
      st = check::DecodeRefcountShape(k, v, &n);
      r.pblock = n.pblock, r.len = n.len, r.refs = n.refs;
    } else {
      st = check::DecodeRunShape(k, v, &r.pblock, &r.len);
    }
    if (st.ok() && (r.pblock + r.len < r.pblock || r.end() == kNever))
      st = Status::Corruption("range runs past the last block number");
    if (!st.ok()) {
      on_bad(k, v, st);
      continue;
    }
    s->cur = r;
    s->valid = true;
    s->it->Next();
    return true;
  }
  return false;
}

Status PoolSweep::Run(uint64_t limit, const RecordFn& on_record, const RunFn& on_run,
                      const BadRecordFn& on_bad) {
  streams_.clear();
  open_.clear();
  records_ = 0;
  auto add = [&](SpaceKind kind, std::string lo, std::string hi, bool junk) {
    auto s = std::make_unique<Stream>();
    s->kind = kind;
    s->junk = junk;
    s->lo = std::move(lo);
    s->hi = std::move(hi);
    s->lo_s = rocksdb::Slice(s->lo);
    s->hi_s = rocksdb::Slice(s->hi);
    rocksdb::ReadOptions ro = ro_;
    ro.iterate_lower_bound = &s->lo_s;
    ro.iterate_upper_bound = &s->hi_s;
    s->it.reset(db_->NewIterator(ro));
    s->it->Seek(s->lo_s);
    streams_.push_back(std::move(s));
  };
  const std::string r(1, prefix::kRmap);
  add(SpaceKind::kOwner, r, keys::RmapClassPrefix(0), true);  // the bare "R" key
  for (unsigned c = 0; c < kRmapClasses; ++c)
    add(SpaceKind::kOwner, keys::RmapClassPrefix(c), keys::Successor(keys::RmapClassPrefix(c)),
        false);
  add(SpaceKind::kOwner, keys::RmapClassPrefix(kRmapClasses), keys::Successor(r), true);
  for (auto [kind, p] :
       {std::pair{SpaceKind::kFree, prefix::kFree}, std::pair{SpaceKind::kBad, prefix::kBad},
        std::pair{SpaceKind::kRefcount, prefix::kRefcount}})
    add(kind, std::string(1, p), keys::Successor(std::string(1, p)), false);

  // Stream heads, smallest first block first.
  using Head = std::pair<uint64_t, size_t>;
  std::priority_queue<Head, std::vector<Head>, std::greater<Head>> heads;
  for (size_t i = 0; i < streams_.size(); ++i) {
    if (Advance(streams_[i].get(), on_bad)) heads.push({streams_[i]->cur.pblock, i});
    if (!streams_[i]->it->status().ok())
      return Status::IOError("reading the store: " + streams_[i]->it->status().ToString());
  }

  const Status cancelled = Status::Error(ECANCELED, "cancelled");
  Coverage cov;
  uint64_t pos = 0;
  for (;;) {
    const uint64_t next_start = heads.empty() ? kNever : heads.top().first;
    const uint64_t next_end = open_.empty() ? kNever : open_.front().end();
    const uint64_t next = std::min(next_start, next_end);
    if (next == kNever) break;
    if (next > pos) {
      if (!on_run(pos, next, cov)) return cancelled;
      pos = next;
    }
    while (!open_.empty() && open_.front().end() == pos) {
      Count(&cov, open_.front(), -1);
      std::pop_heap(open_.begin(), open_.end(), EndsFirst);
      open_.pop_back();
    }
    while (!heads.empty() && heads.top().first == pos) {
      Stream* s = streams_[heads.top().second].get();
      const size_t idx = heads.top().second;
      heads.pop();
      ++records_;
      if (!on_record(s->cur)) return cancelled;
      open_.push_back(s->cur);
      std::push_heap(open_.begin(), open_.end(), EndsFirst);
      Count(&cov, s->cur, +1);
      if (Advance(s, on_bad)) heads.push({s->cur.pblock, idx});
      if (!s->it->status().ok())
        return Status::IOError("reading the store: " + s->it->status().ToString());
    }
  }
  if (pos < limit && !on_run(pos, limit, cov)) return cancelled;
  return Status::Ok();
}

}  // namespace daxref
