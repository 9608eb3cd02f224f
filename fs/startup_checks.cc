#include "fs/startup_checks.h"

#include <fcntl.h>
#include <spawn.h>
#include <sys/file.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <sstream>

#include "base/mountinfo.h"
#include "base/unique_fd.h"
#include "meta/pool_check.h"

extern char** environ;

namespace daxref {

std::string PoolLockHolder(const std::string& path) {
  struct stat st {};
  if (stat(path.c_str(), &st) != 0) return "";
  // proc(5): "1: FLOCK  ADVISORY  WRITE 1234 00:2d:5678 0 EOF", the device
  // as hex major:minor, the inode in decimal.
  char want[64];
  snprintf(want, sizeof(want), "%02x:%02x:%llu", major(st.st_dev), minor(st.st_dev),
           static_cast<unsigned long long>(st.st_ino));
  std::ifstream locks("/proc/locks");
  std::string line;
  while (std::getline(locks, line)) {
    std::istringstream f(line);
    std::string id, kind, mode, rw, pid, dev;
    if (!(f >> id >> kind)) continue;
    if (kind == "->") f >> kind;  // a waiter, listed under the holder
    if (!(f >> mode >> rw >> pid >> dev) || kind != "FLOCK" || dev != want) continue;
    if (line.find("->") != std::string::npos) continue;
    std::ifstream comm("/proc/" + pid + "/comm");
    std::string name;
    std::getline(comm, name);
    return (name.empty() ? std::string("process") : name) + " (pid " + pid + ")";
  }
  return "";
}

bool PoolLockBusy(const std::string& path) {
  UniqueFd fd(open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (!fd.valid()) return false;
  if (flock(fd.get(), LOCK_EX | LOCK_NB) == 0) return false;  // closing drops it
  return errno == EWOULDBLOCK;
}

Status ClearDeadMount(const std::string& mountpoint,
                      const std::function<void(const std::string&)>& note) {
  std::string text;
  std::string fstype, source;
  if (ReadSelfMountInfo(&text)) {
    // The last entry for the path is the one on top.
    ForEachMountInfoEntry(text, [&](const MountInfoEntry& e) {
      if (e.mount_point == mountpoint) {
        fstype = e.fstype;
        source = e.source;
      }
      return true;
    });
  }
  const std::string remove = "fusermount3 -u -z " + mountpoint;
  if (fstype != kDaxrefFsType)
    return Status::Error(ENOTCONN, "mountpoint " + mountpoint + ": a dead mount" +
                                       (fstype.empty() ? "" : " (" + fstype + ")") +
                                       " whose daemon is gone is there; remove it first (" +
                                       remove + ")");
  int rc = -1;
  if (geteuid() == 0) {
    rc = umount2(mountpoint.c_str(), MNT_DETACH);
  } else {
    const char* argv[] = {"fusermount3", "-u", "-z", mountpoint.c_str(), nullptr};
    pid_t pid = -1;
    if (posix_spawnp(&pid, "fusermount3", nullptr, nullptr, const_cast<char* const*>(argv),
                     environ) == 0) {
      int status = 0;
      if (waitpid(pid, &status, 0) == pid && WIFEXITED(status) && WEXITSTATUS(status) == 0) rc = 0;
    }
  }
  if (rc != 0)
    return Status::Error(ENOTCONN, "mountpoint " + mountpoint + ": the mount of " + source +
                                       " left by a daxref daemon that is gone cannot be " +
                                       "removed; remove it first (" + remove + ")");
  note("detached the dead mount of " + source + " at " + mountpoint +
       " (its daemon is gone: every access to it failed with ENOTCONN)");
  return Status::Ok();
}

std::string BackupSuperblockProblem(const std::string& path) {
  UniqueFd fd(open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (!fd.valid()) return std::string("cannot read it: ") + strerror(errno);
  PoolInspection pi;
  if (Status s = InspectPool(fd.get(), &pi); !s.ok()) return s.message();
  if (!pi.backup.ok()) return pi.backup.message();
  if (pi.copies_differ) return "it does not match the primary";
  return "";
}

}  // namespace daxref
