#include "meta/checker.h"

#include <rocksdb/db.h>
#include <sys/stat.h>

#include <algorithm>
#include <cstring>
#include <memory>
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

const char* ProblemClassName(ProblemClass c) {
  switch (c) {
    case ProblemClass::kUndecodable:
      return "undecodable";
    case ProblemClass::kUnknownRecord:
      return "unknown-record";
    case ProblemClass::kMisc:
      return "misc";
    case ProblemClass::kUuid:
      return "uuid";
    case ProblemClass::kGeneration:
      return "generation";
    case ProblemClass::kSuperblock:
      return "superblock";
    case ProblemClass::kCounters:
      return "counters";
    case ProblemClass::kExtentGeometry:
      return "extent-geometry";
    case ProblemClass::kExtentOverlap:
      return "extent-overlap";
    case ProblemClass::kExtentOwner:
      return "extent-owner";
    case ProblemClass::kRmap:
      return "rmap";
    case ProblemClass::kFreeSpace:
      return "free-space";
    case ProblemClass::kLeaked:
      return "leaked";
    case ProblemClass::kBadBlocks:
      return "bad-blocks";
    case ProblemClass::kRefcount:
      return "refcount";
    case ProblemClass::kDoubleClaim:
      return "double-claim";
    case ProblemClass::kReflinkFlag:
      return "reflink-flag";
    case ProblemClass::kDirent:
      return "dirent";
    case ProblemClass::kCookie:
      return "cookie";
    case ProblemClass::kParentPointer:
      return "parent-pointer";
    case ProblemClass::kNlink:
      return "nlink";
    case ProblemClass::kBlocks:
      return "blocks";
    case ProblemClass::kDirParent:
      return "dir-parent";
    case ProblemClass::kUnreachable:
      return "unreachable";
    case ProblemClass::kOrphan:
      return "orphan";
    case ProblemClass::kXattr:
      return "xattr";
    case ProblemClass::kSymlink:
      return "symlink";
    case ProblemClass::kInode:
      return "inode";
    case ProblemClass::kLease:
      return "lease";
  }
  return "unknown";
}

namespace {

using check::Census;
using check::InodeFacts;
using check::Quote;
using check::Str;

// What a run of the pool sweep is wrong with, so that adjacent runs wrong in
// the same way are reported once ("blocks [10, 5000) are ...") rather than
// once per change of coverage.
struct RunIssue {
  enum What : uint8_t {
    kNone,
    kPastEnd,
    kReserved,
    kUnaccounted,
    kClaimedTwice,
    kBadOverlap,
    kRefcountOverlap,
    kRefcountNoOwner,
    kRefcountOneOwner,
    kRefcountWrong,
  };
  What what = kNone;
  ProblemClass cls = ProblemClass::kLeaked;
  Coverage cov;
  uint64_t a = 0, b = 0;
  bool SameAs(const RunIssue& o) const {
    return what == o.what && cls == o.cls && cov.owners == o.cov.owners && cov.free == o.cov.free &&
           cov.bad == o.cov.bad && cov.counted == o.cov.counted && cov.refs == o.cov.refs &&
           b == o.a;
  }
};

std::string Describe(const RunIssue& r) {
  const std::string where = "blocks [" + Str(r.a) + ", " + Str(r.b) + ")";
  const Coverage& c = r.cov;
  switch (r.what) {
    case RunIssue::kNone:
      break;
    case RunIssue::kPastEnd:
      return where + " lie past the end of the pool";
    case RunIssue::kReserved:
      return where + " reach reserved blocks (the superblock copies)";
    case RunIssue::kUnaccounted:
      return where + " are neither free, owned nor bad (unaccounted)";
    case RunIssue::kClaimedTwice:
      return where + " are claimed twice (" + Str(c.owners) + " owners, " + Str(c.free) +
             " free and " + Str(c.bad) + " bad records)";
    case RunIssue::kBadOverlap:
      return where + " are in overlapping bad-block records";
    case RunIssue::kRefcountOverlap:
      return where + " are in overlapping refcount records";
    case RunIssue::kRefcountNoOwner:
      return where + " have a refcount record but no owner";
    case RunIssue::kRefcountOneOwner:
      return where + ": refcount " + Str(c.refs) + " but 1 owner";
    case RunIssue::kRefcountWrong:
      return where + ": refcount " + Str(c.counted ? c.refs : 1) + " but " + Str(c.owners) +
             " owners";
  }
  return where;
}

// Which class a record kind reaching where it must not belongs to.
ProblemClass OutOfPlaceClass(const Coverage& c) {
  if (c.free) return ProblemClass::kFreeSpace;
  if (c.counted) return ProblemClass::kRefcount;
  if (c.owners) return ProblemClass::kExtentGeometry;
  return ProblemClass::kBadBlocks;
}

// What is wrong with run [a, b) of constant coverage (the invariants 1-3):
// each data block is exactly one of free, owned, or bad and unowned
// (retired); a bad block may also be owned (files still reference the
// poisoned block), never free. An owned run has a refcount record exactly
// when it has two or more owners, and then its count equals the owners.
// The reserved blocks (the superblock copies) may only be bad. The caller
// splits runs at 1, data_end and block_count.
RunIssue Classify(uint64_t a, uint64_t b, const Coverage& c, uint64_t block_count) {
  RunIssue r;
  r.a = a, r.b = b, r.cov = c;
  const uint64_t data_end = block_count - 1;
  if (a >= block_count) {
    if (c.any()) r.what = RunIssue::kPastEnd, r.cls = OutOfPlaceClass(c);
    return r;
  }
  if (a < 1 || b > data_end) {
    if (c.owners || c.free || c.counted)
      r.what = RunIssue::kReserved, r.cls = OutOfPlaceClass(c);
    else if (c.bad > 1)
      r.what = RunIssue::kBadOverlap, r.cls = ProblemClass::kBadBlocks;
    return r;
  }
  if (!c.any()) {
    r.what = RunIssue::kUnaccounted, r.cls = ProblemClass::kLeaked;
  } else if (c.free > 1 || (c.free > 0 && (c.owners > 0 || c.bad > 0))) {
    r.what = RunIssue::kClaimedTwice, r.cls = ProblemClass::kFreeSpace;
  } else if (c.bad > 1) {
    r.what = RunIssue::kBadOverlap, r.cls = ProblemClass::kBadBlocks;
  } else if (c.counted > 1) {
    r.what = RunIssue::kRefcountOverlap, r.cls = ProblemClass::kRefcount;
  } else if (c.owners == 0 && c.counted > 0) {
    r.what = RunIssue::kRefcountNoOwner, r.cls = ProblemClass::kRefcount;
  } else if (c.owners == 1 && c.counted > 0) {
    r.what = RunIssue::kRefcountOneOwner, r.cls = ProblemClass::kRefcount;
  } else if (c.owners >= 2 && (c.counted == 0 || c.refs != c.owners)) {
    // Owners the refcount does not account for: not a consistent share but
    // blocks claimed twice (fsck copies them; which claim is the damaged
    // one cannot be told).
    r.what = RunIssue::kRefcountWrong, r.cls = ProblemClass::kDoubleClaim;
  }
  return r;
}

class Checker {
 public:
  Checker(rocksdb::DB* db, const CheckOptions& opts, const ProblemFn& problem, CheckReport* report)
      : db_(db), opts_(opts), problem_(problem), report_(report), scan_(db, opts.snapshot) {}

  Status Run();

 private:
  void Bad(ProblemClass cls, std::string text, uint64_t ino = 0) {
    report_->problems++;
    problem_(Problem{cls, std::move(text), ino});
  }
  void Undecodable(std::string_view key, const Status& why) {
    Bad(ProblemClass::kUndecodable,
        "undecodable record (" + check::KeyText(key) + "): " + why.message());
  }
  Status Tick() { return progress_.Tick(); }

  Status CheckMisc();
  Status CheckGeneration();
  Status LoadInodes();
  Status CheckEntries();
  Status CheckCookieAndParentRecords();
  Status FindEntryMismatches(bool cookies, bool parents);
  Status CheckSmallRecords();
  Status CheckExtents();
  Status SweepPool();
  Status CheckBadOrigins();
  Status FindRmapMismatches();
  Status MarkReachable();
  void CheckInodes();
  Status CheckUnknownPrefixes();
  Status CheckLeases();

  rocksdb::DB* db_;
  const CheckOptions& opts_;
  const ProblemFn& problem_;
  CheckReport* report_;
  check::Scanner scan_;
  check::Progress progress_{opts_.progress};
  Census census_;

  bool have_next_ino_ = false;
  uint64_t next_ino_ = 0;
  bool have_inode_count_ = false;
  uint64_t inode_count_ = 0;

  SetDigest d_cookie_, c_cookie_;  // D and C as (dir, cookie, ino, type, name)
  SetDigest d_parent_, p_parent_;  // D and P as (ino, dir, name)
  SetDigest e_map_, r_map_;        // E and R as (ino, fblock, pblock, len)
  bool entry_in_unreachable_ = false;
};

Status Checker::Run() {
  *report_ = CheckReport{};
  if (opts_.block_count < kMinPoolBlocks)
    return Status::Invalid("pool block count " + Str(opts_.block_count) + " is too small");
  progress_.Estimate(db_);
  DAXREF_RETURN_IF_ERROR(CheckMisc());
  DAXREF_RETURN_IF_ERROR(LoadInodes());
  DAXREF_RETURN_IF_ERROR(CheckEntries());
  DAXREF_RETURN_IF_ERROR(CheckCookieAndParentRecords());
  DAXREF_RETURN_IF_ERROR(FindEntryMismatches(d_cookie_ != c_cookie_, d_parent_ != p_parent_));
  DAXREF_RETURN_IF_ERROR(CheckSmallRecords());
  DAXREF_RETURN_IF_ERROR(CheckExtents());
  DAXREF_RETURN_IF_ERROR(SweepPool());
  DAXREF_RETURN_IF_ERROR(CheckBadOrigins());
  if (e_map_ != r_map_) DAXREF_RETURN_IF_ERROR(FindRmapMismatches());
  DAXREF_RETURN_IF_ERROR(MarkReachable());
  CheckInodes();
  DAXREF_RETURN_IF_ERROR(CheckLeases());
  DAXREF_RETURN_IF_ERROR(CheckUnknownPrefixes());
  return progress_.Done();
}

// M records: the ones every store has, decoded; the pool's UUID compared.
Status Checker::CheckMisc() {
  DAXREF_RETURN_IF_ERROR(progress_.Phase("metadata", prefix::kMisc));
  std::string v;
  Status s = scan_.Get(keys::Misc(kMiscUuid), &v);
  if (s.err() == ENOENT || (s.ok() && v.size() != 16)) {
    Bad(ProblemClass::kMisc, "metadata store has no pool uuid");
  } else if (!s.ok()) {
    return s;
  } else if (opts_.pool && memcmp(v.data(), opts_.pool->uuid.data(), 16) != 0) {
    Uuid u;
    memcpy(u.data(), v.data(), 16);
    Bad(ProblemClass::kUuid, "metadata belongs to pool " + UuidToString(u) + ", not to this pool " +
                                 UuidToString(opts_.pool->uuid));
  }
  if (opts_.pool) DAXREF_RETURN_IF_ERROR(CheckGeneration());
  s = scan_.Get(keys::Misc(kMiscFormat), &v);
  if (!s.ok() && s.err() != ENOENT) return s;
  const uint32_t format = (s.ok() && v.size() == 4) ? codec::LoadU32(v.data()) : 0;
  if (!MetaFormatReadable(format))
    Bad(ProblemClass::kMisc, s.ok() ? "unsupported metadata format version " + Str(format)
                                    : std::string("metadata format version missing"));
  uint64_t blocks = 0;
  s = scan_.Get(keys::Misc(kMiscBlocks), &v);
  if (!s.ok() && s.err() != ENOENT) return s;
  if (!s.ok() || !DecodeLength(v, &blocks).ok())
    Bad(ProblemClass::kMisc, "metadata block count missing or undecodable");
  else if (blocks != opts_.block_count)
    Bad(ProblemClass::kMisc, "metadata block count " + Str(blocks) + " does not match the pool's " +
                                 Str(opts_.block_count));
  s = scan_.Get(keys::Misc(kMiscNextIno), &v);
  if (!s.ok() && s.err() != ENOENT) return s;
  have_next_ino_ = s.ok() && DecodeLength(v, &next_ino_).ok();
  if (!have_next_ino_)
    Bad(ProblemClass::kCounters, "inode counter (next_ino) missing or undecodable");
  s = scan_.Get(keys::Misc(kMiscInodes), &v);
  if (!s.ok() && s.err() != ENOENT) return s;
  have_inode_count_ = s.ok() && DecodeLength(v, &inode_count_).ok();
  if (!have_inode_count_) Bad(ProblemClass::kCounters, "inode count missing or undecodable");
  return Status::Ok();
}

// The store is as new as the pool: the generation they share (with an
// advance that a crash interrupted, either end of it), and the store holds
// at least the last update the pool saw it make (meta/store.h).
Status Checker::CheckGeneration() {
  std::string v;
  StoreIdentity id;
  Status s = scan_.Get(keys::Misc(kMiscGeneration), &v);
  if (!s.ok() && s.err() != ENOENT) return s;
  if (s.ok() && !DecodeLength(v, &id.generation).ok()) {
    Bad(ProblemClass::kMisc, "metadata generation record is malformed");
    return Status::Ok();
  }
  s = scan_.Get(keys::Misc(kMiscGenerationPending), &v);
  if (!s.ok() && s.err() != ENOENT) return s;
  uint64_t pending = 0;
  if (s.ok()) {
    if (!DecodeLength(v, &pending).ok() || pending <= id.generation) {
      Bad(ProblemClass::kMisc, "metadata pending-generation record is malformed");
      return Status::Ok();
    }
    id.generation_pending = pending;
  }
  Status g = daxref::CheckGeneration(opts_.pool->generation, id);
  if (!g.ok()) Bad(ProblemClass::kGeneration, g.message());
  const uint64_t seq =
      opts_.snapshot ? opts_.snapshot->GetSequenceNumber() : db_->GetLatestSequenceNumber();
  if (seq < opts_.pool->store_sequence)
    Bad(ProblemClass::kGeneration, "metadata is older than the pool: it ends at update " +
                                       Str(seq) + ", the pool has seen update " +
                                       Str(opts_.pool->store_sequence));
  return Status::Ok();
}

// I records: one fact record per inode, in inode order.
Status Checker::LoadInodes() {
  DAXREF_RETURN_IF_ERROR(progress_.Phase("inodes", prefix::kInode));
  return scan_.Walk(std::string(1, prefix::kInode), [&](std::string_view k, std::string_view v) {
    InodeRecord r;
    Status s = check::ValidateRecord(k, v);
    if (s.ok()) s = DecodeInode(keys::U64At(k, 1), v, &r);
    if (s.ok())
      census_.Append(r);
    else
      Undecodable(k, s);
    return Tick();
  });
}

// D records: links and subdirectories counted per inode, each entry's
// directory and target checked, and the digests that stand for the cookie
// index and the parent pointers.
Status Checker::CheckEntries() {
  DAXREF_RETURN_IF_ERROR(progress_.Phase("directories", prefix::kDirent));
  uint64_t last_bad_dir = 0;
  Status s = scan_.Walk(std::string(1, prefix::kDirent), [&](std::string_view k,
                                                             std::string_view v) {
    check::Entry e;
    Status ds = check::DecodeEntry(k, v, &e);
    if (!ds.ok()) {
      Undecodable(k, ds);
      return Tick();
    }
    d_cookie_.Add(SetDigest::Member({e.dir, e.d.cookie, e.d.ino, e.d.type}, e.name));
    d_parent_.Add(SetDigest::Member({e.d.ino, e.dir}, e.name));
    InodeFacts* dir = census_.Find(e.dir);
    const std::string what = "entry " + Quote(e.name) + " in directory " + Str(e.dir);
    if (dir == nullptr || !S_ISDIR(dir->mode)) {
      if (e.dir != last_bad_dir)
        Bad(ProblemClass::kDirent, "entries in " + Str(e.dir) + " which is not a directory", e.dir);
      last_bad_dir = e.dir;
    } else {
      dir->max_cookie = std::max(dir->max_cookie, e.d.cookie);
      if (e.d.cookie < kFirstCookie)
        Bad(ProblemClass::kCookie,
            what + " has cookie " + Str(e.d.cookie) + ", below " + Str(kFirstCookie), e.dir);
    }
    if (!check::ValidName(e.name)) Bad(ProblemClass::kDirent, what + " has an invalid name", e.dir);
    InodeFacts* kid = census_.Find(e.d.ino);
    if (kid == nullptr) {
      Bad(ProblemClass::kDirent,
          "entry in directory " + Str(e.dir) + " names missing inode " + Str(e.d.ino), e.dir);
      return Tick();
    }
    kid->links++;
    if ((kid->mode & S_IFMT) != e.d.type)
      Bad(ProblemClass::kDirent,
          what + " says type " + check::TypeName(e.d.type) + " but inode " + Str(e.d.ino) +
              " is a " + check::TypeName(kid->mode & S_IFMT),
          e.d.ino);
    if (S_ISDIR(kid->mode) && dir != nullptr) dir->subdirs++;
    if (kid->named_in == 0) kid->named_in = e.dir;
    return Tick();
  });
  return s;
}

// C and P records: decoded, and digested the way CheckEntries digested D.
Status Checker::CheckCookieAndParentRecords() {
  DAXREF_RETURN_IF_ERROR(progress_.Phase("directories", prefix::kDirCookie));
  DAXREF_RETURN_IF_ERROR(
      scan_.Walk(std::string(1, prefix::kDirCookie), [&](std::string_view k, std::string_view v) {
        check::CookieEntry c;
        Status s = check::DecodeCookieEntry(k, v, &c);
        if (!s.ok()) {
          Undecodable(k, s);
          return Tick();
        }
        c_cookie_.Add(SetDigest::Member({c.dir, c.cookie, c.d.ino, c.d.type}, c.name));
        return Tick();
      }));
  DAXREF_RETURN_IF_ERROR(progress_.Phase("directories", prefix::kParent));
  return scan_.Walk(std::string(1, prefix::kParent), [&](std::string_view k, std::string_view) {
    ParentRecord p;
    Status s = DecodeParent(k, &p);
    if (!s.ok()) {
      Undecodable(k, s);
      return Tick();
    }
    p_parent_.Add(SetDigest::Member({p.ino, p.parent}, p.name));
    return Tick();
  });
}

// The digests differ: look every record up in the other index to say which.
Status Checker::FindEntryMismatches(bool cookies, bool parents) {
  if (!cookies && !parents) return Status::Ok();
  DAXREF_RETURN_IF_ERROR(progress_.Phase("cross-checking entries", prefix::kDirent));
  DAXREF_RETURN_IF_ERROR(scan_.Walk(std::string(1, prefix::kDirent), [&](std::string_view k,
                                                                         std::string_view v) {
    check::Entry e;
    if (!check::DecodeEntry(k, v, &e).ok()) return Tick();
    const std::string what = "entry " + Quote(e.name) + " in directory " + Str(e.dir);
    std::string cv;
    if (cookies) {
      Status s = scan_.Get(keys::DirCookie(e.dir, e.d.cookie), &cv);
      if (!s.ok() && s.err() != ENOENT) return s;
      check::CookieEntry c;
      if (!s.ok() || !check::DecodeCookieEntry(keys::DirCookie(e.dir, e.d.cookie), cv, &c).ok() ||
          c.name != e.name || c.d.ino != e.d.ino || c.d.type != e.d.type)
        Bad(ProblemClass::kCookie,
            what + " has no matching readdir cookie record (cookie " + Str(e.d.cookie) + ")",
            e.dir);
    }
    if (parents) {
      Status s = scan_.Get(keys::Parent(e.d.ino, e.dir, e.name), &cv);
      if (!s.ok() && s.err() != ENOENT) return s;
      if (!s.ok())
        Bad(ProblemClass::kParentPointer,
            what + " (inode " + Str(e.d.ino) + ") has no parent pointer", e.d.ino);
    }
    return Tick();
  }));
  if (cookies) {
    DAXREF_RETURN_IF_ERROR(progress_.Phase("cross-checking entries", prefix::kDirCookie));
    DAXREF_RETURN_IF_ERROR(scan_.Walk(std::string(1, prefix::kDirCookie), [&](std::string_view k,
                                                                              std::string_view v) {
      check::CookieEntry c;
      if (!check::DecodeCookieEntry(k, v, &c).ok()) return Tick();
      std::string dv;
      Status s = scan_.Get(keys::Dirent(c.dir, c.name), &dv);
      if (!s.ok() && s.err() != ENOENT) return s;
      DirentRecord d;
      if (!s.ok() || !DecodeDirent(dv, &d).ok() || d.cookie != c.cookie || d.ino != c.d.ino ||
          d.type != c.d.type)
        Bad(ProblemClass::kCookie,
            "readdir cookie record " + Str(c.cookie) + " in directory " + Str(c.dir) + " names " +
                Quote(c.name) + " (inode " + Str(c.d.ino) + "), which no entry matches",
            c.dir);
      return Tick();
    }));
  }
  if (parents) {
    DAXREF_RETURN_IF_ERROR(progress_.Phase("cross-checking entries", prefix::kParent));
    DAXREF_RETURN_IF_ERROR(
        scan_.Walk(std::string(1, prefix::kParent), [&](std::string_view k, std::string_view) {
          ParentRecord p;
          if (!DecodeParent(k, &p).ok()) return Tick();
          std::string dv;
          Status s = scan_.Get(keys::Dirent(p.parent, p.name), &dv);
          if (!s.ok() && s.err() != ENOENT) return s;
          DirentRecord d;
          if (!s.ok() || !DecodeDirent(dv, &d).ok() || d.ino != p.ino)
            Bad(ProblemClass::kParentPointer,
                "parent pointer of inode " + Str(p.ino) + " (" + Quote(p.name) + " in directory " +
                    Str(p.parent) + ") has no directory entry",
                p.ino);
          return Tick();
        }));
  }
  return Status::Ok();
}

// O, X and L records: each belongs to an inode that exists and says so.
Status Checker::CheckSmallRecords() {
  DAXREF_RETURN_IF_ERROR(progress_.Phase("inodes", prefix::kOrphan));
  DAXREF_RETURN_IF_ERROR(
      scan_.Walk(std::string(1, prefix::kOrphan), [&](std::string_view k, std::string_view v) {
        if (k.size() != 9 || !v.empty()) {
          Undecodable(k, Status::Corruption("bad orphan record"));
          return Tick();
        }
        const uint64_t ino = keys::U64At(k, 1);
        report_->orphans++;
        InodeFacts* f = census_.Find(ino);
        if (f == nullptr)
          Bad(ProblemClass::kOrphan, "orphan record for missing inode " + Str(ino), ino);
        else
          f->orphan = true;
        return Tick();
      }));
  DAXREF_RETURN_IF_ERROR(progress_.Phase("inodes", prefix::kXattr));
  uint64_t last = 0;
  DAXREF_RETURN_IF_ERROR(scan_.Walk(std::string(1, prefix::kXattr), [&](std::string_view k,
                                                                        std::string_view v) {
    if (k.size() < 10 || k.size() > 9 + kMaxXattrNameLen || v.size() > kMaxXattrValueLen) {
      Undecodable(k, Status::Corruption("bad extended attribute record"));
      return Tick();
    }
    const uint64_t ino = keys::U64At(k, 1);
    if (ino == last) return Tick();
    last = ino;
    InodeFacts* f = census_.Find(ino);
    if (f == nullptr) {
      Bad(ProblemClass::kXattr, "extended attributes of missing inode " + Str(ino), ino);
    } else {
      f->xattrs = true;
      if (!(f->flags & kInodeHasXattrs))
        Bad(ProblemClass::kXattr,
            "inode " + Str(ino) + " has extended attributes but not the flag that says so", ino);
    }
    return Tick();
  }));
  DAXREF_RETURN_IF_ERROR(progress_.Phase("inodes", prefix::kSymlink));
  return scan_.Walk(std::string(1, prefix::kSymlink), [&](std::string_view k, std::string_view v) {
    if (k.size() != 9 || v.empty() || v.size() > 4095) {
      Undecodable(k, Status::Corruption("bad symlink target record"));
      return Tick();
    }
    const uint64_t ino = keys::U64At(k, 1);
    InodeFacts* f = census_.Find(ino);
    if (f == nullptr || !S_ISLNK(f->mode))
      Bad(ProblemClass::kSymlink, "symlink target of " + Str(ino) + ", which is not a symlink",
          ino);
    else
      f->target = true;
    return Tick();
  });
}

// E records, in inode order: geometry, overlaps within a file, the owner,
// and the digest that stands for the reverse map.
Status Checker::CheckExtents() {
  DAXREF_RETURN_IF_ERROR(progress_.Phase("extents", prefix::kExtent));
  uint64_t prev_ino = 0, prev_end = 0;
  InodeFacts* owner = nullptr;
  uint64_t last_missing = 0, last_nonfile = 0;
  return scan_.Walk(std::string(1, prefix::kExtent), [&](std::string_view k, std::string_view v) {
    Extent e;
    Status s = check::DecodeExtentShape(k, v, &e);
    if (!s.ok()) {
      Undecodable(k, s);
      return Tick();
    }
    const uint64_t ino = keys::U64At(k, 1);
    report_->extents++;
    e_map_.Add(SetDigest::Member({ino, e.fblock, e.pblock, e.len}));
    const std::string what = "inode " + Str(ino) + " extent at file block " + Str(e.fblock);
    std::string geometry = check::ExtentGeometry(e, opts_.block_count);
    if (!geometry.empty()) Bad(ProblemClass::kExtentGeometry, what + ": " + geometry, ino);
    if (ino == prev_ino && e.fblock < prev_end)
      Bad(ProblemClass::kExtentOverlap,
          "inode " + Str(ino) + ": extents overlap at file block " + Str(e.fblock), ino);
    if (ino != prev_ino || e.fend() > prev_end) prev_end = e.fend();
    prev_ino = ino;
    if (owner == nullptr || owner->ino != ino) owner = census_.Find(ino);
    if (owner == nullptr) {
      if (ino != last_missing)
        Bad(ProblemClass::kExtentOwner, "extent of missing inode " + Str(ino), ino);
      last_missing = ino;
      return Tick();
    }
    owner->ext_blocks += e.len;
    if (!S_ISREG(owner->mode) && ino != last_nonfile) {
      Bad(ProblemClass::kExtentOwner,
          "inode " + Str(ino) + " is a " + check::TypeName(owner->mode & S_IFMT) +
              ", not a regular file, but has extents",
          ino);
      last_nonfile = ino;
    }
    return Tick();
  });
}

// R, F, B and N merged in pool order (invariants 1-3).
Status Checker::SweepPool() {
  DAXREF_RETURN_IF_ERROR(progress_.Phase(
      "pool space", {prefix::kRmap, prefix::kFree, prefix::kBad, prefix::kRefcount}));
  const uint64_t bc = opts_.block_count, data_end = bc - 1;
  PoolSweep sweep(db_, scan_.options());
  RunIssue pending;
  auto flush = [&] {
    if (pending.what != RunIssue::kNone) Bad(pending.cls, Describe(pending));
    pending = RunIssue{};
  };
  Status tick;
  auto on_record = [&](const SpaceRecord& r) {
    if (r.kind == SpaceKind::kOwner)
      r_map_.Add(SetDigest::Member({r.ino, r.fblock, r.pblock, r.len}));
    if (r.kind == SpaceKind::kFree) report_->free_blocks += r.len;
    if (r.kind == SpaceKind::kBad) report_->bad_blocks += r.len;
    tick = Tick();
    return tick.ok();
  };
  auto check_run = [&](uint64_t a, uint64_t b, const Coverage& c) {
    RunIssue issue = Classify(a, b, c, bc);
    if (a >= 1 && b <= data_end) {
      if (c.bad > 0 && c.owners > 0) report_->poisoned_blocks += b - a;
      if (c.owners > 0) report_->owned_blocks += b - a;
      if (c.owners >= 2) report_->shared_blocks += b - a;
    }
    if (c.owners >= 2) {
      // Every sharer must know it shares: unmapping looks at refcounts only
      // for inodes marked reflinked.
      for (const SpaceRecord& o : sweep.open()) {
        if (o.kind != SpaceKind::kOwner) continue;
        InodeFacts* f = census_.Find(o.ino);
        if (f == nullptr || (f->flags & kInodeReflinked) || f->reflink_reported) continue;
        f->reflink_reported = true;
        Bad(ProblemClass::kReflinkFlag,
            "inode " + Str(o.ino) + " shares pool blocks but is not marked reflinked", o.ino);
      }
    }
    if (issue.what != RunIssue::kNone && pending.SameAs(issue)) {
      pending.b = issue.b;
      return;
    }
    flush();
    pending = issue;
  };
  auto on_run = [&](uint64_t a, uint64_t b, const Coverage& c) {
    for (uint64_t cut : {uint64_t{1}, data_end, bc}) {
      if (a < cut && cut < b) {
        check_run(a, cut, c);
        a = cut;
      }
    }
    if (a < b) check_run(a, b, c);
    return true;
  };
  Status s = sweep.Run(
      bc, on_record, on_run,
      [&](std::string_view k, std::string_view, const Status& why) { Undecodable(k, why); });
  flush();
  if (!tick.ok()) return tick;
  return s;
}

// Q records against the B records (docs/format.md, "Q").
Status Checker::CheckBadOrigins() {
  DAXREF_RETURN_IF_ERROR(progress_.Phase("pool space", prefix::kBadOrigin));
  const PoolGeometry geo{opts_.block_count};
  BadOriginFit fit;
  DAXREF_RETURN_IF_ERROR(
      scan_.Walk(std::string(1, prefix::kBad), [&](std::string_view k, std::string_view v) {
        uint64_t pblock = 0, len = 0;
        if (DecodeBad(k, v, geo, &pblock, &len).ok()) fit.AddBad(pblock, len);
        return Status::Ok();
      }));
  return scan_.Walk(std::string(1, prefix::kBadOrigin),
                    [&](std::string_view k, std::string_view v) {
                      BadOriginRecord r;
                      Status s = DecodeBadOrigin(k, v, geo, &r);
                      if (!s.ok())
                        Undecodable(k, s);
                      else if (std::string why = fit.Check(r); !why.empty())
                        Bad(ProblemClass::kBadBlocks, why);
                      return Tick();
                    });
}

// The digests of E and R differ: look each record up in the other index.
Status Checker::FindRmapMismatches() {
  DAXREF_RETURN_IF_ERROR(progress_.Phase("cross-checking extents", prefix::kExtent));
  DAXREF_RETURN_IF_ERROR(
      scan_.Walk(std::string(1, prefix::kExtent), [&](std::string_view k, std::string_view v) {
        Extent e;
        if (!check::DecodeExtentShape(k, v, &e).ok()) return Tick();
        const uint64_t ino = keys::U64At(k, 1);
        std::string rv;
        Status s = scan_.Get(keys::Rmap(e.pblock, e.len, ino, e.fblock), &rv);
        if (!s.ok() && s.err() != ENOENT) return s;
        uint64_t len = 0;
        if (!s.ok() || !DecodeLength(rv, &len).ok() || len != e.len)
          Bad(ProblemClass::kRmap,
              "inode " + Str(ino) + " extent at file block " + Str(e.fblock) +
                  " has no matching reverse-map record",
              ino);
        return Tick();
      }));
  DAXREF_RETURN_IF_ERROR(progress_.Phase("cross-checking extents", prefix::kRmap));
  return scan_.Walk(std::string(1, prefix::kRmap), [&](std::string_view k, std::string_view v) {
    RmapRecord r;
    if (!check::DecodeRmapShape(k, v, &r).ok()) return Tick();
    std::string ev;
    Status s = scan_.Get(keys::Extent(r.ino, r.fblock), &ev);
    if (!s.ok() && s.err() != ENOENT) return s;
    Extent e;
    if (!s.ok() || !check::DecodeExtentShape(keys::Extent(r.ino, r.fblock), ev, &e).ok() ||
        e.pblock != r.pblock || e.len != r.len)
      Bad(ProblemClass::kRmap,
          "reverse-map record at pool block " + Str(r.pblock) + " names inode " + Str(r.ino) +
              " which does not map it",
          r.ino);
    return Tick();
  });
}

// Invariant 5: every directory reachable from the root through the entries
// naming it, and every other inode named in a reachable directory.
Status Checker::MarkReachable() {
  DAXREF_RETURN_IF_ERROR(progress_.Phase("namespace", prefix::kDirent));
  census_.ResolveDirectories();
  bool again = false;
  for (InodeFacts& f : census_.all()) {
    if (S_ISDIR(f.mode) || f.links == 0) continue;
    InodeFacts* d = census_.Find(f.named_in);
    if (d != nullptr && d->reach == InodeFacts::kReachable)
      f.reach = InodeFacts::kReachable;
    else if (f.links > 1)
      again = true;  // another of its names may be in a reachable directory
  }
  if (!again) return Status::Ok();
  return scan_.Walk(std::string(1, prefix::kDirent), [&](std::string_view k, std::string_view v) {
    check::Entry e;
    if (!check::DecodeEntry(k, v, &e).ok()) return Tick();
    InodeFacts* kid = census_.Find(e.d.ino);
    InodeFacts* dir = census_.Find(e.dir);
    if (kid != nullptr && !S_ISDIR(kid->mode) && dir != nullptr &&
        dir->reach == InodeFacts::kReachable)
      kid->reach = InodeFacts::kReachable;
    return Tick();
  });
}

// Invariants 4 and 5, inode by inode, from the facts gathered.
void Checker::CheckInodes() {
  InodeFacts* root = census_.Find(kRootIno);
  if (root == nullptr)
    Bad(ProblemClass::kInode, "root inode missing", kRootIno);
  else if (!S_ISDIR(root->mode))
    Bad(ProblemClass::kInode, "root inode is not a directory", kRootIno);
  uint64_t max_ino = 0;
  for (InodeFacts& f : census_.all()) {
    const uint64_t ino = f.ino;
    const std::string name = "inode " + Str(ino);
    report_->inodes++;
    max_ino = std::max(max_ino, ino);
    if (!check::KnownType(f.mode))
      Bad(ProblemClass::kInode, name + " has an unknown file type " + Str(f.mode & S_IFMT), ino);
    if (f.ext_blocks != f.blocks)
      Bad(ProblemClass::kBlocks,
          name + ": blocks " + Str(f.blocks) + " but extents hold " + Str(f.ext_blocks), ino);
    if (S_ISDIR(f.mode)) {
      report_->directories++;
      const uint64_t want = 2 + uint64_t{f.subdirs};
      // A directory removed while open: empty, nameless, nlink 0 and on the
      // orphan list until its last release (or the next mount) reclaims it.
      const bool removed_open = f.orphan && f.nlink == 0 && f.links == 0 && f.subdirs == 0;
      if (!removed_open && f.nlink != want)
        Bad(ProblemClass::kNlink,
            "directory " + Str(ino) + ": nlink " + Str(f.nlink) + ", expected " + Str(want), ino);
      if (ino == kRootIno) {
        if (f.links != 0)
          Bad(ProblemClass::kDirent, "the root directory is named by " + Str(f.links) + " entries",
              ino);
        if (f.parent != kRootIno)
          Bad(ProblemClass::kDirParent,
              "the root directory says its parent is " + Str(f.parent) + ", not itself", ino);
      } else if (!removed_open) {
        if (f.links != 1)
          Bad(ProblemClass::kDirent,
              "directory " + Str(ino) + " has " + Str(f.links) + " entries naming it", ino);
        if (f.links >= 1 && f.parent != f.named_in)
          Bad(ProblemClass::kDirParent,
              "directory " + Str(ino) + " says its parent is " + Str(f.parent) +
                  " but it is named in " + Str(f.named_in),
              ino);
      }
      if (f.max_cookie >= f.next_cookie)
        Bad(ProblemClass::kCookie,
            "directory " + Str(ino) + " hands out cookie " + Str(f.next_cookie) +
                " next but already has " + Str(f.max_cookie),
            ino);
    } else {
      if (f.nlink != f.links)
        Bad(ProblemClass::kNlink,
            name + ": nlink " + Str(f.nlink) + " but " + Str(f.links) + " entries", ino);
      if (f.nlink == 0 && !f.orphan)
        Bad(ProblemClass::kOrphan, name + " has no links and is not on the orphan list", ino);
    }
    if (f.orphan && f.nlink != 0)
      Bad(ProblemClass::kOrphan, "orphan " + Str(ino) + " still has links", ino);
    if (S_ISLNK(f.mode) && !f.target)
      Bad(ProblemClass::kSymlink, "symlink " + Str(ino) + " has no target", ino);
    if (ino != kRootIno && f.reach != InodeFacts::kReachable && !f.orphan &&
        !(f.nlink == 0 && f.links == 0 && !S_ISDIR(f.mode)))
      Bad(ProblemClass::kUnreachable, name + " is unreachable", ino);
  }
  if (have_inode_count_ && inode_count_ != census_.size())
    Bad(ProblemClass::kCounters,
        "inode count says " + Str(inode_count_) + " but " + Str(census_.size()) + " exist");
  if (have_next_ino_ && max_ino >= next_ino_)
    Bad(ProblemClass::kCounters, "inode " + Str(max_ino) + " exists but the inode counter says " +
                                     Str(next_ino_) + " is next");
}

// G records (docs/dax.md): each names a regular file and a range inside
// its size rounded up; each recorded extent is still mapped by the file's E
// records at the same pool blocks (the E and R records agree: checked
// above), and a write lease's blocks have no refcount record (one owner).
// A lease is a handful of records, so each reads its file's extents; the
// refcount records are read once, and only when a write lease exists.
Status Checker::CheckLeases() {
  DAXREF_RETURN_IF_ERROR(progress_.Phase("leases", prefix::kLease));
  const PoolGeometry geo{opts_.block_count};
  struct Leased {
    uint64_t pblock, len, id, ino;
  };
  std::vector<Leased> unshared;  // the pool runs of write leases
  Status s =
      scan_.Walk(std::string(1, prefix::kLease), [&](std::string_view k, std::string_view v) {
        LeaseRecord r;
        Status d = DecodeLease(k, v, geo, &r);
        if (!d.ok()) {
          Undecodable(k, d);
          return Tick();
        }
        report_->leases++;
        const std::string who =
            LeaseModeName(r.mode) + std::string(" lease ") + Str(r.id) + " of inode " + Str(r.ino);
        const InodeFacts* f = census_.Find(r.ino);
        if (!f) {
          Bad(ProblemClass::kLease, who + ": no such inode", r.ino);
          return Tick();
        }
        if (!S_ISREG(f->mode)) {
          Bad(ProblemClass::kLease, who + ": not a regular file", r.ino);
          return Tick();
        }
        const uint64_t size_blocks = (f->size + kBlockSize - 1) >> kBlockShift;
        if (r.fend() > size_blocks)
          Bad(ProblemClass::kLease,
              who + ": file blocks [" + Str(r.fblock) + ", " + Str(r.fend()) +
                  ") reach past the file's " + Str(size_blocks) + " blocks",
              r.ino);
        // The file's mapping of the lease's range, as its E records say.
        std::vector<Extent> mapped;
        DAXREF_RETURN_IF_ERROR(
            scan_.Walk(keys::ExtentPrefix(r.ino), [&](std::string_view ek, std::string_view ev) {
              Extent e;
              if (check::DecodeExtentShape(ek, ev, &e).ok() && e.fblock < r.fend() &&
                  e.fend() > r.fblock)
                mapped.push_back(e);
              return Status::Ok();
            }));
        for (const LeasedExtent& le : r.extents) {
          // Every block of le must be in an extent that maps it to the same
          // pool block; the first block that is not is reported.
          uint64_t fb = le.fblock;
          for (const Extent& e : mapped) {
            if (e.fend() <= fb || e.fblock > fb) continue;
            if (e.pblock + (fb - e.fblock) != le.pblock + (fb - le.fblock)) break;
            fb = std::min(e.fend(), le.fend());
            if (fb == le.fend()) break;
          }
          if (fb != le.fend())
            Bad(ProblemClass::kLease,
                who + ": file block " + Str(fb) + " is no longer at leased pool block " +
                    Str(le.pblock + (fb - le.fblock)) + " (a block moved or freed under a lease)",
                r.ino);
          if (r.mode == LeaseMode::kWrite) unshared.push_back({le.pblock, le.blocks, r.id, r.ino});
        }
        return Tick();
      });
  DAXREF_RETURN_IF_ERROR(s);
  if (unshared.empty()) return Status::Ok();
  std::sort(unshared.begin(), unshared.end(),
            [](const Leased& a, const Leased& b) { return a.pblock < b.pblock; });
  return scan_.Walk(std::string(1, prefix::kRefcount), [&](std::string_view k, std::string_view v) {
    RefcountRecord n;
    if (!check::DecodeRefcountShape(k, v, &n).ok()) return Tick();
    // Leased runs of different leases may overlap (two leases of one
    // file), so every run starting before the record's end is looked at.
    for (const Leased& l : unshared) {
      if (l.pblock >= n.pend()) break;
      if (l.pblock + l.len <= n.pblock) continue;
      Bad(ProblemClass::kLease,
          "write lease " + Str(l.id) + " of inode " + Str(l.ino) + ": pool block " +
              Str(std::max(l.pblock, n.pblock)) + " is shared (" + Str(n.refs) + " references)",
          l.ino);
    }
    return Tick();
  });
}

// Keys under no prefix this format knows.
Status Checker::CheckUnknownPrefixes() {
  static constexpr std::string_view kKnown = "BCDEFGILMNOPQRX";
  uint64_t found = 0;
  Status s = scan_.WalkOutside(kKnown, [&](std::string_view k) {
    if (++found <= 16)
      Bad(ProblemClass::kUnknownRecord, "record with an unknown key (" + check::KeyText(k) + ")");
    return Status::Ok();
  });
  if (found > 16)
    Bad(ProblemClass::kUnknownRecord, Str(found - 16) + " more records with unknown keys");
  return s;
}

}  // namespace

Status CheckStore(rocksdb::DB* db, const CheckOptions& opts, const ProblemFn& problem,
                  CheckReport* report) {
  Checker c(db, opts, problem, report);
  return c.Run();
}

Status CheckStore(rocksdb::DB* db, uint64_t block_count,
                  const std::function<void(const std::string&)>& problem, CheckReport* report) {
  CheckOptions o;
  o.block_count = block_count;
  return CheckStore(
      db, o, [&](const Problem& p) { problem(p.text); }, report);
}

std::string InodePath(rocksdb::DB* db, const rocksdb::Snapshot* snapshot, uint64_t ino) {
  check::Scanner scan(db, snapshot);
  return check::PathOf(&scan, ino);
}

Status CheckStoreAt(const std::string& meta_dir, const CheckOptions& opts, const ProblemFn& problem,
                    CheckReport* report) {
  auto db = OpenStoreReadOnly(meta_dir);
  if (!db.ok()) return db.status();
  return CheckStore(db->get(), opts, problem, report);
}

Status CheckStoreAt(const std::string& meta_dir, uint64_t block_count,
                    const std::function<void(const std::string&)>& problem, CheckReport* report) {
  CheckOptions o;
  o.block_count = block_count;
  return CheckStoreAt(
      meta_dir, o, [&](const Problem& p) { problem(p.text); }, report);
}

}  // namespace daxref
