#include "admin/holder_scan.h"

#include <dirent.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <memory>
#include <utility>

#include "base/mountinfo.h"
#include "base/unique_fd.h"

namespace daxref {
namespace {

struct DirCloser {
  void operator()(DIR* d) const { closedir(d); }
};
// A directory stream (and the descriptor under it) closed on destruction.
using UniqueDir = std::unique_ptr<DIR, DirCloser>;

// The directory `name` under dir_fd as a stream; null with errno set on failure.
UniqueDir OpenDirAt(int dir_fd, const char* name) {
  UniqueFd fd(openat(dir_fd, name, O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (!fd.valid()) return nullptr;
  UniqueDir dir(fdopendir(fd.get()));
  if (dir) fd.release();  // the stream owns it now
  return dir;
}

// Errors that mean the process exited since it was listed (or found): the
// normal fate of short-lived processes, not a failure to report.
bool IsGone(int err) {
  return err == ENOENT || err == ESRCH;
}

// The pid a /proc entry name stands for; 0 for the entries that are not
// processes ("self", "meminfo", ...).
pid_t PidOfName(const char* name) {
  pid_t pid = 0;
  for (const char* p = name; *p; ++p) {
    // pids stay below 2^22 (PID_MAX_LIMIT); nothing longer is a pid.
    if (*p < '0' || *p > '9' || p - name >= 9) return 0;
    pid = pid * 10 + (*p - '0');
  }
  return pid;
}

// Calls fn(dev, ino) for the file behind each descriptor of the process
// whose /proc directory is pid_dir, until fn returns false. 0, or the errno
// that kept the descriptors from being listed. A descriptor closed while
// being listed is skipped.
//
// statx follows the /proc/PID/fd/N magic link to the open file itself
// (whatever its path now, deleted included) in one syscall per descriptor;
// AT_STATX_DONT_SYNC with only STATX_INO asked makes FUSE answer from the
// kernel's cached attributes without a request to the daemon.
template <typename Fn>
int ForEachDescriptorFile(int pid_dir, Fn&& fn) {
  UniqueDir fds = OpenDirAt(pid_dir, "fd");
  if (!fds) return errno;
  const int fds_fd = dirfd(fds.get());
  for (;;) {
    errno = 0;
    const dirent* e = readdir(fds.get());
    if (e == nullptr) return errno;
    if (e->d_name[0] == '.') continue;
    struct statx stx;
    if (statx(fds_fd, e->d_name, AT_STATX_DONT_SYNC, STATX_INO, &stx) != 0) continue;
    if (!fn(makedev(stx.stx_dev_major, stx.stx_dev_minor), uint64_t{stx.stx_ino})) return 0;
  }
}

// Calls fn(dev, ino) for each file mapping in the process's
// /proc/PID/maps, until fn returns false; anonymous mappings are skipped.
// 0, or the errno that kept the mappings from being read. `buf` is scratch
// kept by the caller so that a scan of every process allocates it once.
//
// The file is read in large chunks: each read(2) of a seq_file holds the
// process's mmap lock while it formats whole lines, so fewer reads cost
// the process less. Mappings that change between two reads may be missed or
// seen twice, which is no worse than a mapping made just after the scan.
template <typename Fn>
int ForEachMappedFile(int pid_dir, std::vector<char>* buf, Fn&& fn) {
  UniqueFd maps(openat(pid_dir, "maps", O_RDONLY | O_CLOEXEC));
  if (!maps.valid()) return errno;
  constexpr size_t kChunk = 64 << 10;
  if (buf->size() < kChunk) buf->resize(kChunk);
  size_t have = 0;  // bytes of an unfinished line at the front of buf
  for (;;) {
    // No line of maps is longer than a path plus ~100 bytes, but grow
    // rather than split one should that change.
    if (buf->size() - have < kChunk / 2) buf->resize(buf->size() * 2);
    const ssize_t n = read(maps.get(), buf->data() + have, buf->size() - have);
    if (n < 0) {
      if (errno == EINTR) continue;
      return errno;
    }
    if (n == 0) break;
    const char* start = buf->data();
    const char* const end = start + have + n;
    while (const char* nl = static_cast<const char*>(memchr(start, '\n', end - start))) {
      dev_t dev;
      uint64_t ino;
      if (ParseMapsLine(std::string_view(start, nl - start), &dev, &ino) && ino != 0 &&
          !fn(dev, ino))
        return 0;
      start = nl + 1;
    }
    have = end - start;
    memmove(buf->data(), start, have);
  }
  dev_t dev;
  uint64_t ino;
  if (have > 0 && ParseMapsLine(std::string_view(buf->data(), have), &dev, &ino) && ino != 0)
    fn(dev, ino);
  return 0;
}

// Whether the process whose /proc directory is pid_dir holds (dev, ino),
// ino 0 meaning any file of dev: 1 if it does, 0 if it does not, -errno if
// that could not be told (a descriptor list or a mapping list that could
// not be read, and the other did not show the file).
int ProcessHolds(int pid_dir, dev_t dev, uint64_t ino) {
  bool held = false;
  auto match = [&](dev_t d, uint64_t i) {
    held = d == dev && (ino == 0 || i == ino);
    return !held;
  };
  const int fd_err = ForEachDescriptorFile(pid_dir, match);
  if (held) return 1;
  std::vector<char> buf;
  const int maps_err = ForEachMappedFile(pid_dir, &buf, match);
  if (held) return 1;
  if (fd_err != 0) return -fd_err;
  if (maps_err != 0) return -maps_err;
  return 0;
}

// Whether the process behind pidfd has exited (a zombie included): a pidfd
// polls readable then.
bool PidfdExited(int pidfd) {
  pollfd p{pidfd, POLLIN, 0};
  return poll(&p, 1, 0) == 1 && (p.revents & POLLIN);
}

// Splits off the text before the next `sep` (or the rest of s).
std::string_view NextField(std::string_view* s, char sep) {
  const size_t at = s->find(sep);
  std::string_view field = s->substr(0, at);
  s->remove_prefix(at == std::string_view::npos ? s->size() : at + 1);
  return field;
}

// Parses an unsigned number in `base` (10 or 16) from the whole of s; false
// if s is empty or has anything else in it.
bool ParseNumber(std::string_view s, int base, uint64_t* out) {
  if (s.empty()) return false;
  uint64_t v = 0;
  for (char c : s) {
    int digit;
    if (c >= '0' && c <= '9')
      digit = c - '0';
    else if (base == 16 && c >= 'a' && c <= 'f')
      digit = c - 'a' + 10;
    else if (base == 16 && c >= 'A' && c <= 'F')
      digit = c - 'A' + 10;
    else
      return false;
    v = v * base + digit;
  }
  *out = v;
  return true;
}

// "MAJOR:MINOR" in `base` as a dev_t.
bool ParseDevice(std::string_view s, int base, dev_t* dev) {
  const size_t colon = s.find(':');
  uint64_t major, minor;
  if (colon == std::string_view::npos || !ParseNumber(s.substr(0, colon), base, &major) ||
      !ParseNumber(s.substr(colon + 1), base, &minor))
    return false;
  *dev = makedev(major, minor);
  return true;
}

}  // namespace

int ProcessMapsFileNow(pid_t pid, dev_t dev, uint64_t ino) {
  if (pid <= 0) return 0;
  const std::string path = "/proc/" + std::to_string(pid);
  UniqueFd dir(open(path.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (!dir.valid()) return errno == ENOENT || errno == ESRCH ? 0 : -errno;
  bool mapped = false;
  std::vector<char> buf;
  const int err = ForEachMappedFile(dir.get(), &buf, [&](dev_t d, uint64_t i) {
    mapped = d == dev && i == ino;
    return !mapped;
  });
  if (mapped) return 1;
  if (err == 0 || IsGone(err)) return 0;
  return -err;
}

HolderIndex HolderIndex::Scan(dev_t dev) {
  HolderIndex index;
  index.dev_ = dev;
  UniqueDir proc(opendir("/proc"));
  if (!proc) {
    index.error_ = errno;
    return index;
  }
  const int proc_fd = dirfd(proc.get());
  const pid_t self = getpid();
  std::vector<char> maps_buf;
  std::vector<uint64_t> inos;  // one process's inodes on dev, duplicates included
  for (;;) {
    errno = 0;
    const dirent* e = readdir(proc.get());
    if (e == nullptr) {
      index.error_ = errno;
      break;
    }
    const pid_t pid = PidOfName(e->d_name);
    if (pid <= 0 || pid == self) continue;
    // Both lists are read through one directory descriptor: it stays bound
    // to this process even if the pid is recycled meanwhile (lookups under
    // it fail once the process is gone), so both describe the same process.
    UniqueFd pid_dir(openat(proc_fd, e->d_name, O_RDONLY | O_DIRECTORY | O_CLOEXEC));
    if (!pid_dir.valid()) {
      if (!IsGone(errno)) ++index.unreadable_;
      continue;
    }
    inos.clear();
    auto collect = [&](dev_t d, uint64_t ino) {
      if (d == dev) inos.push_back(ino);
      return true;
    };
    const int fd_err = ForEachDescriptorFile(pid_dir.get(), collect);
    const int maps_err = ForEachMappedFile(pid_dir.get(), &maps_buf, collect);
    if ((fd_err != 0 && !IsGone(fd_err)) || (maps_err != 0 && !IsGone(maps_err)))
      ++index.unreadable_;
    if (inos.empty()) continue;
    // Deduplicated per process (a library is mapped several times, a file
    // may be open on many descriptors), so the index only ever holds
    // distinct pairs.
    std::sort(inos.begin(), inos.end());
    inos.erase(std::unique(inos.begin(), inos.end()), inos.end());
    for (uint64_t ino : inos) index.holdings_.push_back(Holding{ino, pid});
    index.pids_.push_back(pid);
  }
  std::sort(index.holdings_.begin(), index.holdings_.end(), [](const Holding& a, const Holding& b) {
    return a.ino != b.ino ? a.ino < b.ino : a.pid < b.pid;
  });
  index.holdings_.shrink_to_fit();
  // /proc lists processes in pid order, but nothing promises it.
  std::sort(index.pids_.begin(), index.pids_.end());
  index.pids_.shrink_to_fit();
  return index;
}

SignalOutcome SignalHolder(pid_t pid, dev_t dev, uint64_t ino, int sig, uint64_t value, int* err) {
  auto failed = [err](int e) {
    if (err != nullptr) *err = e;
    return SignalOutcome::kFailed;
  };
  // The pidfd first: from here on the signal can only reach the process
  // that had this pid now, never one that gets the pid later.
  UniqueFd pidfd(static_cast<int>(syscall(SYS_pidfd_open, pid, 0)));
  if (!pidfd.valid()) return errno == ESRCH ? SignalOutcome::kGone : failed(errno);

  // If the pidfd's process is still alive during the check, /proc/PID is
  // that process. If it died before, the check may read a newcomer with the
  // same pid; the send below then fails with ESRCH whatever the check said.
  const std::string pid_path = "/proc/" + std::to_string(pid);
  UniqueFd pid_dir(open(pid_path.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (!pid_dir.valid()) return IsGone(errno) ? SignalOutcome::kGone : failed(errno);
  const int holds = ProcessHolds(pid_dir.get(), dev, ino);
  if (holds <= 0) {
    // An exited process has no descriptors and no mappings left: tell it
    // apart from one that let go of the file.
    if (PidfdExited(pidfd.get()) || IsGone(-holds)) return SignalOutcome::kGone;
    return holds == 0 ? SignalOutcome::kNotHolding : failed(-holds);
  }

  siginfo_t info;
  memset(&info, 0, sizeof(info));
  info.si_signo = sig;
  // SI_QUEUE (as sigqueue sends): a value the process can read, and a code
  // that a process may send; the kernel refuses codes >= 0, which would
  // impersonate the kernel's own SIGBUS (BUS_MCEERR_AO and the like).
  info.si_code = SI_QUEUE;
  info.si_errno = EHWPOISON;
  info.si_pid = getpid();
  info.si_uid = getuid();
  info.si_value.sival_ptr = reinterpret_cast<void*>(static_cast<uintptr_t>(value));
  if (syscall(SYS_pidfd_send_signal, pidfd.get(), sig, &info, 0) != 0)
    return errno == ESRCH ? SignalOutcome::kGone : failed(errno);
  return SignalOutcome::kSent;
}

dev_t MountDevice(const std::string& mountpoint) {
  std::string mountinfo;
  if (!ReadSelfMountInfo(&mountinfo)) return 0;
  return MountDeviceIn(mountinfo, mountpoint);
}

dev_t MountDeviceIn(std::string_view mountinfo, std::string_view mountpoint) {
  dev_t found = 0;
  ForEachMountInfoEntry(mountinfo, [&](const MountInfoEntry& e) {
    if (e.fstype == kDaxrefFsType && e.mount_point == mountpoint) found = e.device;
    return true;
  });
  return found;
}

// A maps line (proc(5)); the kernel separates the columns with single
// spaces and pads the inode column with spaces before the path:
//   7f2c4a000000-7f2c4a021000 r--s 00000000 00:2f 1234      /mnt/x (deleted)
//   address                   perms offset  dev   inode     path
bool ParseMapsLine(std::string_view line, dev_t* dev, uint64_t* ino) {
  NextField(&line, ' ');  // address
  NextField(&line, ' ');  // perms
  NextField(&line, ' ');  // offset
  const std::string_view device = NextField(&line, ' ');
  const std::string_view inode = NextField(&line, ' ');
  return ParseDevice(device, 16, dev) && ParseNumber(inode, 10, ino);
}

}  // namespace daxref
