// ExtentMaps: the extent maps of the files in use, in memory, and
// authoritative while loaded.
//
// Why: in the store, a file's map is E(ino, fblock) records, and a file
// whose extents change all the time (random writes, punches, truncates)
// leaves a deleted version behind with every edit. A lookup in the store
// seeks, and RocksDB's seeks step over every deleted version on the way,
// so their cost grew with the history of the file, not with its extents
// (2,000 churn operations took 1.6 s on a fresh file and 1,000 took 32.6 s
// on one that had seen 20,000; docs/design.md, "Extent maps"). Here a file's
// map is read from the store once, by a forward scan, and from then on every
// batch that edits the file's E records edits this map in step: no extent
// lookup of a loaded file touches the store.
//
// Rules:
//   - A FileExtents is the truth for its inode while it is registered. The
//     only writers are Volume's transactions (meta/volume_txn.h), which
//     hold Volume::mu_ and the file's `mu` exclusive from the first access
//     to the commit or rollback, and undo their edits on rollback.
//   - Readers outside Volume::mu_ hold `mu` shared, so they see committed
//     maps only, and take no other lock while holding it.
//   - A map is loaded by whoever needs it first. A load that raced with an
//     eviction (generation_) is thrown away and retried; one that raced with
//     another load defers to the registered map. Only the transaction that
//     edits a file can change its E records, and it registers the map
//     before its first edit, so a map that loaded and registered without a
//     race reflects every commit.
//   - Maps nobody holds are evicted when the total passes a budget; the
//     map of a deleted inode is forgotten when the deletion commits.
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <unordered_map>

#include "base/mutex.h"
#include "base/thread_annotations.h"
#include "meta/format.h"
#include "meta/status.h"

namespace daxref {

class FileExtents {
 public:
  using Map = std::map<uint64_t, Extent>;  // by Extent::fblock; never overlapping

  // Exclusive: the transaction editing this file. Shared: readers outside
  // Volume::mu_.
  SharedMutex mu;
  Map map GUARDED_BY(mu);
};

// The extents of `m` that overlap file blocks [fb0, fb1), in file order:
// fn(extent) returns false to stop.
template <typename Fn>
void ForEachExtentIn(const FileExtents::Map& m, uint64_t fb0, uint64_t fb1, Fn&& fn) {
  auto it = m.upper_bound(fb0);
  if (it != m.begin() && std::prev(it)->second.fend() > fb0) --it;
  for (; it != m.end() && it->second.fblock < fb1; ++it)
    if (!fn(it->second)) return;
}

class ExtentMaps {
 public:
  using Handle = std::shared_ptr<FileExtents>;
  // Reads ino's committed extents from the store into *out (validated:
  // sorted, not overlapping, inside the pool).
  using Loader = std::function<Status(uint64_t ino, FileExtents::Map* out)>;

  // Extents (plus one per file) kept before maps nobody holds are evicted.
  // A std::map node is about 80 bytes: 2^21 is some 170 MiB at most. A file
  // in use is loaded whole even if it alone is larger.
  static constexpr int64_t kDefaultBudget = int64_t{1} << 21;

  explicit ExtentMaps(int64_t budget = kDefaultBudget) : budget_(budget) {}

  // The map of ino, loaded with `load` if it is not yet.
  Result<Handle> Get(uint64_t ino, const Loader& load) EXCLUDES(mu_);
  // ino was deleted: its (empty) map goes. The caller accounts for the
  // extents it had (Resized).
  void Forget(uint64_t ino) EXCLUDES(mu_);
  // A transaction that held maps changed their sizes by `delta` extents.
  void Resized(int64_t delta) { extents_.fetch_add(delta, std::memory_order_relaxed); }
  // Calls fn(ino, handle) for each registered map (a snapshot of the
  // registry: the maps may change after it was taken).
  void ForEach(const std::function<void(uint64_t, const Handle&)>& fn) EXCLUDES(mu_);

  size_t files() EXCLUDES(mu_);
  int64_t extents() const { return extents_.load(std::memory_order_relaxed); }

 private:
  void EvictIdle() REQUIRES(mu_);

  const int64_t budget_;
  Mutex mu_;  // a leaf: the registry only, never held while loading
  std::unordered_map<uint64_t, Handle> files_ GUARDED_BY(mu_);
  uint64_t generation_ GUARDED_BY(mu_) = 0;  // advances with every removal
  std::atomic<int64_t> extents_{0};
};

}  // namespace daxref
