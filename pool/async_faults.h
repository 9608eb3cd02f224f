// Asynchronous machine checks: poison the kernel found before anyone
// touched it, delivered to the daemon as SIGBUS with si_code BUS_MCEERR_AO.
//
// The kernel's memory-failure handler (a patrol scrub, or a machine check
// it could recover from) unmaps a poisoned page from every process and, for
// a process that asked for early notification, sends it SIGBUS
// BUS_MCEERR_AO with the page's address at once; otherwise a process learns
// only when it next touches the page (BUS_MCEERR_AR). For a filesystem that
// is too late: the page may be the only copy of a file's bytes, and every
// process holding that file should hear now, not when one of them reads it.
// So the daemon asks for early notification (RequestEarlyMachineCheckNotice,
// before it starts any thread: the flag is per thread and inherited), and
// the SIGBUS handler (pool/mapping_guard.h) records each AO address in a
// lock-free table and writes an eventfd.
//
// AsyncFaultWatcher owns that eventfd and a thread that waits on it and
// hands each recorded address to `fault`, outside any signal handler, where
// it may allocate, lock and log. When more addresses arrived than the table
// holds, the surplus is counted, not kept: `lost` is then called with how
// many more were lost since the last call, and the daemon re-reads the
// device's own list of bad blocks, which is where a platform that reports
// poison keeps it (libpmem2's bad-block API).
//
// One watcher per process at a time (the handler writes one eventfd).
// Addresses recorded before Start are collected by its first pass, and
// faults lost before it count as lost.
//
// Thread safety: the handlers run on the watcher's thread, one at a time.
// The destructor stops the thread (after the pass under way) and must not
// be called from a handler.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <thread>

#include "meta/status.h"

namespace daxref {

// prctl(PR_MCE_KILL, PR_MCE_KILL_SET, PR_MCE_KILL_EARLY): this thread, and
// every thread it creates from now on, gets BUS_MCEERR_AO for poison in
// memory the process maps as soon as the kernel finds it.
Status RequestEarlyMachineCheckNotice();

class AsyncFaultWatcher {
 public:
  struct Handlers {
    std::function<void(const void* addr)> fault;  // one BUS_MCEERR_AO si_addr
    std::function<void(uint64_t lost)> lost;      // this many more were lost
  };
  static Result<std::unique_ptr<AsyncFaultWatcher>> Start(Handlers handlers);
  ~AsyncFaultWatcher();
  AsyncFaultWatcher(const AsyncFaultWatcher&) = delete;
  AsyncFaultWatcher& operator=(const AsyncFaultWatcher&) = delete;

 private:
  AsyncFaultWatcher() = default;
  void Run();
  // Collects everything recorded so far.
  void Drain();

  Handlers handlers_;
  int event_fd_ = -1;  // written by the SIGBUS handler
  int stop_fd_ = -1;   // written by the destructor
  uint64_t lost_seen_ = 0;
  std::thread thread_;
};

}  // namespace daxref
