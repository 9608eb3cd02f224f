// InodeTable: what the daemon must remember about inodes the kernel knows.
//
// For each inode the kernel holds (lookup count > 0) or has open, an
// InodeState records the kernel's lookup count, the number of open handles,
// and the I/O lock that keeps a block from being freed under a reader: reads
// hold it shared for as long as the reply may still be copying out of the
// pool mapping; anything that unmaps blocks (truncate, punch, writes that may
// move data, reclaim) holds it exclusive.
//
// An inode whose last name is removed while it is open is "doomed": its
// blocks are reclaimed when the last handle is released (invariant 5 of the
// brief), or at the next mount if the daemon dies first (orphan list).
//
// Lock order (docs/design.md, "Locks"): the table mutex is a leaf; an
// InodeState's io lock is taken without it held, and the Volume's own locks
// nest inside io.
#pragma once

#include <spdlog/spdlog.h>

#include <cassert>
#include <cstdint>
#include <memory>
#include <unordered_map>
#include <vector>

#include "base/mutex.h"
#include "base/thread_annotations.h"

namespace daxref {

struct InodeState {
  SharedMutex io;

 private:
  // The table's bookkeeping, guarded by the table mutex. The analysis
  // cannot name another object's mutex here; instead only InodeTable may
  // touch these, and it reaches an InodeState only through its map, which
  // is GUARDED_BY that mutex.
  friend class InodeTable;
  uint64_t nlookup = 0;
  uint32_t opens = 0;
  bool doomed = false;  // unlinked while open
  bool gone = false;    // deleted with its last name
};

class InodeTable {
 public:
  // The state of `ino`, created on first use.
  std::shared_ptr<InodeState> Get(uint64_t ino) {
    MutexLock g(&mu_);
    auto& s = map_[ino];
    if (!s) s = std::make_shared<InodeState>();
    return s;
  }

  // The kernel learned of `ino` (a lookup, create, readdirplus entry...).
  void AddLookup(uint64_t ino, uint64_t n = 1) {
    MutexLock g(&mu_);
    auto& s = map_[ino];
    if (!s) s = std::make_shared<InodeState>();
    s->nlookup += n;
  }

  // The kernel forgot `n` references.
  void Forget(uint64_t ino, uint64_t n) {
    MutexLock g(&mu_);
    auto it = map_.find(ino);
    if (it == map_.end()) return;
    InodeState& s = *it->second;
    // The kernel forgets no more than it was given: a larger n means a reply
    // that handed the kernel an entry without AddLookup. Debug builds stop
    // there; release builds log it and clamp, which at worst drops the state
    // early (the next lookup makes a fresh one).
    assert(n <= s.nlookup && "kernel forgot more lookups than the daemon counted");
    if (n > s.nlookup) {
      spdlog::error("inode {}: the kernel forgot {} lookups of {} counted", ino, n, s.nlookup);
      n = s.nlookup;
    }
    s.nlookup -= n;
    if (s.nlookup == 0 && s.opens == 0) map_.erase(it);
  }

  // Registers a handle. False if the inode was deleted with its last name:
  // the open must fail (ENOENT), since its blocks may already be reused.
  bool Open(uint64_t ino) {
    MutexLock g(&mu_);
    auto& s = map_[ino];
    if (!s) s = std::make_shared<InodeState>();
    if (s->gone) return false;
    s->opens++;
    return true;
  }

  // Drops one handle. True if that was the last handle of a doomed inode:
  // the caller must reclaim it.
  bool Release(uint64_t ino) {
    MutexLock g(&mu_);
    auto it = map_.find(ino);
    if (it == map_.end()) return false;
    InodeState& s = *it->second;
    // Every Release pairs with an Open that said true.
    assert(s.opens > 0 && "release of an inode with no open handle");
    if (s.opens > 0) {
      s.opens--;
    } else {
      spdlog::error("inode {}: released with no open handle", ino);
    }
    bool reclaim = s.opens == 0 && s.doomed;
    if (reclaim) s.doomed = false;
    if (s.nlookup == 0 && s.opens == 0) map_.erase(it);
    return reclaim;
  }

  // `ino` is losing its last name. True if nothing has it open, so it may be
  // deleted at once; otherwise it is marked doomed and the last Release will
  // say to reclaim it.
  // Once this has said true, Open refuses the inode, so no handle (and so no
  // reader) can appear between this answer and the deletion's commit.
  // Calls fn(ino) for every inode the kernel knows or has open; the inode
  // numbers are copied first, so fn may take its time and call back in.
  template <typename Fn>
  void ForEachKnown(Fn&& fn) {
    std::vector<uint64_t> inos;
    {
      MutexLock g(&mu_);
      inos.reserve(map_.size());
      for (const auto& [ino, state] : map_) inos.push_back(ino);
    }
    for (uint64_t ino : inos) fn(ino);
  }

  bool Unlinked(uint64_t ino) {
    MutexLock g(&mu_);
    auto it = map_.find(ino);
    if (it == map_.end()) return true;  // the kernel cannot open what it never looked up
    if (it->second->opens == 0) {
      it->second->gone = true;
      return true;
    }
    it->second->doomed = true;
    return false;
  }

 private:
  Mutex mu_;  // a leaf: nothing is taken while it is held
  std::unordered_map<uint64_t, std::shared_ptr<InodeState>> map_ GUARDED_BY(mu_);
};

// The io locks of an operation on two files: the source shared (its blocks
// are read or shared, not changed), the destination exclusive. Taken in
// inode order, so two such operations in opposite directions cannot
// deadlock; with one file for both, its lock is taken once, exclusive.
// Not checked by the analysis: which lock comes first, and whether there
// are two, depend on the inode numbers at run time.
class SourceDestLock {
 public:
  SourceDestLock(InodeTable& table, uint64_t src, uint64_t dst) NO_THREAD_SAFETY_ANALYSIS
      : src_(table.Get(src)),
        dst_(table.Get(dst)),
        same_(src == dst) {
    if (same_) {
      dst_->io.Lock();
    } else if (src < dst) {
      src_->io.LockShared();
      dst_->io.Lock();
    } else {
      dst_->io.Lock();
      src_->io.LockShared();
    }
    held_ = true;
  }
  ~SourceDestLock() { Unlock(); }
  SourceDestLock(const SourceDestLock&) = delete;
  SourceDestLock& operator=(const SourceDestLock&) = delete;
  void Unlock() NO_THREAD_SAFETY_ANALYSIS {
    if (!held_) return;
    held_ = false;
    dst_->io.Unlock();
    if (!same_) src_->io.UnlockShared();
  }

 private:
  std::shared_ptr<InodeState> src_, dst_;
  bool same_;
  bool held_ = false;
};

}  // namespace daxref
