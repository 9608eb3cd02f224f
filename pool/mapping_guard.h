// The SIGBUS guard: accesses to the pool mapping that fail as a value instead
// of killing the daemon.
//
// Memory behind the mapping can go bad under us. On persistent memory a read
// of a poisoned cache line raises a machine check, which the kernel turns
// into SIGBUS (si_code BUS_MCEERR_AR) for the thread that touched it; a pool
// file cut short under the MAP_SHARED mapping raises SIGBUS (BUS_ADRERR) for
// any touch past its new end. Either would kill the daemon and every mount it
// serves, for one bad block. So every access to the mapping runs guarded:
//
//   GuardFault fault;
//   if (!GuardedCopy(dst, src, n, &fault)) { ...fault.addr, fault.code... }
//
// The guard only says what the kernel said; telling a machine check
// (BUS_MCEERR_AR: poison) from a page the pool's host filesystem could not
// provide (BUS_ADRERR / BUS_OBJERR: the file is full, cut short, or failed
// to read) is the caller's job (pool/pool.cc), because only a machine check is
// poison: a full disk is ENOSPC, never a bad block.
//
// How it works. One process-wide SIGBUS handler (InstallMappingGuard). A
// guarded call pushes a frame (a sigjmp_buf, saved without the signal mask:
// no syscall) on a thread-local list and runs the access; the handler, when a
// fault the kernel raised in this thread (BUS_ADRERR, BUS_OBJERR,
// BUS_MCEERR_AR) lands while that thread has a frame, stores si_addr and
// si_code in the innermost frame and siglongjmps to it, and the call returns
// false. The handler is installed with SA_NODEFER and an empty sa_mask, so
// nothing is left blocked after the jump (the fault path also unblocks
// SIGBUS, in case the handler was reached through another that blocked it).
//
// Any other SIGBUS is none of the guard's business:
//   - BUS_MCEERR_AO (action optional: the kernel found poison nobody has
//     touched yet, delivered asynchronously, to any thread, guarded or not;
//     a process gets it only if it asked for early notification, see
//     RequestEarlyMachineCheckNotice) is recorded in a small lock-free table
//     for the daemon to collect with TakeAsyncMemoryFault, the notifier
//     (an eventfd, SetAsyncMemoryFaultNotifier) is written so that a worker
//     wakes up to collect it, then it is handed to the previous handler if
//     there was one; the process goes on. The handler takes si_code at its
//     word here even for a signal another process queued (a positive
//     si_code cannot be queued by anyone but the kernel, the process itself
//     or a ptrace tracer: all trusted).
//   - Everything else (an unguarded fault, BUS_ADRALN, a SIGBUS sent with
//     kill or sigqueue even inside a guard) goes to the handler that was
//     installed before ours, or, if that was the default or SIG_IGN, the
//     default is restored and the signal raised again: a real bug still
//     crashes, with a core.
//
// Limits, and why they hold:
//   - Jumping out of memcpy, memset or libpmem2's copies is safe because they
//     take no locks, allocate nothing and own no resources: the abandoned
//     frames have nothing to release. The same must hold for anything run
//     under Guarded: no C++ object with a destructor may be constructed in
//     the guarded region (it would never be destroyed), no lock taken, no
//     allocation made, nothing that can throw (an exception escaping the
//     region calls std::terminate). Build what the access needs before the
//     call; report the fault after it returns.
//   - Guards nest (the innermost one catches), but nothing needs them to.
//   - Bytes before the fault may already have moved; the guard says where
//     the access stopped, not what it did.
//   - The handler is process-wide. Code that installs its own SIGBUS handler
//     after InstallMappingGuard replaces ours until InstallMappingGuard is
//     called again (which then chains to it). SIGBUS must not be blocked in
//     a thread that makes guarded calls: the kernel kills a process whose
//     thread faults with the signal blocked.
//
// Cost: one sigsetjmp (registers only, no syscall: saving the mask would be
// a sigprocmask per call, ~20 times dearer), two thread-local stores and an
// indirect call per guarded call. Measured on a 2-vCPU VM: about 12 ns per
// call; 4 KiB copies +3 ns (a few percent), 1 MiB copies within noise. A
// caught fault costs about 3 us (the kernel's fault and signal delivery).
//
// Thread safety: everything here may be called from any thread at any time.
// Each thread's guard is its own.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <type_traits>

namespace daxref {

// Where a guarded access stopped, as the kernel reported it: the faulting
// address (si_addr) and why (si_code: BUS_MCEERR_AR for a machine check,
// BUS_ADRERR or BUS_OBJERR for a page the mapped file cannot provide).
struct GuardFault {
  const void* addr = nullptr;
  int code = 0;
};

// Is si_code a machine check (memory poison), action required or optional?
bool IsMachineCheck(int si_code);

// Installs the process-wide SIGBUS handler, unless it is already the
// current one; the handler found there becomes the one unguarded faults are
// chained to. Idempotent and thread-safe. Guarded calls install it on first
// use; the daemon calls it (through PoolMapping::Open) before serving, and
// again if anything it starts afterwards may have replaced it.
void InstallMappingGuard();

// The guarded region's body: a plain function and its context, so that a
// guarded call allocates nothing (no std::function).
using GuardedFn = void (*)(void* ctx) noexcept;

// Runs fn(ctx) under the guard. True if it ran to completion; false if it
// faulted, with *fault set to the faulting address (si_addr) and si_code.
[[nodiscard]] bool GuardedCall(GuardedFn fn, void* ctx, GuardFault* fault);

// GuardedCall for any callable (a lambda capturing what the access needs).
template <typename Fn>
[[nodiscard]] bool Guarded(Fn&& fn, GuardFault* fault) {
  using F = std::remove_reference_t<Fn>;
  GuardedFn thunk = [](void* ctx) noexcept { (*static_cast<F*>(ctx))(); };
  return GuardedCall(thunk, const_cast<void*>(static_cast<const void*>(std::addressof(fn))), fault);
}

// memcpy(dst, src, n) under the guard; a fault on either side stops it.
[[nodiscard]] bool GuardedCopy(void* dst, const void* src, size_t n, GuardFault* fault);

// Takes one recorded BUS_MCEERR_AO address (poison found by the kernel, not
// yet touched); false when there is none. The table holds
// kAsyncMemoryFaultSlots addresses; more arriving before the daemon collects
// them are counted in LostAsyncMemoryFaults instead (then the daemon should
// rescan the device's bad blocks).
inline constexpr size_t kAsyncMemoryFaultSlots = 64;
bool TakeAsyncMemoryFault(const void** addr);
// How many BUS_MCEERR_AO addresses found the table full, since the start.
uint64_t LostAsyncMemoryFaults();
// From now on, every BUS_MCEERR_AO the handler records (or counts as lost)
// is followed by an 8-byte write of 1 to `fd`, an eventfd the caller owns
// and reads (write(2) is async-signal-safe; a full or non-blocking eventfd
// only drops the wake-up, never the record). -1 stops the writes. Returns
// once no handler can still be writing to the fd set before, so the caller
// may close that one then.
void SetAsyncMemoryFaultNotifier(int fd);

}  // namespace daxref
