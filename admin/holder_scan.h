// Finding and signalling the processes that hold files of one mount, the way
// the kernel's memory-failure handler (collect_procs) finds the processes
// that map a poisoned page: when a block of the pool goes bad, every process
// with a descriptor on an affected file (inherited and passed ones included)
// or a mapping of it is told, with a signal it can catch.
//
// A block may be shared by millions of files, so nothing here builds a list
// of affected files. HolderIndex::Scan reads /proc once per poison event into
// an index of (inode, process) pairs of the mount, whose size depends only on
// how many processes hold files there; the caller then walks the affected
// inodes one at a time and looks each up.
//
// Nothing here asks the filesystem for anything: descriptors are examined
// with statx(AT_STATX_DONT_SYNC), which a FUSE mount answers from the
// kernel's cached attributes, and the mount's device comes from
// /proc/self/mountinfo. The daemon calling this may have every request thread
// busy, or be shutting down, and must not wait on itself.
//
// Linux only. Needs no more than libc. HolderIndex is a value: immutable once
// scanned, safe to read from any number of threads.
#pragma once

#include <sys/types.h>

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace daxref {

// The processes holding files of one mount (by descriptor or by mapping), as
// /proc showed them when Scan ran.
class HolderIndex {
 public:
  // Scans /proc once: every process's descriptors (/proc/PID/fd/N, statx'd
  // with AT_STATX_DONT_SYNC so the filesystem is never asked; the target's
  // st_dev and st_ino) and file mappings (/proc/PID/maps) on device `dev`.
  // Skips the calling process (the daemon), and processes that exit while
  // being read. Threads share their process's descriptors and memory, so
  // only processes are read, not /proc/PID/task/*.
  static HolderIndex Scan(dev_t dev);

  // Calls fn(pid_t) once for each distinct process holding `ino` on the device.
  template <typename Fn>
  void ForEachHolder(uint64_t ino, Fn&& fn) const {
    auto it = std::lower_bound(holdings_.begin(), holdings_.end(), ino,
                               [](const Holding& h, uint64_t i) { return h.ino < i; });
    for (; it != holdings_.end() && it->ino == ino; ++it) fn(it->pid);
  }
  // Calls fn(pid_t) once for each distinct process holding any file on the device.
  template <typename Fn>
  void ForEachProcess(Fn&& fn) const {
    for (pid_t pid : pids_) fn(pid);
  }

  size_t processes() const { return pids_.size(); }    // distinct pids
  size_t entries() const { return holdings_.size(); }  // distinct (pid, ino) pairs
  dev_t dev() const { return dev_; }
  // Processes that were there but whose descriptors or mappings could not be
  // read (EACCES for another user's processes when not root, or an
  // unexpected error): holders among them are missing from the index.
  size_t unreadable() const { return unreadable_; }
  // 0, or the errno of opening or listing /proc itself: then the index is
  // empty or partial because /proc could not be read, not because nothing
  // (else) holds the mount.
  int error() const { return error_; }

 private:
  struct Holding {
    uint64_t ino;
    pid_t pid;
  };
  dev_t dev_ = 0;
  // Sorted by (ino, pid), no duplicates: built and sorted once, so a lookup
  // is a binary search and the index costs 16 bytes a pair, no per-node
  // allocations.
  std::vector<Holding> holdings_;
  std::vector<pid_t> pids_;  // sorted, no duplicates; never longer than holdings_
  size_t unreadable_ = 0;
  int error_ = 0;
};

enum class SignalOutcome {
  kSent,        // the process held the file and was signalled
  kNotHolding,  // the process is alive but no longer holds the file: not signalled
  kGone,        // the process has exited (a zombie included): not signalled
  kFailed,      // could not check or could not signal: *err says why
};

// Signals process `pid` about inode `ino` of device `dev` if, and only if,
// it still holds it (ino 0: any file of the device). In this order:
//   1. opens a pidfd on pid,
//   2. confirms through /proc/PID/fd and /proc/PID/maps that the process
//      holds (dev, ino),
//   3. sends `sig` through the pidfd with a siginfo_t of si_code SI_QUEUE,
//      si_errno EHWPOISON, si_pid/si_uid of the caller and
//      si_value.sival_ptr = value.
// The pidfd is opened before the check, so a pid recycled since the scan is
// either caught by the check (the new process does not hold the file) or was
// recycled after the pidfd was taken, in which case the signal is aimed at
// the dead process and fails (kGone). A process that does not hold the file
// is never signalled; one that lets go of it between the check and the
// signal still gets it, as with the kernel's own signal. *err (if not null)
// gets the errno on kFailed.
SignalOutcome SignalHolder(pid_t pid, dev_t dev, uint64_t ino, int sig, uint64_t value, int* err);

// Whether process `pid` maps file (dev, ino) now, from /proc/PID/maps
// (descriptors are not looked at): 1 if it does, 0 if it does not or has
// exited, -errno if its mappings could not be read (EACCES: another user's
// process, read by someone who is not root). The pid is not pinned: the
// caller identifies the process otherwise (admin/lease_holders.h compares
// its start time).
int ProcessMapsFileNow(pid_t pid, dev_t dev, uint64_t ino);

// The device number of the mount of fstype "fuse.daxref" at `mountpoint`
// (absolute, as the kernel shows it in /proc/self/mountinfo), the last such
// line winning (the topmost of mounts stacked there); 0 if there is none.
// Reads /proc/self/mountinfo and never stats the mount point, which would
// need the daemon's own request threads.
dev_t MountDevice(const std::string& mountpoint);

// ---- parsers, exposed for tests ----

// MountDevice over the text of a mountinfo file. Fields are separated by
// single spaces; the kernel writes space, tab, newline and backslash in a
// path as \ooo (octal), which is undone before comparing.
dev_t MountDeviceIn(std::string_view mountinfo, std::string_view mountpoint);

// The device (major:minor, hex) and inode (decimal) columns of one line of
// /proc/PID/maps, without its '\n'; ino 0 for an anonymous mapping. False if
// the line does not have them.
bool ParseMapsLine(std::string_view line, dev_t* dev, uint64_t* ino);

}  // namespace daxref
