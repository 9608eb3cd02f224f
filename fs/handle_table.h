// HandleTable: the file handles the daemon hands out (fi->fh), what each was
// opened for, and the one-time tokens issued on them.
//
// The daemon never sees a caller's file descriptors, only the handle a
// request arrives on. A clone names its source with a token that the caller
// got by an ioctl on the source's own handle (include/daxref/ioctl.h), and
// the token is only issued on a handle opened for reading, so a caller can
// clone only what it could read. A token is used up by the request that
// presents it and dies with its handle or after DAXREF_TOKEN_LIFETIME_SEC.
#pragma once

#include <fcntl.h>
#include <sys/random.h>

#include <array>
#include <chrono>
#include <cstdint>
#include <map>
#include <unordered_map>

#include "base/mutex.h"
#include "base/thread_annotations.h"

namespace daxref {

using Token = std::array<uint64_t, 2>;

struct Handle {
  uint64_t ino = 0;
  int flags = 0;  // open(2) flags
  bool readable() const { return (flags & O_ACCMODE) != O_WRONLY; }
  bool writable() const { return (flags & O_ACCMODE) != O_RDONLY; }
  bool append() const { return flags & O_APPEND; }
};

class HandleTable {
 public:
  // Handle ids start at 1. File and directory handles share the ids; only
  // file handles are found by Find, so nothing is issued on a directory.
  uint64_t Add(uint64_t ino, int flags) {
    MutexLock g(&mu_);
    uint64_t fh = next_++;
    handles_[fh] = Handle{ino, flags};
    return fh;
  }

  // Forgets the handle and revokes its tokens.
  void Remove(uint64_t fh) {
    MutexLock g(&mu_);
    handles_.erase(fh);
    for (auto it = tokens_.begin(); it != tokens_.end();)
      it = it->second.fh == fh ? tokens_.erase(it) : std::next(it);
  }

  // An open directory: where its current walk ends (a readdir cookie; 0
  // until its first readdir, see Volume::ReadDir).
  uint64_t AddDir() {
    MutexLock g(&mu_);
    uint64_t fh = next_++;
    walk_ends_[fh] = 0;
    return fh;
  }
  void RemoveDir(uint64_t fh) {
    MutexLock g(&mu_);
    walk_ends_.erase(fh);
  }
  // The end of the walk on directory handle fh; 0 (set it now) for a walk
  // that starts over (offset 0) or an unknown handle.
  uint64_t WalkEnd(uint64_t fh, uint64_t off) {
    MutexLock g(&mu_);
    auto it = walk_ends_.find(fh);
    return it == walk_ends_.end() || off == 0 ? 0 : it->second;
  }
  void SetWalkEnd(uint64_t fh, uint64_t end) {
    MutexLock g(&mu_);
    auto it = walk_ends_.find(fh);
    if (it != walk_ends_.end()) it->second = end;
  }

  bool Find(uint64_t fh, Handle* out) {
    MutexLock g(&mu_);
    auto it = handles_.find(fh);
    if (it == handles_.end()) return false;
    *out = it->second;
    return true;
  }

  // A fresh token for handle fh; false if there is no such handle or the
  // system has no randomness to give.
  bool Issue(uint64_t fh, Token* out) {
    Token t;
    if (getrandom(t.data(), sizeof(t), 0) != sizeof(t)) return false;
    MutexLock g(&mu_);
    auto h = handles_.find(fh);
    if (h == handles_.end()) return false;
    Clock::time_point now = Clock::now();
    if (tokens_.size() >= kMaxTokens) Expire(now);
    if (tokens_.size() >= kMaxTokens) {
      // Still full of live tokens: the oldest goes (its holder can ask again).
      auto oldest = tokens_.begin();
      for (auto it = tokens_.begin(); it != tokens_.end(); ++it)
        if (it->second.expires < oldest->second.expires) oldest = it;
      tokens_.erase(oldest);
    }
    tokens_[t] = Issued{fh, h->second.ino, now + kLifetime};
    *out = t;
    return true;
  }

  // Uses up a token: the inode it stands for, if it is live.
  bool Redeem(const Token& t, uint64_t* ino) {
    MutexLock g(&mu_);
    auto it = tokens_.find(t);
    if (it == tokens_.end()) return false;
    bool live = it->second.expires > Clock::now();
    *ino = it->second.ino;
    tokens_.erase(it);
    return live;
  }

  // The same, with the handle the token was issued on (what it was opened
  // for: a write lease needs a writable one). False also when that handle
  // is gone.
  bool Redeem(const Token& t, uint64_t* ino, Handle* handle) {
    MutexLock g(&mu_);
    auto it = tokens_.find(t);
    if (it == tokens_.end()) return false;
    bool live = it->second.expires > Clock::now();
    *ino = it->second.ino;
    auto h = handles_.find(it->second.fh);
    tokens_.erase(it);
    if (h == handles_.end()) return false;
    *handle = h->second;
    return live;
  }

 private:
  using Clock = std::chrono::steady_clock;
  static constexpr size_t kMaxTokens = 4096;
  static constexpr std::chrono::seconds kLifetime{60};  // DAXREF_TOKEN_LIFETIME_SEC
  struct Issued {
    uint64_t fh;
    uint64_t ino;
    Clock::time_point expires;
  };
  void Expire(Clock::time_point now) REQUIRES(mu_) {
    for (auto it = tokens_.begin(); it != tokens_.end();)
      it = it->second.expires <= now ? tokens_.erase(it) : std::next(it);
  }

  Mutex mu_;  // a leaf: nothing is taken while it is held
  uint64_t next_ GUARDED_BY(mu_) = 1;
  std::unordered_map<uint64_t, Handle> handles_ GUARDED_BY(mu_);
  std::unordered_map<uint64_t, uint64_t> walk_ends_ GUARDED_BY(mu_);  // dir handle -> end
  std::map<Token, Issued> tokens_ GUARDED_BY(mu_);
};

}  // namespace daxref
