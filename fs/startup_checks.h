// What the daemon finds at its mountpoint and on its pool before it mounts,
// and says about at once: a previous daemon still holding the pool (the new
// one waits for it: who it is), a mount left by a daemon that was killed
// (every access to it fails with ENOTCONN: it is detached, or refused), a
// backup superblock that is damaged or gone (the mount goes on: the
// primary is good; fsck.daxref -y rewrites the copy).
#pragma once

#include <sys/types.h>

#include <functional>
#include <string>

#include "meta/status.h"

namespace daxref {

// The process holding a flock() on the file `path`, from /proc/locks, as
// "daxref (pid 1234)"; empty if the lock is free or its holder cannot be
// seen (another pid namespace).
std::string PoolLockHolder(const std::string& path);

// True if the lock of the pool at `path` is taken now (by another open of
// it: the caller holds none).
bool PoolLockBusy(const std::string& path);

// `mountpoint` (absolute) answered ENOTCONN: a FUSE mount whose daemon is
// gone. A daxref mount is detached (umount2 MNT_DETACH as root,
// fusermount3 -u -z otherwise) and `note` told so; any other is an error
// naming the command that removes it.
Status ClearDeadMount(const std::string& mountpoint,
                      const std::function<void(const std::string&)>& note);

// What is wrong with the backup superblock of the pool at `path` (damaged,
// missing, or not the primary's copy); empty when it is a good copy.
std::string BackupSuperblockProblem(const std::string& path);

}  // namespace daxref
