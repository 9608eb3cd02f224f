// PoisonHandler: the daemon's side of memory poison (docs/poison.md). The
// verbs, their checks and their records are the poison service's
// (admin/poison_service.h), shared with daxref-poison offline; this file
// supplies what only a mounted filesystem can do, as the service's hooks:
//
//   - on each owner of a poisoned block, drop the kernel's cached pages of
//     the range and signal every process that holds the file (found once
//     per event: HolderIndex, bounded by what is open or mapped, not by how
//     many files share the block);
//   - on poison in the pool's own metadata, shut the filesystem down;
//   - pre-remove: freeze, flush, invalidate, signal, shut down;
//   - the log.
//
// It also turns what the daemon meets itself (machine checks, the device's
// bad-block list) into poison events. Runs on the control thread or the
// poison worker, never on a request thread: invalidating the kernel's cache
// there could deadlock (fs/worker_thread.h).
#pragma once

#include <csignal>
#include <cstdint>
#include <optional>
#include <string>

#include "admin/holder_scan.h"
#include "admin/poison_service.h"
#include "fs/filesystem.h"

namespace daxref {

struct PoisonOptions {
  int signal = SIGBUS;  // 0: signal no one
};

class PoisonHandler : private PoisonHooks {
 public:
  PoisonHandler(Filesystem* fs, const PoisonOptions& opts)
      : fs_(fs), opts_(opts), service_(fs->volume(), this) {}

  // The verbs, for the control server.
  PoisonService* service() { return &service_; }

  // A machine check at pool byte `pool_off` (BUS_MCEERR_AR), met by the
  // daemon while it touched the mapping: the block is poison, with the
  // owner walk, invalidation and signals of inject. Logged only.
  void MemoryFault(uint64_t pool_off);
  // The same for poison the kernel reported before anyone touched it
  // (BUS_MCEERR_AO, pool/async_faults.h).
  void AsyncMemoryFault(uint64_t pool_off);
  // Reports of asynchronous machine checks were lost (`lost` of them, more
  // than the handler's table held): re-reads the device's bad-block list
  // (PoolMapping::WalkBadBlocks, as mount does) and poisons each block it
  // lists that is not bad yet. Logged only.
  void DeviceBadBlocks(uint64_t lost);

 private:
  // PoisonHooks.
  void BeginEvent() override;
  void OnOwner(const PoisonFailure& f, const PoisonOwner& o, control::Record* r) override;
  void AfterOwners(const PoisonFailure& f) override;
  void OnReserved(const PoisonFailure& f, const PoisonSink& sink) override;
  void PreRemove(const PoisonSink& sink) override;
  Status WalkDeviceBadBlocks(const std::function<bool(uint64_t, uint64_t)>& fn) override;
  void Log(Level level, const std::string& message) override;

  // Poison the daemon found itself at pool byte `pool_off`; `how` says how.
  void FoundPoison(uint64_t pool_off, const char* how, BadOriginKind origin);

  Filesystem* fs_;
  PoisonOptions opts_;
  PoisonService service_;
  // Per event (the service runs one at a time): the holders, found at the
  // first owner, and the owners' log line, written a few owners at a time.
  std::optional<HolderIndex> holders_;
  std::string log_line_;
  int in_line_ = 0;
};

// The value a holder finds in si_value (SI_QUEUE) of the signal: the inode
// in the high 32 bits and the first poisoned file block (4 KiB) in the low
// 32, each saturated at 0xffffffff ("too large: ask daxref-poison list").
uint64_t PoisonSignalValue(uint64_t ino, uint64_t fblock);

}  // namespace daxref
