#include "pool/async_faults.h"

#include <poll.h>
#include <sys/eventfd.h>
#include <sys/prctl.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <string>

#include "pool/mapping_guard.h"

namespace daxref {

Status RequestEarlyMachineCheckNotice() {
  if (prctl(PR_MCE_KILL, PR_MCE_KILL_SET, PR_MCE_KILL_EARLY, 0, 0) != 0)
    return Status::Error(errno, std::string("prctl(PR_MCE_KILL_EARLY): ") + strerror(errno));
  return Status::Ok();
}

Result<std::unique_ptr<AsyncFaultWatcher>> AsyncFaultWatcher::Start(Handlers handlers) {
  // The handler must be ours before anything can be recorded for us.
  InstallMappingGuard();
  std::unique_ptr<AsyncFaultWatcher> w(new AsyncFaultWatcher());
  w->handlers_ = std::move(handlers);
  // Non-blocking: the signal handler's write must never wait.
  w->event_fd_ = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  w->stop_fd_ = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  if (w->event_fd_ < 0 || w->stop_fd_ < 0)
    return Status::Error(errno, std::string("eventfd: ") + strerror(errno));
  SetAsyncMemoryFaultNotifier(w->event_fd_);
  w->thread_ = std::thread([p = w.get()] { p->Run(); });
  return w;
}

AsyncFaultWatcher::~AsyncFaultWatcher() {
  if (thread_.joinable()) {
    // No handler writes event_fd_ once this returns; then the thread ends.
    SetAsyncMemoryFaultNotifier(-1);
    uint64_t one = 1;
    ssize_t ignored = write(stop_fd_, &one, sizeof(one));
    (void)ignored;
    thread_.join();
  } else if (event_fd_ >= 0) {
    SetAsyncMemoryFaultNotifier(-1);
  }
  if (event_fd_ >= 0) close(event_fd_);
  if (stop_fd_ >= 0) close(stop_fd_);
}

void AsyncFaultWatcher::Run() {
  for (;;) {
    // First a pass: it finds what was recorded before the watcher started,
    // and after each wake-up what the handler recorded. The eventfd is
    // reset before the pass, so a record made during it wakes the next.
    Drain();
    pollfd fds[2] = {{event_fd_, POLLIN, 0}, {stop_fd_, POLLIN, 0}};
    int n = poll(fds, 2, -1);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 || (fds[1].revents & POLLIN)) return;
    uint64_t count;
    ssize_t ignored = read(event_fd_, &count, sizeof(count));
    (void)ignored;
  }
}

void AsyncFaultWatcher::Drain() {
  const void* addr;
  while (TakeAsyncMemoryFault(&addr))
    if (handlers_.fault) handlers_.fault(addr);
  uint64_t lost = LostAsyncMemoryFaults();
  if (lost > lost_seen_) {
    uint64_t more = lost - lost_seen_;
    lost_seen_ = lost;
    if (handlers_.lost) handlers_.lost(more);
  }
}

}  // namespace daxref
