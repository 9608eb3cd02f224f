#include "admin/poison_service.h"

#include <sys/stat.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <optional>

#include "base/block_range_text.h"
#include "base/mutex.h"

namespace daxref {

namespace {

using control::Record;
using Level = PoisonHooks::Level;

Record ErrorRecord(const Status& s) {
  Record r("error");
  r.Add("errno", static_cast<uint64_t>(s.err() ? s.err() : EIO));
  r.Add("message", s.message());
  return r;
}

// Now, in seconds since the epoch: when poison was recorded.
uint64_t NowSeconds() {
  return static_cast<uint64_t>(std::chrono::duration_cast<std::chrono::seconds>(
                                   std::chrono::system_clock::now().time_since_epoch())
                                   .count());
}

std::string ByteRange(uint64_t off, uint64_t len) {
  return "bytes " + std::to_string(off) + ".." + std::to_string(off + len - 1);
}

uint64_t Micros(std::chrono::steady_clock::time_point since) {
  return std::chrono::duration_cast<std::chrono::microseconds>(std::chrono::steady_clock::now() -
                                                               since)
      .count();
}

// What the next mount makes of poison in superblock copies (blocks 0 and
// N-1 of a pool of N blocks), for the `note` of an inject that hit them.
std::string SuperblockNote(uint64_t pb0, uint64_t pb1, uint64_t block_count) {
  const uint64_t last = block_count - 1;
  const bool primary = pb0 == 0, backup = pb1 > last;
  if (primary && backup)
    return "blocks 0 and " + std::to_string(last) +
           " hold both copies of the pool's superblock: no good copy is left for the next mount";
  if (primary)
    return "block 0 holds the pool's superblock: the next mount will use the backup copy (block " +
           std::to_string(last) + ")";
  if (backup)
    return "block " + std::to_string(last) +
           " holds the pool's backup superblock: the next mount will use the primary copy "
           "(block 0)";
  return "";
}

}  // namespace

void PoisonHooks::PreRemove(const PoisonSink& sink) {
  sink(ErrorRecord(Status::Error(ENOTCONN, "not mounted: nothing to pre-remove")));
}

Status PoisonService::RefuseIfBad(uint64_t pb0, uint64_t pb1, const std::string& what) {
  if (!vol_->IsBad(pb0, pb1)) return Status::Ok();
  uint64_t first = pb0, count = pb1 - pb0;
  vol_->WalkBad([&](uint64_t pblock, uint64_t len) {
    if (pblock + len <= pb0) return true;
    if (pblock < pb1) {
      first = std::max(pblock, pb0);
      count = std::min(pblock + len, pb1) - first;
    }
    return false;
  });
  return Status::Error(EEXIST, what + BlockRangeText(first, first + count) +
                                   (count == 1 ? " is" : " are") + " already poisoned");
}

Status PoisonService::ReportOwners(uint64_t pb0, uint64_t pb1, const PoisonFailure* failure,
                                   const PoisonSink& sink, Counts* counts) {
  OwnerActFn act;
  if (failure) {
    act = [&](const PoisonOwner& o, Record* r) {
      hooks_->OnOwner(*failure, o, r);
      r->ForEach("pid", [&](const std::string&) { ++counts->signalled; });
    };
  }
  Status path_error;
  Status s = WalkOwnerRecords(
      vol_, pb0, pb1, act, [&](const Record& r) { sink(r); }, &counts->owners, &path_error);
  if (failure) hooks_->AfterOwners(*failure);
  if (!path_error.ok()) hooks_->Log(Level::kWarn, "poison: owners' paths: " + path_error.message());
  if (!s.ok()) {
    hooks_->Log(Level::kError, "poison: reverse-map walk over " + BlockRangeText(pb0, pb1) +
                                   " failed: " + s.message());
    return Status::Error(
        s.err(), "cannot walk the owners of " + BlockRangeText(pb0, pb1) + ": " + s.message());
  }
  return Status::Ok();
}

Status PoisonService::MarkAndReport(uint64_t pb0, uint64_t pb1, bool strict,
                                    const BadOrigin& origin, const PoisonSink& sink,
                                    Counts* counts) {
  PoisonFailure f{pb0, pb1, {}};
  Status s = vol_->MarkBad(pb0, pb1, strict, origin, &f.outcome);
  if (s.err() == EEXIST) return RefuseIfBad(pb0, pb1, "");
  if (!s.ok())
    return Status::Error(s.err(), "cannot poison " + BlockRangeText(pb0, pb1) + ": " + s.message());
  if (f.outcome.added == 0) return Status::Ok();  // all of it was bad already (not strict)
  DAXREF_RETURN_IF_ERROR(hooks_->AfterCommit());
  sink(RangeRecord(pb0, pb1, f.outcome));
  hooks_->Log(Level::kWarn, "poison: pool " + BlockRangeText(pb0, pb1) + " recorded bad, " +
                                BadOriginName(origin.kind) + " (" +
                                std::to_string(f.outcome.retired) + " retired, " +
                                std::to_string(f.outcome.owned) + " owned by files, " +
                                std::to_string(f.outcome.reserved) + " reserved)");
  if (f.outcome.reserved > 0) {
    const std::string note = SuperblockNote(pb0, pb1, vol_->superblock().block_count);
    if (!note.empty()) sink(Record("note").Add("message", note));
    hooks_->OnReserved(f, sink);
  }
  if (f.outcome.owned == 0) return Status::Ok();
  return ReportOwners(pb0, pb1, &f, sink, counts);
}

void PoisonService::Inject(uint64_t pb0, uint64_t pb1, uint32_t uid, const PoisonSink& sink) {
  const auto t0 = std::chrono::steady_clock::now();
  MutexLock g(&mu_);
  Status s = vol_->CheckPoolRange(pb0, pb1);
  if (s.ok()) s = RefuseIfBad(pb0, pb1, "");
  Counts counts;
  if (s.ok()) {
    hooks_->BeginEvent();
    s = MarkAndReport(pb0, pb1, /*strict=*/true,
                      BadOrigin{BadOriginKind::kInjected, uid, NowSeconds()}, sink, &counts);
  }
  if (!s.ok()) return (void)sink(ErrorRecord(s));
  sink(Record("done")
           .Add("owners", counts.owners)
           .Add("signalled", counts.signalled)
           .Add("elapsed_us", Micros(t0)));
}

Status PoisonService::ValidateFileRange(uint64_t ino, uint64_t off, uint64_t* len,
                                        const std::string& name, PoolPieces* pieces) {
  const std::string file = name.empty() ? "inode " + std::to_string(ino) : name;
  InodeRecord r;
  Status s = vol_->GetInode(ino, &r);
  if (s.err() == ENOENT) return Status::NotFound("no such file: " + file);
  if (!s.ok()) return Status::Error(s.err(), file + ": " + s.message());
  if (!S_ISREG(r.mode)) return Status::Invalid(file + ": not a regular file");
  if (*len == 0) return Status::Invalid("empty range");
  if (off >= r.size)
    return Status::Invalid("offset " + std::to_string(off) + " is past the end of " + file +
                           " (size " + std::to_string(r.size) + ")");
  // Bytes past the end of the file are not its to lose.
  *len = std::min(*len, r.size - off);
  const std::string what = file + " " + ByteRange(off, *len);
  // The pool pieces behind the range: bounded by the range the admin named.
  DAXREF_RETURN_IF_ERROR(FilePoolPieces(vol_, ino, off, *len, pieces));
  // A hole holds no data: there is nothing there that poison could take.
  if (pieces->empty())
    return Status::Error(ENODATA, what + " have no blocks (a hole): nothing to poison");
  // All or nothing: refuse before marking any piece.
  for (const auto& [p0, p1] : *pieces) DAXREF_RETURN_IF_ERROR(RefuseIfBad(p0, p1, what + ": "));
  return Status::Ok();
}

void PoisonService::InjectFile(uint64_t ino, uint64_t off, uint64_t len, const std::string& name,
                               uint32_t uid, const PoisonSink& sink) {
  const auto t0 = std::chrono::steady_clock::now();
  MutexLock g(&mu_);
  PoolPieces pieces;
  Status s = ValidateFileRange(ino, off, &len, name, &pieces);
  Counts counts;
  if (s.ok()) {
    hooks_->BeginEvent();
    const BadOrigin origin{BadOriginKind::kInjected, uid, NowSeconds()};
    for (const auto& [p0, p1] : pieces) {
      s = MarkAndReport(p0, p1, /*strict=*/true, origin, sink, &counts);
      if (!s.ok()) break;
    }
  }
  if (!s.ok()) return (void)sink(ErrorRecord(s));
  sink(Record("done")
           .Add("owners", counts.owners)
           .Add("signalled", counts.signalled)
           .Add("elapsed_us", Micros(t0)));
}

uint64_t PoisonService::RecordFound(uint64_t pb0, uint64_t pb1, BadOriginKind how) {
  MutexLock g(&mu_);
  return RecordFoundLocked(pb0, pb1, how);
}

uint64_t PoisonService::RecordFoundLocked(uint64_t pb0, uint64_t pb1, BadOriginKind how) {
  pb1 = std::min(pb1, vol_->superblock().block_count);
  // Nobody asked: the records go nowhere, errors to the log.
  const PoisonSink to_log = [&](const Record& r) {
    if (r.kind == "error") hooks_->Log(Level::kError, "poison: " + *r.Get("message"));
    return true;
  };
  // Each run of blocks not yet recorded, as its own event: a device range
  // is a few blocks, and most of it may be known already.
  const BadOrigin origin{how, kNoUid, NowSeconds()};
  uint64_t run = pb1, added = 0;
  for (uint64_t pb = pb0; pb <= pb1; ++pb) {
    const bool fresh = pb < pb1 && !vol_->IsBad(pb, pb + 1);
    if (fresh && run == pb1) run = pb;
    if (!fresh && run != pb1) {
      Counts counts;
      hooks_->BeginEvent();
      Status s = MarkAndReport(run, pb, /*strict=*/false, origin, to_log, &counts);
      if (!s.ok())
        to_log(ErrorRecord(s));
      else
        added += pb - run;
      run = pb1;
    }
  }
  return added;
}

void PoisonService::Rescan(const PoisonSink& sink) {
  const auto t0 = std::chrono::steady_clock::now();
  MutexLock g(&mu_);
  uint64_t ranges = 0, added = 0;
  Status s = hooks_->WalkDeviceBadBlocks([&](uint64_t off, uint64_t len) {
    ++ranges;
    mu_.AssertHeld();  // called back from here
    added += RecordFoundLocked(off >> kBlockShift, (off + len + kBlockSize - 1) >> kBlockShift,
                               BadOriginKind::kDevice);
    return true;
  });
  if (!s.ok())
    return (void)sink(
        ErrorRecord(Status::Error(s.err(), "cannot read the device's bad blocks: " + s.message())));
  hooks_->Log(Level::kInfo, "poison: rescan: the device lists " + std::to_string(ranges) +
                                " bad ranges under the pool, " + std::to_string(added) +
                                " blocks new");
  sink(Record("done").Add("ranges", ranges).Add("added", added).Add("elapsed_us", Micros(t0)));
}

void PoisonService::List(const PoisonSink& sink) {
  MutexLock g(&mu_);
  uint64_t ranges = 0, blocks = 0;
  Counts counts;
  Status s;
  // A copy of the bad list: the owner walks may take their time. One
  // `bad` record per piece of one origin.
  vol_->WalkBadPieces([&](const BadOriginRecord& p) {
    ++ranges;
    blocks += p.len;
    Record r("bad");
    r.Add("pblock", p.pblock).Add("blocks", p.len).Add("origin", BadOriginName(p.origin.kind));
    if (p.origin.uid != kNoUid) r.Add("uid", static_cast<uint64_t>(p.origin.uid));
    if (p.origin.kind != BadOriginKind::kUnknown) r.Add("time", p.origin.time);
    sink(r);
    s = ReportOwners(p.pblock, p.pend(), nullptr, sink, &counts);
    return s.ok();
  });
  if (!s.ok()) return (void)sink(ErrorRecord(s));
  sink(Record("done").Add("ranges", ranges).Add("blocks", blocks).Add("owners", counts.owners));
}

void PoisonService::Clear(uint64_t pb0, uint64_t pb1, const PoisonSink& sink) {
  MutexLock g(&mu_);
  ClearOutcome out;
  Status s = vol_->ClearBad(pb0, pb1, &out);
  if (!s.ok() && s.err() != ENOENT)  // ENOENT: "nothing in ... is poisoned"
    s = Status::Error(s.err(), "cannot clear " + BlockRangeText(pb0, pb1) + ": " + s.message());
  if (s.ok()) s = hooks_->AfterCommit();
  if (!s.ok()) return (void)sink(ErrorRecord(s));
  hooks_->Log(Level::kInfo, "poison cleared in pool " + BlockRangeText(pb0, pb1) + ": " +
                                std::to_string(out.cleared) + " blocks back in service, " +
                                std::to_string(out.returned) + " returned to free space");
  sink(Record("done").Add("cleared", out.cleared).Add("returned", out.returned));
}

void PoisonService::Resolve(uint64_t pb0, uint64_t pb1, const PoisonSink& sink) {
  Status s = vol_->CheckPoolRange(pb0, pb1);
  Counts counts;
  if (s.ok()) s = ReportOwners(pb0, pb1, nullptr, sink, &counts);
  if (!s.ok()) return (void)sink(ErrorRecord(s));
  sink(Record("done").Add("owners", counts.owners));
}

void PoisonService::PreRemove(const PoisonSink& sink) {
  MutexLock g(&mu_);
  hooks_->PreRemove(sink);
}

}  // namespace daxref
