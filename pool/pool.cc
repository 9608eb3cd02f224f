#include "pool/pool.h"

#include <fcntl.h>
#include <sys/file.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <thread>

#include "pool/mapping_guard.h"

namespace daxref {

namespace {
std::string Pmem2Error(const char* what) {
  return std::string(what) + ": " + pmem2_errormsg();
}
}  // namespace

Result<std::unique_ptr<PoolMapping>> PoolMapping::Open(const std::string& path, int lock_wait_ms,
                                                       bool read_only) {
  // Before there is a mapping to fault on.
  InstallMappingGuard();
  std::unique_ptr<PoolMapping> p(new PoolMapping());
  p->read_only_ = read_only;
  p->fd_ = open(path.c_str(), (read_only ? O_RDONLY : O_RDWR) | O_CLOEXEC);
  if (p->fd_ < 0) {
    int e = errno;
    if (e == ENOENT) return Status::Error(e, path + ": no pool here (not a daxref filesystem?)");
    return Status::Error(e, path + ": " + strerror(e));
  }
  // A daemon that was just unmounted may still be closing the pool: wait for it.
  for (int waited = 0;; waited += 50) {
    if (flock(p->fd_, LOCK_EX | LOCK_NB) == 0) break;
    if (errno != EWOULDBLOCK) return Status::Error(errno, path + ": flock: " + strerror(errno));
    if (waited >= lock_wait_ms)
      return Status::Error(EBUSY, path + " is in use by another daxref daemon");
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  DAXREF_RETURN_IF_ERROR(ReadPoolSuperblock(path, &p->sb_, &p->used_backup_));
  struct stat st {};
  if (fstat(p->fd_, &st) != 0) return Status::Error(errno, path + ": " + strerror(errno));
  uint64_t want = p->sb_.block_count * kBlockSize;
  if (static_cast<uint64_t>(st.st_size) < want)
    return Status::Error(EINVAL, path + ": pool is truncated (" + std::to_string(st.st_size) +
                                     " bytes, superblock says " + std::to_string(want) + ")");

  if (pmem2_config_new(&p->cfg_) != 0) return Status::IOError(Pmem2Error("pmem2_config_new"));
  if (pmem2_source_from_fd(&p->src_, p->fd_) != 0)
    return Status::IOError(Pmem2Error("pmem2_source_from_fd"));
  // Page granularity is the weakest requirement: it accepts a pool on tmpfs
  // or an ordinary file (persist is msync) as well as on real pmem.
  if (pmem2_config_set_required_store_granularity(p->cfg_, PMEM2_GRANULARITY_PAGE) != 0)
    return Status::IOError(Pmem2Error("pmem2_config_set_required_store_granularity"));
  if (pmem2_config_set_length(p->cfg_, want) != 0)
    return Status::IOError(Pmem2Error("pmem2_config_set_length"));
  if (read_only && pmem2_config_set_protection(p->cfg_, PMEM2_PROT_READ) != 0)
    return Status::IOError(Pmem2Error("pmem2_config_set_protection"));
  if (pmem2_map_new(&p->map_, p->cfg_, p->src_) != 0)
    return Status::IOError(Pmem2Error("pmem2_map_new"));
  p->base_ = static_cast<char*>(pmem2_map_get_address(p->map_));
  p->size_ = pmem2_map_get_size(p->map_);
  p->memcpy_ = pmem2_get_memcpy_fn(p->map_);
  p->memset_ = pmem2_get_memset_fn(p->map_);
  long page = sysconf(_SC_PAGESIZE);
  if (page > 0) p->page_size_ = static_cast<size_t>(page);
  p->page_granular_ = pmem2_map_get_store_granularity(p->map_) == PMEM2_GRANULARITY_PAGE;
  p->store_flags_ = p->page_granular_ ? PMEM2_F_MEM_NOFLUSH : 0;
  return p;
}

PoolMapping::~PoolMapping() {
  if (map_) pmem2_map_delete(&map_);
  if (src_) pmem2_source_delete(&src_);
  if (cfg_) pmem2_config_delete(&cfg_);
  if (fd_ >= 0) close(fd_);  // drops the flock
}

// Each access captures what it needs before the guard and only calls the
// copy inside it: nothing is constructed in the guarded region. Running an
// access again is harmless: every one is a copy or a fill whose source is
// unchanged by it (Copy's ranges never overlap).
template <typename Fn>
Status PoolMapping::Access(Fn&& fn, const char* what, uint64_t* fault_off) {
  for (bool may_retry = true;; may_retry = false) {
    GuardFault f;
    if (Guarded(fn, &f)) return Status::Ok();
    bool retry = false;
    Status s = Fault(f, what, may_retry, &retry);
    if (!retry) {
      if (fault_off != nullptr) PoolOffsetOf(f.addr, fault_off);
      return s;
    }
  }
}

Status PoolMapping::CheckRange(uint64_t pool_off, uint64_t len, const char* what) const {
  if (Contains(pool_off, len)) return Status::Ok();
  return Status::IOError(std::string("pool ") + what + " of " + std::to_string(len) + " bytes at " +
                         std::to_string(pool_off) + " is outside the pool's " +
                         std::to_string(size_) + " bytes");
}

Status PoolMapping::CheckWritable(const char* what) const {
  if (!read_only_) return Status::Ok();
  return Status::Error(EROFS,
                       std::string("pool ") + what + " refused: the pool is mapped read-only");
}

Status PoolMapping::Write(uint64_t pool_off, const void* src, size_t len) {
  DAXREF_RETURN_IF_ERROR(CheckWritable("write"));
  DAXREF_RETURN_IF_ERROR(CheckRange(pool_off, len, "write"));
  return Access([&] { memcpy_(base_ + pool_off, src, len, store_flags_); }, "write");
}

Status PoolMapping::Load(uint64_t pool_off, void* dst, size_t len) {
  DAXREF_RETURN_IF_ERROR(CheckRange(pool_off, len, "load"));
  const char* from = base_ + pool_off;
  return Access([&] { memcpy(dst, from, len); }, "load");
}

Status PoolMapping::Copy(uint64_t dst_pool_off, uint64_t src_pool_off, size_t len) {
  DAXREF_RETURN_IF_ERROR(CheckWritable("copy"));
  DAXREF_RETURN_IF_ERROR(CheckRange(dst_pool_off, len, "copy"));
  DAXREF_RETURN_IF_ERROR(CheckRange(src_pool_off, len, "copy"));
  return Access([&] { memcpy_(base_ + dst_pool_off, base_ + src_pool_off, len, store_flags_); },
                "copy");
}

Status PoolMapping::Zero(uint64_t pool_off, size_t len) {
  DAXREF_RETURN_IF_ERROR(CheckWritable("zero"));
  DAXREF_RETURN_IF_ERROR(CheckRange(pool_off, len, "zero"));
  return Access([&] { memset_(base_ + pool_off, 0, len, store_flags_); }, "zero");
}

void PoolMapping::set_fault_sink(FaultSink sink) {
  auto p = sink ? std::make_shared<const FaultSink>(std::move(sink)) : nullptr;
  MutexLock lock(&sink_mu_);
  sink_ = std::move(p);
}

void PoolMapping::set_host_fault_log(HostFaultLog log) {
  auto p = log ? std::make_shared<const HostFaultLog>(std::move(log)) : nullptr;
  MutexLock lock(&sink_mu_);
  host_log_ = std::move(p);
}

bool PoolMapping::PoolOffsetOf(const void* addr, uint64_t* pool_off) const {
  auto a = reinterpret_cast<uintptr_t>(addr);
  auto b = reinterpret_cast<uintptr_t>(base_);
  if (a < b || a - b >= size_) return false;
  *pool_off = a - b;
  return true;
}

Status PoolMapping::Fault(const GuardFault& f, const char* what, bool may_retry, bool* retry) {
  uint64_t off = 0;
  if (!PoolOffsetOf(f.addr, &off)) {
    // The caller's buffer, not the pool: nothing for the poison path.
    char msg[96];
    snprintf(msg, sizeof(msg), "memory fault at address %p, outside the pool (%s)", f.addr, what);
    return Status::IOError(msg);
  }
  if (!IsMachineCheck(f.code)) return HostFault(off, what, may_retry, retry);
  std::shared_ptr<const FaultSink> sink;
  {
    MutexLock lock(&sink_mu_);
    sink = sink_;
  }
  if (sink) (*sink)(off);
  return Status::IOError("pool memory fault at byte " + std::to_string(off));
}

// The mapping's page at `off` could not be provided by the pool file. The
// file itself says why: asking its filesystem for that page with
// fallocate(2) gets the error the page fault could not report. That costs
// two syscalls per fault, and faults are rare: a full host filesystem fails
// the access before anything is committed, and a request that meets one
// returns ENOSPC right away.
Status PoolMapping::HostFault(uint64_t off, const char* what, bool may_retry, bool* retry) {
  const uint64_t page = off & ~uint64_t{page_size_ - 1};
  std::string at = "pool byte " + std::to_string(off) + " (" + what + ")";
  Status s;
  struct stat st {};
  if (fstat(fd_, &st) != 0) {
    s = Status::IOError(at +
                        ": the pool file cannot provide it, and fstat failed: " + strerror(errno));
  } else if (page >= static_cast<uint64_t>(st.st_size)) {
    s = Status::IOError(at + " is past the end of the pool file (" + std::to_string(st.st_size) +
                        " bytes, the pool is " + std::to_string(size_) +
                        "): was the pool file truncated?");
  } else if (fallocate(fd_, FALLOC_FL_KEEP_SIZE, static_cast<off_t>(page),
                       static_cast<off_t>(page_size_)) != 0) {
    int e = errno;
    if (e == ENOSPC)
      s = Status::NoSpace(at + ": no space left on the pool's host filesystem (" +
                          std::string(strerror(e)) + ")");
    else
      s = Status::IOError(
          at + ": the pool's host filesystem cannot provide the page: fallocate: " + strerror(e));
  } else if (may_retry) {
    *retry = true;
  } else {
    s = Status::IOError(at + " faulted again after its page was allocated on the host");
  }
  std::shared_ptr<const HostFaultLog> log;
  {
    MutexLock lock(&sink_mu_);
    log = host_log_;
  }
  if (log)
    (*log)(*retry ? at + ": the host filesystem could not provide the page at first; it has it "
                         "now, retrying"
                  : s.message() + " (not poison)");
  return s;
}

Status PoolMapping::CheckReadable(uint64_t pool_off, size_t len, uint64_t* bad_off) {
  if (pool_off > size_ || len > size_ - pool_off)
    return Status::Invalid("CheckReadable: [" + std::to_string(pool_off) + ", +" +
                           std::to_string(len) + ") is not inside the pool");
  if (len == 0) return Status::Ok();
  const char* p = base_ + pool_off;
  const char* end = p + len;
  // The first byte of the range, then the first byte of each later page, in
  // order: the first fault is the first bad page.
  return Access(
      [p, end] {
        const volatile char* q = p;
        while (true) {
          (void)*q;
          auto next = (reinterpret_cast<uintptr_t>(q) | (kBlockSize - 1)) + 1;
          if (next >= reinterpret_cast<uintptr_t>(end)) break;
          q = reinterpret_cast<const volatile char*>(next);
        }
      },
      "check", bad_off);
}

namespace {
struct BadBlockContextDeleter {
  void operator()(pmem2_badblock_context* c) const { pmem2_badblock_context_delete(&c); }
};
using BadBlockContext = std::unique_ptr<pmem2_badblock_context, BadBlockContextDeleter>;
}  // namespace

Status PoolMapping::WalkBadBlocks(const BadBlockFn& fn) {
  pmem2_badblock_context* raw = nullptr;
  int rc = pmem2_badblock_context_new(&raw, src_);
  // libpmem2 built without ndctl says NOSUPP. Built with it (Debian), a
  // source on no NVDIMM namespace (tmpfs, a disk) gets a context whose
  // first next() reports no bad block.
  if (rc == PMEM2_E_NOSUPP) return Status::Ok();
  if (rc != 0) return Status::IOError(Pmem2Error("pmem2_badblock_context_new"));
  BadBlockContext ctx(raw);
  while (true) {
    pmem2_badblock bb{};
    rc = pmem2_badblock_next(ctx.get(), &bb);
    if (rc == PMEM2_E_NO_BAD_BLOCK_FOUND || rc == PMEM2_E_NOSUPP) return Status::Ok();
    if (rc != 0) return Status::IOError(Pmem2Error("pmem2_badblock_next"));
    // Offsets are bytes from the start of the file (device), which is
    // where the mapping starts.
    if (bb.length == 0 || bb.offset >= size_) continue;
    uint64_t len = std::min<uint64_t>(bb.length, size_ - bb.offset);
    if (!fn(bb.offset, len)) return Status::Ok();
  }
}

// A sparse pool (tmpfs, a regular file) gets its pages on first touch, one
// page fault per 4 KiB; populating a new extent's range in one call costs a
// fraction of that. Best effort: an old kernel without MADV_POPULATE_WRITE,
// or a range that cannot be populated now, just faults as before.
void PoolMapping::WillWrite(uint64_t pool_off, size_t len) {
  if (read_only_ || !Contains(pool_off, len)) return;
#ifdef MADV_POPULATE_WRITE
  if (page_granular_ && len >= 2 * kBlockSize) {
    uintptr_t start = reinterpret_cast<uintptr_t>(base_ + pool_off) & ~uintptr_t{kBlockSize - 1};
    madvise(reinterpret_cast<void*>(start), len, MADV_POPULATE_WRITE);
  }
#endif
}

// Where every store already persisted (byte or cache-line granularity:
// libpmem2's copies flush before they return), there is nothing to do. On a
// page-granular pool libpmem2's persist is msync, and it abort()s when msync
// fails; the host filesystem failing to write pages back is an error for the
// operation (its batch never commits), not a reason to kill every mount.
Status PoolMapping::Persist(uint64_t pool_off, size_t len) {
  if (!page_granular_ || read_only_ || len == 0) return Status::Ok();
  return Msync(pool_off, len);
}

Status PoolMapping::PersistAll() {
  if (!page_granular_ || read_only_) return Status::Ok();
  return Msync(0, size_);
}

Status PoolMapping::Msync(uint64_t pool_off, size_t len) {
  DAXREF_RETURN_IF_ERROR(CheckRange(pool_off, len, "persist"));
  // msync wants a page-aligned start; the mapping itself is page-aligned.
  uint64_t start = pool_off & ~uint64_t{page_size_ - 1};
  uint64_t end = pool_off + len;
  if (msync(base_ + start, end - start, MS_SYNC) == 0) return Status::Ok();
  int e = errno;
  return Status::Error(e, "persisting pool bytes " + std::to_string(start) + ".." +
                              std::to_string(end - 1) + " (msync): " + strerror(e));
}

const char* PoolMapping::granularity() const {
  switch (pmem2_map_get_store_granularity(map_)) {
    case PMEM2_GRANULARITY_BYTE:
      return "byte";
    case PMEM2_GRANULARITY_CACHE_LINE:
      return "cache line";
    default:
      return "page";
  }
}

}  // namespace daxref
