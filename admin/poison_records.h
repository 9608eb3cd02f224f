// The records the poison service (admin/poison_service.h) makes for the
// daemon and for daxref-poison offline alike, from the metadata alone:
// which pool blocks stand behind a file range, and one `owner` record per
// reverse-map record over a range (docs/poison.md, "The control channel").
// No FUSE here: what the daemon adds (invalidation, signals) comes in
// through the walk's hook.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <utility>
#include <vector>

#include "admin/control_protocol.h"
#include "meta/status.h"
#include "meta/volume.h"

namespace daxref {

// Pool block ranges [pb0, pb1), in pool order, merged.
using PoolPieces = std::vector<std::pair<uint64_t, uint64_t>>;

// The pool blocks behind bytes [off, off+len) of ino (holes have none): as
// many pieces as the range has extents, no more.
Status FilePoolPieces(Volume* vol, uint64_t ino, uint64_t off, uint64_t len, PoolPieces* out);

// The `range` record of a MarkBad.
control::Record RangeRecord(uint64_t pb0, uint64_t pb1, const PoisonOutcome& out);

// One owner met by OwnerWalk: inode `ino` holds pool blocks [pb0, pb1) at
// file block `fblock`, the reverse-map record clipped to the range walked.
struct PoisonOwner {
  uint64_t ino = 0;
  uint64_t pb0 = 0, pb1 = 0;
  uint64_t fblock = 0;
  uint64_t offset() const { return fblock << kBlockShift; }
  uint64_t length() const { return (pb1 - pb0) << kBlockShift; }
};

// Walks the owners of [pb0, pb1) as the reverse map meets them, never
// listing them: for each, the record gets the owner's place and paths, then
// `act` runs (it may add fields, such as the pids it signalled), then the
// record goes to `emit`. *count counts the owners met. A path lookup
// that fails does not stop the walk (the record goes out without paths and
// with a `paths_error` field saying why); the first such failure is left
// in *path_error.
using OwnerActFn = std::function<void(const PoisonOwner& o, control::Record* r)>;
using RecordSinkFn = std::function<void(const control::Record&)>;
Status WalkOwnerRecords(Volume* vol, uint64_t pb0, uint64_t pb1, const OwnerActFn& act,
                        const RecordSinkFn& emit, uint64_t* count, Status* path_error);

}  // namespace daxref
