#include "fs/poison_handler.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <chrono>
#include <optional>
#include <string>
#include <vector>

#include "admin/holder_scan.h"
#include "admin/poison_records.h"

namespace daxref {

namespace {

using control::Record;

Record Error(const Status& s) {
  Record r("error");
  r.Add("errno", static_cast<uint64_t>(s.err() ? s.err() : EIO));
  r.Add("message", s.message());
  return r;
}

std::string Blocks(uint64_t pb0, uint64_t pb1) {
  return pb1 - pb0 == 1 ? "block " + std::to_string(pb0)
                        : "blocks " + std::to_string(pb0) + ".." + std::to_string(pb1 - 1);
}

uint64_t Micros(std::chrono::steady_clock::time_point since) {
  return std::chrono::duration_cast<std::chrono::microseconds>(std::chrono::steady_clock::now() -
                                                               since)
      .count();
}

}  // namespace

uint64_t PoisonSignalValue(uint64_t ino, uint64_t fblock) {
  constexpr uint64_t kMax = 0xffffffff;
  return (std::min(ino, kMax) << 32) | std::min(fblock, kMax);
}

struct PoisonHandler::Walk {
  bool act = false;                    // invalidate and signal (inject)
  std::optional<HolderIndex> holders;  // found once per event
  uint64_t owners = 0;
  uint64_t signalled = 0;
};

bool PoisonHandler::WalkOwners(uint64_t pb0, uint64_t pb1, Walk* w, const Sink& sink) {
  // Owners go to the log a few to a line: one line each would cost more
  // than the rest of the walk (a syslog round trip per owner).
  constexpr int kOwnersPerLogLine = 32;
  std::string log_line;
  int in_line = 0;
  auto flush_log = [&] {
    if (in_line > 0) spdlog::warn("poison: pool {}: {}", Blocks(pb0, pb1), log_line);
    log_line.clear();
    in_line = 0;
  };
  // For inject: invalidate, signal, log; list and resolve only report.
  OwnerActFn act;
  if (w->act) {
    act = [&](const PoisonOwner& o, Record* r) {
      // New reads already fail (the block is recorded bad); what the kernel
      // cached from before must go too, mapped pages included.
      fs_->InvalidateCache(o.ino, o.offset(), o.length());
      std::string pids;
      if (w->holders && opts_.signal != 0) {
        w->holders->ForEachHolder(o.ino, [&](pid_t pid) {
          int err = 0;
          SignalOutcome out = SignalHolder(pid, fs_->dev(), o.ino, opts_.signal,
                                           PoisonSignalValue(o.ino, o.fblock), &err);
          if (out == SignalOutcome::kSent) {
            r->Add("pid", static_cast<uint64_t>(pid));
            pids += (pids.empty() ? "" : " ") + std::to_string(pid);
            ++w->signalled;
          } else if (out == SignalOutcome::kFailed) {
            spdlog::warn("poison: cannot signal process {} holding inode {}: {}", pid, o.ino,
                         strerror(err));
          }
        });
      }
      std::string paths;
      r->ForEach("path", [&](const std::string& p) {
        if (paths.size() < 512) paths += (paths.empty() ? "" : ", ") + p;
      });
      log_line += (in_line ? "; inode " : "inode ") + std::to_string(o.ino) + " (" +
                  (paths.empty() ? "no name" : paths) + ") bytes " + std::to_string(o.offset()) +
                  ".." + std::to_string(o.offset() + o.length() - 1) +
                  (pids.empty() ? "" : ", signalled " + pids);
      if (++in_line == kOwnersPerLogLine) flush_log();
    };
  }
  Status path_error;
  Status s = WalkOwnerRecords(
      fs_->volume(), pb0, pb1, act, [&](const Record& r) { sink(r); }, &w->owners, &path_error);
  flush_log();
  if (!path_error.ok()) spdlog::warn("poison: owners' paths: {}", path_error.message());
  if (!s.ok()) {
    spdlog::error("poison: reverse-map walk over {} failed: {}", Blocks(pb0, pb1), s.message());
    sink(Error(s));
    return false;
  }
  return true;
}

bool PoisonHandler::InjectLocked(uint64_t pb0, uint64_t pb1, bool strict, const Sink& sink,
                                 Walk* w) {
  PoisonOutcome out;
  Status s = fs_->volume()->MarkBad(pb0, pb1, strict, &out);
  if (!s.ok()) {
    sink(Error(s));
    return false;
  }
  sink(RangeRecord(pb0, pb1, out));
  spdlog::warn("poison: pool {} recorded bad ({} retired, {} owned by files, {} reserved)",
               Blocks(pb0, pb1), out.retired, out.owned, out.reserved);
  if (out.reserved > 0) {
    std::string why =
        "poison in the pool's own metadata (superblock copy, " + Blocks(pb0, pb1) + ")";
    fs_->Shutdown(why);
    sink(Record("shutdown").Add("reason", why));
    // Nothing the kernel cached may be served any more either.
    fs_->inodes().ForEachKnown([&](uint64_t ino) { fs_->InvalidateCache(ino, 0, 0); });
  }
  if (out.owned == 0) return true;
  if (!w->holders && fs_->dev() != 0) w->holders.emplace(HolderIndex::Scan(fs_->dev()));
  return WalkOwners(pb0, pb1, w, sink);
}

void PoisonHandler::Inject(uint64_t pb0, uint64_t pb1, bool strict, const Sink& sink) {
  auto t0 = std::chrono::steady_clock::now();
  MutexLock g(&mu_);
  Walk w;
  w.act = true;
  if (!InjectLocked(pb0, pb1, strict, sink, &w)) return;
  sink(Record("done")
           .Add("owners", w.owners)
           .Add("signalled", w.signalled)
           .Add("elapsed_us", Micros(t0)));
}

void PoisonHandler::InjectFile(uint64_t ino, uint64_t off, uint64_t len, const Sink& sink) {
  auto t0 = std::chrono::steady_clock::now();
  MutexLock g(&mu_);
  Volume* vol = fs_->volume();
  InodeRecord r;
  Status s = vol->GetInode(ino, &r);
  if (s.err() == ENOENT) s = Status::NotFound("no inode " + std::to_string(ino));
  if (s.ok() && !S_ISREG(r.mode)) s = Status::Invalid("not a regular file");
  if (s.ok() && len == 0) s = Status::Invalid("empty range");
  if (s.ok() && off >= r.size)
    s = Status::Invalid("offset " + std::to_string(off) + " is at or past the end of the file (" +
                        std::to_string(r.size) + " bytes)");
  if (!s.ok()) return (void)sink(Error(s));
  len = std::min(len, r.size - off);
  // The pool pieces behind the range: bounded by the range the admin named.
  PoolPieces pieces;
  s = FilePoolPieces(vol, ino, off, len, &pieces);
  if (s.ok() && pieces.empty()) s = Status::Invalid("the range is a hole: no block to poison");
  for (const auto& [p0, p1] : pieces) {
    if (!s.ok()) break;
    if (vol->IsBad(p0, p1))
      s = Status::Error(EEXIST, "pool " + Blocks(p0, p1) + " behind the range is already poisoned");
  }
  if (!s.ok()) return (void)sink(Error(s));
  Walk w;
  w.act = true;
  for (const auto& [p0, p1] : pieces)
    if (!InjectLocked(p0, p1, /*strict=*/false, sink, &w)) return;
  sink(Record("done")
           .Add("owners", w.owners)
           .Add("signalled", w.signalled)
           .Add("elapsed_us", Micros(t0)));
}

namespace {
// What the daemon's own poison events reply to: nobody; errors to the log.
bool LogErrors(const Record& r) {
  if (r.kind == "error") spdlog::error("poison: {}", r.Get("message") ? *r.Get("message") : "");
  return true;
}
}  // namespace

void PoisonHandler::FoundPoison(uint64_t pool_off, const char* how) {
  uint64_t pb = pool_off >> kBlockShift;
  if (pb >= fs_->volume()->superblock().block_count || fs_->volume()->IsBad(pb, pb + 1)) return;
  spdlog::error("{} at pool byte {} (block {}): treating it as poison", how, pool_off, pb);
  Inject(pb, pb + 1, /*strict=*/false, LogErrors);
}

void PoisonHandler::MemoryFault(uint64_t pool_off) {
  FoundPoison(pool_off, "machine check (BUS_MCEERR_AR) while the daemon touched the pool");
}

void PoisonHandler::AsyncMemoryFault(uint64_t pool_off) {
  FoundPoison(pool_off, "machine check reported by the kernel (BUS_MCEERR_AO, nobody touched it)");
}

void PoisonHandler::DeviceBadBlocks(uint64_t lost) {
  spdlog::error(
      "{} machine-check reports were lost (more arrived at once than the daemon holds); "
      "re-reading the device's list of bad blocks",
      lost);
  uint64_t ranges = 0;
  Status s = fs_->pool()->WalkBadBlocks([&](uint64_t off, uint64_t len) {
    ++ranges;
    Volume* vol = fs_->volume();
    uint64_t pb0 = off >> kBlockShift;
    uint64_t pb1 =
        std::min((off + len + kBlockSize - 1) >> kBlockShift, vol->superblock().block_count);
    // Each run of blocks not yet recorded, as its own event: a device range
    // is a few blocks, and most of it may be known already.
    uint64_t run = pb1;
    for (uint64_t pb = pb0; pb <= pb1; ++pb) {
      bool fresh = pb < pb1 && !vol->IsBad(pb, pb + 1);
      if (fresh && run == pb1) run = pb;
      if (!fresh && run != pb1) {
        Inject(run, pb, /*strict=*/false, LogErrors);
        run = pb1;
      }
    }
    return true;
  });
  if (!s.ok())
    spdlog::error("cannot read the device's bad blocks: {}", s.message());
  else
    spdlog::warn("the device lists {} bad ranges under the pool", ranges);
}

void PoisonHandler::List(const Sink& sink) {
  MutexLock g(&mu_);
  uint64_t ranges = 0, blocks = 0;
  Walk w;
  bool ok = true;
  fs_->volume()->WalkBad([&](uint64_t start, uint64_t len) {
    ++ranges;
    blocks += len;
    sink(Record("bad").Add("pblock", start).Add("blocks", len));
    ok = WalkOwners(start, start + len, &w, sink);
    return ok;
  });
  if (!ok) return;
  sink(Record("done").Add("ranges", ranges).Add("blocks", blocks).Add("owners", w.owners));
}

void PoisonHandler::Clear(uint64_t pb0, uint64_t pb1, const Sink& sink) {
  MutexLock g(&mu_);
  ClearOutcome out;
  Status s = fs_->volume()->ClearBad(pb0, pb1, &out);
  if (!s.ok()) return (void)sink(Error(s));
  spdlog::info("poison cleared in pool {}: {} blocks back in service, {} returned to free space",
               Blocks(pb0, pb1), out.cleared, out.returned);
  sink(Record("done").Add("cleared", out.cleared).Add("returned", out.returned));
}

void PoisonHandler::Resolve(uint64_t pb0, uint64_t pb1, const Sink& sink) {
  Status s = fs_->volume()->CheckPoolRange(pb0, pb1);
  if (!s.ok()) return (void)sink(Error(s));
  Walk w;
  if (!WalkOwners(pb0, pb1, &w, sink)) return;
  sink(Record("done").Add("owners", w.owners));
}

void PoisonHandler::PreRemove(const Sink& sink) {
  MutexLock g(&mu_);
  spdlog::warn("pre-remove: the pool's device is going away; freezing {}", fs_->mountpoint());
  // 1. No modification starts from now on; those under way finish.
  fs_->modify_gate().Freeze();
  sink(Record("note").Add("message", "frozen: modifications now fail with EIO"));
  // 2. Everything acknowledged is made durable: pool stores, then metadata.
  Status s = fs_->pool()->PersistAll();
  if (s.ok()) s = fs_->volume()->Sync();
  if (!s.ok()) {
    spdlog::error("pre-remove: sync failed: {}", s.message());
    sink(Error(s));
  } else {
    sink(Record("note").Add("message", "flushed: pool and metadata durable"));
  }
  // 3. The kernel drops everything it caches of every inode it knows.
  uint64_t inodes = 0;
  fs_->inodes().ForEachKnown([&](uint64_t ino) {
    fs_->InvalidateCache(ino, 0, 0);
    ++inodes;
  });
  sink(Record("note").Add("message", "invalidated " + std::to_string(inodes) + " cached inodes"));
  // 4. Every process holding any file of the mount is told.
  uint64_t signalled = 0;
  if (opts_.signal != 0 && fs_->dev() != 0) {
    HolderIndex holders = HolderIndex::Scan(fs_->dev());
    holders.ForEachProcess([&](pid_t pid) {
      int err = 0;
      if (SignalHolder(pid, fs_->dev(), 0, opts_.signal, PoisonSignalValue(0, 0xffffffff), &err) ==
          SignalOutcome::kSent) {
        ++signalled;
        spdlog::warn("pre-remove: signalled process {}", pid);
      }
    });
  }
  // 5. Shut down; the caller detaches the mount once this reply is out.
  fs_->Shutdown("pre-remove: the pool's device is being removed");
  sink(Record("done").Add("inodes", inodes).Add("signalled", signalled));
}

}  // namespace daxref
