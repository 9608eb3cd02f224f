#include "fs/lease_recovery.h"

#include <poll.h>
#include <signal.h>
#include <spdlog/spdlog.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <set>
#include <vector>

#include "admin/lease_holders.h"
#include "base/unique_fd.h"
#include "meta/lease_record.h"

namespace daxref {

namespace {

constexpr std::chrono::seconds kKillWait{10};

// True once the process behind pidfd has exited, within `limit`.
bool Exits(int pidfd, std::chrono::milliseconds limit) {
  const auto deadline = std::chrono::steady_clock::now() + limit;
  for (;;) {
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
        deadline - std::chrono::steady_clock::now());
    pollfd p{pidfd, POLLIN, 0};
    int n = poll(&p, 1, static_cast<int>(std::max<int64_t>(0, left.count())));
    if (n > 0) return true;
    if (n == 0 || errno != EINTR) return false;
  }
}

bool Signal(int pidfd, int sig) {
  return syscall(SYS_pidfd_send_signal, pidfd, sig, nullptr, 0) == 0 || errno == ESRCH;
}

}  // namespace

Status RevokeRecordedLeases(Volume* volume, dev_t pool_dev, ino_t pool_ino,
                            std::chrono::milliseconds timeout) {
  std::vector<LeaseRecord> records;
  Status s = volume->WalkLeases([&](const LeaseRecord& r) {
    records.push_back(r);
    return true;
  });
  if (!s.ok()) return s;
  if (records.empty()) return Status::Ok();
  std::set<uint32_t> done;
  Status result = Status::Ok();
  for (const LeaseRecord& r : records) {
    if (!done.insert(r.pid).second) continue;
    const pid_t pid = static_cast<pid_t>(r.pid);
    if (!RecordedHolderAlive(r) || !ProcessMapsFile(pid, pool_dev, pool_ino)) {
      spdlog::warn("lease {} (inode {}) of process {} left by the last daemon: holder gone", r.id,
                   r.ino, pid);
      continue;
    }
    UniqueFd pidfd(static_cast<int>(syscall(SYS_pidfd_open, pid, 0)));
    // The pidfd names whoever has the pid now: still the recorded holder
    // only if its start time is still the recorded one.
    if (!pidfd.valid() || !RecordedHolderAlive(r)) continue;
    spdlog::warn(
        "lease {} (inode {}) of process {} left by the last daemon: the holder still maps the "
        "pool; SIGTERM",
        r.id, r.ino, pid);
    Signal(pidfd.get(), SIGTERM);
    if (Exits(pidfd.get(), timeout)) continue;
    spdlog::warn("process {} still there {} ms after SIGTERM: SIGKILL", pid, timeout.count());
    Signal(pidfd.get(), SIGKILL);
    if (Exits(pidfd.get(), kKillWait)) continue;
    result = Status::Error(EBUSY, "process " + std::to_string(pid) +
                                      " holds a lease of the last daemon and does not go even "
                                      "after SIGKILL");
  }
  if (!result.ok()) return result;
  if (volume->read_only()) {
    spdlog::warn("{} lease records of the last daemon stay (read-only mount)", records.size());
    return Status::Ok();
  }
  std::vector<uint64_t> ids;
  for (const LeaseRecord& r : records) ids.push_back(r.id);
  s = volume->DropLeases(std::span<const uint64_t>(ids.data(), ids.size()));
  if (s.ok()) spdlog::warn("{} lease records of the last daemon deleted", ids.size());
  return s;
}

}  // namespace daxref
