#include "test/mce.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <cerrno>
#include <cstdio>
#include <fstream>
#include <sstream>

#ifndef MADV_SOFT_OFFLINE
#define MADV_SOFT_OFFLINE 101  // linux/mman-common.h; glibc may not define it
#endif

namespace daxref::test {

std::pair<uintptr_t, uintptr_t> MappingOf(pid_t pid, const std::string& path) {
  std::ifstream maps("/proc/" + std::to_string(pid) + "/maps");
  std::string line;
  while (std::getline(maps, line)) {
    if (line.size() < path.size() || line.compare(line.size() - path.size(), path.size(), path))
      continue;
    unsigned long start = 0, end = 0;
    if (sscanf(line.c_str(), "%lx-%lx", &start, &end) == 2) return {start, end};
  }
  FAIL("process " << pid << " has no mapping of " << path);
  return {0, 0};
}

bool KernelInjectsMemoryFailure() {
  // MADV_HWPOISON on a page nobody uses would poison it for real where it
  // works; MADV_SOFT_OFFLINE takes the same path (CONFIG_MEMORY_FAILURE)
  // and only migrates the page. EINVAL: the kernel has neither.
  void* p = mmap(nullptr, 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  REQUIRE(p != MAP_FAILED);
  static_cast<char*>(p)[0] = 1;
  int rc = madvise(p, 4096, MADV_SOFT_OFFLINE);
  int err = errno;
  munmap(p, 4096);
  return rc == 0 || err != EINVAL;
}

RunResult SendAsyncMachineCheck(pid_t pid, uintptr_t addr) {
  char hex[32];
  snprintf(hex, sizeof(hex), "%lx", static_cast<unsigned long>(addr));
  return Run({DAXREF_TEST_MCE_INJECT, "ao", std::to_string(pid), hex});
}

MachineCheckRewriter::MachineCheckRewriter(pid_t pid, uintptr_t start, uintptr_t end) {
  int p[2];
  REQUIRE(pipe2(p, O_CLOEXEC) == 0);
  char s[32], e[32];
  snprintf(s, sizeof(s), "%lx", static_cast<unsigned long>(start));
  snprintf(e, sizeof(e), "%lx", static_cast<unsigned long>(end));
  const std::string pid_s = std::to_string(pid);
  tracer_ = fork();
  REQUIRE(tracer_ >= 0);
  if (tracer_ == 0) {
    dup2(p[1], STDOUT_FILENO);
    execl(DAXREF_TEST_MCE_INJECT, DAXREF_TEST_MCE_INJECT, "ar", pid_s.c_str(), s, e,
          static_cast<char*>(nullptr));
    _exit(127);
  }
  close(p[1]);
  out_ = p[0];
  // Every thread is traced once it says "ready".
  char c;
  while (read(out_, &c, 1) == 1) {
    printed_ += c;
    if (c == '\n') break;
  }
  INFO(printed_);
  REQUIRE(printed_ == "ready\n");
}

std::string MachineCheckRewriter::Stop() {
  if (tracer_ > 0) {
    kill(tracer_, SIGTERM);
    int status;
    waitpid(tracer_, &status, 0);
    tracer_ = -1;
    char buf[512];
    ssize_t n;
    while ((n = read(out_, buf, sizeof(buf))) > 0) printed_.append(buf, static_cast<size_t>(n));
    close(out_);
    out_ = -1;
  }
  return printed_;
}

MachineCheckRewriter::~MachineCheckRewriter() {
  Stop();
}

}  // namespace daxref::test
