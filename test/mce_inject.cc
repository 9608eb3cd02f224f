// mce_inject: delivers machine checks (SIGBUS with si_code BUS_MCEERR_AR or
// BUS_MCEERR_AO) to a running process, through the kernel's own signal
// delivery, for the end-to-end tests of the daemon's poison paths.
//
// Why this and not the real thing. A real machine check comes from the
// kernel's memory-failure code: on a test machine, madvise(MADV_HWPOISON)
// (root, CONFIG_MEMORY_FAILURE) poisons a page and the kernel signals its
// users. Kernels built without CONFIG_MEMORY_FAILURE (the development VM's)
// have no such path, and no process may queue a signal with a positive
// si_code to another (rt_tgsigqueueinfo: EPERM, even for root). A ptrace
// tracer may: at a signal-delivery-stop it can rewrite the siginfo the
// tracee is about to get (PTRACE_SETSIGINFO) and let it through. The tracee
// then runs its real handler on a real kernel-delivered SIGBUS, exactly as
// it would for the hardware.
//
//   mce_inject ao PID ADDR
//     Stops thread PID (a process's main thread) with a carrier signal
//     (SIGURG, ignored by default) and turns that into SIGBUS
//     BUS_MCEERR_AO at ADDR (hex, in PID's address space): what the kernel
//     sends a process that asked for early notice (PR_MCE_KILL_EARLY) when
//     it finds poison in a page the process maps. Exits 0 once delivered.
//
//   mce_inject ar PID START END
//     Traces every thread of PID (and threads it starts) and turns each
//     SIGBUS BUS_ADRERR / BUS_OBJERR at an address in [START, END) (hex)
//     into BUS_MCEERR_AR at the same address: the access faulted, as it
//     would on poisoned memory. Prints "ready" once every thread is traced,
//     "ar ADDR" for each rewrite, and runs until SIGTERM; exiting detaches
//     (the kernel resumes every tracee).
//
// Root (CAP_SYS_PTRACE). Exit status 0, or 1 with a message on stderr.
#include <dirent.h>
#include <signal.h>
#include <sys/ptrace.h>
#include <sys/syscall.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <set>
#include <string>

namespace {

[[noreturn]] void Die(const std::string& what) {
  fprintf(stderr, "mce_inject: %s: %s\n", what.c_str(), strerror(errno));
  exit(1);
}

uintptr_t Hex(const char* s) {
  return static_cast<uintptr_t>(strtoull(s, nullptr, 16));
}

siginfo_t MachineCheck(int code, void* addr) {
  siginfo_t si;
  memset(&si, 0, sizeof(si));
  si.si_signo = SIGBUS;
  si.si_code = code;
  si.si_addr = addr;
  si.si_addr_lsb = 12;  // a page, as memory-failure reports it
  return si;
}

int InjectAo(pid_t tid, uintptr_t addr) {
  if (ptrace(PTRACE_SEIZE, tid, nullptr, nullptr) != 0) Die("PTRACE_SEIZE " + std::to_string(tid));
  if (syscall(SYS_tgkill, tid, tid, SIGURG) != 0) Die("tgkill");
  for (;;) {
    int status = 0;
    if (waitpid(tid, &status, __WALL) != tid) Die("waitpid");
    if (!WIFSTOPPED(status)) {
      fprintf(stderr, "mce_inject: thread %d ended\n", tid);
      return 1;
    }
    int sig = WSTOPSIG(status);
    if ((status >> 16) != 0) {  // an event stop: let it go on
      if (ptrace(PTRACE_CONT, tid, nullptr, nullptr) != 0) Die("PTRACE_CONT");
      continue;
    }
    if (sig != SIGURG) {  // some other signal: deliver it as it was
      if (ptrace(PTRACE_CONT, tid, nullptr, reinterpret_cast<void*>(static_cast<long>(sig))) != 0)
        Die("PTRACE_CONT");
      continue;
    }
    siginfo_t si = MachineCheck(BUS_MCEERR_AO, reinterpret_cast<void*>(addr));
    if (ptrace(PTRACE_SETSIGINFO, tid, nullptr, &si) != 0) Die("PTRACE_SETSIGINFO");
    if (ptrace(PTRACE_DETACH, tid, nullptr, reinterpret_cast<void*>(long{SIGBUS})) != 0)
      Die("PTRACE_DETACH");
    return 0;
  }
}

volatile sig_atomic_t g_stop = 0;

int RewriteAr(pid_t pid, uintptr_t start, uintptr_t end) {
  struct sigaction sa {};
  sa.sa_handler = [](int) { g_stop = 1; };
  sigemptyset(&sa.sa_mask);
  sigaction(SIGTERM, &sa, nullptr);  // no SA_RESTART: waitpid returns EINTR

  // Every thread there is, then those it starts (PTRACE_O_TRACECLONE).
  std::set<pid_t> traced;
  const std::string task_dir = "/proc/" + std::to_string(pid) + "/task";
  for (bool found_new = true; found_new;) {
    found_new = false;
    DIR* d = opendir(task_dir.c_str());
    if (d == nullptr) Die(task_dir);
    while (dirent* e = readdir(d)) {
      if (e->d_name[0] == '.') continue;
      pid_t tid = atoi(e->d_name);
      if (traced.count(tid)) continue;
      if (ptrace(PTRACE_SEIZE, tid, nullptr, reinterpret_cast<void*>(long{PTRACE_O_TRACECLONE})) ==
          0) {
        traced.insert(tid);
        found_new = true;
      }
    }
    closedir(d);
  }
  printf("ready\n");
  fflush(stdout);

  while (!g_stop) {
    int status = 0;
    pid_t tid = waitpid(-1, &status, __WALL);
    if (tid < 0) {
      if (errno == EINTR) continue;
      if (errno == ECHILD) return 0;  // every tracee is gone
      Die("waitpid");
    }
    if (!WIFSTOPPED(status)) continue;  // a thread ended
    int sig = WSTOPSIG(status);
    int event = status >> 16;
    long deliver = 0;
    if (event == 0) {
      deliver = sig;
      siginfo_t si;
      if (sig == SIGBUS && ptrace(PTRACE_GETSIGINFO, tid, nullptr, &si) == 0 &&
          (si.si_code == BUS_ADRERR || si.si_code == BUS_OBJERR)) {
        auto a = reinterpret_cast<uintptr_t>(si.si_addr);
        if (a >= start && a < end) {
          siginfo_t mce = MachineCheck(BUS_MCEERR_AR, si.si_addr);
          if (ptrace(PTRACE_SETSIGINFO, tid, nullptr, &mce) != 0) Die("PTRACE_SETSIGINFO");
          printf("ar %lx\n", static_cast<unsigned long>(a));
          fflush(stdout);
        }
      }
    }
    // Event stops (a new thread, a clone) and group-stops resume as they
    // are; signals are delivered, rewritten or not.
    ptrace(PTRACE_CONT, tid, nullptr, reinterpret_cast<void*>(deliver));
  }
  return 0;  // exiting detaches every tracee
}

}  // namespace

int main(int argc, char** argv) {
  if (argc == 4 && strcmp(argv[1], "ao") == 0) return InjectAo(atoi(argv[2]), Hex(argv[3]));
  if (argc == 5 && strcmp(argv[1], "ar") == 0)
    return RewriteAr(atoi(argv[2]), Hex(argv[3]), Hex(argv[4]));
  fprintf(stderr, "usage: mce_inject ao PID ADDR | mce_inject ar PID START END\n");
  return 2;
}
