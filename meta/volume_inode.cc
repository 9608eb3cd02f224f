// Inode records (I keys) and the times in-place writes and reads leave
// pending.
//
// A fast-path write (volume_data.cc) stores no inode: its mtime/ctime wait
// in pending_times_ (times_mu_, a leaf under mu_), and so does the atime a
// read sets (TouchAtime). Every read of an inode applies them (GetInode,
// LoadInode), and a batch that stores an inode with that time drops the
// pending entry once it has committed (StoreInode, DropStoredTimes). FlushTimes stores all of them
// at once (sync, the daemon's timer, unmount), or one inode's (the close of its last handle, fsync
// of it). Inode numbers come from next_ino_, mirrored by the M "next_ino" record in the same batch.
//
// What the fast path reads of an inode comes from attrs_ (LoadAttrs): the
// store is read once per inode, and every commit keeps the entry exact.
#include <rocksdb/db.h>

#include <optional>
#include <vector>

#include "base/mutex.h"
#include "meta/volume.h"
#include "meta/volume_txn.h"

namespace daxref {

using internal::FromRocks;

Status Volume::GetInode(uint64_t ino, InodeRecord* out) {
  // The pending times first, the record second: a batch that stores them
  // writes the record before it drops them (DropStoredTimes), so whichever
  // record this finds, the times read before it are at least as new.
  std::optional<PendingTimes> pending;
  {
    MutexLock g(&times_mu_);
    auto it = pending_times_.find(ino);
    if (it != pending_times_.end()) pending = it->second;
  }
  std::string v;
  rocksdb::Status s = db_->Get(rocksdb::ReadOptions(), keys::Inode(ino), &v);
  if (s.IsNotFound()) return Status::NotFound("no inode " + std::to_string(ino));
  DAXREF_RETURN_IF_ERROR(FromRocks(s, "read inode"));
  DAXREF_RETURN_IF_ERROR(DecodeInode(ino, v, out));
  if (pending) pending->ApplyTo(out);
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
  if (it != pending_times_.end()) it->second.ApplyTo(r);
}

void Volume::TouchAtime(uint64_t ino, Timespec now) {
  if (read_only_) return;
  MutexLock g(&times_mu_);
  if (remounted_ro_.load()) return;
  PendingTimes& p = pending_times_[ino];
  p.has_atime = true;
  p.atime = now;
}

void Volume::StoreInode(Txn& t, const InodeRecord& r, TimesSet set) {
  t.Put(keys::Inode(r.ino), EncodeInode(r));
  t.NoteStoredTimes({r.ino, r.atime, r.mtime, set});
}

void Volume::DropStoredTimes(const Txn& t) {
  MutexLock g(&times_mu_);
  for (const Txn::StoredTimes& s : t.stored_times()) {
    auto it = pending_times_.find(s.ino);
    if (it == pending_times_.end()) continue;
    PendingTimes& p = it->second;
    // A time stays pending if it is newer than what the record carries: a
    // fast-path write, or a read's atime, that came after this batch
    // loaded the inode (a release's FlushTimes racing the next open's
    // read). A time the operation set itself (utimensat) wins.
    if (p.has_mctime && (s.set.mtime || p.mctime == s.mtime)) p.has_mctime = false;
    if (p.has_atime && (s.set.atime || p.atime == s.atime)) p.has_atime = false;
    if (!p.has_mctime && !p.has_atime) pending_times_.erase(it);
  }
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
