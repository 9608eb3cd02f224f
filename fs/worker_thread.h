// WorkerThread: one thread that carries out jobs away from the request
// threads: ioctl clones, and poison found by the daemon itself.
//
// A clone done through the daemon's ioctl changes the destination behind the
// kernel's back, so the daemon must make the kernel drop its cached pages of
// the destination: before the clone, so that pages dirtied through a mapping
// come back to the daemon now rather than over the cloned blocks later, and
// after it, so that the caller reads the new bytes once the ioctl returns.
// The kernel may wait, inside that invalidation, for requests only a free
// request thread can answer: a write that holds a page locked, a dirty page
// it writes back. On a request thread that is a deadlock whenever no other
// thread is free (always, with -o threads=1). Here the request thread only
// hands the job over and goes back to serving; the job replies when done.
#pragma once

#include <deque>
#include <functional>
#include <thread>

#include "base/mutex.h"
#include "base/thread_annotations.h"

namespace daxref {

class WorkerThread {
 public:
  WorkerThread() : thread_([this] { Run(); }) {}
  ~WorkerThread() { Stop(); }
  WorkerThread(const WorkerThread&) = delete;
  WorkerThread& operator=(const WorkerThread&) = delete;

  // Queues a job. After Stop, runs it at once on the caller's thread.
  void Post(std::function<void()> job) {
    {
      MutexLock g(&mu_);
      if (!stopped_) {
        jobs_.push_back(std::move(job));
        cv_.Signal();
        return;
      }
    }
    job();
  }

  // Runs what is queued, then ends the thread. Called before the session
  // the jobs reply through goes away.
  void Stop() {
    {
      MutexLock g(&mu_);
      if (stopped_) return;
      stopped_ = true;
      cv_.Signal();
    }
    thread_.join();
  }

 private:
  void Run() {
    MutexLock g(&mu_);
    for (;;) {
      while (!stopped_ && jobs_.empty()) cv_.Wait(&mu_);
      if (jobs_.empty()) return;  // stopped, and nothing left
      std::function<void()> job = std::move(jobs_.front());
      jobs_.pop_front();
      mu_.Unlock();  // jobs run unlocked, so Post never waits behind one
      job();
      mu_.Lock();
    }
  }

  Mutex mu_;  // a leaf: jobs run without it
  CondVar cv_;
  std::deque<std::function<void()>> jobs_ GUARDED_BY(mu_);
  bool stopped_ GUARDED_BY(mu_) = false;
  std::thread thread_;  // last: starts once the rest is built
};

}  // namespace daxref
