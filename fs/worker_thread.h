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

#include <condition_variable>
#include <deque>
#include <functional>
#include <mutex>
#include <thread>

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
      std::lock_guard<std::mutex> g(mu_);
      if (!stopped_) {
        jobs_.push_back(std::move(job));
        cv_.notify_one();
        return;
      }
    }
    job();
  }

  // Runs what is queued, then ends the thread. Called before the session
  // the jobs reply through goes away.
  void Stop() {
    {
      std::lock_guard<std::mutex> g(mu_);
      if (stopped_) return;
      stopped_ = true;
      cv_.notify_one();
    }
    thread_.join();
  }

 private:
  void Run() {
    std::unique_lock<std::mutex> g(mu_);
    for (;;) {
      cv_.wait(g, [this] { return stopped_ || !jobs_.empty(); });
      if (jobs_.empty()) return;  // stopped, and nothing left
      std::function<void()> job = std::move(jobs_.front());
      jobs_.pop_front();
      g.unlock();
      job();
      g.lock();
    }
  }

  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<std::function<void()>> jobs_;
  bool stopped_ = false;
  std::thread thread_;  // last: starts once the rest is built
};

}  // namespace daxref
