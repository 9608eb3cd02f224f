// Machine checks for the end-to-end tests: where a daemon maps its pool, and
// test/mce_inject driven from a test (it delivers BUS_MCEERR_AR / _AO to a
// running daemon through ptrace; its header says why that and not the
// kernel's memory-failure injection, which this VM's kernel lacks).
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <string>
#include <utility>

#include "test/fixture.h"

namespace daxref::test {

// [start, end) of process pid's mapping of the file at `path`, from
// /proc/PID/maps. REQUIRE that there is one.
std::pair<uintptr_t, uintptr_t> MappingOf(pid_t pid, const std::string& path);

// Is memory-failure injection (madvise MADV_HWPOISON, CONFIG_MEMORY_FAILURE)
// there? Probed on a page of this process's own (anonymous) memory: EINVAL
// means the kernel lacks it.
bool KernelInjectsMemoryFailure();

// One BUS_MCEERR_AO at `addr` (pid's address space) to pid's main thread,
// as the kernel sends a process that asked for early notice.
RunResult SendAsyncMachineCheck(pid_t pid, uintptr_t addr);

// While it lives, every SIGBUS BUS_ADRERR / BUS_OBJERR that a thread of pid
// gets for an address in [start, end) reaches it as BUS_MCEERR_AR instead:
// the page the access touched is "poisoned memory". Stopping it (the
// destructor) detaches; the tracer's log is kept for INFO.
class MachineCheckRewriter {
 public:
  MachineCheckRewriter(pid_t pid, uintptr_t start, uintptr_t end);
  ~MachineCheckRewriter();
  MachineCheckRewriter(const MachineCheckRewriter&) = delete;
  MachineCheckRewriter& operator=(const MachineCheckRewriter&) = delete;
  // Ends the tracer; returns what it printed (one "ar ADDR" per rewrite).
  std::string Stop();

 private:
  pid_t tracer_ = -1;
  int out_ = -1;
  std::string printed_;
};

}  // namespace daxref::test
