// ModifyGate: what pre-remove freezes. Every request that can change the
// filesystem (metadata or file bytes) passes through it; Freeze makes every
// later one fail and waits for those already inside to finish, so that no
// operation is half applied when the device goes (seed 004: freeze first,
// then flush, invalidate, signal, shut down).
//
// Later requests fail rather than wait: the invalidation that follows the
// freeze makes the kernel write back dirty pages, as write requests, and a
// write that waited for a thaw that never comes would hold that up forever.
#pragma once

#include <atomic>
#include <chrono>
#include <thread>

namespace daxref {

class ModifyGate {
 public:
  // False once frozen: the caller fails its request (EIO) and must not Exit.
  bool Enter() {
    active_.fetch_add(1);
    if (frozen_.load()) {
      active_.fetch_sub(1);
      return false;
    }
    return true;
  }
  void Exit() { active_.fetch_sub(1); }

  // Sequentially consistent on both sides: either Enter sees frozen_, or
  // Freeze sees that request in active_ and waits for it.
  void Freeze() {
    frozen_.store(true);
    while (active_.load() > 0) std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  bool frozen() const { return frozen_.load(); }

 private:
  std::atomic<int> active_{0};
  std::atomic<bool> frozen_{false};
};

// Holds the gate for one request's lifetime.
class ModifyScope {
 public:
  explicit ModifyScope(ModifyGate& g) : gate_(g), entered_(g.Enter()) {}
  ~ModifyScope() {
    if (entered_) gate_.Exit();
  }
  ModifyScope(const ModifyScope&) = delete;
  ModifyScope& operator=(const ModifyScope&) = delete;
  explicit operator bool() const { return entered_; }

 private:
  ModifyGate& gate_;
  bool entered_;
};

}  // namespace daxref
