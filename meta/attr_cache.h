// AttrCache: what the overwrite fast path needs of an inode, kept in memory
// so that an in-place overwrite reads nothing from the store.
//
// An entry is the committed inode record (size, mode, flags: whether the
// file was ever reflinked, whether it may have xattrs) and whether the file
// carries a security.capability xattr: exactly what decides if a write can
// skip its batch (meta/volume_data.cc). Entries are made by the fast path
// on a miss (Insert) and kept exact by the commit of every batch that
// writes an inode record or a capability xattr (Apply, from the changes the
// Txn noted): an entry never differs from the store after a commit returns.
//
// A miss is filled from the store outside the Volume's mutation lock, so a
// commit may land between the reads and the Insert. The epoch settles that:
// Apply bumps it after every change, and Insert refuses an entry read under
// an older epoch. A commit whose Apply comes after an Insert finds the
// entry and updates it. Either way no stale entry survives.
//
// Bounded: past kMaxEntries the whole cache is dropped (entries come back
// one read each). Thread safety: every method may be called from any thread;
// mu_ is a leaf.
#pragma once

#include <cstdint>
#include <string>
#include <unordered_map>
#include <vector>

#include "base/mutex.h"
#include "base/thread_annotations.h"
#include "meta/format.h"

namespace daxref {

class AttrCache {
 public:
  struct Entry {
    InodeRecord inode;     // as committed: pending times not applied
    bool has_cap = false;  // a security.capability xattr exists
  };

  // One change a batch makes to what an entry mirrors, in batch order.
  struct Change {
    enum Kind : uint8_t { kInode, kInodeGone, kCapSet, kCapGone };
    uint64_t ino = 0;
    Kind kind = kInode;
    std::string value;  // kInode: the encoded inode record
  };

  static constexpr size_t kMaxEntries = 16384;

  bool Find(uint64_t ino, Entry* out) {
    MutexLock g(&mu_);
    auto it = map_.find(ino);
    if (it == map_.end()) return false;
    *out = it->second;
    return true;
  }

  // Taken before the reads that fill a miss.
  uint64_t epoch() {
    MutexLock g(&mu_);
    return epoch_;
  }

  // Remembers e, read from the store after epoch() said `seen`, unless a
  // commit has changed something since.
  void Insert(uint64_t ino, const Entry& e, uint64_t seen) {
    MutexLock g(&mu_);
    if (seen != epoch_) return;
    if (map_.size() >= kMaxEntries) map_.clear();
    map_[ino] = e;
  }

  // Called once a batch is in the store, with what it changed: entries
  // present take the change (an inode record that does not decode drops its
  // entry: the next miss reports the damage).
  void Apply(const std::vector<Change>& changes) {
    if (changes.empty()) return;
    MutexLock g(&mu_);
    epoch_++;
    for (const Change& c : changes) {
      auto it = map_.find(c.ino);
      if (it == map_.end()) continue;
      switch (c.kind) {
        case Change::kInode:
          if (!DecodeInode(c.ino, c.value, &it->second.inode).ok()) map_.erase(it);
          break;
        case Change::kInodeGone:
          map_.erase(it);
          break;
        case Change::kCapSet:
          it->second.has_cap = true;
          break;
        case Change::kCapGone:
          it->second.has_cap = false;
          break;
      }
    }
  }

 private:
  Mutex mu_;
  uint64_t epoch_ GUARDED_BY(mu_) = 0;
  std::unordered_map<uint64_t, Entry> map_ GUARDED_BY(mu_);
};

}  // namespace daxref
