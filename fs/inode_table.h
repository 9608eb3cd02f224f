// InodeTable: what the daemon must remember about inodes the kernel knows.
//
// For each inode the kernel holds (lookup count > 0) or has open, an
// InodeState records the kernel's lookup count, the number of open handles,
// and the I/O lock that keeps a block from being freed under a reader: reads
// hold it shared for as long as the reply may still be copying out of the
// pool mapping; anything that unmaps blocks (truncate, punch, writes that may
// move data, reclaim) holds it exclusive.
//
// An inode lives until its last name, its last open handle and the kernel's
// last lookup of it are all gone. One whose last name is removed while the
// kernel still holds it (a lookup or a handle; during a kernel unlink it
// always holds a lookup) is "doomed": it stays on the orphan list until the
// last release or forget, which reclaims it (invariant 5 of the brief), or
// the next mount if the daemon dies first. docs/design.md, "Orphans and
// reclaim", says why the kernel's lookups count.
//
// Lock order (docs/design.md, "Locks"): the table mutex is a leaf; an
// InodeState's io lock is taken without it held, and the Volume's own locks
// nest inside io.
#pragma once

#include <spdlog/spdlog.h>

#include <algorithm>
#include <cassert>
#include <chrono>
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
  bool doomed = false;  // unlinked while the kernel held it: reclaim when it lets go
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

  // The kernel forgot `n` references. True if that was the last reference
  // of a doomed inode nothing has open: the caller must reclaim it.
  [[nodiscard]] bool Forget(uint64_t ino, uint64_t n) {
    MutexLock g(&mu_);
    auto it = map_.find(ino);
    if (it == map_.end()) return false;
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
    return LetGo(it);
  }

  // Registers a handle. False if the inode was deleted with its last name:
  // the open must fail (ENOENT), since its blocks may already be reused.
  bool Open(uint64_t ino) {
    MutexLock g(&mu_);
    auto& s = map_[ino];
    if (!s) s = std::make_shared<InodeState>();
    if (s->gone) return false;
    s->opens++;
    // Held by a handle now: its space comes back at the last release, as
    // for any open file, and statfs need not wait for it.
    if (reclaim_due_.erase(ino) > 0) reclaimed_.SignalAll();
    return true;
  }

  // Drops one handle. True if that was the last hold (handle or lookup) on
  // a doomed inode: the caller must reclaim it.
  [[nodiscard]] bool Release(uint64_t ino) {
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
    return LetGo(it);
  }

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

  // `ino` is losing its last name. True if neither a handle nor a kernel
  // lookup holds it, so it may be deleted at once; otherwise it is marked
  // doomed and the Release or Forget that lets go of it last will say to
  // reclaim it. A lookup counts: the kernel may send OPEN for an inode it
  // holds without looking its name up again (a path walk that found the
  // dentry before the unlink, open_by_handle_at), and that open must find it.
  // Once this has said true, Open refuses the inode, so no handle (and so no
  // reader) can appear between this answer and the deletion's commit.
  bool Unlinked(uint64_t ino) {
    MutexLock g(&mu_);
    auto it = map_.find(ino);
    if (it == map_.end()) return true;  // the kernel cannot open what it never looked up
    InodeState& s = *it->second;
    if (s.opens == 0 && s.nlookup == 0) {
      s.gone = true;
      return true;
    }
    s.doomed = true;
    if (s.opens == 0) reclaim_due_[ino] = Clock::now();
    return false;
  }

  // ReclaimNow is done with `ino` (reclaimed, or left on the orphan list
  // of a frozen or shut-down filesystem).
  void Reclaimed(uint64_t ino) {
    MutexLock g(&mu_);
    if (reclaim_due_.erase(ino) > 0) reclaimed_.SignalAll();
  }

  // Waits until every doomed inode that nothing has open has been
  // reclaimed, or was waiting for longer than `grace` (the kernel still
  // holds it: a cwd, an O_PATH descriptor, an open racing the unlink). StatFs
  // calls it, so that `rm F; df` sees F's space back although the reclaim
  // runs when the kernel's FORGET arrives, which may be on another request
  // thread at the same moment (docs/design.md, "Orphans and reclaim").
  void AwaitReclaims(std::chrono::milliseconds grace) {
    MutexLock g(&mu_);
    for (;;) {
      Clock::time_point newest{};
      for (const auto& [ino, since] : reclaim_due_) newest = std::max(newest, since);
      if (reclaim_due_.empty() || Clock::now() >= newest + grace) return;
      reclaimed_.WaitUntil(&mu_, newest + grace);
    }
  }

 private:
  using Map = std::unordered_map<uint64_t, std::shared_ptr<InodeState>>;
  // After a count dropped: forgets the state once nothing holds the inode,
  // and says whether it was doomed (then the caller reclaims it, once).
  bool LetGo(Map::iterator it) REQUIRES(mu_) {
    InodeState& s = *it->second;
    // The last handle of a doomed inode the kernel still holds: its FORGET
    // is due (the file's dentry goes with its last descriptor).
    if (s.opens == 0 && s.doomed && s.nlookup != 0)
      reclaim_due_.try_emplace(it->first, Clock::now());
    if (s.nlookup != 0 || s.opens != 0) return false;
    bool reclaim = s.doomed;
    map_.erase(it);
    return reclaim;
  }

  using Clock = std::chrono::steady_clock;
  Mutex mu_;  // a leaf: nothing is taken while it is held
  Map map_ GUARDED_BY(mu_);
  // Doomed inodes nothing has open, and since when: reclaimed when the
  // kernel's FORGET comes (AwaitReclaims).
  std::unordered_map<uint64_t, Clock::time_point> reclaim_due_ GUARDED_BY(mu_);
  CondVar reclaimed_;
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
