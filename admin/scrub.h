// Scrub: the online check of a mounted filesystem (docs/fsck.md, "The online
// check"), XFS's online scrub the model: the checker (meta/checker.h) runs
// inside the daemon over one RocksDB snapshot of the live store, read-only,
// with no freeze. Every operation commits one batch, so the snapshot sits on
// a batch boundary and is a consistent filesystem however far the daemon
// has moved on meanwhile; what lives only in memory (free-space and
// refcount mirrors, pending times, the extent cache) is never consulted.
//
// It runs on its own thread (admin/control_server.h hands it the connection),
// one at a time, so that a long check never holds up a poison request on the
// control thread; a daemon shutting down stops it.
#pragma once

#include <atomic>
#include <functional>

#include "admin/control_protocol.h"
#include "meta/volume.h"

namespace daxref {

// Sends, as it goes: `progress phase= percent=` (at most once a second),
// one `problem class= text= [ino=] [path=]` per problem, and last `done`
// with the counts (`problems inodes directories extents owned_blocks
// shared_blocks free_blocks bad_blocks poisoned_blocks orphans elapsed_us`)
// or `error errno= message=`. Stops early when `stop` is set or the sink
// says the receiver went away.
void ScrubVolume(Volume* volume, const std::atomic<bool>& stop,
                 const std::function<bool(const control::Record&)>& sink);

}  // namespace daxref
