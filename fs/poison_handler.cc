#include "fs/poison_handler.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <cstring>
#include <string>

#include "base/block_range_text.h"

namespace daxref {

namespace {

using control::Record;

// Owners go to the log a few to a line: one line each would cost more than
// the rest of the walk (a syslog round trip per owner).
constexpr int kOwnersPerLogLine = 32;

}  // namespace

uint64_t PoisonSignalValue(uint64_t ino, uint64_t fblock) {
  constexpr uint64_t kMax = 0xffffffff;
  return (std::min(ino, kMax) << 32) | std::min(fblock, kMax);
}

void PoisonHandler::BeginEvent() {
  holders_.reset();
  log_line_.clear();
  in_line_ = 0;
}

void PoisonHandler::OnOwner(const PoisonFailure& f, const PoisonOwner& o, Record* r) {
  // New reads already fail (the block is recorded bad); what the kernel
  // cached from before must go too, mapped pages included.
  fs_->InvalidateCache(o.ino, o.offset(), o.length());
  if (!holders_ && fs_->dev() != 0) holders_.emplace(HolderIndex::Scan(fs_->dev()));
  std::string pids;
  if (holders_ && opts_.signal != 0) {
    holders_->ForEachHolder(o.ino, [&](pid_t pid) {
      int err = 0;
      SignalOutcome out = SignalHolder(pid, fs_->dev(), o.ino, opts_.signal,
                                       PoisonSignalValue(o.ino, o.fblock), &err);
      if (out == SignalOutcome::kSent) {
        r->Add("pid", static_cast<uint64_t>(pid));
        pids += (pids.empty() ? "" : " ") + std::to_string(pid);
      } else if (out == SignalOutcome::kFailed) {
        spdlog::warn("poison: cannot signal process {} holding inode {}: {}", pid, o.ino,
                     strerror(err));
      }
    });
  }
  // Holders of leases on the range learn where, in file bytes; the lease
  // stays (the blocks are bad, not moved). The library turns it into an
  // address in their mapping (docs/dax.md).
  if (fs_->leases())
    fs_->leases()->ForEachOverlapping(
        o.ino, o.offset(), o.length(),
        [&](const LeaseTable::Lease& l, uint64_t off, uint64_t len) {
          control::Record p("poison");
          p.Add("lease", l.id).Add("offset", off).Add("length", len);
          if (!l.session->Send(p))
            spdlog::warn("poison: cannot tell process {} (lease {}): {}", l.session->pid, l.id,
                         strerror(errno));
        });
  std::string paths;
  r->ForEach("path", [&](const std::string& p) {
    if (paths.size() < 512) paths += (paths.empty() ? "" : ", ") + p;
  });
  log_line_ += (in_line_ ? "; inode " : "inode ") + std::to_string(o.ino) + " (" +
               (paths.empty() ? "no name" : paths) + ") bytes " + std::to_string(o.offset()) +
               ".." + std::to_string(o.offset() + o.length() - 1) +
               (pids.empty() ? "" : ", signalled " + pids);
  if (++in_line_ == kOwnersPerLogLine) AfterOwners(f);
}

void PoisonHandler::AfterOwners(const PoisonFailure& f) {
  if (in_line_ > 0) spdlog::warn("poison: pool {}: {}", BlockRangeText(f.pb0, f.pb1), log_line_);
  log_line_.clear();
  in_line_ = 0;
}

void PoisonHandler::OnReserved(const PoisonFailure& f, const PoisonSink& sink) {
  const std::string why =
      "poison in the pool's own metadata (superblock copy, " + BlockRangeText(f.pb0, f.pb1) + ")";
  fs_->Shutdown(why);
  sink(Record("shutdown").Add("reason", why));
  // Nothing the kernel cached may be served any more either.
  fs_->inodes().ForEachKnown([&](uint64_t ino) { fs_->InvalidateCache(ino, 0, 0); });
}

void PoisonHandler::Log(Level level, const std::string& message) {
  switch (level) {
    case Level::kInfo:
      spdlog::info("{}", message);
      break;
    case Level::kWarn:
      spdlog::warn("{}", message);
      break;
    case Level::kError:
      spdlog::error("{}", message);
      break;
  }
}

void PoisonHandler::FoundPoison(uint64_t pool_off, const char* how, BadOriginKind origin) {
  uint64_t pb = pool_off >> kBlockShift;
  if (pb >= fs_->volume()->superblock().block_count || fs_->volume()->IsBad(pb, pb + 1)) return;
  spdlog::error("{} at pool byte {} (block {}): treating it as poison", how, pool_off, pb);
  service_.RecordFound(pb, pb + 1, origin);
}

void PoisonHandler::MemoryFault(uint64_t pool_off) {
  FoundPoison(pool_off, "machine check (BUS_MCEERR_AR) while the daemon touched the pool",
              BadOriginKind::kMachineCheck);
}

void PoisonHandler::AsyncMemoryFault(uint64_t pool_off) {
  FoundPoison(pool_off, "machine check reported by the kernel (BUS_MCEERR_AO, nobody touched it)",
              BadOriginKind::kMachineCheckAsync);
}

void PoisonHandler::DeviceBadBlocks(uint64_t lost) {
  spdlog::error(
      "{} machine-check reports were lost (more arrived at once than the daemon holds); "
      "re-reading the device's list of bad blocks",
      lost);
  uint64_t ranges = 0;
  Status s = fs_->pool()->WalkBadBlocks([&](uint64_t off, uint64_t len) {
    ++ranges;
    service_.RecordFound(off >> kBlockShift, (off + len + kBlockSize - 1) >> kBlockShift,
                         BadOriginKind::kDevice);
    return true;
  });
  if (!s.ok())
    spdlog::error("cannot read the device's bad blocks: {}", s.message());
  else
    spdlog::warn("the device lists {} bad ranges under the pool", ranges);
}

Status PoisonHandler::WalkDeviceBadBlocks(const std::function<bool(uint64_t, uint64_t)>& fn) {
  return fs_->pool()->WalkBadBlocks(fn);
}

void PoisonHandler::PreRemove(const PoisonSink& sink) {
  spdlog::warn("pre-remove: the pool's device is going away; freezing {}", fs_->mountpoint());
  // 1. No modification starts from now on; those under way finish.
  fs_->modify_gate().Freeze();
  sink(Record("note").Add("message", "frozen: modifications now fail with EIO"));
  // 2. Everything acknowledged is made durable: pool stores, then metadata.
  Status s = fs_->pool()->PersistAll();
  if (s.ok()) s = fs_->volume()->Sync();
  if (!s.ok()) {
    spdlog::error("pre-remove: sync failed: {}", s.message());
    sink(Record("error")
             .Add("errno", static_cast<uint64_t>(s.err() ? s.err() : EIO))
             .Add("message", s.message()));
  } else {
    sink(Record("note").Add("message", "flushed: pool and metadata durable"));
  }
  // Every lease is revoked now that everything is durable (seed 004: freeze,
  // flush, then revoke and signal). Under PoisonService::mu_, which nothing
  // on the acknowledgement's path takes (docs/design.md, "Locks").
  if (fs_->leases()) {
    Status revoked = fs_->leases()->RevokeAll("pre-remove");
    if (!revoked.ok()) spdlog::error("pre-remove: {}", revoked.message());
    sink(Record("note").Add("message", "leases revoked"));
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
  // 5. Shut down; the control server detaches the mount once this reply is out.
  fs_->Shutdown("pre-remove: the pool's device is being removed");
  sink(Record("done").Add("inodes", inodes).Add("signalled", signalled));
}

}  // namespace daxref
