#include "meta/repair.h"

#include <rocksdb/db.h>
#include <rocksdb/write_batch.h>
#include <sys/stat.h>

#include <algorithm>
#include <cstring>
#include <map>
#include <memory>
#include <set>
#include <vector>

#include "meta/bad_blocks.h"
#include "meta/check_census.h"
#include "meta/codec.h"
#include "meta/format.h"
#include "meta/lease_record.h"
#include "meta/pool_sweep.h"
#include "meta/set_digest.h"
#include "meta/store.h"

namespace daxref {

namespace {

using check::InodeFacts;
using check::Quote;
using check::Str;

constexpr char kLostFound[] = "lost+found";

Timespec NowTime() {
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  return Timespec{ts.tv_sec, static_cast<uint32_t>(ts.tv_nsec)};
}

std::string Range(uint64_t a, uint64_t b) {
  return "[" + Str(a) + ", " + Str(b) + ")";
}

// Writes the records of one pool-range index (F, B or N) to match a
// sequence of wanted ranges handed over in pool order, against what the
// index held in `snapshot`: adjacent wanted ranges with the same count are
// merged; a record already right stays as it is, every other is deleted or
// written. Changes go out in batches of a thousand.
class RangeIndexWriter {
 public:
  RangeIndexWriter(rocksdb::DB* db, const rocksdb::Snapshot* snapshot, char prefix)
      : db_(db),
        prefix_(prefix),
        lo_(1, prefix),
        hi_(keys::Successor(lo_)),
        lo_s_(lo_),
        hi_s_(hi_) {
    rocksdb::ReadOptions ro;
    ro.snapshot = snapshot;
    ro.iterate_lower_bound = &lo_s_;
    ro.iterate_upper_bound = &hi_s_;
    it_.reset(db->NewIterator(ro));
    it_->Seek(lo_s_);
  }
  // Blocks [start, start+len) belong in the index (with `refs` for N).
  Status Want(uint64_t start, uint64_t len, uint64_t refs) {
    if (have_ && pend_.pblock + pend_.len == start && pend_.refs == refs) {
      pend_.len += len;
      return Status::Ok();
    }
    DAXREF_RETURN_IF_ERROR(FlushPending());
    pend_ = RefcountRecord{start, len, refs};
    have_ = true;
    return Status::Ok();
  }
  Status Finish() {
    DAXREF_RETURN_IF_ERROR(FlushPending());
    for (; it_->Valid(); it_->Next()) Delete(it_->key().ToString());
    if (!it_->status().ok()) return Status::IOError(it_->status().ToString());
    return Commit();
  }
  uint64_t written() const { return written_; }
  uint64_t deleted() const { return deleted_; }

 private:
  std::string Value(const RefcountRecord& r) const {
    return prefix_ == prefix::kRefcount ? EncodeRefcount(r) : EncodeLength(r.len);
  }
  std::string Key(uint64_t pblock) const {
    std::string k(1, prefix_);
    codec::PutU64(&k, pblock);
    return k;
  }
  Status FlushPending() {
    if (!have_) return Status::Ok();
    have_ = false;
    const std::string want = Value(pend_);
    for (; it_->Valid(); it_->Next()) {
      const uint64_t at = keys::U64At(it_->key().ToStringView(), 1);
      if (at >= pend_.pblock) break;
      Delete(it_->key().ToString());
    }
    if (!it_->status().ok()) return Status::IOError(it_->status().ToString());
    bool same = false;
    if (it_->Valid() && keys::U64At(it_->key().ToStringView(), 1) == pend_.pblock) {
      same = it_->value().ToStringView() == want;
      it_->Next();
    }
    if (!same) {
      batch_.Put(Key(pend_.pblock), want);
      written_++;
    }
    return batch_.Count() >= 1000 ? Commit() : Status::Ok();
  }
  void Delete(const std::string& k) {
    batch_.Delete(k);
    deleted_++;
  }
  Status Commit() {
    if (batch_.Count() == 0) return Status::Ok();
    rocksdb::Status s = db_->Write(rocksdb::WriteOptions(), &batch_);
    batch_.Clear();
    return s.ok() ? Status::Ok() : Status::IOError("writing the store: " + s.ToString());
  }

  rocksdb::DB* db_;
  char prefix_;
  std::string lo_, hi_;
  rocksdb::Slice lo_s_, hi_s_;
  std::unique_ptr<rocksdb::Iterator> it_;
  rocksdb::WriteBatch batch_;
  RefcountRecord pend_;
  bool have_ = false;
  uint64_t written_ = 0, deleted_ = 0;
};

// One claimant's blocks to move off a double-claimed range: pool blocks
// [pb, pb+len) inside its extent at file block ext_fblock.
struct Move {
  uint64_t ino = 0;
  uint64_t ext_fblock = 0, ext_pblock = 0, ext_len = 0;
  uint64_t pb = 0, len = 0;
  uint64_t kept_by = 0;  // the inode that keeps the blocks
};

class Repairer {
 public:
  Repairer(rocksdb::DB* db, const RepairOptions& o, const RepairFn& done)
      : db_(db), opts_(o), done_(done), scan_(db, nullptr), progress_(opts_.progress) {}

  Status Run() {
    progress_.Estimate(db_);
    DAXREF_RETURN_IF_ERROR(FixMisc());
    DAXREF_RETURN_IF_ERROR(DropUndecodable());
    DAXREF_RETURN_IF_ERROR(DropLeases());
    DAXREF_RETURN_IF_ERROR(LoadCensus());
    DAXREF_RETURN_IF_ERROR(FixInodeKinds());
    DAXREF_RETURN_IF_ERROR(FixExtents());
    DAXREF_RETURN_IF_ERROR(CompareEntryIndexes());
    DAXREF_RETURN_IF_ERROR(CountEntries());
    if (check_cookies_) {
      DAXREF_RETURN_IF_ERROR(FixCookieRecords());
      DAXREF_RETURN_IF_ERROR(CountEntries());
    }
    DAXREF_RETURN_IF_ERROR(FixEntries());
    if (check_parents_) DAXREF_RETURN_IF_ERROR(FixParentPointers());
    DAXREF_RETURN_IF_ERROR(CountEntries());
    DAXREF_RETURN_IF_ERROR(Reattach());
    DAXREF_RETURN_IF_ERROR(FixSmallRecords());
    DAXREF_RETURN_IF_ERROR(CountExtents());
    DAXREF_RETURN_IF_ERROR(FixInodes());
    DAXREF_RETURN_IF_ERROR(SyncRmap());
    DAXREF_RETURN_IF_ERROR(ResolveDoubleClaims());
    DAXREF_RETURN_IF_ERROR(RebuildSpace());
    DAXREF_RETURN_IF_ERROR(DropStrayBadOrigins());
    DAXREF_RETURN_IF_ERROR(FixCounters());
    return progress_.Done();
  }

 private:
  void Did(ProblemClass cls, std::string text, uint64_t ino = 0) {
    done_(RepairAction{cls, std::move(text), ino});
  }
  Status Write(rocksdb::WriteBatch* b) {
    if (b->Count() == 0) return Status::Ok();
    rocksdb::Status s = db_->Write(rocksdb::WriteOptions(), b);
    b->Clear();
    return s.ok() ? Status::Ok() : Status::IOError("writing the store: " + s.ToString());
  }
  Status Put(const std::string& k, const std::string& v) {
    rocksdb::WriteBatch b;
    b.Put(k, v);
    return Write(&b);
  }
  Status Delete(const std::string& k) {
    rocksdb::WriteBatch b;
    b.Delete(k);
    return Write(&b);
  }
  Status Walk(char p, const std::function<Status(std::string_view, std::string_view)>& fn) {
    return scan_.Walk(std::string(1, p), [&](std::string_view k, std::string_view v) {
      DAXREF_RETURN_IF_ERROR(fn(k, v));
      return progress_.Tick();
    });
  }
  Status GetInode(uint64_t ino, InodeRecord* r) {
    std::string v;
    DAXREF_RETURN_IF_ERROR(scan_.Get(keys::Inode(ino), &v));
    return DecodeInode(ino, v, r);
  }
  uint64_t NextIno();

  Status FixMisc();
  Status DropUndecodable();
  // Q records that do not fit the B records as repaired: deleted (those
  // blocks' origin becomes "unknown").
  Status DropStrayBadOrigins();
  Status DropLeases();
  Status LoadCensus();
  Status FixInodeKinds();
  Status FixExtents();
  Status CompareEntryIndexes();
  Status CountEntries();
  Status FixCookieRecords();
  Status FixEntries();
  Status FixParentPointers();
  Status RemoveEntry(const check::Entry& e, ProblemClass cls, const std::string& why);
  Status Reattach();
  Result<uint64_t> LostFound();
  Status AttachUnder(uint64_t dir, InodeFacts* kid);
  Status FixSmallRecords();
  Status CountExtents();
  Status FixInodes();
  Status ReclaimInode(InodeFacts* f);
  // Adds to `b` the deletion of extent e of ino and of its reverse-map twin.
  void DropExtent(rocksdb::WriteBatch* b, uint64_t ino, const Extent& e);
  // Adds to `b` M inodes moved by delta (when it decodes; FixCounters
  // settles it either way).
  Status AddInodes(rocksdb::WriteBatch* b, int64_t delta);
  bool Released(uint64_t a, uint64_t b) const;
  Status SyncRmap();
  Status ResolveDoubleClaims();
  Status MoveClaims(const std::vector<Move>& moves,
                    std::vector<std::pair<uint64_t, uint64_t>>* free);
  Status RebuildSpace();
  Status FixCounters();

  rocksdb::DB* db_;
  const RepairOptions& opts_;
  const RepairFn& done_;
  check::Scanner scan_;
  check::Progress progress_;
  check::Census census_;
  uint64_t lost_found_ = 0;
  uint64_t next_ino_ = 0;  // from M next_ino, raised past every inode seen
  // Pool ranges that dropped and reclaimed extents let go of, so that
  // rebuilding free space can say why they come back.
  std::vector<std::pair<uint64_t, uint64_t>> released_;
  // Whether the cookie index and the parent pointers may disagree with the
  // entries (their digests differ): only then are they looked up entry by
  // entry.
  bool check_cookies_ = true, check_parents_ = true;
};

void Repairer::DropExtent(rocksdb::WriteBatch* b, uint64_t ino, const Extent& e) {
  b->Delete(keys::Extent(ino, e.fblock));
  b->Delete(keys::Rmap(e.pblock, e.len, ino, e.fblock));
  const uint64_t lo = std::max<uint64_t>(e.pblock, 1);
  const uint64_t hi = e.pblock + e.len < e.pblock ? UINT64_MAX : e.pend();
  if (lo < std::min(hi, opts_.pool.block_count - 1))
    released_.emplace_back(lo, std::min(hi, opts_.pool.block_count - 1));
}

Status Repairer::AddInodes(rocksdb::WriteBatch* b, int64_t delta) {
  std::string v;
  Status s = scan_.Get(keys::Misc(kMiscInodes), &v);
  if (!s.ok() && s.err() != ENOENT) return s;
  uint64_t n = 0;
  if (s.ok() && DecodeLength(v, &n).ok() && static_cast<int64_t>(n) + delta > 0)
    b->Put(keys::Misc(kMiscInodes), EncodeLength(n + delta));
  return Status::Ok();
}

bool Repairer::Released(uint64_t a, uint64_t b) const {
  // released_ is sorted and merged (RebuildSpace): the last range starting
  // before b is the only one that can overlap [a, b).
  auto it = std::lower_bound(released_.begin(), released_.end(), std::make_pair(b, uint64_t{0}));
  return it != released_.begin() && std::prev(it)->second > a;
}

// ---- M records ------------------------------------------------------------------

// The store's identity first: a UUID that names another pool means this is
// not the pool's store, and nothing is touched. A block count that
// disagrees with the pool is taken for damage only when the UUID vouches
// for the store.
Status Repairer::FixMisc() {
  DAXREF_RETURN_IF_ERROR(progress_.Phase("repairing metadata", prefix::kMisc));
  const Superblock& sb = opts_.pool;
  std::string v;
  Status s = scan_.Get(keys::Misc(kMiscUuid), &v);
  if (!s.ok() && s.err() != ENOENT) return s;
  const bool have_uuid = s.ok() && v.size() == 16;
  if (have_uuid && memcmp(v.data(), sb.uuid.data(), 16) != 0) {
    Uuid u;
    memcpy(u.data(), v.data(), 16);
    return Status::Invalid("the metadata store belongs to pool " + UuidToString(u) +
                           ", not to this pool " + UuidToString(sb.uuid) + ": not repaired");
  }
  uint64_t blocks = 0;
  Status bs = scan_.Get(keys::Misc(kMiscBlocks), &v);
  if (!bs.ok() && bs.err() != ENOENT) return bs;
  const bool have_blocks = bs.ok() && DecodeLength(v, &blocks).ok();
  if (have_blocks && blocks != sb.block_count && !have_uuid)
    return Status::Invalid("the metadata store has no pool uuid and describes a pool of " +
                           Str(blocks) + " blocks, not this one of " + Str(sb.block_count) +
                           ": not repaired");
  s = scan_.Get(keys::Misc(kMiscFormat), &v);
  if (!s.ok() && s.err() != ENOENT) return s;
  if (s.ok() && v.size() == 4) {
    const uint32_t f = codec::LoadU32(v.data());
    if (!MetaFormatReadable(f))
      return Status::Invalid("unsupported metadata format version " + Str(f) + ": not repaired");
  } else {
    std::string nv;
    codec::PutU32(&nv, kMetaFormatVersion);
    DAXREF_RETURN_IF_ERROR(Put(keys::Misc(kMiscFormat), nv));
    Did(ProblemClass::kMisc, "metadata format version recorded (" + Str(kMetaFormatVersion) + ")");
  }
  if (!have_uuid) {
    DAXREF_RETURN_IF_ERROR(
        Put(keys::Misc(kMiscUuid), std::string(reinterpret_cast<const char*>(sb.uuid.data()), 16)));
    Did(ProblemClass::kMisc, "pool uuid " + UuidToString(sb.uuid) + " recorded in the store");
  }
  if (!have_blocks || blocks != sb.block_count) {
    DAXREF_RETURN_IF_ERROR(Put(keys::Misc(kMiscBlocks), EncodeLength(sb.block_count)));
    Did(ProblemClass::kMisc, "pool block count " + Str(sb.block_count) + " recorded in the store" +
                                 (have_blocks ? " (it said " + Str(blocks) + ")" : ""));
  }
  // Generation records that do not decode: the pool's generation is the
  // one the store was found to share (a mismatch was refused before any
  // repair); a pending advance that cannot be read is dropped.
  uint64_t g = 0;
  s = scan_.Get(keys::Misc(kMiscGeneration), &v);
  if (!s.ok() && s.err() != ENOENT) return s;
  if (s.ok() && !DecodeLength(v, &g).ok()) {
    DAXREF_RETURN_IF_ERROR(sb.generation > 0
                               ? Put(keys::Misc(kMiscGeneration), EncodeLength(sb.generation))
                               : Delete(keys::Misc(kMiscGeneration)));
    Did(ProblemClass::kMisc,
        "malformed generation record replaced by the pool's generation " + Str(sb.generation));
  }
  s = scan_.Get(keys::Misc(kMiscGenerationPending), &v);
  if (!s.ok() && s.err() != ENOENT) return s;
  uint64_t pending = 0;
  if (s.ok() && (!DecodeLength(v, &pending).ok() || pending <= g)) {
    DAXREF_RETURN_IF_ERROR(Delete(keys::Misc(kMiscGenerationPending)));
    Did(ProblemClass::kMisc, "malformed pending-generation record removed");
  }
  s = scan_.Get(keys::Misc(kMiscNextIno), &v);
  if (s.ok()) DecodeLength(v, &next_ino_).ok();
  return Status::Ok();
}

// ---- records that do not decode ----------------------------------------------------

Status Repairer::DropUndecodable() {
  DAXREF_RETURN_IF_ERROR(progress_.Phase("repairing records"));
  std::unique_ptr<rocksdb::Iterator> it(db_->NewIterator(rocksdb::ReadOptions()));
  rocksdb::WriteBatch b;
  for (it->SeekToFirst(); it->Valid(); it->Next()) {
    std::string_view k = it->key().ToStringView(), v = it->value().ToStringView();
    Status s = check::ValidateRecord(k, v);
    if (!s.ok()) {
      b.Delete(it->key());
      const bool known =
          !k.empty() && std::string_view("BCDEFGILMNOPQRX").find(k[0]) != std::string_view::npos;
      Did(known ? ProblemClass::kUndecodable : ProblemClass::kUnknownRecord,
          "deleted " + std::string(known ? "undecodable record" : "record of no known kind") +
              " (" + check::KeyText(k) + "): " + s.message());
      if (b.Count() >= 1000) DAXREF_RETURN_IF_ERROR(Write(&b));
    }
    DAXREF_RETURN_IF_ERROR(progress_.Tick());
  }
  if (!it->status().ok()) return Status::IOError("reading the store: " + it->status().ToString());
  return Write(&b);
}

// ---- layout leases ---------------------------------------------------------------

// Every G record goes: no daemon runs while fsck repairs, so no lease is
// live (fsck.daxref refuses to get here while a recorded holder still maps
// the pool; docs/dax.md). Those that do not decode went with the rest.
Status Repairer::DropLeases() {
  DAXREF_RETURN_IF_ERROR(progress_.Phase("repairing leases", prefix::kLease));
  rocksdb::WriteBatch b;
  const PoolGeometry geo{opts_.pool.block_count};
  DAXREF_RETURN_IF_ERROR(Walk(prefix::kLease, [&](std::string_view k, std::string_view v) {
    LeaseRecord r;
    b.Delete(k);
    if (DecodeLease(k, v, geo, &r).ok())
      Did(ProblemClass::kLease,
          "deleted " + std::string(LeaseModeName(r.mode)) + " lease " + std::to_string(r.id) +
              " of inode " + std::to_string(r.ino) + " (process " + std::to_string(r.pid) +
              "), left by a daemon that did not unmount cleanly",
          r.ino);
    else
      Did(ProblemClass::kUndecodable,
          "deleted undecodable lease record (" + check::KeyText(k) + ")");
    return Status::Ok();
  }));
  return Write(&b);
}

Status Repairer::DropStrayBadOrigins() {
  DAXREF_RETURN_IF_ERROR(progress_.Phase("repairing pool space", prefix::kBadOrigin));
  const PoolGeometry geo{opts_.pool.block_count};
  BadOriginFit fit;
  DAXREF_RETURN_IF_ERROR(Walk(prefix::kBad, [&](std::string_view k, std::string_view v) {
    uint64_t pblock = 0, len = 0;
    if (DecodeBad(k, v, geo, &pblock, &len).ok()) fit.AddBad(pblock, len);
    return Status::Ok();
  }));
  rocksdb::WriteBatch b;
  DAXREF_RETURN_IF_ERROR(Walk(prefix::kBadOrigin, [&](std::string_view k, std::string_view v) {
    BadOriginRecord r;
    Status s = DecodeBadOrigin(k, v, geo, &r);
    std::string why = s.ok() ? fit.Check(r) : s.message();
    if (!why.empty()) {
      b.Delete(k);
      Did(ProblemClass::kBadBlocks, why + ": deleted");
    }
    return Status::Ok();
  }));
  return Write(&b);
}

// ---- inodes -----------------------------------------------------------------------

Status Repairer::LoadCensus() {
  DAXREF_RETURN_IF_ERROR(progress_.Phase("repairing inodes", prefix::kInode));
  census_.Clear();
  DAXREF_RETURN_IF_ERROR(Walk(prefix::kInode, [&](std::string_view k, std::string_view v) {
    InodeRecord r;
    if (DecodeInode(keys::U64At(k, 1), v, &r).ok()) {
      census_.Append(r);
      next_ino_ = std::max(next_ino_, r.ino + 1);
    }
    return Status::Ok();
  }));
  if (census_.Find(kRootIno) == nullptr) {
    InodeRecord root;
    root.ino = kRootIno;
    root.mode = S_IFDIR | 0755;
    root.nlink = 2;
    root.atime = root.mtime = root.ctime = root.btime = NowTime();
    root.parent = kRootIno;
    root.next_cookie = kFirstCookie;
    DAXREF_RETURN_IF_ERROR(Put(keys::Inode(kRootIno), EncodeInode(root)));
    census_.Append(root);
    next_ino_ = std::max(next_ino_, kRootIno + 1);
    Did(ProblemClass::kInode, "root directory missing: recreated (mode 0755, owner root)",
        kRootIno);
  }
  return Status::Ok();
}

uint64_t Repairer::NextIno() {
  return next_ino_++;
}

// Inodes whose type nothing can serve: an unknown type becomes a regular
// file, a symlink with no target an empty regular file, a root that is not
// a directory a directory. Before the entries are looked at, so that they
// take the inode's type.
Status Repairer::FixInodeKinds() {
  DAXREF_RETURN_IF_ERROR(progress_.Phase("repairing inodes", prefix::kSymlink));
  DAXREF_RETURN_IF_ERROR(Walk(prefix::kSymlink, [&](std::string_view k, std::string_view) {
    InodeFacts* f = census_.Find(keys::U64At(k, 1));
    if (f != nullptr) f->target = true;
    return Status::Ok();
  }));
  for (InodeFacts& f : census_.all()) {
    uint32_t type = 0;
    std::string why;
    if (f.ino == kRootIno && !S_ISDIR(f.mode)) {
      type = S_IFDIR;
      why = "the root inode was a " + std::string(check::TypeName(f.mode)) + ": now a directory";
    } else if (!check::KnownType(f.mode)) {
      type = S_IFREG;
      why = "inode " + Str(f.ino) + " had an unknown file type: now a regular file";
    } else if (S_ISLNK(f.mode) && !f.target) {
      type = S_IFREG;
      why = "symlink " + Str(f.ino) + " had no target: now an empty regular file";
    }
    if (type == 0) continue;
    InodeRecord r;
    DAXREF_RETURN_IF_ERROR(GetInode(f.ino, &r));
    r.mode = type | (r.mode & 07777);
    if (S_ISLNK(f.mode)) r.size = 0;
    if (type == S_IFDIR) {
      r.parent = kRootIno;
      r.next_cookie = std::max(r.next_cookie, kFirstCookie);
    } else {
      r.parent = 0;
      r.next_cookie = 0;
    }
    DAXREF_RETURN_IF_ERROR(Put(keys::Inode(f.ino), EncodeInode(r)));
    const ProblemClass cls = S_ISLNK(f.mode) ? ProblemClass::kSymlink : ProblemClass::kInode;
    f.mode = r.mode, f.size = r.size, f.parent = r.parent, f.next_cookie = r.next_cookie;
    Did(cls, why, f.ino);
  }
  return Status::Ok();
}

// ---- extents ----------------------------------------------------------------------

Status Repairer::FixExtents() {
  DAXREF_RETURN_IF_ERROR(progress_.Phase("repairing extents", prefix::kExtent));
  uint64_t prev_ino = 0, prev_end = 0;
  std::map<uint64_t, uint64_t> homeless;  // inode with extents but no record -> end block
  DAXREF_RETURN_IF_ERROR(Walk(prefix::kExtent, [&](std::string_view k, std::string_view v) {
    Extent e;
    check::DecodeExtentShape(k, v, &e).ok();
    const uint64_t ino = keys::U64At(k, 1);
    const std::string what =
        "extent of inode " + Str(ino) + " at file blocks " + Range(e.fblock, e.fblock + e.len);
    const std::string geometry = check::ExtentGeometry(e, opts_.pool.block_count);
    if (!geometry.empty()) {
      Did(ProblemClass::kExtentGeometry, "dropped " + what + " (" + geometry + "): now a hole",
          ino);
      rocksdb::WriteBatch b;
      DropExtent(&b, ino, e);
      return Write(&b);
    }
    if (ino == prev_ino && e.fblock < prev_end) {
      Did(ProblemClass::kExtentOverlap,
          "dropped " + what + ": it overlaps the extent before it; now a hole", ino);
      rocksdb::WriteBatch b;
      DropExtent(&b, ino, e);
      return Write(&b);
    }
    if (ino != prev_ino || e.fend() > prev_end) prev_end = e.fend();
    prev_ino = ino;
    InodeFacts* f = census_.Find(ino);
    if (ino == 0) {
      Did(ProblemClass::kExtentOwner, "dropped " + what + ": there is no inode 0", ino);
      rocksdb::WriteBatch b;
      DropExtent(&b, ino, e);
      return Write(&b);
    }
    if (f == nullptr) {
      uint64_t& end = homeless[ino];
      end = std::max(end, e.fend());
      return Status::Ok();
    }
    if (!S_ISREG(f->mode)) {
      Did(ProblemClass::kExtentOwner,
          "dropped " + what + ": inode " + Str(ino) + " is a " + check::TypeName(f->mode) +
              ", not a regular file",
          ino);
      rocksdb::WriteBatch b;
      DropExtent(&b, ino, e);
      return Write(&b);
    }
    return Status::Ok();
  }));
  // Extents whose inode record is gone still hold a file's data: the inode
  // is made again, as a regular file, and linked where an entry still names
  // it or under /lost+found.
  for (const auto& [ino, end] : homeless) {
    InodeRecord r;
    r.ino = ino;
    r.mode = S_IFREG | 0600;
    r.nlink = 1;  // a file someone linked: reattached, not reclaimed
    r.size = end << kBlockShift;
    r.atime = r.mtime = r.ctime = r.btime = NowTime();
    DAXREF_RETURN_IF_ERROR(Put(keys::Inode(ino), EncodeInode(r)));
    census_.Append(r);
    next_ino_ = std::max(next_ino_, ino + 1);
    Did(ProblemClass::kExtentOwner,
        "inode " + Str(ino) + " had extents but no inode record: recreated as a regular file of " +
            Str(r.size) + " bytes, mode 0600, owner root",
        ino);
  }
  return Status::Ok();
}

// ---- the namespace ----------------------------------------------------------------

// The checker's digests (meta/set_digest.h) over D, C and P: when D and C
// (or D and P) are the same set, no entry needs its cookie record (or parent
// pointer) looked up, which on a large, mostly healthy store is most of the
// namespace passes' time.
Status Repairer::CompareEntryIndexes() {
  DAXREF_RETURN_IF_ERROR(progress_.Phase("repairing directories", prefix::kDirent));
  SetDigest d_cookie, c_cookie, d_parent, p_parent;
  DAXREF_RETURN_IF_ERROR(Walk(prefix::kDirent, [&](std::string_view k, std::string_view v) {
    check::Entry e;
    if (check::DecodeEntry(k, v, &e).ok()) {
      d_cookie.Add(SetDigest::Member({e.dir, e.d.cookie, e.d.ino, e.d.type}, e.name));
      d_parent.Add(SetDigest::Member({e.d.ino, e.dir}, e.name));
    }
    return Status::Ok();
  }));
  DAXREF_RETURN_IF_ERROR(Walk(prefix::kDirCookie, [&](std::string_view k, std::string_view v) {
    check::CookieEntry c;
    if (check::DecodeCookieEntry(k, v, &c).ok())
      c_cookie.Add(SetDigest::Member({c.dir, c.cookie, c.d.ino, c.d.type}, c.name));
    return Status::Ok();
  }));
  DAXREF_RETURN_IF_ERROR(Walk(prefix::kParent, [&](std::string_view k, std::string_view) {
    ParentRecord p;
    if (DecodeParent(k, &p).ok()) p_parent.Add(SetDigest::Member({p.ino, p.parent}, p.name));
    return Status::Ok();
  }));
  check_cookies_ = d_cookie != c_cookie;
  check_parents_ = d_parent != p_parent;
  return Status::Ok();
}

Status Repairer::CountEntries() {
  DAXREF_RETURN_IF_ERROR(progress_.Phase("repairing directories", prefix::kDirent));
  for (InodeFacts& f : census_.all()) {
    f.links = f.subdirs = 0;
    f.named_in = f.max_cookie = 0;
    f.reach = InodeFacts::kUnknown;
  }
  return Walk(prefix::kDirent, [&](std::string_view k, std::string_view v) {
    check::Entry e;
    if (!check::DecodeEntry(k, v, &e).ok()) return Status::Ok();
    InodeFacts* dir = census_.Find(e.dir);
    InodeFacts* kid = census_.Find(e.d.ino);
    if (dir == nullptr || dir->gone || !S_ISDIR(dir->mode) || kid == nullptr || kid->gone)
      return Status::Ok();
    kid->links++;
    dir->max_cookie = std::max(dir->max_cookie, e.d.cookie);
    if (S_ISDIR(kid->mode)) {
      dir->subdirs++;
      // A directory keeps the entry in the directory its parent field
      // names, if there is one; else the first met.
      if (kid->named_in == 0 || e.dir == kid->parent) kid->named_in = e.dir;
    } else if (kid->named_in == 0) {
      kid->named_in = e.dir;
    }
    return Status::Ok();
  });
}

// C records: one whose entry is gone brings the entry back (it carries all
// of it); one that an entry no longer uses goes.
Status Repairer::FixCookieRecords() {
  DAXREF_RETURN_IF_ERROR(progress_.Phase("repairing directories", prefix::kDirCookie));
  return Walk(prefix::kDirCookie, [&](std::string_view k, std::string_view v) {
    check::CookieEntry c;
    if (!check::DecodeCookieEntry(k, v, &c).ok()) return Status::Ok();
    std::string dv;
    Status s = scan_.Get(keys::Dirent(c.dir, c.name), &dv);
    if (!s.ok() && s.err() != ENOENT) return s;
    const std::string where = Quote(c.name) + " in directory " + Str(c.dir);
    if (s.ok()) {
      DirentRecord d;
      if (DecodeDirent(dv, &d).ok() && d.cookie == c.cookie) return Status::Ok();
      Did(ProblemClass::kCookie,
          "removed readdir cookie record " + Str(c.cookie) + " for " + where +
              ": the entry has another cookie",
          c.dir);
      return Delete(std::string(k));
    }
    InodeFacts* dir = census_.Find(c.dir);
    InodeFacts* kid = census_.Find(c.d.ino);
    const bool restorable = dir != nullptr && S_ISDIR(dir->mode) && kid != nullptr &&
                            c.d.ino != kRootIno && check::ValidName(c.name) &&
                            c.cookie >= kFirstCookie && !(S_ISDIR(kid->mode) && kid->links > 0);
    if (!restorable) {
      Did(ProblemClass::kCookie,
          "removed readdir cookie record " + Str(c.cookie) + " for " + where +
              ": no such entry, and it names " +
              (kid == nullptr ? "a missing inode" : "what cannot be restored"),
          c.dir);
      return Delete(std::string(k));
    }
    DirentRecord d{c.d.ino, kid->mode & S_IFMT, c.cookie};
    rocksdb::WriteBatch b;
    b.Put(keys::Dirent(c.dir, c.name), EncodeDirent(d));
    b.Put(std::string(k), EncodeCookie(d, c.name));
    b.Put(keys::Parent(c.d.ino, c.dir, c.name), "");
    kid->links++;
    Did(ProblemClass::kCookie,
        "restored entry " + where + " (inode " + Str(c.d.ino) + ") from its readdir cookie record",
        c.d.ino);
    return Write(&b);
  });
}

Status Repairer::RemoveEntry(const check::Entry& e, ProblemClass cls, const std::string& why) {
  rocksdb::WriteBatch b;
  b.Delete(keys::Dirent(e.dir, e.name));
  std::string cv;
  Status s = scan_.Get(keys::DirCookie(e.dir, e.d.cookie), &cv);
  if (!s.ok() && s.err() != ENOENT) return s;
  check::CookieEntry c;
  if (s.ok() && check::DecodeCookieEntry(keys::DirCookie(e.dir, e.d.cookie), cv, &c).ok() &&
      c.name == e.name)
    b.Delete(keys::DirCookie(e.dir, e.d.cookie));
  b.Delete(keys::Parent(e.d.ino, e.dir, e.name));
  Did(cls, "removed entry " + Quote(e.name) + " in directory " + Str(e.dir) + ": " + why, e.dir);
  return Write(&b);
}

// D records: the truth of the namespace. Each either goes (it names
// nothing, sits in something that is not a directory, or is a second name
// of a directory) or is made whole: its type, its cookie, its cookie
// record and its parent pointer.
Status Repairer::FixEntries() {
  DAXREF_RETURN_IF_ERROR(progress_.Phase("repairing directories", prefix::kDirent));
  return Walk(prefix::kDirent, [&](std::string_view k, std::string_view v) {
    check::Entry e;
    if (!check::DecodeEntry(k, v, &e).ok()) return Status::Ok();
    InodeFacts* dir = census_.Find(e.dir);
    InodeFacts* kid = census_.Find(e.d.ino);
    if (dir == nullptr || !S_ISDIR(dir->mode))
      return RemoveEntry(e, ProblemClass::kDirent, "not a directory");
    if (!check::ValidName(e.name)) return RemoveEntry(e, ProblemClass::kDirent, "invalid name");
    if (kid == nullptr)
      return RemoveEntry(e, ProblemClass::kDirent, "it named missing inode " + Str(e.d.ino));
    if (kid->ino == kRootIno)
      return RemoveEntry(e, ProblemClass::kDirent, "it named the root directory");
    // A directory keeps one entry: the first met in the directory
    // CountEntries chose. `reach` marks it kept (CountEntries resets it).
    if (S_ISDIR(kid->mode) && (kid->named_in != e.dir || kid->reach == InodeFacts::kReachable))
      return RemoveEntry(
          e, ProblemClass::kDirent,
          "a second name of directory " + Str(kid->ino) + " (named in " + Str(kid->named_in) + ")");
    if (S_ISDIR(kid->mode)) kid->reach = InodeFacts::kReachable;
    rocksdb::WriteBatch b;
    const std::string where = "entry " + Quote(e.name) + " in directory " + Str(e.dir);
    DirentRecord d = e.d;
    if ((kid->mode & S_IFMT) != d.type) {
      d.type = kid->mode & S_IFMT;
      Did(ProblemClass::kDirent,
          where + " now says " + check::TypeName(d.type) + ", as inode " + Str(kid->ino) + " is",
          e.dir);
    }
    std::string cv;
    Status s = Status::NotFound("");
    if (check_cookies_) {
      s = scan_.Get(keys::DirCookie(e.dir, d.cookie), &cv);
      if (!s.ok() && s.err() != ENOENT) return s;
    } else {
      // The cookie index is the entries' twin: this entry's record is there,
      // as the entry is now.
      cv = EncodeCookie(e.d, e.name);
      s = Status::Ok();
    }
    check::CookieEntry c;
    const bool have_c =
        s.ok() && check::DecodeCookieEntry(keys::DirCookie(e.dir, d.cookie), cv, &c).ok();
    bool collides = d.cookie < kFirstCookie;
    if (have_c && c.name != e.name) {
      // Another entry's cookie record: if that entry really has this cookie,
      // this one gets a new cookie.
      std::string ov;
      Status os = scan_.Get(keys::Dirent(e.dir, c.name), &ov);
      if (!os.ok() && os.err() != ENOENT) return os;
      DirentRecord other;
      collides |= os.ok() && DecodeDirent(ov, &other).ok() && other.cookie == d.cookie;
    }
    if (collides) {
      InodeRecord dr;
      DAXREF_RETURN_IF_ERROR(GetInode(e.dir, &dr));
      const uint64_t old = d.cookie;
      d.cookie = std::max({dr.next_cookie, dir->max_cookie + 1, kFirstCookie});
      dr.next_cookie = d.cookie + 1;
      dir->next_cookie = dr.next_cookie;
      dir->max_cookie = d.cookie;
      b.Put(keys::Inode(e.dir), EncodeInode(dr));
      Did(ProblemClass::kCookie,
          where + " had cookie " + Str(old) + ", which another entry uses: now " + Str(d.cookie),
          e.dir);
    }
    const std::string want_c = EncodeCookie(d, e.name);
    if (collides || !have_c || cv != want_c) {
      b.Put(keys::DirCookie(e.dir, d.cookie), want_c);
      if (!collides)
        Did(ProblemClass::kCookie,
            where + ": readdir cookie record " + Str(d.cookie) + " rewritten", e.dir);
    }
    if (d.type != e.d.type || d.cookie != e.d.cookie) b.Put(std::string(k), EncodeDirent(d));
    s = Status::Ok();
    if (check_parents_) s = scan_.Get(keys::Parent(e.d.ino, e.dir, e.name), &cv);
    if (!s.ok() && s.err() != ENOENT) return s;
    if (!s.ok()) {
      b.Put(keys::Parent(e.d.ino, e.dir, e.name), "");
      Did(ProblemClass::kParentPointer,
          where + ": parent pointer of inode " + Str(e.d.ino) + " added", e.d.ino);
    }
    return Write(&b);
  });
}

Status Repairer::FixParentPointers() {
  DAXREF_RETURN_IF_ERROR(progress_.Phase("repairing directories", prefix::kParent));
  return Walk(prefix::kParent, [&](std::string_view k, std::string_view) {
    ParentRecord p;
    if (!DecodeParent(k, &p).ok()) return Status::Ok();
    std::string dv;
    Status s = scan_.Get(keys::Dirent(p.parent, p.name), &dv);
    if (!s.ok() && s.err() != ENOENT) return s;
    DirentRecord d;
    if (s.ok() && DecodeDirent(dv, &d).ok() && d.ino == p.ino) return Status::Ok();
    Did(ProblemClass::kParentPointer,
        "removed parent pointer of inode " + Str(p.ino) + " (" + Quote(p.name) + " in directory " +
            Str(p.parent) + "): no such entry",
        p.ino);
    return Delete(std::string(k));
  });
}

// The directory that takes what nothing else reaches: /lost+found, made on
// first use (a name taken by something else gives "lost+found.1", ...).
Result<uint64_t> Repairer::LostFound() {
  if (lost_found_ != 0) return lost_found_;
  std::string name = kLostFound;
  for (int n = 1;; ++n) {
    std::string dv;
    Status s = scan_.Get(keys::Dirent(kRootIno, name), &dv);
    if (!s.ok() && s.err() != ENOENT) return s;
    if (!s.ok()) break;
    DirentRecord d;
    InodeFacts* f = DecodeDirent(dv, &d).ok() ? census_.Find(d.ino) : nullptr;
    if (f != nullptr && S_ISDIR(f->mode)) return lost_found_ = d.ino;
    name = std::string(kLostFound) + "." + Str(n);
  }
  InodeRecord root;
  DAXREF_RETURN_IF_ERROR(GetInode(kRootIno, &root));
  InodeRecord lf;
  lf.ino = NextIno();
  lf.mode = S_IFDIR | 0700;
  lf.nlink = 2;
  lf.atime = lf.mtime = lf.ctime = lf.btime = NowTime();
  lf.parent = kRootIno;
  lf.next_cookie = kFirstCookie;
  InodeFacts* rf = census_.Find(kRootIno);
  DirentRecord d{lf.ino, S_IFDIR, std::max({root.next_cookie, rf->max_cookie + 1, kFirstCookie})};
  root.next_cookie = d.cookie + 1;
  root.nlink++;
  root.mtime = root.ctime = lf.mtime;
  rocksdb::WriteBatch b;
  b.Put(keys::Inode(lf.ino), EncodeInode(lf));
  b.Put(keys::Inode(kRootIno), EncodeInode(root));
  b.Put(keys::Dirent(kRootIno, name), EncodeDirent(d));
  b.Put(keys::DirCookie(kRootIno, d.cookie), EncodeCookie(d, name));
  b.Put(keys::Parent(lf.ino, kRootIno, name), "");
  b.Put(keys::Misc(kMiscNextIno), EncodeLength(next_ino_));
  DAXREF_RETURN_IF_ERROR(AddInodes(&b, +1));
  DAXREF_RETURN_IF_ERROR(Write(&b));
  census_.Append(lf);
  rf = census_.Find(kRootIno);
  // The census mirrors every inode record the repair writes (FixInodes
  // compares against it).
  rf->max_cookie = d.cookie;
  rf->next_cookie = root.next_cookie;
  rf->nlink = root.nlink;
  rf->subdirs++;
  InodeFacts* f = census_.Find(lf.ino);
  f->links = 1;
  f->named_in = kRootIno;
  f->reach = InodeFacts::kReachable;
  Did(ProblemClass::kUnreachable, "created /" + name + " (inode " + Str(lf.ino) + ")", lf.ino);
  return lost_found_ = lf.ino;
}

// Links `kid` in `dir` as "#INO" (or "#INO.N" if that is taken).
Status Repairer::AttachUnder(uint64_t dir, InodeFacts* kid) {
  const uint64_t ino = kid->ino;
  const uint32_t type = kid->mode & S_IFMT;
  std::string name = "#" + Str(ino);
  for (int n = 1;; ++n) {
    std::string dv;
    Status s = scan_.Get(keys::Dirent(dir, name), &dv);
    if (!s.ok() && s.err() != ENOENT) return s;
    if (!s.ok()) break;
    name = "#" + Str(ino) + "." + Str(n);
  }
  InodeRecord dr;
  DAXREF_RETURN_IF_ERROR(GetInode(dir, &dr));
  InodeFacts* df = census_.Find(dir);
  DirentRecord d{ino, type, std::max({dr.next_cookie, df->max_cookie + 1, kFirstCookie})};
  dr.next_cookie = d.cookie + 1;
  if (type == S_IFDIR) dr.nlink++;
  dr.mtime = dr.ctime = NowTime();
  rocksdb::WriteBatch b;
  b.Put(keys::Inode(dir), EncodeInode(dr));
  b.Put(keys::Dirent(dir, name), EncodeDirent(d));
  b.Put(keys::DirCookie(dir, d.cookie), EncodeCookie(d, name));
  b.Put(keys::Parent(ino, dir, name), "");
  if (type == S_IFDIR) {
    InodeRecord kr;
    DAXREF_RETURN_IF_ERROR(GetInode(ino, &kr));
    kr.parent = dir;
    b.Put(keys::Inode(ino), EncodeInode(kr));
    kid->parent = dir;
    df->subdirs++;
  }
  DAXREF_RETURN_IF_ERROR(Write(&b));
  df->max_cookie = d.cookie;
  df->next_cookie = dr.next_cookie;
  df->nlink = dr.nlink;
  kid->links++;
  kid->named_in = dir;
  Did(ProblemClass::kUnreachable,
      std::string(check::TypeName(type)) + " " + Str(ino) +
          " was not reachable from the root: linked as /" +
          (dir == lost_found_ ? std::string(kLostFound) : Str(dir)) + "/" + name,
      ino);
  return Status::Ok();
}

// Every inode reachable again: each cut-off tree of directories is hung,
// by its top, under /lost+found (a loop is cut at the directory where the
// walk up meets itself), then every linked file that no entry names.
Status Repairer::Reattach() {
  DAXREF_RETURN_IF_ERROR(progress_.Phase("repairing the tree"));
  for (size_t round = 0; round <= census_.size(); ++round) {
    census_.ResolveDirectories();
    InodeFacts* cut = nullptr;
    for (InodeFacts& f : census_.all()) {
      if (S_ISDIR(f.mode) && !f.gone && f.reach != InodeFacts::kReachable) {
        cut = &f;
        break;
      }
    }
    if (cut == nullptr) break;
    // Walk up to the top of the cut-off tree.
    std::set<uint64_t> seen;
    InodeFacts* top = cut;
    bool loop = false;
    for (;;) {
      seen.insert(top->ino);
      InodeFacts* up = top->named_in != 0 ? census_.Find(top->named_in) : nullptr;
      if (up == nullptr || !S_ISDIR(up->mode)) break;
      if (seen.count(up->ino)) {
        loop = true;
        break;
      }
      top = up;
    }
    if (loop) {
      // Cut the loop: remove the entries in top->named_in that name top.
      const uint64_t in = top->named_in;
      std::vector<check::Entry> cuts;
      DAXREF_RETURN_IF_ERROR(
          scan_.Walk(keys::DirentPrefix(in), [&](std::string_view k, std::string_view v) {
            check::Entry e;
            if (check::DecodeEntry(k, v, &e).ok() && e.d.ino == top->ino) cuts.push_back(e);
            return Status::Ok();
          }));
      for (const check::Entry& e : cuts)
        DAXREF_RETURN_IF_ERROR(
            RemoveEntry(e, ProblemClass::kUnreachable,
                        "it closed a loop of directories cut off from the root"));
      InodeFacts* d = census_.Find(in);
      if (d != nullptr && d->subdirs >= cuts.size()) d->subdirs -= cuts.size();
      top->links = 0;
      top->named_in = 0;
    }
    Result<uint64_t> lf = LostFound();
    if (!lf.ok()) return lf.status();
    top = census_.Find(top->ino);  // LostFound may have grown the census
    if (top->ino == *lf) return Status::Invalid("lost+found is itself cut off");
    DAXREF_RETURN_IF_ERROR(AttachUnder(*lf, top));
  }
  // Linked files no entry names (LostFound may grow the census: collect
  // first).
  std::vector<uint64_t> loose;
  for (const InodeFacts& f : census_.all())
    if (!S_ISDIR(f.mode) && !f.gone && f.links == 0 && f.nlink > 0) loose.push_back(f.ino);
  for (uint64_t ino : loose) {
    Result<uint64_t> lf = LostFound();
    if (!lf.ok()) return lf.status();
    DAXREF_RETURN_IF_ERROR(AttachUnder(*lf, census_.Find(ino)));
  }
  return Status::Ok();
}

// O, X and L records that belong to nothing, or say what is not so.
Status Repairer::FixSmallRecords() {
  DAXREF_RETURN_IF_ERROR(progress_.Phase("repairing inodes", prefix::kOrphan));
  DAXREF_RETURN_IF_ERROR(Walk(prefix::kOrphan, [&](std::string_view k, std::string_view) {
    const uint64_t ino = keys::U64At(k, 1);
    InodeFacts* f = census_.Find(ino);
    if (f == nullptr) {
      Did(ProblemClass::kOrphan, "removed the orphan record of missing inode " + Str(ino), ino);
      return Delete(std::string(k));
    }
    if (f->links > 0) {
      Did(ProblemClass::kOrphan, "inode " + Str(ino) + " is linked: taken off the orphan list",
          ino);
      return Delete(std::string(k));
    }
    f->orphan = true;
    return Status::Ok();
  }));
  DAXREF_RETURN_IF_ERROR(progress_.Phase("repairing inodes", prefix::kXattr));
  DAXREF_RETURN_IF_ERROR(Walk(prefix::kXattr, [&](std::string_view k, std::string_view) {
    const uint64_t ino = keys::U64At(k, 1);
    InodeFacts* f = census_.Find(ino);
    if (f != nullptr) {
      f->xattrs = true;
      return Status::Ok();
    }
    Did(ProblemClass::kXattr,
        "removed extended attribute " + Quote(k.substr(9)) + " of missing inode " + Str(ino), ino);
    return Delete(std::string(k));
  }));
  DAXREF_RETURN_IF_ERROR(progress_.Phase("repairing inodes", prefix::kSymlink));
  return Walk(prefix::kSymlink, [&](std::string_view k, std::string_view) {
    const uint64_t ino = keys::U64At(k, 1);
    InodeFacts* f = census_.Find(ino);
    if (f != nullptr && S_ISLNK(f->mode)) return Status::Ok();
    Did(ProblemClass::kSymlink,
        "removed the symlink target of inode " + Str(ino) + ", which is not a symlink", ino);
    return Delete(std::string(k));
  });
}

Status Repairer::CountExtents() {
  DAXREF_RETURN_IF_ERROR(progress_.Phase("repairing inodes", prefix::kExtent));
  for (InodeFacts& f : census_.all()) f.ext_blocks = 0;
  InodeFacts* f = nullptr;
  return Walk(prefix::kExtent, [&](std::string_view k, std::string_view v) {
    Extent e;
    if (!check::DecodeExtentShape(k, v, &e).ok()) return Status::Ok();
    const uint64_t ino = keys::U64At(k, 1);
    if (f == nullptr || f->ino != ino) f = census_.Find(ino);
    if (f != nullptr) f->ext_blocks += e.len;
    return Status::Ok();
  });
}

// Deletes an unlinked inode and everything it has, as Volume::Reclaim does
// at mount; its blocks come back when free space is rebuilt.
Status Repairer::ReclaimInode(InodeFacts* f) {
  rocksdb::WriteBatch b;
  DAXREF_RETURN_IF_ERROR(
      scan_.Walk(keys::ExtentPrefix(f->ino), [&](std::string_view k, std::string_view v) {
        Extent e;
        if (check::DecodeExtentShape(k, v, &e).ok()) DropExtent(&b, f->ino, e);
        return Status::Ok();
      }));
  DAXREF_RETURN_IF_ERROR(
      scan_.Walk(keys::XattrPrefix(f->ino), [&](std::string_view k, std::string_view) {
        b.Delete(std::string(k));
        return Status::Ok();
      }));
  b.Delete(keys::Symlink(f->ino));
  b.Delete(keys::Orphan(f->ino));
  b.Delete(keys::Inode(f->ino));
  DAXREF_RETURN_IF_ERROR(AddInodes(&b, -1));
  DAXREF_RETURN_IF_ERROR(Write(&b));
  Did(ProblemClass::kOrphan,
      "reclaimed unlinked inode " + Str(f->ino) + " (" + Str(f->ext_blocks) + " blocks released)",
      f->ino);
  f->gone = true;
  return Status::Ok();
}

// Every inode's own fields made to agree with the records about it.
Status Repairer::FixInodes() {
  DAXREF_RETURN_IF_ERROR(progress_.Phase("repairing inodes", prefix::kInode));
  for (InodeFacts& f : census_.all()) {
    if (f.gone) continue;
    DAXREF_RETURN_IF_ERROR(progress_.Tick());
    const bool dir = S_ISDIR(f.mode);
    if (!dir && f.links == 0) {
      DAXREF_RETURN_IF_ERROR(ReclaimInode(&f));
      continue;
    }
    // Most inodes are right already: compare the facts first, read only
    // the ones that need a change.
    const uint64_t want_nlink = dir ? 2 + uint64_t{f.subdirs} : f.links;
    const uint64_t want_parent = !dir ? f.parent : f.ino == kRootIno ? kRootIno : f.named_in;
    const bool cookie_ok = !dir || (f.next_cookie > f.max_cookie && f.next_cookie >= kFirstCookie);
    if (f.nlink == want_nlink && f.parent == want_parent && cookie_ok && f.blocks == f.ext_blocks &&
        (!f.xattrs || (f.flags & kInodeHasXattrs)))
      continue;
    InodeRecord r;
    DAXREF_RETURN_IF_ERROR(GetInode(f.ino, &r));
    const InodeRecord before = r;
    const std::string name = "inode " + Str(f.ino);
    if (dir) {
      const uint64_t nlink = 2 + uint64_t{f.subdirs};
      if (r.nlink != nlink) {
        Did(ProblemClass::kNlink,
            "directory " + Str(f.ino) + ": nlink " + Str(r.nlink) + " set to " + Str(nlink), f.ino);
        r.nlink = static_cast<uint32_t>(nlink);
      }
      const uint64_t parent = f.ino == kRootIno ? kRootIno : f.named_in;
      if (r.parent != parent) {
        Did(ProblemClass::kDirParent,
            "directory " + Str(f.ino) + ": parent " + Str(r.parent) + " set to " + Str(parent),
            f.ino);
        r.parent = parent;
      }
      const uint64_t cookie = std::max({r.next_cookie, f.max_cookie + 1, kFirstCookie});
      if (r.next_cookie != cookie) {
        Did(ProblemClass::kCookie,
            "directory " + Str(f.ino) + ": next cookie " + Str(r.next_cookie) + " set to " +
                Str(cookie),
            f.ino);
        r.next_cookie = cookie;
      }
    } else if (r.nlink != f.links) {
      Did(ProblemClass::kNlink, name + ": nlink " + Str(r.nlink) + " set to " + Str(f.links),
          f.ino);
      r.nlink = f.links;
    }
    if (r.blocks != f.ext_blocks) {
      Did(ProblemClass::kBlocks,
          name + ": blocks " + Str(r.blocks) + " set to " + Str(f.ext_blocks), f.ino);
      r.blocks = f.ext_blocks;
    }
    if (f.xattrs && !(r.flags & kInodeHasXattrs)) {
      Did(ProblemClass::kXattr, name + ": marked as having extended attributes", f.ino);
      r.flags |= kInodeHasXattrs;
    }
    if (EncodeInode(r) != EncodeInode(before))
      DAXREF_RETURN_IF_ERROR(Put(keys::Inode(f.ino), EncodeInode(r)));
    f.nlink = r.nlink, f.parent = r.parent, f.blocks = r.blocks, f.flags = r.flags;
  }
  return Status::Ok();
}

// ---- pool space ---------------------------------------------------------------------

// The reverse map made exactly the twins of the extents.
Status Repairer::SyncRmap() {
  DAXREF_RETURN_IF_ERROR(progress_.Phase("repairing the reverse map", prefix::kExtent));
  SetDigest e_map, r_map;
  DAXREF_RETURN_IF_ERROR(Walk(prefix::kExtent, [&](std::string_view k, std::string_view v) {
    Extent e;
    if (check::DecodeExtentShape(k, v, &e).ok())
      e_map.Add(SetDigest::Member({keys::U64At(k, 1), e.fblock, e.pblock, e.len}));
    return Status::Ok();
  }));
  DAXREF_RETURN_IF_ERROR(Walk(prefix::kRmap, [&](std::string_view k, std::string_view v) {
    RmapRecord r;
    if (check::DecodeRmapShape(k, v, &r).ok())
      r_map.Add(SetDigest::Member({r.ino, r.fblock, r.pblock, r.len}));
    return Status::Ok();
  }));
  if (e_map == r_map) return Status::Ok();
  rocksdb::WriteBatch b;
  uint64_t added = 0, removed = 0;
  DAXREF_RETURN_IF_ERROR(Walk(prefix::kExtent, [&](std::string_view k, std::string_view v) {
    Extent e;
    if (!check::DecodeExtentShape(k, v, &e).ok()) return Status::Ok();
    const uint64_t ino = keys::U64At(k, 1);
    const std::string rk = keys::Rmap(e.pblock, e.len, ino, e.fblock);
    std::string rv;
    Status s = scan_.Get(rk, &rv);
    if (!s.ok() && s.err() != ENOENT) return s;
    if (s.ok() && rv == EncodeLength(e.len)) return Status::Ok();
    b.Put(rk, EncodeLength(e.len));
    if (++added <= 100)
      Did(ProblemClass::kRmap,
          "reverse-map record added for inode " + Str(ino) + " at file block " + Str(e.fblock) +
              " (pool blocks " + Range(e.pblock, e.pend()) + ")",
          ino);
    return b.Count() >= 1000 ? Write(&b) : Status::Ok();
  }));
  DAXREF_RETURN_IF_ERROR(Write(&b));
  DAXREF_RETURN_IF_ERROR(Walk(prefix::kRmap, [&](std::string_view k, std::string_view v) {
    RmapRecord r;
    if (!check::DecodeRmapShape(k, v, &r).ok()) return Status::Ok();
    std::string ev;
    Status s = scan_.Get(keys::Extent(r.ino, r.fblock), &ev);
    if (!s.ok() && s.err() != ENOENT) return s;
    Extent e;
    if (s.ok() && check::DecodeExtentShape(keys::Extent(r.ino, r.fblock), ev, &e).ok() &&
        e.pblock == r.pblock && e.len == r.len)
      return Status::Ok();
    b.Delete(std::string(k));
    if (++removed <= 100)
      Did(ProblemClass::kRmap,
          "reverse-map record at pool blocks " + Range(r.pblock, r.pend()) + " naming inode " +
              Str(r.ino) + " removed: no such extent",
          r.ino);
    return b.Count() >= 1000 ? Write(&b) : Status::Ok();
  }));
  DAXREF_RETURN_IF_ERROR(Write(&b));
  if (added > 100 || removed > 100)
    Did(ProblemClass::kRmap,
        "reverse map rebuilt: " + Str(added) + " records added, " + Str(removed) + " removed");
  return Status::Ok();
}

// Blocks that two or more extents claim with no refcount record counting
// exactly them (none, or one with another count): not a consistent share
// but a double claim. The first claimant (lowest inode, then file block)
// keeps the blocks, every other gets a copy in blocks nobody owns.
Status Repairer::ResolveDoubleClaims() {
  DAXREF_RETURN_IF_ERROR(progress_.Phase("repairing double claims", {prefix::kRmap}));
  const uint64_t bc = opts_.pool.block_count, data_end = bc - 1;
  std::vector<Move> moves;
  uint64_t need = 0;
  {
    PoolSweep sweep(db_, rocksdb::ReadOptions());
    std::vector<SpaceRecord> owners;
    DAXREF_RETURN_IF_ERROR(sweep.Run(
        bc, [&](const SpaceRecord&) { return progress_.Tick().ok(); },
        [&](uint64_t a, uint64_t b, const Coverage& c) {
          // A share is consistent when one refcount record counts exactly
          // the owners; overlapping refcount records are only rebuilt.
          const bool share = c.counted == 1 && c.refs == c.owners;
          if (c.owners < 2 || share || c.counted > 1 || c.bad > 0 || a < 1 || b > data_end)
            return true;
          owners.clear();
          for (const SpaceRecord& o : sweep.open())
            if (o.kind == SpaceKind::kOwner) owners.push_back(o);
          std::sort(owners.begin(), owners.end(), [](const SpaceRecord& x, const SpaceRecord& y) {
            return std::tie(x.ino, x.fblock) < std::tie(y.ino, y.fblock);
          });
          for (size_t i = 1; i < owners.size(); ++i) {
            const SpaceRecord& o = owners[i];
            Move* last = moves.empty() ? nullptr : &moves.back();
            if (last && last->ino == o.ino && last->ext_fblock == o.fblock &&
                last->pb + last->len == a) {
              last->len += b - a;
            } else {
              moves.push_back(Move{o.ino, o.fblock, o.pblock, o.len, a, b - a, owners[0].ino});
            }
            need += b - a;
          }
          return true;
        },
        [](std::string_view, std::string_view, const Status&) {}));
  }
  if (moves.empty()) return Status::Ok();
  // Room for the copies: blocks no extent owns and that are not bad.
  std::vector<std::pair<uint64_t, uint64_t>> free;
  uint64_t have = 0;
  if (opts_.data != nullptr) {
    PoolSweep sweep(db_, rocksdb::ReadOptions());
    Status s = sweep.Run(
        bc, [](const SpaceRecord&) { return true; },
        [&](uint64_t a, uint64_t b, const Coverage& c) {
          a = std::max<uint64_t>(a, 1);
          b = std::min(b, data_end);
          if (a < b && c.owners == 0 && c.bad == 0) {
            free.emplace_back(a, std::min(b - a, need - have));
            have += free.back().second;
          }
          return have < need;
        },
        [](std::string_view, std::string_view, const Status&) {});
    if (!s.ok() && s.err() != ECANCELED) return s;
  }
  std::sort(moves.begin(), moves.end(), [](const Move& x, const Move& y) {
    return std::tie(x.ino, x.ext_fblock, x.pb) < std::tie(y.ino, y.ext_fblock, y.pb);
  });
  return MoveClaims(moves, &free);
}

// Gives each claimant in `moves` (sorted by extent) its own copy of the
// blocks, taken from `free` (start, length) in order: bytes copied and
// persisted first, then one batch per extent replaces it and its reverse-
// map record by the pieces it is now made of:
//
//   extent  |-----keep-----|##moved##|---keep---|##moved##|
//   pool     p0             copy at q0            copy at q1
//
// A claim with no room left, or whose bytes cannot be read, is left shared
// (rebuilding refcounts then records it so).
Status Repairer::MoveClaims(const std::vector<Move>& moves,
                            std::vector<std::pair<uint64_t, uint64_t>>* free) {
  size_t fi = 0;
  for (size_t i = 0; i < moves.size();) {
    size_t j = i;
    while (j < moves.size() && moves[j].ino == moves[i].ino &&
           moves[j].ext_fblock == moves[i].ext_fblock)
      ++j;
    const Move& m0 = moves[i];
    std::vector<Extent> pieces;  // file block, pool block, length
    uint64_t pos = m0.ext_pblock;
    bool moved_any = false;
    auto keep = [&](uint64_t upto) {
      if (upto > pos)
        pieces.push_back(Extent{m0.ext_fblock + (pos - m0.ext_pblock), pos, upto - pos});
      pos = std::max(pos, upto);
    };
    for (size_t k = i; k < j; ++k) {
      const Move& m = moves[k];
      keep(m.pb);
      uint64_t left = m.len, src = m.pb;
      std::string why = opts_.data == nullptr ? "no access to the pool" : "no free blocks left";
      while (left > 0) {
        while (fi < free->size() && (*free)[fi].second == 0) ++fi;
        if (fi >= free->size() || opts_.data == nullptr) break;
        auto& [fstart, flen] = (*free)[fi];
        const uint64_t n = std::min(left, flen);
        Status s = opts_.data->Copy(fstart << kBlockShift, src << kBlockShift, n << kBlockShift);
        if (s.ok()) s = opts_.data->Persist(fstart << kBlockShift, n << kBlockShift);
        if (!s.ok()) {
          why = "cannot copy: " + s.message();
          break;
        }
        pieces.push_back(Extent{m0.ext_fblock + (src - m0.ext_pblock), fstart, n});
        Did(ProblemClass::kDoubleClaim,
            "pool blocks " + Range(src, src + n) + " were claimed by inode " + Str(m.kept_by) +
                " and inode " + Str(m.ino) + " (file block " +
                Str(m0.ext_fblock + (src - m0.ext_pblock)) +
                ") without a refcount that counts them: copied to " + Range(fstart, fstart + n) +
                " for inode " + Str(m.ino),
            m.ino);
        fstart += n, flen -= n, src += n, left -= n;
        moved_any = true;
        pos = src;
      }
      if (left > 0) {
        Did(ProblemClass::kDoubleClaim,
            "pool blocks " + Range(src, src + left) + " of inode " + Str(m.ino) + " not copied (" +
                why + "): left shared with inode " + Str(m.kept_by),
            m.ino);
        keep(src + left);
      }
    }
    keep(m0.ext_pblock + m0.ext_len);
    if (moved_any) {
      rocksdb::WriteBatch b;
      b.Delete(keys::Rmap(m0.ext_pblock, m0.ext_len, m0.ino, m0.ext_fblock));
      // Merge pieces that stayed contiguous in both file and pool.
      std::vector<Extent> merged;
      for (const Extent& p : pieces) {
        if (!merged.empty() && merged.back().fend() == p.fblock && merged.back().pend() == p.pblock)
          merged.back().len += p.len;
        else
          merged.push_back(p);
      }
      for (const Extent& p : merged) {
        b.Put(keys::Extent(m0.ino, p.fblock), EncodeExtent(p));
        b.Put(keys::Rmap(p.pblock, p.len, m0.ino, p.fblock), EncodeLength(p.len));
      }
      DAXREF_RETURN_IF_ERROR(Write(&b));
    }
    i = j;
  }
  return Status::Ok();
}

// Refcounts, free space and bad blocks from one sweep of the pool, as the
// (now whole) reverse map says: a shared run gets a refcount record of its
// owners, a data block neither owned nor bad is free, bad ranges are kept
// (merged where they overlapped; never freed). An index is rewritten only
// if the sweep finds it wrong, so a store with (legal) unmerged adjacent
// records is not touched.
Status Repairer::RebuildSpace() {
  DAXREF_RETURN_IF_ERROR(progress_.Phase(
      "repairing pool space", {prefix::kRmap, prefix::kFree, prefix::kBad, prefix::kRefcount}));
  const uint64_t bc = opts_.pool.block_count, data_end = bc - 1;
  const rocksdb::Snapshot* snap = db_->GetSnapshot();
  struct Release {
    rocksdb::DB* db;
    const rocksdb::Snapshot* s;
    ~Release() { db->ReleaseSnapshot(s); }
  } release{db_, snap};
  rocksdb::ReadOptions ro;
  ro.snapshot = snap;

  // Sorted and merged, for Released().
  std::sort(released_.begin(), released_.end());
  std::vector<std::pair<uint64_t, uint64_t>> merged;
  for (const auto& r : released_) {
    if (!merged.empty() && r.first <= merged.back().second)
      merged.back().second = std::max(merged.back().second, r.second);
    else
      merged.push_back(r);
  }
  released_.swap(merged);

  bool fix_free = false, fix_refs = false, fix_bad = false;
  std::set<uint64_t> unflagged;
  // Reported once per stretch of blocks wrong in the same way.
  struct Note {
    ProblemClass cls;
    std::string what;
    uint64_t a = 0, b = 0;
  } note{ProblemClass::kLeaked, "", 0, 0};
  auto flush = [&] {
    if (!note.what.empty()) Did(note.cls, "blocks " + Range(note.a, note.b) + " " + note.what);
    note.what.clear();
  };
  auto say = [&](ProblemClass cls, std::string what, uint64_t a, uint64_t b) {
    if (note.what == what && note.b == a) {
      note.b = b;
      return;
    }
    flush();
    note = Note{cls, std::move(what), a, b};
  };
  {
    PoolSweep sweep(db_, ro);
    auto judge = [&](uint64_t a, uint64_t b, const Coverage& c) {
      const bool data = a >= 1 && b <= data_end;
      const bool want_free = data && c.owners == 0 && c.bad == 0;
      if ((c.free > 0) != want_free || c.free > 1) {
        fix_free = true;
        if (want_free && Released(a, b))
          say(ProblemClass::kFreeSpace, "were let go of by the repairs above: freed", a, b);
        else if (want_free)
          say(ProblemClass::kLeaked, "were neither free, owned nor bad: freed", a, b);
        else if (!data)
          say(ProblemClass::kFreeSpace, "are not data blocks: no longer free", a, b);
        else
          say(ProblemClass::kFreeSpace,
              c.owners ? "are owned: no longer free" : "are bad: no longer free", a, b);
      }
      const bool want_count = c.owners >= 2;
      if ((c.counted > 0) != want_count || c.counted > 1 || (want_count && c.refs != c.owners)) {
        fix_refs = true;
        if (!want_count)
          say(ProblemClass::kRefcount,
              "have " + Str(c.owners) + " owner" + (c.owners == 1 ? "" : "s") +
                  ": refcount record removed",
              a, b);
        else if (c.counted == 0)
          say(ProblemClass::kDoubleClaim,
              "are claimed by " + Str(c.owners) +
                  " extents with no refcount record: recorded as "
                  "shared",
              a, b);
        else
          say(ProblemClass::kRefcount,
              "have " + Str(c.owners) + " owners: refcount set to " + Str(c.owners), a, b);
      }
      if (c.bad > 1 || (c.bad > 0 && a >= bc)) {
        fix_bad = true;
        say(ProblemClass::kBadBlocks,
            a >= bc ? "lie past the end of the pool: bad-block record trimmed"
                    : "were in overlapping bad-block records: merged",
            a, b);
      }
      if (want_count) {
        for (const SpaceRecord& o : sweep.open()) {
          if (o.kind != SpaceKind::kOwner) continue;
          InodeFacts* f = census_.Find(o.ino);
          if (f != nullptr && !(f->flags & kInodeReflinked)) unflagged.insert(o.ino);
        }
      }
    };
    DAXREF_RETURN_IF_ERROR(sweep.Run(
        bc, [&](const SpaceRecord&) { return progress_.Tick().ok(); },
        [&](uint64_t a, uint64_t b, const Coverage& c) {
          for (uint64_t cut : {uint64_t{1}, data_end, bc}) {
            if (a < cut && cut < b) {
              judge(a, cut, c);
              a = cut;
            }
          }
          if (a < b) judge(a, b, c);
          return true;
        },
        [](std::string_view, std::string_view, const Status&) {}));
    flush();
  }
  if (fix_free || fix_refs || fix_bad) {
    RangeIndexWriter free_w(db_, snap, prefix::kFree), refs_w(db_, snap, prefix::kRefcount),
        bad_w(db_, snap, prefix::kBad);
    PoolSweep sweep(db_, ro);
    Status written;
    DAXREF_RETURN_IF_ERROR(sweep.Run(
        bc, [&](const SpaceRecord&) { return progress_.Tick().ok(); },
        [&](uint64_t a, uint64_t b, const Coverage& c) {
          const uint64_t da = std::max<uint64_t>(a, 1), db = std::min(b, data_end);
          if (fix_free && da < db && c.owners == 0 && c.bad == 0)
            written = free_w.Want(da, db - da, 0);
          if (written.ok() && fix_refs && c.owners >= 2) written = refs_w.Want(a, b - a, c.owners);
          if (written.ok() && fix_bad && c.bad > 0 && a < bc)
            written = bad_w.Want(a, std::min(b, bc) - a, 0);
          return written.ok();
        },
        [](std::string_view, std::string_view, const Status&) {}));
    DAXREF_RETURN_IF_ERROR(written);
    if (fix_free) DAXREF_RETURN_IF_ERROR(free_w.Finish());
    if (fix_refs) DAXREF_RETURN_IF_ERROR(refs_w.Finish());
    if (fix_bad) DAXREF_RETURN_IF_ERROR(bad_w.Finish());
    if (fix_free)
      Did(ProblemClass::kFreeSpace, "free space rebuilt: " + Str(free_w.written()) +
                                        " records written, " + Str(free_w.deleted()) + " deleted");
    if (fix_refs)
      Did(ProblemClass::kRefcount, "refcounts rebuilt: " + Str(refs_w.written()) +
                                       " records written, " + Str(refs_w.deleted()) + " deleted");
    if (fix_bad)
      Did(ProblemClass::kBadBlocks, "bad-block records merged: " + Str(bad_w.written()) +
                                        " written, " + Str(bad_w.deleted()) + " deleted");
  }
  // Unmapping looks at refcounts only for inodes marked reflinked.
  for (uint64_t ino : unflagged) {
    InodeRecord r;
    DAXREF_RETURN_IF_ERROR(GetInode(ino, &r));
    r.flags |= kInodeReflinked;
    DAXREF_RETURN_IF_ERROR(Put(keys::Inode(ino), EncodeInode(r)));
    census_.Find(ino)->flags = r.flags;
    Did(ProblemClass::kReflinkFlag, "inode " + Str(ino) + " shares blocks: marked reflinked", ino);
  }
  return Status::Ok();
}

// M inodes and M next_ino from the inodes as they now are.
Status Repairer::FixCounters() {
  DAXREF_RETURN_IF_ERROR(progress_.Phase("repairing counters", prefix::kInode));
  uint64_t count = 0, max_ino = 0;
  DAXREF_RETURN_IF_ERROR(Walk(prefix::kInode, [&](std::string_view k, std::string_view) {
    count++;
    max_ino = std::max(max_ino, keys::U64At(k, 1));
    return Status::Ok();
  }));
  std::string v;
  uint64_t recorded = 0;
  Status s = scan_.Get(keys::Misc(kMiscInodes), &v);
  if (!s.ok() && s.err() != ENOENT) return s;
  if (!s.ok() || !DecodeLength(v, &recorded).ok() || recorded != count) {
    DAXREF_RETURN_IF_ERROR(Put(keys::Misc(kMiscInodes), EncodeLength(count)));
    Did(ProblemClass::kCounters, "inode count set to " + Str(count));
  }
  uint64_t next = 0;
  s = scan_.Get(keys::Misc(kMiscNextIno), &v);
  if (!s.ok() && s.err() != ENOENT) return s;
  if (!s.ok() || !DecodeLength(v, &next).ok() || next <= max_ino) {
    const uint64_t want = std::max(next, max_ino + 1);
    DAXREF_RETURN_IF_ERROR(Put(keys::Misc(kMiscNextIno), EncodeLength(want)));
    Did(ProblemClass::kCounters, "inode counter (next_ino) set to " + Str(want));
  }
  return Status::Ok();
}

}  // namespace

Result<std::unique_ptr<rocksdb::DB>> OpenStoreForRepair(const std::string& meta_dir) {
  // The daemon's options: in particular, no recovery that drops data.
  rocksdb::Options o = StoreOptions(16 << 20);
  o.create_if_missing = false;
  rocksdb::DB* raw = nullptr;
  rocksdb::Status s = rocksdb::DB::Open(o, meta_dir, &raw);
  if (!s.ok()) return Status::IOError("cannot open " + meta_dir + ": " + s.ToString());
  return std::unique_ptr<rocksdb::DB>(raw);
}

Status RepairStore(rocksdb::DB* db, const RepairOptions& opts, const RepairFn& done) {
  Repairer r(db, opts, done);
  return r.Run();
}

}  // namespace daxref
