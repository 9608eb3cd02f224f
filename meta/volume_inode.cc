// Inode records (I keys) and the times in-place writes and reads leave
// pending.
//
// A fast-path write (volume_data.cc) stores no inode: its mtime/ctime wait
// in pending_times_ (times_mu_, a leaf under mu_), and so does the atime a
// read sets (TouchAtime). Every read of an inode applies them (GetInode,
// LoadInode), storing an inode with that time drops the pending entry
// (StoreInode). FlushTimes stores all of them at once
// (sync, the daemon's timer, unmount), or one inode's (the close of its last
// handle, fsync of it). Inode numbers come from next_ino_, mirrored by the M
// "next_ino" record in the same batch.
//
// What the fast path reads of an inode comes from attrs_ (LoadAttrs): the
// store is read once per inode, and every commit keeps the entry exact.
#include <rocksdb/db.h>

#include <vector>

#include "base/mutex.h"
#include "meta/volume.h"
#include "meta/volume_txn.h"

namespace daxref {

using internal::FromRocks;

Status Volume::GetInode(uint64_t ino, InodeRecord* out) {
  std::string v;
  rocksdb::Status s = db_->Get(rocksdb::ReadOptions(), keys::Inode(ino), &v);
  if (s.IsNotFound()) return Status::NotFound("no inode " + std::to_string(ino));
  DAXREF_RETURN_IF_ERROR(FromRocks(s, "read inode"));
  DAXREF_RETURN_IF_ERROR(DecodeInode(ino, v, out));
  ApplyPendingTimes(out);
  return Status::Ok();
}

Status Volume::LoadInode(Txn& t, uint64_t ino, InodeRecord* out) {
  std::string v;
  Status s = t.Get(keys::Inode(ino), &v);
  if (s.err() == ENOENT) return Status::NotFound("no inode " + std::to_string(ino));
  DAXREF_RETURN_IF_ERROR(s);
  DAXREF_RETURN_IF_ERROR(DecodeInode(ino, v, out));
  ApplyPendingTimes(out);
  return Status::Ok();
}

Status Volume::LoadAttrs(uint64_t ino, AttrCache::Entry* out) {
  if (attrs_.Find(ino, out)) return Status::Ok();
  const uint64_t seen = attrs_.epoch();
  std::string v;
  rocksdb::Status s = db_->Get(rocksdb::ReadOptions(), keys::Inode(ino), &v);
  if (s.IsNotFound()) return Status::NotFound("no inode " + std::to_string(ino));
  DAXREF_RETURN_IF_ERROR(FromRocks(s, "read inode"));
  DAXREF_RETURN_IF_ERROR(DecodeInode(ino, v, &out->inode));
  out->has_cap = false;
  if (out->inode.flags & kInodeHasXattrs) {
    std::string cap;
    s = db_->Get(rocksdb::ReadOptions(), keys::Xattr(ino, kCapabilityXattr), &cap);
    if (!s.IsNotFound()) DAXREF_RETURN_IF_ERROR(FromRocks(s, "read xattr"));
    out->has_cap = s.ok();
  }
  attrs_.Insert(ino, *out, seen);
  return Status::Ok();
}

void Volume::ApplyPendingTimes(InodeRecord* r) {
  MutexLock g(&times_mu_);
  auto it = pending_times_.find(r->ino);
  if (it == pending_times_.end()) return;
  if (it->second.has_mctime) r->mtime = r->ctime = it->second.mctime;
  if (it->second.has_atime) r->atime = it->second.atime;
}

void Volume::TouchAtime(uint64_t ino, Timespec now) {
  if (read_only_) return;
  MutexLock g(&times_mu_);
  if (remounted_ro_.load()) return;
  PendingTimes& p = pending_times_[ino];
  p.has_atime = true;
  p.atime = now;
}

void Volume::StoreInode(Txn& t, const InodeRecord& r) {
  t.Put(keys::Inode(r.ino), EncodeInode(r));
  MutexLock g(&times_mu_);
  auto it = pending_times_.find(r.ino);
  if (it == pending_times_.end()) return;
  PendingTimes& p = it->second;
  // A fast-path write may have left a newer time meanwhile: keep that one.
  if (p.has_mctime && p.mctime.sec == r.mtime.sec && p.mctime.nsec == r.mtime.nsec)
    p.has_mctime = false;
  // The record carries the atime this operation meant: the pending one
  // (LoadInode applied it) or one it set (utimensat), which must win. A
  // read that touched the atime meanwhile is lost, as harmless as a
  // relatime skip: the next read sets it again if the policy still says so
  // (a change that moved ctime makes it say so).
  p.has_atime = false;
  if (!p.has_mctime) pending_times_.erase(it);
}

// The M next_ino record is a high-water mark, not the next number: no inode
// at or above it was ever handed out. It moves kInoReserve numbers at a
// time, so most creates leave it alone (one record fewer per batch). A
// crash skips at most the unused rest of a reservation; numbers are never
// reused, which is all the kernel and the checker need (max ino < next_ino).
// The raised mark counts once its batch has committed (Commit); a batch that
// rolls back leaves it where it was, and the next create writes it again.
uint64_t Volume::NextIno(Txn& t) {
  uint64_t ino = next_ino_++;
  if (next_ino_ > ino_limit_ && next_ino_ > t.ino_limit()) {
    uint64_t limit = next_ino_ + kInoReserve;
    t.Put(keys::Misc(kMiscNextIno), EncodeLength(limit));
    t.RaiseInoLimit(limit);
  }
  t.AddInodes(1);
  return ino;
}

Status Volume::FlushTimes() {
  std::vector<uint64_t> inos;
  {
    MutexLock g(&times_mu_);
    for (const auto& [ino, ts] : pending_times_) inos.push_back(ino);
  }
  if (inos.empty()) return Status::Ok();
  MutexLock g(&mu_);
  Txn t(this);
  for (uint64_t ino : inos) {
    InodeRecord r;
    Status s = LoadInode(t, ino, &r);
    if (s.err() == ENOENT) {
      MutexLock tg(&times_mu_);
      pending_times_.erase(ino);
      continue;
    }
    DAXREF_RETURN_IF_ERROR(s);
    StoreInode(t, r);
  }
  return Commit(t);
}

Status Volume::FlushTimes(uint64_t ino) {
  {
    MutexLock g(&times_mu_);
    if (pending_times_.find(ino) == pending_times_.end()) return Status::Ok();
  }
  MutexLock g(&mu_);
  Txn t(this);
  InodeRecord r;
  Status s = LoadInode(t, ino, &r);
  if (s.err() == ENOENT) {
    MutexLock tg(&times_mu_);
    pending_times_.erase(ino);
    return Status::Ok();
  }
  DAXREF_RETURN_IF_ERROR(s);
  StoreInode(t, r);
  return Commit(t);
}

}  // namespace daxref
