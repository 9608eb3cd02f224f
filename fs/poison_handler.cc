#include "fs/poison_handler.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <chrono>
#include <optional>
#include <string>
#include <vector>

#include "fs/holder_scan.h"

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

// Pool range arguments, checked against the pool before anything runs.
Status CheckRange(const Superblock& sb, uint64_t pb0, uint64_t pb1) {
  if (pb1 <= pb0) return Status::Invalid("empty range");
  if (pb1 > sb.block_count)
    return Status::Invalid(Blocks(pb0, pb1) + " reach past the end of the pool (" +
                           std::to_string(sb.block_count) + " blocks)");
  return Status::Ok();
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
  Volume* vol = fs_->volume();
  Volume::PathResolver resolver(vol);
  uint64_t met = 0;
  std::vector<pid_t> pids;  // this owner's, bounded by the holders of one file
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
  Status s = vol->QueryOwners(pb0, pb1, [&](const RmapRecord& rec) {
    uint64_t p0 = std::max(rec.pblock, pb0), p1 = std::min(rec.pend(), pb1);
    uint64_t fblock = rec.fblock + (p0 - rec.pblock);
    uint64_t off = fblock << kBlockShift, len = (p1 - p0) << kBlockShift;
    ++met;
    pids.clear();
    if (w->act) {
      // New reads already fail (the block is recorded bad); what the kernel
      // cached from before must go too, mapped pages included.
      fs_->InvalidateCache(rec.ino, off, len);
      if (w->holders && opts_.signal != 0) {
        w->holders->ForEachHolder(rec.ino, [&](pid_t pid) {
          int err = 0;
          SignalOutcome o = SignalHolder(pid, fs_->dev(), rec.ino, opts_.signal,
                                         PoisonSignalValue(rec.ino, fblock), &err);
          if (o == SignalOutcome::kSent) {
            pids.push_back(pid);
          } else if (o == SignalOutcome::kFailed) {
            spdlog::warn("poison: cannot signal process {} holding inode {}: {}", pid, rec.ino,
                         strerror(err));
          }
        });
      }
      w->signalled += pids.size();
    }
    Record r("owner");
    r.Add("ino", rec.ino).Add("pblock", p0).Add("blocks", p1 - p0);
    r.Add("offset", off).Add("length", len);
    std::string paths;
    Status ps = resolver.Paths(rec.ino, [&](const std::string& path) {
      r.Add("path", path);
      if (paths.size() < 512) paths += (paths.empty() ? "" : ", ") + path;
      return true;
    });
    if (!ps.ok()) spdlog::warn("poison: paths of inode {}: {}", rec.ino, ps.message());
    std::string pid_list;
    for (pid_t pid : pids) {
      r.Add("pid", static_cast<uint64_t>(pid));
      pid_list += (pid_list.empty() ? "" : " ") + std::to_string(pid);
    }
    if (w->act) {
      log_line += (in_line ? "; inode " : "inode ") + std::to_string(rec.ino) + " (" +
                  (paths.empty() ? "no name" : paths) + ") bytes " + std::to_string(off) + ".." +
                  std::to_string(off + len - 1) + (pids.empty() ? "" : ", signalled " + pid_list);
      if (++in_line == kOwnersPerLogLine) flush_log();
    }
    sink(r);
    return true;
  });
  flush_log();
  w->owners += met;
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
  Record r("range");
  r.Add("pblock", pb0).Add("blocks", pb1 - pb0).Add("added", out.added);
  r.Add("retired", out.retired).Add("owned", out.owned).Add("reserved", out.reserved);
  sink(r);
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
  std::lock_guard<std::mutex> g(mu_);
  Status s = CheckRange(fs_->volume()->superblock(), pb0, pb1);
  if (!s.ok()) return (void)sink(Error(s));
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
  std::lock_guard<std::mutex> g(mu_);
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
  std::vector<std::pair<uint64_t, uint64_t>> pieces;
  s = vol->MapRange(ino, off, len, [&](const MappedSegment& seg) {
    if (seg.hole) return true;
    uint64_t p0 = seg.pool_off >> kBlockShift;
    uint64_t p1 = (seg.pool_off + seg.len + kBlockSize - 1) >> kBlockShift;
    if (!pieces.empty() && pieces.back().second >= p0)
      pieces.back().second = std::max(pieces.back().second, p1);
    else
      pieces.emplace_back(p0, p1);
    return true;
  });
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

void PoisonHandler::MemoryFault(uint64_t pool_off) {
  uint64_t pb = pool_off >> kBlockShift;
  if (pb >= fs_->volume()->superblock().block_count || fs_->volume()->IsBad(pb, pb + 1)) return;
  spdlog::error("memory fault at pool byte {} (block {}): treating it as poison", pool_off, pb);
  Inject(pb, pb + 1, /*strict=*/false, [](const Record& r) {
    if (r.kind == "error") spdlog::error("poison: {}", r.Get("message") ? *r.Get("message") : "");
    return true;
  });
}

void PoisonHandler::List(const Sink& sink) {
  std::lock_guard<std::mutex> g(mu_);
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
  std::lock_guard<std::mutex> g(mu_);
  ClearOutcome out;
  Status s = fs_->volume()->ClearBad(pb0, pb1, &out);
  if (!s.ok()) return (void)sink(Error(s));
  spdlog::info("poison cleared in pool {}: {} blocks back in service, {} returned to free space",
               Blocks(pb0, pb1), out.cleared, out.returned);
  sink(Record("done").Add("cleared", out.cleared).Add("returned", out.returned));
}

void PoisonHandler::Resolve(uint64_t pb0, uint64_t pb1, const Sink& sink) {
  Status s = CheckRange(fs_->volume()->superblock(), pb0, pb1);
  if (!s.ok()) return (void)sink(Error(s));
  Walk w;
  if (!WalkOwners(pb0, pb1, &w, sink)) return;
  sink(Record("done").Add("owners", w.owners));
}

void PoisonHandler::PreRemove(const Sink& sink) {
  std::lock_guard<std::mutex> g(mu_);
  spdlog::warn("pre-remove: the pool's device is going away; freezing {}", fs_->mountpoint());
  // 1. No modification starts from now on; those under way finish.
  fs_->modify_gate().Freeze();
  sink(Record("note").Add("message", "frozen: modifications now fail with EIO"));
  // 2. Everything acknowledged is made durable: pool stores, then metadata.
  fs_->pool()->PersistAll();
  Status s = fs_->volume()->Sync();
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
