#include "fs/pool.h"

#include <fcntl.h>
#include <sys/file.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <thread>

#include "fs/mapping_guard.h"

namespace daxref {

namespace {
std::string Pmem2Error(const char* what) {
  return std::string(what) + ": " + pmem2_errormsg();
}
}  // namespace

Result<std::unique_ptr<PoolMapping>> PoolMapping::Open(const std::string& path, int lock_wait_ms) {
  // Before there is a mapping to fault on.
  InstallMappingGuard();
  std::unique_ptr<PoolMapping> p(new PoolMapping());
  p->fd_ = open(path.c_str(), O_RDWR | O_CLOEXEC);
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
  if (pmem2_map_new(&p->map_, p->cfg_, p->src_) != 0)
    return Status::IOError(Pmem2Error("pmem2_map_new"));
  p->base_ = static_cast<char*>(pmem2_map_get_address(p->map_));
  p->size_ = pmem2_map_get_size(p->map_);
  p->memcpy_ = pmem2_get_memcpy_fn(p->map_);
  p->memset_ = pmem2_get_memset_fn(p->map_);
  p->persist_ = pmem2_get_persist_fn(p->map_);
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
// copy inside it: nothing is constructed in the guarded region.

Status PoolMapping::CheckRange(uint64_t pool_off, uint64_t len, const char* what) const {
  if (Contains(pool_off, len)) return Status::Ok();
  return Status::IOError(std::string("pool ") + what + " of " + std::to_string(len) + " bytes at " +
                         std::to_string(pool_off) + " is outside the pool's " +
                         std::to_string(size_) + " bytes");
}

Status PoolMapping::Write(uint64_t pool_off, const void* src, size_t len) {
  DAXREF_RETURN_IF_ERROR(CheckRange(pool_off, len, "write"));
  const void* fault;
  if (Guarded([&] { memcpy_(base_ + pool_off, src, len, store_flags_); }, &fault))
    return Status::Ok();
  return Fault(fault, "write");
}

Status PoolMapping::Load(uint64_t pool_off, void* dst, size_t len) {
  DAXREF_RETURN_IF_ERROR(CheckRange(pool_off, len, "load"));
  const void* fault;
  if (GuardedCopy(dst, base_ + pool_off, len, &fault)) return Status::Ok();
  return Fault(fault, "load");
}

Status PoolMapping::Copy(uint64_t dst_pool_off, uint64_t src_pool_off, size_t len) {
  DAXREF_RETURN_IF_ERROR(CheckRange(dst_pool_off, len, "copy"));
  DAXREF_RETURN_IF_ERROR(CheckRange(src_pool_off, len, "copy"));
  const void* fault;
  if (Guarded([&] { memcpy_(base_ + dst_pool_off, base_ + src_pool_off, len, store_flags_); },
              &fault))
    return Status::Ok();
  return Fault(fault, "copy");
}

Status PoolMapping::Zero(uint64_t pool_off, size_t len) {
  DAXREF_RETURN_IF_ERROR(CheckRange(pool_off, len, "zero"));
  const void* fault;
  if (Guarded([&] { memset_(base_ + pool_off, 0, len, store_flags_); }, &fault))
    return Status::Ok();
  return Fault(fault, "zero");
}

void PoolMapping::set_fault_sink(FaultSink sink) {
  auto p = sink ? std::make_shared<const FaultSink>(std::move(sink)) : nullptr;
  std::lock_guard<std::mutex> lock(sink_mu_);
  sink_ = std::move(p);
}

Status PoolMapping::Fault(const void* addr, const char* what) {
  auto a = reinterpret_cast<uintptr_t>(addr);
  auto b = reinterpret_cast<uintptr_t>(base_);
  if (a < b || a - b >= size_) {
    // The caller's buffer, not the pool: nothing for the poison path.
    char msg[96];
    snprintf(msg, sizeof(msg), "memory fault at address %p, outside the pool (%s)", addr, what);
    return Status::IOError(msg);
  }
  uint64_t off = a - b;
  std::shared_ptr<const FaultSink> sink;
  {
    std::lock_guard<std::mutex> lock(sink_mu_);
    sink = sink_;
  }
  if (sink) (*sink)(off);
  return Status::IOError("pool memory fault at byte " + std::to_string(off));
}

Status PoolMapping::CheckReadable(uint64_t pool_off, size_t len, uint64_t* bad_off) {
  if (pool_off > size_ || len > size_ - pool_off)
    return Status::Invalid("CheckReadable: [" + std::to_string(pool_off) + ", +" +
                           std::to_string(len) + ") is not inside the pool");
  if (len == 0) return Status::Ok();
  const char* p = base_ + pool_off;
  const char* end = p + len;
  const void* fault;
  // The first byte of the range, then the first byte of each later page, in
  // order: the first fault is the first bad page.
  bool ok = Guarded(
      [p, end] {
        const volatile char* q = p;
        while (true) {
          (void)*q;
          auto next = (reinterpret_cast<uintptr_t>(q) | (kBlockSize - 1)) + 1;
          if (next >= reinterpret_cast<uintptr_t>(end)) break;
          q = reinterpret_cast<const volatile char*>(next);
        }
      },
      &fault);
  if (ok) return Status::Ok();
  Status s = Fault(fault, "check");
  auto a = reinterpret_cast<uintptr_t>(fault);
  auto b = reinterpret_cast<uintptr_t>(base_);
  if (a >= b && a - b < size_) *bad_off = a - b;
  return s;
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
  if (!Contains(pool_off, len)) return;
#ifdef MADV_POPULATE_WRITE
  if (page_granular_ && len >= 2 * kBlockSize) {
    uintptr_t start = reinterpret_cast<uintptr_t>(base_ + pool_off) & ~uintptr_t{kBlockSize - 1};
    madvise(reinterpret_cast<void*>(start), len, MADV_POPULATE_WRITE);
  }
#endif
}

void PoolMapping::Persist(uint64_t pool_off, size_t len) {
  if (!Contains(pool_off, len)) return;
  if (page_granular_) persist_(base_ + pool_off, len);
}

void PoolMapping::PersistAll() {
  if (page_granular_) persist_(base_, size_);
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
