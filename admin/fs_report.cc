#include "admin/fs_report.h"

#include <dirent.h>
#include <fcntl.h>
#include <rocksdb/db.h>
#include <sys/stat.h>

#include <bit>
#include <cerrno>
#include <memory>
#include <string_view>
#include <vector>

#include "base/mountinfo.h"
#include "base/unique_fd.h"
#include "meta/check_census.h"
#include "meta/format.h"
#include "meta/store.h"

namespace daxref {

namespace {

// A snapshot of the store, released on every path out.
class Snapshot {
 public:
  explicit Snapshot(rocksdb::DB* db) : db_(db), snap_(db->GetSnapshot()) { ro_.snapshot = snap_; }
  ~Snapshot() {
    if (snap_ != nullptr) db_->ReleaseSnapshot(snap_);
  }
  Snapshot(const Snapshot&) = delete;
  Snapshot& operator=(const Snapshot&) = delete;
  const rocksdb::ReadOptions& ro() const { return ro_; }

 private:
  rocksdb::DB* db_;
  const rocksdb::Snapshot* snap_;
  rocksdb::ReadOptions ro_;
};

// An iterator over the keys in [lo, hi) that owns its bounds.
class RangeIter {
 public:
  RangeIter(rocksdb::DB* db, const rocksdb::ReadOptions& base, std::string lo, std::string hi)
      : lo_(std::move(lo)), hi_(std::move(hi)), lower_(lo_), upper_(hi_) {
    rocksdb::ReadOptions ro = base;
    ro.iterate_lower_bound = &lower_;
    ro.iterate_upper_bound = hi_.empty() ? nullptr : &upper_;
    it_.reset(db->NewIterator(ro));
  }
  rocksdb::Iterator* operator->() { return it_.get(); }
  Status status(std::string_view what) const {
    if (it_->status().ok()) return Status::Ok();
    if (it_->status().IsCorruption())
      return Status::Corruption("metadata store is damaged (reading " + std::string(what) +
                                "): " + it_->status().ToString());
    return Status::IOError("metadata store: reading " + std::string(what) + ": " +
                           it_->status().ToString());
  }

 private:
  std::string lo_, hi_;
  rocksdb::Slice lower_, upper_;
  std::unique_ptr<rocksdb::Iterator> it_;
};

// Calls fn(key, value) for every record of one prefix, in key order.
template <typename Fn>
Status WalkRecords(rocksdb::DB* db, const rocksdb::ReadOptions& ro, char p, Fn&& fn) {
  RangeIter it(db, ro, std::string(1, p), std::string(1, static_cast<char>(p + 1)));
  for (it->SeekToFirst(); it->Valid(); it->Next())
    DAXREF_RETURN_IF_ERROR(fn(it->key().ToStringView(), it->value().ToStringView()));
  return it.status(std::string("'") + p + "' records");
}

unsigned Bucket(uint64_t len) {
  return 63 - static_cast<unsigned>(std::countl_zero(len));
}

// The files of the store directory, measured (not recursive: RocksDB keeps
// none in subdirectories).
void MeasureStore(const std::string& dir, FsInfo* out) {
  UniqueFd fd(open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (!fd.valid()) return;
  UniqueFd walk(dup(fd.get()));
  if (!walk.valid()) return;
  DIR* d = fdopendir(walk.get());
  if (d == nullptr) return;
  (void)walk.release();  // closedir closes it
  while (dirent* e = readdir(d)) {
    struct stat st;
    if (fstatat(fd.get(), e->d_name, &st, AT_SYMLINK_NOFOLLOW) != 0 || !S_ISREG(st.st_mode))
      continue;
    ++out->store_files;
    out->store_bytes += static_cast<uint64_t>(st.st_size);
    out->store_disk_bytes += static_cast<uint64_t>(st.st_blocks) * 512;
  }
  closedir(d);
}

// The mount that holds the pool file: the last mountinfo entry of its
// device (a later mount on the same device hides the earlier ones).
void FindHost(const std::string& pool, FsInfo* out) {
  struct stat st;
  std::string text;
  if (stat(pool.c_str(), &st) != 0 || !ReadSelfMountInfo(&text)) return;
  ForEachMountInfoEntry(text, [&](const MountInfoEntry& e) {
    if (e.device == st.st_dev) {
      out->host_fstype = e.fstype;
      out->host_mount_point = e.mount_point;
      out->host_device = e.source;
    }
    return true;
  });
}

}  // namespace

bool FsInfo::consistent() const {
  return referenced_blocks >= shared_references && bad_blocks >= bad_reserved_blocks &&
         data_blocks >= free_blocks && data_blocks - free_blocks >= owned_blocks() &&
         bad_blocks - bad_reserved_blocks >= retired_blocks();
}

Status CollectFsInfo(rocksdb::DB* db, const Superblock& sb, const std::string& source,
                     const InfoProgressFn& progress, FsInfo* out) {
  *out = FsInfo{};
  out->sb = sb;
  const PoolGeometry geo = sb.geometry();
  Snapshot snap(db);
  const rocksdb::ReadOptions& ro = snap.ro();

  StoreIdentity id;
  DAXREF_RETURN_IF_ERROR(ReadStoreIdentity(db, ro, &id));
  out->meta_format = id.format;
  out->generation = id.generation;
  std::string label;
  rocksdb::Status ls = db->Get(ro, keys::Misc(kMiscLabel), &label);
  if (ls.ok())
    out->label = label;
  else if (!ls.IsNotFound())
    return Status::IOError("metadata store: reading the label: " + ls.ToString());
  out->data_blocks = sb.data_blocks();
  check::Progress prog(progress);
  prog.Estimate(db);
  // Each record kind walked in turn, with a tick per record.
  auto walk = [&](const char* phase, char p, auto&& fn) {
    DAXREF_RETURN_IF_ERROR(prog.Phase(phase, p));
    return WalkRecords(db, ro, p, [&](std::string_view k, std::string_view v) {
      DAXREF_RETURN_IF_ERROR(fn(k, v));
      return prog.Tick();
    });
  };

  DAXREF_RETURN_IF_ERROR(walk("inodes", prefix::kInode, [&](auto k, auto v) {
    InodeRecord r;
    if (k.size() != 9) return Status::Corruption("inode record with a bad key");
    DAXREF_RETURN_IF_ERROR(DecodeInode(keys::U64At(k, 1), v, &r));
    ++out->inodes;
    if (S_ISDIR(r.mode))
      ++out->directories;
    else if (S_ISREG(r.mode))
      ++out->regular_files;
    else if (S_ISLNK(r.mode))
      ++out->symlinks;
    else
      ++out->special_files;
    return Status::Ok();
  }));
  DAXREF_RETURN_IF_ERROR(walk("extents", prefix::kExtent, [&](auto k, auto v) {
    Extent e;
    DAXREF_RETURN_IF_ERROR(DecodeExtent(k, v, geo, &e));
    ++out->extents;
    out->referenced_blocks += e.len;
    return Status::Ok();
  }));
  DAXREF_RETURN_IF_ERROR(walk("refcounts", prefix::kRefcount, [&](auto k, auto v) {
    RefcountRecord r;
    DAXREF_RETURN_IF_ERROR(DecodeRefcount(k, v, geo, &r));
    out->shared_blocks += r.len;
    out->shared_references += r.len * r.refs;
    return Status::Ok();
  }));
  DAXREF_RETURN_IF_ERROR(walk("free space", prefix::kFree, [&](auto k, auto v) {
    uint64_t pblock = 0, len = 0;
    DAXREF_RETURN_IF_ERROR(DecodeFree(k, v, geo, &pblock, &len));
    out->free_blocks += len;
    ++out->free_extents;
    FsInfo::Bucket& b = out->freesp[Bucket(len)];
    ++b.extents;
    b.blocks += len;
    return Status::Ok();
  }));
  DAXREF_RETURN_IF_ERROR(walk("bad blocks", prefix::kBad, [&](auto k, auto v) {
    uint64_t pblock = 0, len = 0;
    DAXREF_RETURN_IF_ERROR(DecodeBad(k, v, geo, &pblock, &len));
    out->bad_blocks += len;
    // The superblock copies: block 0 and the last block.
    if (pblock == 0) ++out->bad_reserved_blocks;
    if (pblock + len == sb.block_count) ++out->bad_reserved_blocks;
    return Status::Ok();
  }));
  DAXREF_RETURN_IF_ERROR(walk("bad blocks", prefix::kBadOrigin, [&](auto k, auto v) {
    BadOriginRecord r;
    DAXREF_RETURN_IF_ERROR(DecodeBadOrigin(k, v, geo, &r));
    switch (r.origin.kind) {
      case BadOriginKind::kInjected:
        out->bad_injected_blocks += r.len;
        break;
      case BadOriginKind::kMachineCheck:
        out->bad_machine_check_blocks += r.len;
        break;
      case BadOriginKind::kMachineCheckAsync:
        out->bad_machine_check_async_blocks += r.len;
        break;
      case BadOriginKind::kDevice:
        out->bad_device_blocks += r.len;
        break;
      case BadOriginKind::kUnknown:
        break;
    }
    return Status::Ok();
  }));
  DAXREF_RETURN_IF_ERROR(walk("orphans", prefix::kOrphan, [&](auto, auto) {
    ++out->orphans;
    return Status::Ok();
  }));
  DAXREF_RETURN_IF_ERROR(prog.Done());
  MeasureStore(MetaPath(source), out);
  FindHost(PoolPath(source), out);
  return Status::Ok();
}

// ---- info as records --------------------------------------------------------

namespace {

struct NumberField {
  const char* name;
  uint64_t FsInfo::*member;
};
constexpr NumberField kNumbers[] = {
    {"generation", &FsInfo::generation},
    {"data_blocks", &FsInfo::data_blocks},
    {"free_blocks", &FsInfo::free_blocks},
    {"referenced_blocks", &FsInfo::referenced_blocks},
    {"shared_blocks", &FsInfo::shared_blocks},
    {"shared_references", &FsInfo::shared_references},
    {"bad_blocks", &FsInfo::bad_blocks},
    {"bad_reserved_blocks", &FsInfo::bad_reserved_blocks},
    {"bad_injected_blocks", &FsInfo::bad_injected_blocks},
    {"bad_machine_check_blocks", &FsInfo::bad_machine_check_blocks},
    {"bad_machine_check_async_blocks", &FsInfo::bad_machine_check_async_blocks},
    {"bad_device_blocks", &FsInfo::bad_device_blocks},
    {"free_extents", &FsInfo::free_extents},
    {"inodes", &FsInfo::inodes},
    {"directories", &FsInfo::directories},
    {"regular_files", &FsInfo::regular_files},
    {"symlinks", &FsInfo::symlinks},
    {"special_files", &FsInfo::special_files},
    {"orphans", &FsInfo::orphans},
    {"extents", &FsInfo::extents},
    {"store_files", &FsInfo::store_files},
    {"store_bytes", &FsInfo::store_bytes},
    {"store_disk_bytes", &FsInfo::store_disk_bytes},
};
struct StringField {
  const char* name;
  std::string FsInfo::*member;
};
constexpr StringField kStrings[] = {
    {"label", &FsInfo::label},
    {"host_fstype", &FsInfo::host_fstype},
    {"host_mount_point", &FsInfo::host_mount_point},
    {"host_device", &FsInfo::host_device},
    {"log", &FsInfo::log_destination},
};

Status Missing(const char* what) {
  return Status::Error(EPROTO, std::string("the daemon's info reply has no valid ") + what);
}

}  // namespace

void SendFsInfo(const FsInfo& info, const RecordSink& sink) {
  control::Record r("info");
  // The superblock's fields; the uuid as 32 hex digits.
  std::string uuid;
  for (uint8_t b : info.sb.uuid) {
    static constexpr char kHex[] = "0123456789abcdef";
    uuid += kHex[b >> 4];
    uuid += kHex[b & 15];
  }
  r.Add("uuid", uuid).Add("pool_format", info.sb.version).Add("block_size", info.sb.block_size);
  r.Add("blocks", info.sb.block_count).Add("created", info.sb.created);
  r.Add("meta_format", info.meta_format);
  for (const NumberField& f : kNumbers) r.Add(f.name, info.*f.member);
  for (const StringField& f : kStrings) r.Add(f.name, info.*f.member);
  if (!sink(r)) return;
  for (unsigned b = 0; b < info.freesp.size(); ++b) {
    if (info.freesp[b].extents == 0) continue;
    control::Record row("freesp");
    row.Add("bucket", b)
        .Add("extents", info.freesp[b].extents)
        .Add("blocks", info.freesp[b].blocks);
    if (!sink(row)) return;
  }
  sink(control::Record("done"));
}

Status FsInfoFromRecord(const control::Record& r, FsInfo* out) {
  uint64_t v = 0;
  const std::string* uuid = r.Get("uuid");
  if (uuid == nullptr || uuid->size() != 32) return Missing("uuid");
  for (size_t i = 0; i < 16; ++i) {
    auto nibble = [](char c) -> int {
      return c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
    };
    const int hi = nibble((*uuid)[2 * i]), lo = nibble((*uuid)[2 * i + 1]);
    if (hi < 0 || lo < 0) return Missing("uuid");
    out->sb.uuid[i] = static_cast<uint8_t>(hi << 4 | lo);
  }
  if (!r.GetU64("pool_format", &v) || v > UINT32_MAX) return Missing("pool_format");
  out->sb.version = static_cast<uint32_t>(v);
  if (!r.GetU64("block_size", &v) || v != kBlockSize) return Missing("block_size");
  out->sb.block_size = static_cast<uint32_t>(v);
  // At least the smallest pool: data_blocks() must not wrap.
  if (!r.GetU64("blocks", &out->sb.block_count) || out->sb.block_count < kMinPoolBlocks)
    return Missing("blocks");
  if (!r.GetU64("created", &out->sb.created)) return Missing("created");
  if (!r.GetU64("meta_format", &v) || v > UINT32_MAX) return Missing("meta_format");
  out->meta_format = static_cast<uint32_t>(v);
  for (const NumberField& f : kNumbers)
    if (!r.GetU64(f.name, &(out->*f.member))) return Missing(f.name);
  for (const StringField& f : kStrings) {
    const std::string* s = r.Get(f.name);
    if (s == nullptr) return Missing(f.name);
    out->*f.member = *s;
  }
  return Status::Ok();
}

Status FsInfoAddBucket(const control::Record& r, FsInfo* out) {
  uint64_t b = 0;
  if (!r.GetU64("bucket", &b) || b >= out->freesp.size()) return Missing("freesp bucket");
  if (!r.GetU64("extents", &out->freesp[b].extents) || !r.GetU64("blocks", &out->freesp[b].blocks))
    return Missing("freesp row");
  return Status::Ok();
}

// ---- fsmap ------------------------------------------------------------------

const char* FsmapKindName(FsmapRow::Kind k) {
  switch (k) {
    case FsmapRow::kReserved:
      return "reserved";
    case FsmapRow::kFree:
      return "free";
    case FsmapRow::kBad:
      return "bad";
    case FsmapRow::kOwner:
      return "owner";
  }
  return "?";
}

namespace {

// One source of rows in pool order: the F records, the B records, or one
// length class of R records.
class RowStream {
 public:
  RowStream(rocksdb::DB* db, const rocksdb::ReadOptions& ro, FsmapRow::Kind kind, std::string lo,
            std::string hi, const PoolGeometry& geo, uint64_t pb0, uint64_t pb1)
      : kind_(kind), geo_(geo), pb0_(pb0), pb1_(pb1), it_(db, ro, lo, std::move(hi)) {}

  // Positions on the first row that may overlap [pb0, pb1): `seek` is the
  // key to start at; `back` steps to the record before it too (F and B
  // records never overlap, so only the one before can reach into pb0).
  Status Start(const std::string& seek, bool back) {
    if (back) {
      it_->SeekForPrev(seek);
      if (!it_->Valid()) it_->SeekToFirst();
    } else {
      it_->Seek(seek);
    }
    return Advance(false);
  }
  // Moves to the next row overlapping the range (the current one first,
  // unless `step`); valid() false at the end.
  Status Advance(bool step) {
    if (step) it_->Next();
    for (; it_->Valid(); it_->Next()) {
      FsmapRow row;
      row.kind = kind_;
      const std::string_view k = it_->key().ToStringView(), v = it_->value().ToStringView();
      if (kind_ == FsmapRow::kOwner) {
        RmapRecord r;
        DAXREF_RETURN_IF_ERROR(DecodeRmap(k, v, geo_, &r));
        row.pblock = r.pblock;
        row.len = r.len;
        row.ino = r.ino;
        row.fblock = r.fblock;
      } else if (kind_ == FsmapRow::kFree) {
        DAXREF_RETURN_IF_ERROR(DecodeFree(k, v, geo_, &row.pblock, &row.len));
      } else {
        DAXREF_RETURN_IF_ERROR(DecodeBad(k, v, geo_, &row.pblock, &row.len));
      }
      if (row.pblock >= pb1_) break;
      if (row.pblock + row.len <= pb0_) continue;
      // Clipped to the range; an owner's file block moves with its start.
      if (row.pblock < pb0_) {
        row.fblock += pb0_ - row.pblock;
        row.len -= pb0_ - row.pblock;
        row.pblock = pb0_;
      }
      if (row.pblock + row.len > pb1_) row.len = pb1_ - row.pblock;
      cur_ = row;
      valid_ = true;
      return Status::Ok();
    }
    valid_ = false;
    return it_.status(kind_ == FsmapRow::kOwner ? "the reverse map" : FsmapKindName(kind_));
  }
  bool valid() const { return valid_; }
  const FsmapRow& row() const { return cur_; }

 private:
  FsmapRow::Kind kind_;
  PoolGeometry geo_;
  uint64_t pb0_, pb1_;
  RangeIter it_;
  FsmapRow cur_;
  bool valid_ = false;
};

// Pool order, then kind (reserved, bad, free, owner), then inode and file block.
bool Before(const FsmapRow& a, const FsmapRow& b) {
  auto rank = [](FsmapRow::Kind k) {
    return k == FsmapRow::kReserved ? 0 : k == FsmapRow::kBad ? 1 : k == FsmapRow::kFree ? 2 : 3;
  };
  if (a.pblock != b.pblock) return a.pblock < b.pblock;
  if (rank(a.kind) != rank(b.kind)) return rank(a.kind) < rank(b.kind);
  if (a.ino != b.ino) return a.ino < b.ino;
  return a.fblock < b.fblock;
}

}  // namespace

Status WalkFsmap(rocksdb::DB* db, const Superblock& sb, uint64_t pb0, uint64_t pb1,
                 const std::function<bool(const FsmapRow&)>& fn) {
  if (pb1 > sb.block_count) pb1 = sb.block_count;
  if (pb0 >= pb1) return Status::Ok();
  const PoolGeometry geo = sb.geometry();
  Snapshot snap(db);
  std::vector<std::unique_ptr<RowStream>> streams;
  auto single = [&](FsmapRow::Kind kind, char p, const std::string& at) -> Status {
    auto s = std::make_unique<RowStream>(db, snap.ro(), kind, std::string(1, p),
                                         std::string(1, static_cast<char>(p + 1)), geo, pb0, pb1);
    DAXREF_RETURN_IF_ERROR(s->Start(at, true));
    streams.push_back(std::move(s));
    return Status::Ok();
  };
  DAXREF_RETURN_IF_ERROR(single(FsmapRow::kFree, prefix::kFree, keys::Free(pb0)));
  DAXREF_RETURN_IF_ERROR(single(FsmapRow::kBad, prefix::kBad, keys::Bad(pb0)));
  // Class c holds records of 2^c to 2^(c+1)-1 blocks: one that reaches pb0
  // starts no earlier than pb0 - 2^(c+1) + 1 (meta/format.h).
  for (unsigned c = 0; c < kRmapClasses; ++c) {
    const uint64_t reach = c >= 63 ? UINT64_MAX : (uint64_t{2} << c) - 1;
    const uint64_t from = pb0 > reach ? pb0 - reach : 0;
    const std::string lo = keys::RmapClassPrefix(c);
    std::string hi = c + 1 < kRmapClasses ? keys::RmapClassPrefix(c + 1) : keys::Successor(lo);
    auto s = std::make_unique<RowStream>(db, snap.ro(), FsmapRow::kOwner, lo, std::move(hi), geo,
                                         pb0, pb1);
    DAXREF_RETURN_IF_ERROR(s->Start(keys::RmapClassAt(c, from), false));
    if (s->valid()) streams.push_back(std::move(s));
  }
  // The superblock copies, as rows of their own.
  std::vector<FsmapRow> reserved;
  for (uint64_t b : {uint64_t{0}, sb.block_count - 1})
    if (b >= pb0 && b < pb1) reserved.push_back({FsmapRow::kReserved, b, 1, 0, 0});
  size_t next_reserved = 0;
  for (;;) {
    RowStream* best = nullptr;
    for (auto& s : streams)
      if (s->valid() && (best == nullptr || Before(s->row(), best->row()))) best = s.get();
    const bool take_reserved = next_reserved < reserved.size() &&
                               (best == nullptr || Before(reserved[next_reserved], best->row()));
    if (take_reserved) {
      if (!fn(reserved[next_reserved++])) return Status::Ok();
      continue;
    }
    if (best == nullptr) return Status::Ok();
    if (!fn(best->row())) return Status::Ok();
    DAXREF_RETURN_IF_ERROR(best->Advance(true));
  }
}

void SendFsmap(rocksdb::DB* db, const Superblock& sb, uint64_t pb0, uint64_t pb1,
               const RecordSink& sink) {
  bool gone = false;
  Status s = WalkFsmap(db, sb, pb0, pb1, [&](const FsmapRow& row) {
    control::Record r("row");
    r.Add("kind", FsmapKindName(row.kind)).Add("pblock", row.pblock).Add("blocks", row.len);
    if (row.kind == FsmapRow::kOwner) r.Add("ino", row.ino).Add("fblock", row.fblock);
    gone = !sink(r);
    return !gone;
  });
  if (gone) return;
  if (!s.ok()) {
    sink(control::Record("error")
             .Add("errno", static_cast<uint64_t>(s.err()))
             .Add("message", s.message()));
    return;
  }
  sink(control::Record("done"));
}

Status FsmapRowFromRecord(const control::Record& r, FsmapRow* out) {
  const std::string* kind = r.Get("kind");
  if (kind == nullptr) return Missing("fsmap kind");
  bool known = false;
  for (FsmapRow::Kind k : {FsmapRow::kReserved, FsmapRow::kFree, FsmapRow::kBad, FsmapRow::kOwner})
    if (*kind == FsmapKindName(k)) {
      out->kind = k;
      known = true;
    }
  if (!known) return Missing("fsmap kind");
  if (!r.GetU64("pblock", &out->pblock) || !r.GetU64("blocks", &out->len) || out->len == 0)
    return Missing("fsmap range");
  out->ino = out->fblock = 0;
  if (out->kind == FsmapRow::kOwner &&
      (!r.GetU64("ino", &out->ino) || !r.GetU64("fblock", &out->fblock)))
    return Missing("fsmap owner");
  return Status::Ok();
}

}  // namespace daxref

namespace daxref {

namespace {

// The P records of ino, in order: fn(parent, name) returns false to stop.
template <typename Fn>
Status WalkParents(rocksdb::DB* db, uint64_t ino, Fn&& fn) {
  const std::string lo = keys::ParentPrefix(ino);
  RangeIter it(db, rocksdb::ReadOptions(), lo, keys::Successor(lo));
  for (it->SeekToFirst(); it->Valid(); it->Next()) {
    ParentRecord p;
    DAXREF_RETURN_IF_ERROR(DecodeParent(it->key().ToStringView(), &p));
    if (!fn(p)) return Status::Ok();
  }
  return it.status("parent pointers");
}

// The path of directory `dir`, "" for the root.
Status DirectoryPath(rocksdb::DB* db, uint64_t dir, std::string* out) {
  out->clear();
  // A directory has one name; a chain longer than any path can be is a loop.
  for (int depth = 0; dir != kRootIno; ++depth) {
    if (depth > 4096)
      return Status::Corruption("the directories above inode " + std::to_string(dir) +
                                " do not reach the root");
    bool found = false;
    std::string name;
    uint64_t up = 0;
    DAXREF_RETURN_IF_ERROR(WalkParents(db, dir, [&](const ParentRecord& p) {
      found = true;
      name = p.name;
      up = p.parent;
      return false;
    }));
    if (!found)
      return Status::Corruption("directory inode " + std::to_string(dir) + " has no name");
    *out = "/" + name + *out;
    dir = up;
  }
  return Status::Ok();
}

}  // namespace

Status WalkStorePaths(rocksdb::DB* db, uint64_t ino,
                      const std::function<bool(const std::string&)>& fn) {
  if (ino == kRootIno) {
    fn("/");
    return Status::Ok();
  }
  Status inner = Status::Ok();
  DAXREF_RETURN_IF_ERROR(WalkParents(db, ino, [&](const ParentRecord& p) {
    std::string dir;
    inner = DirectoryPath(db, p.parent, &dir);
    if (!inner.ok()) return false;
    return fn(dir + "/" + p.name);
  }));
  return inner;
}

}  // namespace daxref
