#include "meta/extent_maps.h"

#include <vector>

namespace daxref {

namespace {
// The size of a map nobody else can reach: the registry's own handle is the
// only one, and new ones are handed out only under the registry lock, which
// the caller holds. (The analysis cannot see that use_count() == 1 excludes
// every other holder of `mu`.)
size_t SizeOfUnheld(const FileExtents& f) NO_THREAD_SAFETY_ANALYSIS {
  return f.map.size();
}
}  // namespace

Result<ExtentMaps::Handle> ExtentMaps::Get(uint64_t ino, const Loader& load) {
  for (;;) {
    uint64_t gen;
    {
      MutexLock g(&mu_);
      auto it = files_.find(ino);
      if (it != files_.end()) return it->second;
      gen = generation_;
    }
    // Loaded outside the registry lock: a big file takes a while, and other
    // files' readers and the transaction must not wait for it.
    auto fresh = std::make_shared<FileExtents>();
    FileExtents::Map m;
    DAXREF_RETURN_IF_ERROR(load(ino, &m));
    const int64_t n = static_cast<int64_t>(m.size());
    {
      WriterLock w(&fresh->mu);
      fresh->map = std::move(m);
    }
    MutexLock g(&mu_);
    auto it = files_.find(ino);
    if (it != files_.end()) return it->second;  // another load won
    if (gen != generation_) continue;           // a map went meanwhile: ours may be stale
    files_.emplace(ino, fresh);
    extents_.fetch_add(n, std::memory_order_relaxed);
    EvictIdle();
    return fresh;
  }
}

void ExtentMaps::Forget(uint64_t ino) {
  MutexLock g(&mu_);
  if (files_.erase(ino)) generation_++;
}

void ExtentMaps::EvictIdle() {
  if (extents() + static_cast<int64_t>(files_.size()) <= budget_) return;
  // Down to three quarters, so that a workload just over the budget does
  // not walk the registry on every load.
  const int64_t target = budget_ / 4 * 3;
  for (auto it = files_.begin(); it != files_.end();) {
    if (extents() + static_cast<int64_t>(files_.size()) <= target) break;
    if (it->second.use_count() == 1) {
      extents_.fetch_sub(static_cast<int64_t>(SizeOfUnheld(*it->second)),
                         std::memory_order_relaxed);
      it = files_.erase(it);
      generation_++;
    } else {
      ++it;
    }
  }
}

void ExtentMaps::ForEach(const std::function<void(uint64_t, const Handle&)>& fn) {
  std::vector<std::pair<uint64_t, Handle>> all;
  {
    MutexLock g(&mu_);
    all.assign(files_.begin(), files_.end());
  }
  for (const auto& [ino, h] : all) fn(ino, h);
}

size_t ExtentMaps::files() {
  MutexLock g(&mu_);
  return files_.size();
}

}  // namespace daxref
