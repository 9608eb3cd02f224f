// PoisonHandler: what the daemon does about memory poison (docs/poison.md).
//
// The model is Linux memory-failure on fsdax with XFS's notify_failure:
// record the failure, walk the reverse map over the bad range, and for each
// owning file, as it is met, drop the kernel's cached pages of the range and
// signal every process that holds the file; a range that holds the pool's
// own metadata shuts the filesystem down. Nothing here builds a list of
// owners: a block can have millions of sharers. The processes that hold
// files of the mount are found once per event (HolderIndex, bounded by what
// is open or mapped, not by how many files share the block).
//
// Every event is reported, record by record, to a Sink (the admin's
// connection, fs/control_server.h) and to the log. Events are serialized.
// Runs on the control thread or the poison worker, never on a request
// thread: invalidating the kernel's cache there could deadlock
// (fs/worker_thread.h).
#pragma once

#include <cstdint>
#include <functional>

#include "admin/control_protocol.h"
#include "base/mutex.h"
#include "base/thread_annotations.h"
#include "fs/filesystem.h"

namespace daxref {

struct PoisonOptions {
  int signal = 7;  // SIGBUS; 0: signal no one
};

class PoisonHandler {
 public:
  // Gets each record as it is produced; false means the receiver went away
  // (the work goes on regardless: the log still gets everything).
  using Sink = std::function<bool(const control::Record&)>;

  PoisonHandler(Filesystem* fs, const PoisonOptions& opts) : fs_(fs), opts_(opts) {}

  // Poison in pool blocks [pb0, pb1). `strict` (the admin's inject): the
  // call fails (EEXIST) if a block of the range is bad already. Without it
  // (poison the daemon met itself), blocks already bad are skipped.
  void Inject(uint64_t pb0, uint64_t pb1, bool strict, const Sink& sink);
  // Poison in the pool blocks behind bytes [off, off+len) of inode ino.
  void InjectFile(uint64_t ino, uint64_t off, uint64_t len, const Sink& sink);
  // A machine check at pool byte `pool_off` (BUS_MCEERR_AR), met by the
  // daemon while it touched the mapping: the block is poison, with the
  // owner walk, invalidation and signals of Inject. Logged only.
  void MemoryFault(uint64_t pool_off);
  // The same for poison the kernel reported before anyone touched it
  // (BUS_MCEERR_AO, pool/async_faults.h).
  void AsyncMemoryFault(uint64_t pool_off);
  // Reports of asynchronous machine checks were lost (`lost` of them, more
  // than the handler's table held): re-reads the device's bad-block list
  // (PoolMapping::WalkBadBlocks, as mount does) and poisons each block it
  // lists that is not bad yet, as Inject does. Logged only.
  void DeviceBadBlocks(uint64_t lost);
  void List(const Sink& sink);
  void Clear(uint64_t pb0, uint64_t pb1, const Sink& sink);
  void Resolve(uint64_t pb0, uint64_t pb1, const Sink& sink);
  // The device is about to go: freeze, flush, invalidate, signal, shut
  // down. The caller detaches the mount (Filesystem::Detach) once the
  // reply is out.
  void PreRemove(const Sink& sink);

 private:
  // Walks the owners of [pb0, pb1): one `owner` record each, with paths
  // and, when `act`, after invalidating the kernel's pages and signalling
  // the holders found in `holders`. False (an `error` record sent) if the
  // walk failed: the reply ends there.
  struct Walk;
  bool WalkOwners(uint64_t pb0, uint64_t pb1, Walk* w, const Sink& sink);
  bool InjectLocked(uint64_t pb0, uint64_t pb1, bool strict, const Sink& sink, Walk* w)
      REQUIRES(mu_);
  // Poison the daemon found itself at pool byte `pool_off`; `how` says how.
  void FoundPoison(uint64_t pool_off, const char* how);

  Filesystem* fs_;
  PoisonOptions opts_;
  // One event at a time. The outermost daemon lock: held across the
  // Volume's operations and the holder scan, never taken under another.
  Mutex mu_;
};

// The value a holder finds in si_value (SI_QUEUE) of the signal: the inode
// in the high 32 bits and the first poisoned file block (4 KiB) in the low
// 32, each saturated at 0xffffffff ("too large: ask daxref-poison list").
uint64_t PoisonSignalValue(uint64_t ino, uint64_t fblock);

}  // namespace daxref
