#include "admin/poison_records.h"

#include <algorithm>

namespace daxref {

Status FilePoolPieces(Volume* vol, uint64_t ino, uint64_t off, uint64_t len, PoolPieces* out) {
  out->clear();
  DAXREF_RETURN_IF_ERROR(vol->MapRange(ino, off, len, [&](const MappedSegment& seg) {
    if (!seg.hole)
      out->emplace_back(seg.pool_off >> kBlockShift,
                        (seg.pool_off + seg.len + kBlockSize - 1) >> kBlockShift);
    return true;
  }));
  // A file may share a block with itself: each block is named once.
  std::sort(out->begin(), out->end());
  size_t n = 0;
  for (const auto& p : *out) {
    if (n > 0 && p.first <= (*out)[n - 1].second)
      (*out)[n - 1].second = std::max((*out)[n - 1].second, p.second);
    else
      (*out)[n++] = p;
  }
  out->resize(n);
  return Status::Ok();
}

control::Record RangeRecord(uint64_t pb0, uint64_t pb1, const PoisonOutcome& out) {
  control::Record r("range");
  r.Add("pblock", pb0).Add("blocks", pb1 - pb0).Add("added", out.added);
  r.Add("retired", out.retired).Add("owned", out.owned).Add("reserved", out.reserved);
  return r;
}

Status WalkOwnerRecords(Volume* vol, uint64_t pb0, uint64_t pb1, const OwnerActFn& act,
                        const RecordSinkFn& emit, uint64_t* count, Status* path_error) {
  // One resolver for the whole walk: the owners of a block mostly share a
  // few directories (docs/poison.md, the benchmark's figures).
  Volume::PathResolver resolver(vol);
  return vol->QueryOwners(pb0, pb1, [&](const RmapRecord& rec) {
    PoisonOwner o;
    o.ino = rec.ino;
    o.pb0 = std::max(rec.pblock, pb0);
    o.pb1 = std::min(rec.pend(), pb1);
    o.fblock = rec.fblock + (o.pb0 - rec.pblock);
    control::Record r("owner");
    r.Add("ino", o.ino).Add("pblock", o.pb0).Add("blocks", o.pb1 - o.pb0);
    r.Add("offset", o.offset()).Add("length", o.length());
    Status ps = resolver.Paths(o.ino, [&](const std::string& path) {
      r.Add("path", path);
      return true;
    });
    if (!ps.ok()) {
      r.Add("paths_error", ps.message());
      if (path_error->ok()) *path_error = ps;
    }
    if (act) act(o, &r);
    ++*count;
    emit(r);
    return true;
  });
}

}  // namespace daxref
