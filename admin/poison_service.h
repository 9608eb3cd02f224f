// PoisonService: the poison verbs (inject, inject by file, list, clear, rescan,
// resolve, pre-remove), their validation and their records, for the daemon
// (fs/poison_handler.h) and for daxref-poison on an unmounted SOURCE
// (tools/poison/offline.h) alike, so that the two cannot drift
// (docs/poison.md, "One service").
//
// What differs between a mounted and an unmounted filesystem comes in
// through PoisonHooks, the way XFS hands an xfs_failure_info to the
// failure callback of whoever holds the device: the service records the
// bad blocks and walks the reverse map over them; the hooks say what
// happens to each owner met (the daemon drops the kernel's cached pages
// and signals the holders; offline nothing can hold a file), to the pool's
// own metadata (the daemon shuts down; offline there is nothing running to
// stop) and after each commit (offline, a sync: the tool exits next).
//
// Nothing here builds a list of owners: a block can have millions of
// sharers. Every record goes to the caller's sink as it is made, the last
// being `done` or `error` (admin/control_protocol.h). Events are serialized
// (one at a time); resolve only reads and runs beside them.
#pragma once

#include <cerrno>
#include <cstdint>
#include <functional>
#include <string>

#include "admin/control_protocol.h"
#include "admin/poison_records.h"
#include "base/mutex.h"
#include "meta/status.h"
#include "meta/volume.h"

namespace daxref {

// Gets each record as it is produced; false means the receiver went away
// (the work goes on regardless).
using PoisonSink = std::function<bool(const control::Record&)>;

// Blocks [pb0, pb1) just recorded bad, and what MarkBad found in them: what
// the hooks are told of a failure (cf. XFS's xfs_failure_info).
struct PoisonFailure {
  uint64_t pb0 = 0, pb1 = 0;
  PoisonOutcome outcome;
};

class PoisonHooks {
 public:
  enum class Level { kInfo, kWarn, kError };

  virtual ~PoisonHooks() = default;

  // One poison event begins: an admin's inject (every piece of a file
  // range together) or a block the environment found bad itself. The
  // daemon finds the processes holding its files at most once per event.
  virtual void BeginEvent() {}
  // An owner of blocks just recorded bad, as the reverse-map walk meets it,
  // before its `owner` record goes out: the daemon drops the kernel's cached
  // pages of the piece and signals the processes that hold the file, adding
  // a `pid` field to *r for each one signalled. Offline: nothing.
  virtual void OnOwner(const PoisonFailure& f, const PoisonOwner& o, control::Record* r) {}
  // The walk over f's owners has ended (the daemon writes its batched log).
  virtual void AfterOwners(const PoisonFailure& f) {}
  // f holds the pool's own metadata (a superblock copy). The service has
  // already sent a `note` saying which copy the next mount reads; the
  // daemon shuts the filesystem down (and sends a `shutdown` record).
  // Offline: nothing runs that could be stopped.
  virtual void OnReserved(const PoisonFailure& f, const PoisonSink& sink) {}
  // A change to the bad list has committed. Offline: Volume::Sync (the
  // tool exits next and nobody else would). The daemon: nothing more.
  virtual Status AfterCommit() { return Status::Ok(); }
  // The device is about to go away: the daemon freezes, flushes,
  // invalidates, signals and shuts down. By default (offline) there is no
  // mount to do this to: ENOTCONN.
  virtual void PreRemove(const PoisonSink& sink);
  // The device's own list of bad blocks under the pool
  // (PoolMapping::WalkBadBlocks): fn(pool byte offset, bytes) per range.
  // By default there is no device to ask: ENOTSUP.
  virtual Status WalkDeviceBadBlocks(const std::function<bool(uint64_t, uint64_t)>& fn) {
    return Status::Error(ENOTSUP, "no device to ask");
  }
  // What the service did, for a log (the daemon's). Offline: nowhere, the
  // report shows it all.
  virtual void Log(Level level, const std::string& message) {}
};

class PoisonService {
 public:
  PoisonService(Volume* vol, PoisonHooks* hooks) : vol_(vol), hooks_(hooks) {}
  PoisonService(const PoisonService&) = delete;
  PoisonService& operator=(const PoisonService&) = delete;

  // The admin's inject of pool blocks [pb0, pb1): refused (EEXIST, nothing
  // changes) if any block of it is bad already. `uid` asked (recorded as
  // the origin, with the time).
  void Inject(uint64_t pb0, uint64_t pb1, uint32_t uid, const PoisonSink& sink);
  // The admin's inject of the pool blocks behind bytes [off, off+len) of
  // inode ino (cut at its end). `name` names the file in messages (the path
  // the admin typed; empty: "inode N"). All or nothing: refused if the range
  // is a hole (ENODATA) or any block behind it is bad already (EEXIST).
  void InjectFile(uint64_t ino, uint64_t off, uint64_t len, const std::string& name, uint32_t uid,
                  const PoisonSink& sink);
  // Poison the environment found itself (a machine check, the device's
  // list; `how` is recorded as the origin): each run of blocks of
  // [pb0, pb1) not bad yet is an event of its own, as inject; blocks
  // already bad are skipped. Errors go to the log. Returns the blocks added.
  uint64_t RecordFound(uint64_t pb0, uint64_t pb1, BadOriginKind how);
  // Re-reads the device's list of bad blocks (the hook) and records what
  // is new, origin "device", as mount does: `done` says how many ranges
  // the device lists and how many blocks were new.
  void Rescan(const PoisonSink& sink);
  // Every bad range cut into pieces of one origin (`bad`, with `origin`,
  // `uid` and `time` when known), each followed by its owners.
  void List(const PoisonSink& sink);
  // Forgets the bad blocks of [pb0, pb1) (the memory was repaired).
  void Clear(uint64_t pb0, uint64_t pb1, const PoisonSink& sink);
  // The owners of [pb0, pb1); changes nothing.
  void Resolve(uint64_t pb0, uint64_t pb1, const PoisonSink& sink);
  // The device is going away (PoisonHooks::PreRemove).
  void PreRemove(const PoisonSink& sink);

 private:
  struct Counts {
    uint64_t owners = 0;
    uint64_t signalled = 0;
  };
  // Records [pb0, pb1) bad (strict: no block of it may be bad already) and
  // reports it: `range`, a `note` and the reserved hook for a superblock
  // copy, then an `owner` record per owner, through the owner hook.
  Status MarkAndReport(uint64_t pb0, uint64_t pb1, bool strict, const BadOrigin& origin,
                       const PoisonSink& sink, Counts* counts);
  uint64_t RecordFoundLocked(uint64_t pb0, uint64_t pb1, BadOriginKind how) REQUIRES(mu_);
  // An `owner` record for each reverse-map record over [pb0, pb1), clipped
  // to it; `failure` (when not null) sends each through the owner hook.
  Status ReportOwners(uint64_t pb0, uint64_t pb1, const PoisonFailure* failure,
                      const PoisonSink& sink, Counts* counts);
  // EEXIST naming the first bad piece of [pb0, pb1), if there is one;
  // `what` (may be empty) goes before it.
  Status RefuseIfBad(uint64_t pb0, uint64_t pb1, const std::string& what);
  Status ValidateFileRange(uint64_t ino, uint64_t off, uint64_t* len, const std::string& name,
                           PoolPieces* pieces);

  Volume* vol_;
  PoisonHooks* hooks_;
  Mutex mu_;  // one event at a time
};

}  // namespace daxref
