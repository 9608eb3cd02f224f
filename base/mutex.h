// Mutex, SharedMutex, their scoped guards, and CondVar: the standard ones,
// annotated so that clang checks every GUARDED_BY and REQUIRES against them
// (base/thread_annotations.h; docs/design.md, "Locks").
//
// Every lock in daxref is one of these, taken through a guard: MutexLock
// for a Mutex, WriterLock or ReaderLock for a SharedMutex. A function that
// must drop a lock in the middle calls Unlock and Lock on the mutex itself;
// the guard still releases it at the end, and the analysis follows both.
//
// AssertHeld tells the analysis that the lock is held where it cannot see
// that for itself, and checks it in debug builds: the mutex remembers which
// thread holds it exclusively, at the cost of one relaxed store per lock
// and unlock.
#pragma once

#include <atomic>
#include <cassert>
#include <chrono>
#include <condition_variable>
#include <mutex>
#include <shared_mutex>
#include <thread>

#include "base/thread_annotations.h"

namespace daxref {

namespace internal {

// Which thread holds a lock exclusively, for AssertHeld; nothing in a
// release build.
class LockOwner {
 public:
#ifndef NDEBUG
  void Set() {
    owner_.store(std::this_thread::get_id(), std::memory_order_relaxed);
  }
  void Clear() {
    owner_.store(std::thread::id(), std::memory_order_relaxed);
  }
  bool IsMine() const {
    return owner_.load(std::memory_order_relaxed) == std::this_thread::get_id();
  }

 private:
  std::atomic<std::thread::id> owner_{};
#else
  void Set() {}
  void Clear() {}
  bool IsMine() const {
    return true;
  }
#endif
};

}  // namespace internal

class CondVar;

// std::mutex, as a capability.
class CAPABILITY("mutex") Mutex {
 public:
  Mutex() = default;
  Mutex(const Mutex&) = delete;
  Mutex& operator=(const Mutex&) = delete;

  void Lock() ACQUIRE() {
    mu_.lock();
    owner_.Set();
  }
  void Unlock() RELEASE() {
    owner_.Clear();
    mu_.unlock();
  }
  // For code the analysis cannot follow (a lock held across calls, an
  // object built and destroyed under its owner's lock): the caller holds
  // this mutex. Checked in debug builds.
  void AssertHeld() const ASSERT_CAPABILITY(this) { assert(owner_.IsMine()); }

 private:
  friend class CondVar;
  std::mutex mu_;
  internal::LockOwner owner_;
};

// std::shared_mutex, as a capability: one writer, or any number of readers.
class CAPABILITY("shared mutex") SharedMutex {
 public:
  SharedMutex() = default;
  SharedMutex(const SharedMutex&) = delete;
  SharedMutex& operator=(const SharedMutex&) = delete;

  void Lock() ACQUIRE() {
    mu_.lock();
    owner_.Set();
  }
  void Unlock() RELEASE() {
    owner_.Clear();
    mu_.unlock();
  }
  void LockShared() ACQUIRE_SHARED() { mu_.lock_shared(); }
  void UnlockShared() RELEASE_SHARED() { mu_.unlock_shared(); }
  // Held exclusive by the caller; checked in debug builds.
  void AssertHeld() const ASSERT_CAPABILITY(this) { assert(owner_.IsMine()); }
  // Held at least shared by the caller. Not checked at run time (readers
  // are not tracked); for the analysis only.
  void AssertReaderHeld() const ASSERT_SHARED_CAPABILITY(this) {}

 private:
  std::shared_mutex mu_;
  internal::LockOwner owner_;
};

// Holds a Mutex for its lifetime.
class SCOPED_CAPABILITY MutexLock {
 public:
  explicit MutexLock(Mutex* mu) ACQUIRE(mu) : mu_(mu) { mu_->Lock(); }
  ~MutexLock() RELEASE() { mu_->Unlock(); }
  MutexLock(const MutexLock&) = delete;
  MutexLock& operator=(const MutexLock&) = delete;

 private:
  Mutex* const mu_;
};

// Holds a SharedMutex exclusive for its lifetime.
class SCOPED_CAPABILITY WriterLock {
 public:
  explicit WriterLock(SharedMutex* mu) ACQUIRE(mu) : mu_(mu) { mu_->Lock(); }
  ~WriterLock() RELEASE() { mu_->Unlock(); }
  WriterLock(const WriterLock&) = delete;
  WriterLock& operator=(const WriterLock&) = delete;

 private:
  SharedMutex* const mu_;
};

// Holds a SharedMutex shared for its lifetime.
class SCOPED_CAPABILITY ReaderLock {
 public:
  explicit ReaderLock(SharedMutex* mu) ACQUIRE_SHARED(mu) : mu_(mu) { mu_->LockShared(); }
  ~ReaderLock() RELEASE() { mu_->UnlockShared(); }
  ReaderLock(const ReaderLock&) = delete;
  ReaderLock& operator=(const ReaderLock&) = delete;

 private:
  SharedMutex* const mu_;
};

// std::condition_variable for a Mutex. The waiting functions take the mutex
// the caller holds; they let go of it while asleep and hold it again when
// they return, as std::condition_variable does. Wakeups may be spurious:
// callers wait in a loop on their condition, read under the mutex.
class CondVar {
 public:
  CondVar() = default;
  CondVar(const CondVar&) = delete;
  CondVar& operator=(const CondVar&) = delete;

  void Wait(Mutex* mu) REQUIRES(mu) {
    std::unique_lock<std::mutex> lock(mu->mu_, std::adopt_lock);
    mu->owner_.Clear();
    cv_.wait(lock);
    mu->owner_.Set();
    lock.release();  // still held: the caller's guard releases it
  }
  // False if `deadline` passed (which may come with a wakeup too).
  bool WaitUntil(Mutex* mu, std::chrono::steady_clock::time_point deadline) REQUIRES(mu) {
    std::unique_lock<std::mutex> lock(mu->mu_, std::adopt_lock);
    mu->owner_.Clear();
    const bool woken = cv_.wait_until(lock, deadline) == std::cv_status::no_timeout;
    mu->owner_.Set();
    lock.release();
    return woken;
  }
  void Signal() { cv_.notify_one(); }
  void SignalAll() { cv_.notify_all(); }

 private:
  std::condition_variable cv_;
};

}  // namespace daxref
