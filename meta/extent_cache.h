// ExtentCache: the committed extent maps of recently used files, in memory.
//
// Why: finding the extent that covers a block means finding the greatest
// key at or before it, a backward seek, and RocksDB walks every old version
// of a key on the way back. A file grown by small appends rewrites its one
// extent record once per append, so until compaction that record has
// hundreds of thousands of versions and each backward seek costs
// milliseconds (4 KiB random writes to a 1 GiB file laid out in 4 KiB
// appends: 23k/s through the store, see docs/design.md). Loading a file's
// extents reads forward, newest version first, which stays cheap; lookups
// then binary-search a vector.
//
// Coherence: an operation that edits an inode's extent records drops that
// inode's entry when it commits. A load that raced with such a drop is not
// stored (the generation check). Thread-safe.
#pragma once

#include <cstdint>
#include <memory>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include "base/mutex.h"
#include "base/thread_annotations.h"
#include "meta/format.h"

namespace daxref {

class ExtentCache {
 public:
  using Map = std::shared_ptr<const std::vector<Extent>>;  // sorted by fblock

  // Files with more extents than this are not cached (loading one costs a
  // scan of its extents, and every extent edit drops it again); the total is
  // bounded by kMaxTotal (everything is dropped when it would be exceeded).
  static constexpr size_t kMaxPerFile = 1024;
  static constexpr size_t kMaxTotal = 1 << 20;

  Map Get(uint64_t ino) const {
    MutexLock g(&mu_);
    auto it = maps_.find(ino);
    return it == maps_.end() ? nullptr : it->second;
  }
  // Whether `ino` was found to have more than kMaxPerFile extents (since its
  // extents last changed): then do not try to load it.
  bool TooBig(uint64_t ino) const {
    MutexLock g(&mu_);
    return too_big_.count(ino) != 0;
  }
  void MarkTooBig(uint64_t ino, uint64_t generation) {
    MutexLock g(&mu_);
    if (generation == generation_) too_big_.insert(ino);
  }
  // A value to pass to Put, taken before reading the store.
  uint64_t generation() const {
    MutexLock g(&mu_);
    return generation_;
  }
  void Put(uint64_t ino, Map m, uint64_t generation) {
    MutexLock g(&mu_);
    if (generation != generation_ || m->size() > kMaxPerFile) return;
    if (total_ + m->size() > kMaxTotal) {
      maps_.clear();
      total_ = 0;
    }
    total_ += m->size();
    auto& slot = maps_[ino];
    if (slot) total_ -= slot->size();
    slot = std::move(m);
  }
  void Drop(uint64_t ino) {
    MutexLock g(&mu_);
    generation_++;
    too_big_.erase(ino);
    auto it = maps_.find(ino);
    if (it == maps_.end()) return;
    total_ -= it->second->size();
    maps_.erase(it);
  }

 private:
  mutable Mutex mu_;  // a leaf: nothing is taken while it is held
  std::unordered_map<uint64_t, Map> maps_ GUARDED_BY(mu_);
  std::unordered_set<uint64_t> too_big_ GUARDED_BY(mu_);
  size_t total_ GUARDED_BY(mu_) = 0;
  uint64_t generation_ GUARDED_BY(mu_) = 0;
};

}  // namespace daxref
