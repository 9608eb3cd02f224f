// Leases left by a daemon that died (docs/dax.md, "Holders that go away"):
// their G records outlive it, and the next mount, before it mounts the
// kernel side or reuses a block, makes every recorded holder that is still
// alive and still maps the pool file go (SIGTERM, then SIGKILL after the
// revocation timeout, then a wait for its exit), then deletes every record.
#pragma once

#include <sys/types.h>

#include <chrono>

#include "meta/status.h"
#include "meta/volume.h"

namespace daxref {

// pool_dev and pool_ino name the pool file (what /proc/PID/maps shows).
// EBUSY if a holder is still there 10 s after SIGKILL: the mount must not
// go on. On a read-only Volume the records stay (nothing can reuse a block
// there); the holders are made to go all the same.
Status RevokeRecordedLeases(Volume* volume, dev_t pool_dev, ino_t pool_ino,
                            std::chrono::milliseconds timeout);

}  // namespace daxref
