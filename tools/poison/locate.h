// Which daxref filesystem a path on the command line names: its SOURCE
// directory (pool and metadata), and where it is mounted, if it is.
//
// FS is either a mount of daxref (the mount point or any path on it: its
// mount is the one in /proc/self/mountinfo with fstype fuse.daxref and the
// path's device number, and the mount's source is SOURCE), or a SOURCE
// directory itself (it holds the pool file and the meta directory).
#pragma once

#include <sys/stat.h>

#include <string>

#include "meta/status.h"

namespace daxref::poison {

struct Location {
  std::string source;       // absolute
  std::string mount_point;  // empty when not mounted (in this mount namespace)
};

// FS as typed. Fails with a message naming `fs` when it is neither.
Result<Location> LocateFilesystem(const std::string& fs);

// The mounted daxref that holds the file at `path` (stat(2) of it in *st).
// Fails when path does not exist or is not on a daxref mount.
Result<Location> LocateMountOf(const std::string& path, struct stat* st);

// Is `dir` a daxref SOURCE directory: a pool file and a meta directory?
bool IsSourceDirectory(const std::string& dir);

}  // namespace daxref::poison
