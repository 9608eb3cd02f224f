#include "admin/scrub.h"

#include <rocksdb/db.h>
#include <spdlog/spdlog.h>

#include <chrono>
#include <string>

#include "meta/checker.h"

namespace daxref {

namespace {

// Paths are looked up for this many problems; past it only inodes are named
// (a store damaged everywhere must not make the scrub walk parents forever).
constexpr uint64_t kPathsFor = 1000;

}  // namespace

void ScrubVolume(Volume* volume, const std::atomic<bool>& stop,
                 const std::function<bool(const control::Record&)>& sink) {
  const auto start = std::chrono::steady_clock::now();
  rocksdb::DB* db = volume->db();
  // Every read of the check goes through this one snapshot; released on
  // every way out.
  rocksdb::ManagedSnapshot snapshot(db);
  const Superblock sb = volume->superblock();
  bool gone = false;
  auto send = [&](const control::Record& r) {
    if (!gone && !sink(r)) gone = true;
    return !gone;
  };

  CheckOptions opts;
  opts.block_count = sb.block_count;
  opts.pool = &sb;
  opts.snapshot = snapshot.snapshot();
  auto last = start - std::chrono::seconds(1);
  opts.progress = [&](std::string_view phase, double done) {
    if (stop.load(std::memory_order_relaxed) || gone) return false;
    auto now = std::chrono::steady_clock::now();
    if (now - last >= std::chrono::seconds(1)) {
      last = now;
      send(control::Record("progress")
               .Add("phase", phase)
               .Add("percent", static_cast<uint64_t>(done * 100)));
    }
    return !gone;
  };
  uint64_t problems = 0;
  CheckReport report;
  Status s = CheckStore(
      db, opts,
      [&](const Problem& p) {
        control::Record r("problem");
        r.Add("class", ProblemClassName(p.cls)).Add("text", p.text);
        if (p.ino != 0) {
          r.Add("ino", p.ino);
          if (problems < kPathsFor) {
            std::string path = InodePath(db, snapshot.snapshot(), p.ino);
            if (!path.empty()) r.Add("path", path);
          }
        }
        ++problems;
        spdlog::warn("scrub: [{}] {}", ProblemClassName(p.cls), p.text);
        send(r);
      },
      &report);
  const auto us = std::chrono::duration_cast<std::chrono::microseconds>(
                      std::chrono::steady_clock::now() - start)
                      .count();
  if (!s.ok()) {
    spdlog::warn("scrub stopped: {}", s.message());
    send(control::Record("error")
             .Add("errno", static_cast<uint64_t>(s.err()))
             .Add("message", s.err() == ECANCELED ? std::string("scrub cancelled")
                                                  : "scrub failed: " + s.message()));
    return;
  }
  // The store is right; the daemon's extent maps in memory must say the
  // same (meta/extent_maps.h). A difference is a bug of the daemon's, not
  // damage: it is reported, and a remount reloads the maps from the store.
  if (Status maps = volume->CheckExtentMaps(); !maps.ok()) {
    ++problems;
    ++report.problems;
    spdlog::error("scrub: [extent-map-memory] {}", maps.message());
    send(control::Record("problem").Add("class", "extent-map-memory").Add("text", maps.message()));
  }
  spdlog::info("scrub: {} problems in {} inodes, {} extents ({} ms)", report.problems,
               report.inodes, report.extents, us / 1000);
  control::Record done("done");
  done.Add("problems", report.problems)
      .Add("inodes", report.inodes)
      .Add("directories", report.directories)
      .Add("extents", report.extents)
      .Add("owned_blocks", report.owned_blocks)
      .Add("shared_blocks", report.shared_blocks)
      .Add("free_blocks", report.free_blocks)
      .Add("bad_blocks", report.bad_blocks)
      .Add("poisoned_blocks", report.poisoned_blocks)
      .Add("orphans", report.orphans)
      .Add("elapsed_us", static_cast<uint64_t>(us));
  send(done);
}

}  // namespace daxref
