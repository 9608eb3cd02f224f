#include "pool/mapping_guard.h"

#include <pthread.h>
#include <sched.h>
#include <setjmp.h>
#include <signal.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstring>

#include "base/mutex.h"
#include "base/thread_annotations.h"

namespace daxref {

namespace {

// One guarded call in progress, on its caller's stack. The thread's frames
// form a list, innermost first, through t_frame and prev.
struct GuardFrame {
  sigjmp_buf env;
  GuardFrame* prev;
  // Written by the signal handler, read after the jump back: volatile, as
  // for any local changed between sigsetjmp and siglongjmp.
  const void* volatile fault;
  volatile int code;
};

// Read by the signal handler: initial-exec TLS, so that reaching it never
// goes through __tls_get_addr (which may allocate, and is not
// async-signal-safe). A plain pointer: no constructor, no guard variable.
__attribute__((tls_model("initial-exec"))) thread_local GuardFrame* t_frame = nullptr;

// The handler that was installed before ours: where unguarded faults go.
// Written under g_install_mu before our handler is (re)installed; the
// handler reads it only on the way to crashing (PreviousHandler).
Mutex g_install_mu;
struct sigaction g_prev GUARDED_BY(g_install_mu) {};
std::atomic<bool> g_installed{false};

// BUS_MCEERR_AO addresses waiting for the daemon; 0 is a free slot.
static_assert(std::atomic<uintptr_t>::is_always_lock_free);
std::atomic<uintptr_t> g_async[kAsyncMemoryFaultSlots];
std::atomic<uint64_t> g_async_lost{0};
// The eventfd written after each record; -1 for none. g_notify_users
// counts handlers between reading it and finishing their write, so that
// SetAsyncMemoryFaultNotifier can wait them out before the old fd is closed
// (and its number reused for something a stray write would corrupt).
static_assert(std::atomic<int>::is_always_lock_free);
std::atomic<int> g_async_notify{-1};
std::atomic<int> g_notify_users{0};

// Faults the kernel raises for the access of the thread that gets them:
// what a guard catches. BUS_ADRALN is left out (a misaligned access is a
// bug, not bad memory), as are signals sent by a process (si_code <= 0).
bool IsAccessFault(const siginfo_t* si) {
  return si->si_code == BUS_ADRERR || si->si_code == BUS_OBJERR || si->si_code == BUS_MCEERR_AR;
}

void RecordAsync(const void* addr) {
  auto a = reinterpret_cast<uintptr_t>(addr);
  if (a == 0) a = 1;  // keep "free" unambiguous; the page is what matters
  bool recorded = false;
  for (auto& slot : g_async) {
    uintptr_t expect = 0;
    if (slot.compare_exchange_strong(expect, a, std::memory_order_release,
                                     std::memory_order_relaxed)) {
      recorded = true;
      break;
    }
  }
  if (!recorded) g_async_lost.fetch_add(1, std::memory_order_release);
  // After the record: a worker woken by this write finds it. A failed
  // write (eventfd counter full, fd gone) loses only the wake-up.
  g_notify_users.fetch_add(1, std::memory_order_seq_cst);
  int fd = g_async_notify.load(std::memory_order_seq_cst);
  if (fd >= 0) {
    uint64_t one = 1;
    ssize_t ignored = write(fd, &one, sizeof(one));
    (void)ignored;
  }
  g_notify_users.fetch_sub(1, std::memory_order_seq_cst);
}

// g_prev for the signal handler, which can take no lock: it was written
// before the handler that reads it was installed.
const struct sigaction& PreviousHandler() NO_THREAD_SAFETY_ANALYSIS {
  return g_prev;
}

bool IsRealHandler(const struct sigaction& sa) {
  return sa.sa_handler != SIG_DFL && sa.sa_handler != SIG_IGN;
}

void ChainToPrevious(int sig, siginfo_t* si, void* uctx) {
  const struct sigaction prev = PreviousHandler();
  if (prev.sa_flags & SA_SIGINFO) {
    if (IsRealHandler(prev)) return prev.sa_sigaction(sig, si, uctx);
  } else if (IsRealHandler(prev)) {
    return prev.sa_handler(sig);
  }
  // Default (or ignored, which the kernel does not honour for a fault
  // anyway): die of the signal. With SA_NODEFER it is not blocked here, so
  // raise delivers it at once; if it somehow were, returning re-executes
  // the faulting access, which now meets the default action.
  struct sigaction dfl {};
  dfl.sa_handler = SIG_DFL;
  sigemptyset(&dfl.sa_mask);
  sigaction(SIGBUS, &dfl, nullptr);
  raise(SIGBUS);
}

void OnSigbus(int sig, siginfo_t* si, void* uctx) {
  if (si->si_code == BUS_MCEERR_AO) {
    int saved_errno = errno;
    RecordAsync(si->si_addr);
    if (IsRealHandler(PreviousHandler())) ChainToPrevious(sig, si, uctx);
    errno = saved_errno;
    return;
  }
  GuardFrame* f = t_frame;
  if (f != nullptr && IsAccessFault(si)) {
    f->fault = si->si_addr;
    f->code = si->si_code;
    siglongjmp(f->env, 1);
  }
  ChainToPrevious(sig, si, uctx);
}

void UnblockSigbus() {
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGBUS);
  pthread_sigmask(SIG_UNBLOCK, &set, nullptr);
}

}  // namespace

bool IsMachineCheck(int si_code) {
  return si_code == BUS_MCEERR_AR || si_code == BUS_MCEERR_AO;
}

void InstallMappingGuard() {
  MutexLock lock(&g_install_mu);
  struct sigaction cur {};
  sigaction(SIGBUS, nullptr, &cur);
  if ((cur.sa_flags & SA_SIGINFO) && cur.sa_sigaction == OnSigbus) {
    g_installed.store(true, std::memory_order_release);
    return;
  }
  g_prev = cur;
  struct sigaction sa {};
  sa.sa_sigaction = OnSigbus;
  // SA_NODEFER, empty mask: the guard's sigsetjmp does not save the signal
  // mask (that would be a syscall per call), so the siglongjmp out of the
  // handler does not restore one; nothing may be blocked on the way in.
  sa.sa_flags = SA_SIGINFO | SA_NODEFER;
  sigemptyset(&sa.sa_mask);
  sigaction(SIGBUS, &sa, nullptr);
  g_installed.store(true, std::memory_order_release);
}

bool GuardedCall(GuardedFn fn, void* ctx, GuardFault* fault) {
  if (!g_installed.load(std::memory_order_acquire)) InstallMappingGuard();
  GuardFrame frame;
  frame.prev = t_frame;
  frame.fault = nullptr;
  frame.code = 0;
  if (sigsetjmp(frame.env, 0) != 0) {
    // Back from the handler: fn faulted at frame.fault.
    t_frame = frame.prev;
    std::atomic_signal_fence(std::memory_order_seq_cst);
    UnblockSigbus();
    fault->addr = frame.fault;
    fault->code = frame.code;
    return false;
  }
  t_frame = &frame;
  // The frame is published before the access starts and withdrawn after it
  // ends, as the handler (same thread) sees it.
  std::atomic_signal_fence(std::memory_order_seq_cst);
  fn(ctx);
  std::atomic_signal_fence(std::memory_order_seq_cst);
  t_frame = frame.prev;
  return true;
}

bool GuardedCopy(void* dst, const void* src, size_t n, GuardFault* fault) {
  struct Args {
    void* dst;
    const void* src;
    size_t n;
  } args{dst, src, n};
  return GuardedCall(
      [](void* ctx) noexcept {
        auto* a = static_cast<Args*>(ctx);
        memcpy(a->dst, a->src, a->n);
      },
      &args, fault);
}

bool TakeAsyncMemoryFault(const void** addr) {
  for (auto& slot : g_async) {
    if (slot.load(std::memory_order_relaxed) == 0) continue;
    uintptr_t a = slot.exchange(0, std::memory_order_acquire);
    if (a != 0) {
      *addr = reinterpret_cast<const void*>(a);
      return true;
    }
  }
  return false;
}

uint64_t LostAsyncMemoryFaults() {
  return g_async_lost.load(std::memory_order_acquire);
}

void SetAsyncMemoryFaultNotifier(int fd) {
  g_async_notify.store(fd, std::memory_order_seq_cst);
  // A handler that read the previous fd is done with it once the count
  // drops to zero (a handler interrupting this loop on this thread runs to
  // completion first, so this cannot wait for itself).
  while (g_notify_users.load(std::memory_order_seq_cst) != 0) sched_yield();
}

}  // namespace daxref
