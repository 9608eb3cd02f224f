// Who owns a pool block: the reverse-map query and inode-to-path resolution
// (docs/design.md, "Reverse map"). Both read the committed store only and
// act on each record as they meet it; nothing here builds a list of owners.
#include <rocksdb/db.h>
#include <rocksdb/snapshot.h>

#include <algorithm>
#include <memory>
#include <string>
#include <unordered_map>
#include <vector>

#include "meta/volume.h"
#include "meta/volume_txn.h"

namespace daxref {

using internal::FromRocks;
using internal::PrefixScan;

// Records of different owners overlap freely once blocks are shared, so no
// single backward seek finds every record covering pb0. The length classes
// bound how far back one can start: in class c a record is shorter than
// 2^(c+1) blocks, so one covering pb0 starts after pb0 - 2^(c+1). Each class
// in use costs one seek; the records met in the window before pb0 that end
// short of it are skipped.
//
// The whole walk reads one snapshot. Without it each class would be read as
// of its own moment, and a batch committed mid-walk that moves a record
// from a class not yet walked to one already walked (a punch that shortens
// an extent) would hide that owner from the walk altogether. The class mask
// is read after the snapshot is taken: a record's bit is set while its
// batch is built, before the commit that makes it visible, so every class
// the snapshot holds records in is in the mask.
Status Volume::QueryOwners(uint64_t pb0, uint64_t pb1, const RmapFn& fn, const RmapRecord* after) {
  if (pb1 <= pb0) return Status::Ok();
  rocksdb::ManagedSnapshot snap(db_.get());
  uint64_t mask = rmap_classes_.load(std::memory_order_acquire);
  unsigned first = after ? keys::RmapClass(after->len) : 0;
  for (unsigned c = first; c < kRmapClasses; ++c) {
    if (!(mask & (uint64_t{1} << c))) continue;
    PrefixScan scan(keys::RmapClassPrefix(c));
    rocksdb::ReadOptions ro = scan.Options();
    ro.snapshot = snap.snapshot();
    std::unique_ptr<rocksdb::Iterator> it(db_->NewIterator(ro));
    uint64_t reach = c >= 63 ? UINT64_MAX : (uint64_t{2} << c) - 1;
    uint64_t lo = pb0 > reach ? pb0 - reach : 0;
    if (after && c == first) {
      std::string k = keys::Rmap(after->pblock, after->len, after->ino, after->fblock);
      it->Seek(k);
      if (it->Valid() && it->key().ToStringView() == k) it->Next();
    } else {
      it->Seek(keys::RmapClassAt(c, lo));
    }
    for (; it->Valid(); it->Next()) {
      RmapRecord r;
      DAXREF_RETURN_IF_ERROR(
          DecodeRmap(it->key().ToStringView(), it->value().ToStringView(), sb_.geometry(), &r));
      if (r.pblock >= pb1) break;
      if (r.pend() <= pb0) continue;
      if (!fn(r)) return Status::Ok();
    }
    DAXREF_RETURN_IF_ERROR(FromRocks(it->status(), "rmap query"));
  }
  return Status::Ok();
}

// A path is built leaf first from parent pointers: the inode's own (one per
// name), then each directory's single one, up to the root. All reads come
// from one snapshot, taken when the resolver was made, so a concurrent
// rename cannot splice two trees; one iterator is repositioned for every
// lookup, and the paths of the directories met are remembered. Volume::Paths
// is a resolver used once: there is one walk.
struct Volume::PathResolver::State {
  // Enough directories for any realistic set of sharers; past it the cache
  // starts over, so memory stays bounded whatever the walk meets.
  static constexpr size_t kMaxDirs = 4096;
  // Deeper than any path the kernel can hand us (PATH_MAX is 4096 bytes).
  static constexpr int kMaxDepth = 4096;
  explicit State(Volume* vol)
      : v(vol), snap(vol->db_.get()), scan(std::string(1, prefix::kParent)) {
    rocksdb::ReadOptions ro = scan.Options();
    ro.snapshot = snap.snapshot();
    it.reset(v->db_->NewIterator(ro));
  }
  // The path of directory dir ("" for the root), from the cache or the store.
  Status DirPath(uint64_t dir, std::string* out) {
    if (dir == kRootIno) {
      out->clear();
      return Status::Ok();
    }
    auto c = dirs.find(dir);
    if (c != dirs.end()) {
      *out = c->second;
      return Status::Ok();
    }
    std::vector<std::string> parts;
    uint64_t d = dir;
    for (int depth = 0; d != kRootIno; ++depth) {
      if (depth > kMaxDepth) return Status::Corruption("parent pointers form a loop");
      auto known = dirs.find(d);
      if (known != dirs.end()) {
        parts.push_back(known->second);
        break;
      }
      std::string prefix = keys::ParentPrefix(d);
      it->Seek(prefix);
      if (!it->Valid() || !it->key().starts_with(prefix)) {
        DAXREF_RETURN_IF_ERROR(FromRocks(it->status(), "parent lookup"));
        return Status::NotFound("directory " + std::to_string(d) + " has no name");
      }
      ParentRecord up;
      DAXREF_RETURN_IF_ERROR(DecodeParent(it->key().ToStringView(), &up));
      parts.push_back("/" + up.name);
      d = up.parent;
    }
    out->clear();
    for (auto p = parts.rbegin(); p != parts.rend(); ++p) out->append(*p);
    if (dirs.size() >= kMaxDirs) dirs.clear();
    dirs.emplace(dir, *out);
    return Status::Ok();
  }

  Volume* v;
  rocksdb::ManagedSnapshot snap;
  PrefixScan scan;
  std::unique_ptr<rocksdb::Iterator> it;
  std::unordered_map<uint64_t, std::string> dirs;
};

Volume::PathResolver::PathResolver(Volume* v) : st_(std::make_unique<State>(v)) {}
Volume::PathResolver::~PathResolver() = default;

Status Volume::PathResolver::Paths(uint64_t ino, const PathFn& fn) {
  if (ino == kRootIno) {
    fn("/");
    return Status::Ok();
  }
  // The inode's own names first (an iterator is repositioned below, for
  // the directories), then each one's directory path.
  std::vector<ParentRecord> names;
  std::string prefix = keys::ParentPrefix(ino);
  for (st_->it->Seek(prefix); st_->it->Valid() && st_->it->key().starts_with(prefix);
       st_->it->Next()) {
    ParentRecord p;
    DAXREF_RETURN_IF_ERROR(DecodeParent(st_->it->key().ToStringView(), &p));
    names.push_back(std::move(p));
  }
  DAXREF_RETURN_IF_ERROR(FromRocks(st_->it->status(), "path walk"));
  std::string dir;
  for (const ParentRecord& p : names) {
    DAXREF_RETURN_IF_ERROR(st_->DirPath(p.parent, &dir));
    if (!fn(dir + "/" + p.name)) return Status::Ok();
  }
  return Status::Ok();
}

Status Volume::Paths(uint64_t ino, const PathFn& fn) {
  PathResolver resolver(this);
  return resolver.Paths(ino, fn);
}

}  // namespace daxref
