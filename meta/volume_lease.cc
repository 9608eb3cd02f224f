// Layout leases (docs/dax.md): the G records, and making a file range ready
// to be mapped by a lease holder. The lease table, sessions and revocation
// are the daemon's (fs/); here is only what the store keeps and does.
//
// PrepareForStores is fallocate's allocation and unshare-range in one
// batch (FillHoles and Unshare, the same code), with the WAL synced before
// it returns: a holder may store into the blocks it is handed the moment it
// has them, with no daemon in the way, so the map that names them must be
// durable first.
#include <rocksdb/db.h>
#include <sys/stat.h>

#include <algorithm>
#include <vector>

#include "base/mutex.h"
#include "meta/volume.h"
#include "meta/volume_txn.h"

namespace daxref {

using internal::BlockCeil;
using internal::FromRocks;
using internal::PrefixScan;

namespace {

// EINVAL and ENXIO for a lease of file blocks [fblock, fblock+blocks) of r.
Status CheckLeaseRange(const InodeRecord& r, uint64_t fblock, uint64_t blocks) {
  if (!S_ISREG(r.mode)) return Status::Invalid("a lease is only for a regular file");
  if (!ValidFileRun(fblock, blocks)) return Status::Invalid("bad lease range");
  if (fblock + blocks > BlockCeil(r.size))
    return Status::Error(ENXIO, "lease range ends past the end of the file");
  return Status::Ok();
}

}  // namespace

uint64_t Volume::NewLeaseId() {
  return next_lease_id_.fetch_add(1, std::memory_order_relaxed);
}

Status Volume::RecordLease(const LeaseRecord& r) {
  if (r.id == 0) return Status::Invalid("lease id 0");
  DAXREF_RETURN_IF_ERROR(ValidateLease(r, sb_.geometry()));
  {
    MutexLock g(&mu_);
    Txn t(this);
    t.Put(keys::Lease(r.id), EncodeLease(r));
    DAXREF_RETURN_IF_ERROR(Commit(t));
  }
  return SyncLog(Status::Ok());
}

Status Volume::DropLeases(std::span<const uint64_t> ids) {
  if (ids.empty()) return Status::Ok();
  MutexLock g(&mu_);
  Txn t(this);
  for (uint64_t id : ids) t.Delete(keys::Lease(id));
  return Commit(t);
}

Status Volume::WalkLeases(const std::function<bool(const LeaseRecord&)>& fn) {
  PrefixScan scan(std::string(1, prefix::kLease));
  std::unique_ptr<rocksdb::Iterator> it(db_->NewIterator(scan.Options()));
  const PoolGeometry geo = sb_.geometry();
  for (it->Seek(scan.prefix()); it->Valid(); it->Next()) {
    LeaseRecord r;
    DAXREF_RETURN_IF_ERROR(
        DecodeLease(it->key().ToStringView(), it->value().ToStringView(), geo, &r));
    if (!fn(r)) return Status::Ok();
  }
  return FromRocks(it->status(), "reading lease records");
}

Status Volume::PrepareForStores(uint64_t ino, uint64_t fblock, uint64_t blocks,
                                const std::function<void(const LeasedExtent&)>& fn) {
  {
    MutexLock g(&mu_);
    Txn t(this);
    InodeRecord r;
    DAXREF_RETURN_IF_ERROR(LoadInode(t, ino, &r));
    DAXREF_RETURN_IF_ERROR(CheckLeaseRange(r, fblock, blocks));
    const uint64_t fb1 = fblock + blocks;
    // A bad block stays bad under a lease: refused before anything changes
    // (unsharing would copy it, and a holder would meet the poison).
    std::vector<Extent> mapped;
    DAXREF_RETURN_IF_ERROR(WalkExtents(t, ino, fblock, fb1, [&](const Extent& e) {
      const uint64_t f0 = std::max(e.fblock, fblock), f1 = std::min(e.fend(), fb1);
      mapped.push_back(Extent{f0, e.pblock + (f0 - e.fblock), f1 - f0});
      return true;
    }));
    for (const Extent& e : mapped)
      DAXREF_RETURN_IF_ERROR(RefuseBad(e.pblock, e.pend(), "a lease of"));
    DAXREF_RETURN_IF_ERROR(Unshare(t, &r, fblock, fb1, 0, 0));
    DAXREF_RETURN_IF_ERROR(FillHoles(t, &r, fblock, fb1, 0, 0));
    // Nothing the file shows changes (holes read as zeros, shared blocks
    // held the same bytes), so no time does; the block count may. A range
    // that was ready already commits nothing.
    if (t.batch().GetWriteBatch()->Count() > 0) {
      StoreInode(t, r);
      DAXREF_RETURN_IF_ERROR(Commit(t));
    }
  }
  DAXREF_RETURN_IF_ERROR(SyncLog(Status::Ok()));
  return EmitLeaseExtents(ino, fblock, blocks, fn);
}

Status Volume::LeaseExtents(uint64_t ino, uint64_t fblock, uint64_t blocks,
                            const std::function<void(const LeasedExtent&)>& fn) {
  InodeRecord r;
  DAXREF_RETURN_IF_ERROR(GetInode(ino, &r));
  DAXREF_RETURN_IF_ERROR(CheckLeaseRange(r, fblock, blocks));
  return EmitLeaseExtents(ino, fblock, blocks, fn);
}

Status Volume::EmitLeaseExtents(uint64_t ino, uint64_t fblock, uint64_t blocks,
                                const std::function<void(const LeasedExtent&)>& fn) {
  // Collected first, so that a bad block fails the call before fn sees
  // anything; pieces contiguous in file and pool are merged.
  std::vector<LeasedExtent> out;
  DAXREF_RETURN_IF_ERROR(
      MapRange(ino, fblock << kBlockShift, blocks << kBlockShift, [&](const MappedSegment& s) {
        if (s.hole) return true;
        LeasedExtent e{s.off >> kBlockShift, s.pool_off >> kBlockShift, s.len >> kBlockShift};
        if (!out.empty() && out.back().fend() == e.fblock && out.back().pend() == e.pblock)
          out.back().blocks += e.blocks;
        else
          out.push_back(e);
        return true;
      }));
  for (const LeasedExtent& e : out)
    if (IsBad(e.pblock, e.pend()))
      return Status::IOError("a lease of poisoned pool blocks [" + std::to_string(e.pblock) +
                             ", +" + std::to_string(e.blocks) + ")");
  for (const LeasedExtent& e : out) fn(e);
  return Status::Ok();
}

}  // namespace daxref
