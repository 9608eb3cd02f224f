// Pieces of Volume's implementation shared by its source files (volume*.cc,
// extent_edit.cc): the per-operation transaction, bounded prefix scans and
// small helpers more than one of them needs. Not part of meta/'s interface.
#pragma once

#include <rocksdb/db.h>
#include <rocksdb/perf_level.h>
#include <rocksdb/utilities/write_batch_with_index.h>
#include <sys/stat.h>

#include <algorithm>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "base/mutex.h"
#include "base/thread_annotations.h"
#include "meta/volume.h"

namespace daxref {
namespace internal {

inline Status FromRocks(const rocksdb::Status& s, const char* what) {
  if (s.ok()) return Status::Ok();
  if (s.IsNotFound()) return Status::NotFound(what);
  if (s.IsCorruption()) return Status::Corruption(std::string(what) + ": " + s.ToString());
  if (s.IsNoSpace()) return Status::NoSpace(std::string(what) + ": " + s.ToString());
  return Status::IOError(std::string(what) + ": " + s.ToString());
}

// RocksDB counts comparisons, bytes and more per thread by default
// (PerfLevel::kEnableCount) into a thread-local context that nothing here
// reads; on the namespace path that bookkeeping was a tenth of the
// metadata CPU. Turned off once per thread, from the entry points every
// request thread runs through (a Txn, a lookup).
inline void NoRocksPerfCounters() {
  thread_local const bool off = (rocksdb::SetPerfLevel(rocksdb::PerfLevel::kDisable), true);
  (void)off;
}

inline uint64_t BlockOf(uint64_t off) {
  return off >> kBlockShift;
}
inline uint64_t BlockCeil(uint64_t off) {
  return (off + kBlockSize - 1) >> kBlockShift;
}
inline uint64_t PoolOff(uint64_t pblock) {
  return pblock << kBlockShift;
}

inline bool IsDir(uint32_t mode) {
  return S_ISDIR(mode);
}

// The set-id bits a change by `who` of file data or owner takes away, as
// Linux decides for local filesystems (setattr_should_drop_suidgid):
// set-user-id always; set-group-id where it means "run as group" (group
// execute), or, where it marks mandatory locking, when the caller is not in
// the file's group. Root (CAP_FSETID) keeps both on a write, truncate or
// fallocate (`data_change`), not on a chown.
inline uint32_t KilledSetIdBits(uint32_t mode, uint32_t file_gid, const Caller& who,
                                bool data_change) {
  if (data_change && who.uid == 0) return 0;
  uint32_t kill = mode & S_ISUID;
  if ((mode & S_ISGID) && ((mode & S_IXGRP) || (who.uid != 0 && !who.InGroup(file_gid))))
    kill |= S_ISGID;
  return kill;
}

// The bounds of a scan over the keys that start with one prefix. Both
// bounds matter: without the lower one, a backward seek (SeekForPrev) walks
// every deleted key before the prefix one by one, and after a directory's
// worth of unlinks that is thousands of tombstones per call.
class PrefixScan {
 public:
  explicit PrefixScan(std::string prefix)
      : lo_(std::move(prefix)), hi_(keys::Successor(lo_)), lo_s_(lo_), hi_s_(hi_) {}
  PrefixScan(const PrefixScan&) = delete;
  PrefixScan& operator=(const PrefixScan&) = delete;
  rocksdb::ReadOptions Options() const {
    rocksdb::ReadOptions ro;
    ro.iterate_lower_bound = &lo_s_;
    ro.iterate_upper_bound = &hi_s_;
    return ro;
  }
  const std::string& prefix() const { return lo_; }

 private:
  std::string lo_, hi_;
  rocksdb::Slice lo_s_, hi_s_;
};

}  // namespace internal

// One operation's batch, read-your-writes (a WriteBatchWithIndex), plus the
// free-space edit that commits or rolls back with it. Built and destroyed
// under the Volume's mutation lock (mu_).
class Volume::Txn {
  using PrefixScan = internal::PrefixScan;

 public:
  explicit Txn(Volume* v) REQUIRES(v->mu_) : v_(v), batch_(rocksdb::BytewiseComparator(), 0, true) {
    internal::NoRocksPerfCounters();
    v->free_.BeginEdit();
    v->refs_.BeginEdit();
  }
  ~Txn() {
    // Every Txn is a local of an operation that holds mu_ for longer (the
    // analysis cannot tie v_->mu_ at the end of that scope to this object).
    v_->mu_.AssertHeld();
    if (!done_) {
      v_->free_.Rollback();
      v_->refs_.Rollback();
    }
    UnlockRefcounts();  // after the rollback above
    ReleaseMaps();      // undoes this batch's map edits unless it committed
  }
  // Called before the first refcount edit: readers outside the mutation
  // lock wait until this batch is committed or rolled back. Not checked:
  // the lock is held by this object from here to its destructor, across
  // calls, which the analysis (one function at a time) cannot follow.
  void LockRefcounts() NO_THREAD_SAFETY_ANALYSIS {
    if (!refs_locked_) {
      v_->refs_mu_.Lock();
      refs_locked_ = true;
    }
  }
  Status Get(const std::string& key, std::string* value) {
    rocksdb::Status s = batch_.GetFromBatchAndDB(v_->db_.get(), rocksdb::ReadOptions(), key, value);
    if (s.IsNotFound()) return Status::NotFound("");
    return internal::FromRocks(s, "read");
  }
  void Put(const std::string& k, const std::string& v) {
    batch_.Put(k, v);
    NoteAttrChange(k, &v);
  }
  void Delete(const std::string& k) {
    batch_.Delete(k);
    NoteAttrChange(k, nullptr);
  }
  // An iterator over the store as this batch would leave it. The bounds
  // apply to the store only, not to the batch's own keys: callers check
  // their prefix on every step.
  std::unique_ptr<rocksdb::Iterator> Iter(const PrefixScan& scan) {
    return std::unique_ptr<rocksdb::Iterator>(
        batch_.NewIteratorWithBase(v_->db_->NewIterator(scan.Options())));
  }
  rocksdb::WriteBatchWithIndex& batch() { return batch_; }
  void MarkDone() { done_ = true; }
  // Newly allocated extents, persisted before the batch commits.
  void NoteFresh(const std::vector<Extent>& f) { fresh_.insert(fresh_.end(), f.begin(), f.end()); }
  const std::vector<Extent>& fresh() const { return fresh_; }
  void AddInodes(int64_t n) { inode_delta_ += n; }
  // The extents of `ino` as this batch sees them (meta/extent_maps.h). The
  // first call loads the map if it is not in memory and holds it exclusive
  // until this Txn ends: readers outside mu_ see committed maps only. Read
  // only through here; change only through PutExtent and EraseExtent.
  Result<const FileExtents::Map*> Extents(uint64_t ino);
  // Sets or removes the extent at e.fblock: the E record in the batch and
  // the map in memory together, the map's old entry kept for a rollback.
  Status PutExtent(uint64_t ino, const Extent& e);
  Status EraseExtent(uint64_t ino, uint64_t fblock);
  // ino is being deleted: its map is forgotten when the batch commits.
  void ForgetExtents(uint64_t ino) { forget_.push_back(ino); }
  const std::vector<uint64_t>& forgotten() const { return forget_; }
  // The M next_ino mark this batch stores (0: none); Volume::NextIno.
  void RaiseInoLimit(uint64_t limit) { ino_limit_ = std::max(ino_limit_, limit); }
  uint64_t ino_limit() const { return ino_limit_; }
  int64_t inode_delta() const { return inode_delta_; }
  // What this batch changes of the fast path's inode attributes (inode
  // records, capability xattrs), for the AttrCache at commit. Noted here,
  // where every key passes, so that no operation can forget it.
  const std::vector<AttrCache::Change>& attr_changes() const { return attr_changes_; }
  // The inodes this batch stores, with the times they carry: pending times
  // they make stale are dropped once the batch has committed
  // (Volume::DropStoredTimes), never before, or a reader between the two
  // would see neither.
  struct StoredTimes {
    uint64_t ino;
    Timespec atime, mtime;
    Volume::TimesSet set;
  };
  void NoteStoredTimes(const StoredTimes& s) { stored_times_.push_back(s); }
  const std::vector<StoredTimes>& stored_times() const { return stored_times_; }

 private:
  void NoteAttrChange(const std::string& k, const std::string* v) {
    if (k.size() < 9) return;
    const uint64_t ino = keys::U64At(k, 1);
    if (k[0] == prefix::kInode && k.size() == 9) {
      attr_changes_.push_back(v ? AttrCache::Change{ino, AttrCache::Change::kInode, *v}
                                : AttrCache::Change{ino, AttrCache::Change::kInodeGone, {}});
    } else if (k[0] == prefix::kXattr && std::string_view(k).substr(9) == kCapabilityXattr) {
      attr_changes_.push_back(
          AttrCache::Change{ino, v ? AttrCache::Change::kCapSet : AttrCache::Change::kCapGone, {}});
    }
  }

  // LockRefcounts' other half (not checked, for the same reason).
  void UnlockRefcounts() NO_THREAD_SAFETY_ANALYSIS {
    if (refs_locked_) v_->refs_mu_.Unlock();
  }

  struct HeldMap {
    uint64_t ino;
    ExtentMaps::Handle file;
    size_t size_before;  // for the registry's count of extents
  };
  struct MapUndo {
    FileExtents::Map* map;
    uint64_t fblock;
    std::optional<Extent> before;  // the entry at fblock before the edit
  };
  HeldMap* Held(uint64_t ino);
  FileExtents::Map* EditableMap(uint64_t ino);
  void ReleaseMaps();

  int64_t inode_delta_ = 0;
  uint64_t ino_limit_ = 0;
  std::vector<HeldMap> held_;
  std::vector<MapUndo> undo_;
  std::vector<uint64_t> forget_;
  std::vector<AttrCache::Change> attr_changes_;
  std::vector<StoredTimes> stored_times_;
  Volume* v_;
  rocksdb::WriteBatchWithIndex batch_;
  std::vector<Extent> fresh_;
  bool done_ = false;
  bool refs_locked_ = false;  // v_->refs_mu_ held exclusive (LockRefcounts)
};

}  // namespace daxref
