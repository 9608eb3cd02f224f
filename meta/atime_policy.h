// When a read updates a file's access time: Linux's rules (atime_needs_update
// and relatime_need_update in the kernel's fs/inode.c), applied by the daemon
// because FUSE inodes are S_NOATIME and the kernel never updates their atime
// itself. docs/design.md, "Access times", says how daxref keeps the updates
// in memory and why opens drop the kernel's cached pages when one is due.
#pragma once

#include "meta/format.h"

namespace daxref {

struct AtimePolicy {
  enum class Mode { kRelatime, kStrictatime, kNoatime };
  Mode mode = Mode::kRelatime;  // Linux's default for a new mount
  bool nodiratime = false;      // readdir leaves a directory's atime alone
  // Time updates (atime, and the mtime/ctime of in-place overwrites) stay in
  // memory until the inode's next batch, its last close, fsync, unmount, or
  // at most 24 hours; without it, a timer stores them within a second.
  bool lazytime = false;
  // A read-only mount never updates an atime.
  bool read_only = false;
};

// Seconds after which relatime updates an atime that is newer than mtime and
// ctime (the kernel's "older than a day").
inline constexpr int64_t kRelatimeInterval = 24 * 60 * 60;

// Whether the policy ever updates the atime of a file (of a directory, by
// readdir, if `dir`).
bool UpdatesAtime(const AtimePolicy& p, bool dir);

// Whether a read at `now` of the inode `r` (a directory if `dir`: readdir)
// updates its atime.
bool AtimeNeedsUpdate(const AtimePolicy& p, const InodeRecord& r, bool dir, Timespec now);

}  // namespace daxref
