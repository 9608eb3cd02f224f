// The store under a Volume: creating it, opening it (with the format
// upgrade and the loading of the in-memory mirrors), committing one
// operation's batch, syncing, closing, and what happens when the store's
// own filesystem fails.
//
// Where the rest lives (each file says what it owns):
//   volume_inode.cc      inode records and pending times (FlushTimes)
//   volume_namespace.cc  names, directories, attributes, Reclaim
//   volume_data.cc       MapRange, Seek, Write, truncate
//   volume_fallocate.cc  Fallocate
//   extent_edit.cc       extent-map and reverse-map editing, allocation
//   volume_share.cc      refcounts and reflink (Clone, Dedupe, CopyRange)
//   volume_poison.cc     bad blocks
//   volume_owners.cc     the reverse-map query and inode-to-path walks
//   volume_txn.h         the per-operation Txn and helpers all of them use
#include "meta/volume.h"

#include <fcntl.h>
#include <rocksdb/db.h>
#include <rocksdb/filter_policy.h>
#include <rocksdb/listener.h>
#include <rocksdb/table.h>
#include <rocksdb/utilities/write_batch_with_index.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <ctime>
#include <filesystem>
#include <vector>

#include "base/mutex.h"
#include "meta/codec.h"
#include "meta/store.h"
#include "meta/store_logger.h"
#include "meta/volume_txn.h"

namespace daxref {

using internal::BlockCeil;
using internal::FromRocks;
using internal::PoolOff;
using internal::PrefixScan;

// ---------------------------------------------------------------------------
// When the store's filesystem fails.
//
// The store lives on the same host filesystem as the pool, so it fills with
// it. RocksDB 7.8 reacts to a failed write of its log, of a flush or of the
// MANIFEST by stopping writes: a "hard" background error for ENOSPC, a
// "fatal" one for other I/O errors. Every later DB::Write fails at once with
// that error; reads go on. What the daemon does about it:
//
//   - Every operation from then on fails with that error, as ENOSPC for a
//     full filesystem, else EIO, before it writes anything (its Txn rolls
//     back). The failed operation itself was not applied: not in the log's
//     replayable part, not in the memtable.
//   - No SyncWAL while a failed log write may have marked the log writer:
//     RocksDB 7.8 (Debian builds it with assertions) asserts when such a
//     writer is synced ("Assertion 'sync_without_flush_called_' failed",
//     from fsync and from the flush at unmount: the daemon died and the
//     mount was gone). A stopped store's log is synced by fsync(2) on the
//     log files themselves instead (SyncLogFiles): what was acknowledged is
//     in them, and nothing of RocksDB's is touched. SyncWAL never runs
//     concurrently with a DB::Write (wal_mu_), so a write failing in
//     between cannot surprise it either.
//   - No recovery while mounted: writes come back at the next mount, which
//     replays the log. RocksDB can resume a stopped store (DB::Resume, or
//     its SstFileManager retrying every 5 s), but in 7.8.3 a resume that
//     runs while a failed flush is still queued waits for that flush
//     forever: measured here, with the host tmpfs full, the third Resume()
//     never returned, holding the mutation lock, and DB::Close waits for a
//     recovery in progress, so unmount would hang too. A full disk that
//     needs a remount is a nuisance; a hung filesystem is not acceptable.
//     So the listener below turns RocksDB's own recovery off and nothing
//     calls Resume.
//   - At unmount a stopped store closes without the final flush (which
//     would fail), after the same direct sync of its log.
class StoreHealth : public rocksdb::EventListener {
 public:
  explicit StoreHealth(std::function<void(const std::string&)> log) : log_(std::move(log)) {}
  void OnBackgroundError(rocksdb::BackgroundErrorReason, rocksdb::Status* error) override {
    if (error != nullptr && error->severity() >= rocksdb::Status::Severity::kHardError)
      Stop(*error);
  }
  void OnErrorRecoveryBegin(rocksdb::BackgroundErrorReason, rocksdb::Status error,
                            bool* auto_recovery) override {
    *auto_recovery = false;
    error.PermitUncheckedError();
  }
  bool stopped() const { return stopped_.load(std::memory_order_acquire); }
  // Records what stopped the store (the first error only), and says so once.
  void Stop(const rocksdb::Status& error) {
    {
      MutexLock g(&mu_);
      if (!error_.ok()) return;
      error_ = error;
      stopped_.store(true, std::memory_order_release);
    }
    if (log_)
      log_("the metadata store stopped taking changes after an error of its filesystem (" +
           error.ToString() +
           "); changes fail from now on, reads go on; changes work again after a remount "
           "once its filesystem has room");
  }
  rocksdb::Status error() {
    MutexLock g(&mu_);
    return error_;
  }

 private:
  const std::function<void(const std::string&)> log_;
  std::atomic<bool> stopped_{false};
  // A leaf: taken inside the Volume's wal_mu_ (Commit, StoreWritable).
  Mutex mu_;
  rocksdb::Status error_ GUARDED_BY(mu_);  // the first error that stopped the store
};

namespace {

// A store error as the errno the caller returns: a full filesystem is
// ENOSPC, never EIO.
Status StoreError(const rocksdb::Status& s, const std::string& what) {
  if (s.IsNoSpace() || s.subcode() == rocksdb::Status::SubCode::kSpaceLimit)
    return Status::NoSpace(what + ": " + s.ToString());
  if (s.IsCorruption()) return Status::Corruption(what + ": " + s.ToString());
  return Status::IOError(what + ": " + s.ToString());
}

// fdatasync of every log file of the store in `dir`, then of `dir`: what
// SyncWAL would make durable, without RocksDB's log writer.
Status SyncLogFiles(const std::string& dir) {
  std::error_code ec;
  for (const auto& e : std::filesystem::directory_iterator(dir, ec)) {
    const std::string name = e.path().filename().string();
    if (name.size() < 4 || name.compare(name.size() - 4, 4, ".log") != 0) continue;
    int fd = open(e.path().c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
      if (errno == ENOENT) continue;  // deleted meanwhile: obsolete
      return Status::Error(errno, e.path().string() + ": " + strerror(errno));
    }
    int rc = fdatasync(fd);
    int err = errno;
    close(fd);
    if (rc != 0) return Status::Error(err, "sync of " + e.path().string() + ": " + strerror(err));
  }
  if (ec) return Status::Error(ec.value(), dir + ": " + ec.message());
  int fd = open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) return Status::Error(errno, dir + ": " + strerror(errno));
  int rc = fsync(fd);
  int err = errno;
  close(fd);
  if (rc != 0) return Status::Error(err, "sync of " + dir + ": " + strerror(err));
  return Status::Ok();
}

// A read-only Volume's data plane: loads go to the real one, stores are
// refused before anything is touched. Every path that writes file bytes
// (in-place overwrites, the zeroing of a truncate or zero range, the copies
// of copy-on-write) goes through a DataPlane, so none of them can change
// the pool, whatever the operation does before its Commit is refused.
class ReadOnlyPlane : public DataPlane {
 public:
  explicit ReadOnlyPlane(DataPlane* real) : real_(real) {}
  Status Write(uint64_t, const void*, size_t) override { return Refused(); }
  Status Load(uint64_t pool_off, void* dst, size_t len) override {
    return real_->Load(pool_off, dst, len);
  }
  Status Copy(uint64_t, uint64_t, size_t) override { return Refused(); }
  Status Zero(uint64_t, size_t) override { return Refused(); }
  Status Persist(uint64_t, size_t) override { return Status::Ok(); }

 private:
  static Status Refused() { return Status::Error(EROFS, "read-only filesystem"); }
  DataPlane* real_;
};

// The read-only open: the same checks as a read-write one, on a store
// opened with OpenForReadOnly, and nothing written anywhere.
Result<std::unique_ptr<rocksdb::DB>> OpenReadOnly(const std::string& dir, const Superblock& sb) {
  auto ro = OpenStoreReadOnly(dir);
  if (!ro.ok()) return ro.status();
  StoreIdentity id;
  DAXREF_RETURN_IF_ERROR(ReadStoreIdentity(ro->get(), rocksdb::ReadOptions(), &id));
  DAXREF_RETURN_IF_ERROR(VerifyStore(ro->get(), id, sb));
  return std::move(*ro);
}

}  // namespace

Timespec Now() {
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  return Timespec{ts.tv_sec, static_cast<uint32_t>(ts.tv_nsec)};
}

Volume::Volume(std::unique_ptr<rocksdb::DB> db, const Superblock& sb, DataPlane* data)
    : db_(std::move(db)), sb_(sb), data_(data) {}

Volume::~Volume() {
  if (db_ && read_only_) {
    // Nothing to flush, sync or record: nothing was written.
    rocksdb::Status cs = db_->Close();
    cs.PermitUncheckedError();
  } else if (db_) {
    Status s = FlushTimes();
    (void)s;  // nothing to tell at teardown; the data itself is in the pool
    MutexLock wal(&wal_mu_);
    if (!health_->stopped()) {
      // Flushing the memtables at a clean unmount leaves no log to replay,
      // so the next mount opens the store without reading the day's
      // operations.
      rocksdb::Status fs = db_->Flush(rocksdb::FlushOptions());
      fs.PermitUncheckedError();
    }
    // A flush that failed (no room) stops the store but writes no log
    // record; only a failed log write makes SyncWAL unsafe (above).
    if (!health_->stopped() || !wal_suspect_) {
      rocksdb::Status ws = db_->FlushWAL(true);
      ws.PermitUncheckedError();
    } else {
      // Stopped by a failed log write: everything acknowledged is in the
      // log files; the next mount replays them.
      Status ss = SyncLogFiles(dir_);
      (void)ss;
    }
    // The pool learns how far the store got, so that a store that later
    // loses some of it (a damaged MANIFEST) is refused (meta/store.h). A
    // stopped store got as far as its log: a failed write takes no
    // sequence number, and the next mount replays the log to here.
    if (!pool_path_.empty()) (void)RecordStoreSequence(db_.get(), pool_path_, &sb_);
    rocksdb::Status cs = db_->Close();
    cs.PermitUncheckedError();
  }
}

Status Volume::Create(const std::string& dir, const Superblock& sb, const Caller& root_owner,
                      uint32_t root_mode) {
  rocksdb::Options o = StoreOptions(8 << 20);
  o.create_if_missing = true;
  o.error_if_exists = true;
  rocksdb::DB* raw = nullptr;
  rocksdb::Status s = rocksdb::DB::Open(o, dir, &raw);
  if (!s.ok()) return Status::IOError("cannot create metadata store " + dir + ": " + s.ToString());
  std::unique_ptr<rocksdb::DB> db(raw);

  rocksdb::WriteBatch b;
  b.Put(keys::Misc(kMiscUuid), std::string(reinterpret_cast<const char*>(sb.uuid.data()), 16));
  std::string v;
  codec::PutU32(&v, kMetaFormatVersion);
  b.Put(keys::Misc(kMiscFormat), v);
  b.Put(keys::Misc(kMiscBlocks), EncodeLength(sb.block_count));
  b.Put(keys::Misc(kMiscNextIno), EncodeLength(kRootIno + 1));
  b.Put(keys::Misc(kMiscInodes), EncodeLength(1));
  // A new filesystem is at generation 0, which has no record (meta/store.h).
  if (sb.generation > 0) b.Put(keys::Misc(kMiscGeneration), EncodeLength(sb.generation));
  InodeRecord root;
  root.ino = kRootIno;
  root.mode = S_IFDIR | (root_mode & 07777);
  root.uid = root_owner.uid;
  root.gid = root_owner.gid;
  root.nlink = 2;
  root.atime = root.mtime = root.ctime = root.btime = Now();
  root.parent = kRootIno;
  root.next_cookie = kFirstCookie;
  b.Put(keys::Inode(kRootIno), EncodeInode(root));
  b.Put(keys::Free(sb.first_data_block()), EncodeLength(sb.data_blocks()));
  rocksdb::WriteOptions wo;
  wo.sync = true;
  s = db->Write(wo, &b);
  if (!s.ok()) return Status::IOError("cannot initialize metadata store: " + s.ToString());
  s = db->Close();
  if (!s.ok()) return Status::IOError("cannot close metadata store: " + s.ToString());
  return Status::Ok();
}

Result<std::unique_ptr<Volume>> Volume::Open(const std::string& dir, const Superblock& sb,
                                             DataPlane* data, const Options& opts) {
  // First a look that writes nothing: a store that is damaged, stale or
  // someone else's is refused before RocksDB's read-write open can delete
  // a file the MANIFEST no longer names, or write a byte. A read-only
  // Volume stays with that look (OpenReadOnlyVolume).
  if (opts.read_only) return OpenReadOnlyVolume(dir, sb, data);
  {
    auto ro = OpenReadOnly(dir, sb);
    if (!ro.ok()) return ro.status();
  }
  rocksdb::Options o = StoreOptions(opts.block_cache_bytes);
  o.info_log = StoreLogger::Open(dir);
  auto health = std::make_shared<StoreHealth>(opts.log);
  o.listeners.push_back(health);
  rocksdb::DB* raw = nullptr;
  rocksdb::Status s = rocksdb::DB::Open(o, dir, &raw);
  if (!s.ok()) {
    int err = s.IsIOError() && s.ToString().find("lock") != std::string::npos ? EBUSY
              : s.IsNoSpace()                                                 ? ENOSPC
                                                                              : EIO;
    return Status::Error(err, "cannot open metadata store " + dir + ": " + s.ToString());
  }
  std::unique_ptr<rocksdb::DB> db(raw);
  // The same store the look saw (the caller's pool lock keeps others out),
  // read again from what is now open.
  StoreIdentity id;
  DAXREF_RETURN_IF_ERROR(ReadStoreIdentity(db.get(), rocksdb::ReadOptions(), &id));
  DAXREF_RETURN_IF_ERROR(VerifyStore(db.get(), id, sb));
  if (id.format < kMetaFormatVersion) {
    // A format 2 store is a format 3 store without B records, a format 3
    // store a format 4 store without Q records, and a format 4 store a
    // format 5 store without G records. It becomes format 5 now, before
    // this daemon can write any of them, so that an older daemon refuses
    // it (a format 2 daemon would hand a bad block out again; a format 3
    // daemon, clearing poison, would leave Q records over good blocks; a
    // format 4 daemon would reuse blocks a crashed daemon's lease holders
    // still map, never revoking them).
    std::string nv;
    codec::PutU32(&nv, kMetaFormatVersion);
    rocksdb::WriteOptions wo;
    wo.sync = true;
    s = db->Put(wo, keys::Misc(kMiscFormat), nv);
    if (!s.ok()) return Status::IOError("cannot upgrade the metadata format: " + s.ToString());
  }
  Superblock current = sb;
  if (!opts.pool_path.empty())
    DAXREF_RETURN_IF_ERROR(AdvanceGeneration(db.get(), opts.pool_path, &current));
  std::unique_ptr<Volume> vol(new Volume(std::move(db), current, data));
  vol->pool_path_ = opts.pool_path;
  vol->health_ = std::move(health);
  vol->dir_ = dir;
  DAXREF_RETURN_IF_ERROR(vol->LoadMirrors(id));

  // Nothing is open at mount: every orphan is garbage from a daemon that died.
  std::vector<uint64_t> orphans;
  {
    PrefixScan scan(std::string(1, prefix::kOrphan));
    std::unique_ptr<rocksdb::Iterator> it(vol->db_->NewIterator(scan.Options()));
    for (it->Seek(scan.prefix()); it->Valid(); it->Next())
      orphans.push_back(keys::U64At(it->key().ToStringView(), 1));
  }
  for (uint64_t ino : orphans) DAXREF_RETURN_IF_ERROR(vol->Reclaim(ino));
  return vol;
}

Result<std::unique_ptr<Volume>> Volume::OpenReadOnlyVolume(const std::string& dir,
                                                           const Superblock& sb, DataPlane* data) {
  auto db = OpenReadOnly(dir, sb);
  if (!db.ok()) return db.status();
  StoreIdentity id;
  DAXREF_RETURN_IF_ERROR(ReadStoreIdentity(db->get(), rocksdb::ReadOptions(), &id));
  auto plane = std::make_unique<ReadOnlyPlane>(data);
  std::unique_ptr<Volume> vol(new Volume(std::move(*db), sb, plane.get()));
  vol->read_only_ = true;
  vol->read_only_plane_ = std::move(plane);
  // Never stopped: nothing is ever written.
  vol->health_ = std::make_shared<StoreHealth>(nullptr);
  vol->dir_ = dir;
  // A format 2 store is read as it is (it has no B records); orphans stay
  // for the next read-write mount to reclaim (nothing can open them here:
  // they have no name).
  DAXREF_RETURN_IF_ERROR(vol->LoadMirrors(id));
  return vol;
}

Status Volume::LoadMirrors(const StoreIdentity& id) {
  {
    // No other thread knows the Volume yet; the lock is for the rule that
    // these are only touched under it.
    MutexLock g(&mu_);
    next_ino_ = id.next_ino;
    ino_limit_ = id.next_ino;
    inodes_ = id.inodes;
    committed_inodes_ = id.inodes;
    DAXREF_RETURN_IF_ERROR(free_.Load(db_.get(), sb_.geometry()));
    DAXREF_RETURN_IF_ERROR(refs_.Load(db_.get(), sb_.geometry()));
    DAXREF_RETURN_IF_ERROR(bad_.Load(db_.get(), sb_.geometry()));
    bad_count_ = bad_.blocks();
    committed_free_ = free_.free_blocks();
  }
  {
    PrefixScan scan(std::string(1, prefix::kRmap));
    std::unique_ptr<rocksdb::Iterator> it(db_->NewIterator(scan.Options()));
    uint64_t mask = 0;
    for (unsigned c = 0; c < kRmapClasses; ++c) {
      it->Seek(keys::RmapClassPrefix(c));
      if (!it->Valid()) break;
      unsigned got = static_cast<uint8_t>(it->key()[1]);
      if (got >= kRmapClasses) break;
      mask |= uint64_t{1} << got;
      c = got;
    }
    if (!it->status().ok()) return Status::IOError("scan reverse map: " + it->status().ToString());
    rmap_classes_ = mask;
  }
  {
    // Lease ids go on from the largest one recorded (docs/dax.md): a
    // record a crash left behind keeps its id until the mount revokes it.
    PrefixScan scan(std::string(1, prefix::kLease));
    std::unique_ptr<rocksdb::Iterator> it(db_->NewIterator(scan.Options()));
    it->SeekToLast();
    uint64_t next = 1;
    if (it->Valid() && it->key().size() == 9) {
      const uint64_t last = keys::U64At(it->key().ToStringView(), 1);
      if (last < UINT64_MAX) next = std::max(next, last + 1);
    }
    if (!it->status().ok()) return Status::IOError("scan leases: " + it->status().ToString());
    next_lease_id_ = next;
  }
  return Status::Ok();
}

Status Volume::Commit(Txn& t) {
  // A read-only Volume never commits (volume.h, Options::read_only); its
  // data stores were refused already (ReadOnlyPlane).
  if (read_only_ || commits_refused_.load()) return Status::Error(EROFS, "read-only filesystem");
  // Blocks this batch starts pointing at hold their final bytes now; make
  // them durable first, so the committed map never points at stale data.
  // If that fails (the pool's host filesystem could not write them back),
  // the operation fails and its batch never commits: the Txn rolls back.
  for (const Extent& e : t.fresh())
    DAXREF_RETURN_IF_ERROR(data_->Persist(PoolOff(e.pblock), e.len << kBlockShift));
  MutexLock wal(&wal_mu_);
  DAXREF_RETURN_IF_ERROR(StoreWritable());
  free_.EmitEdit(t.batch().GetWriteBatch());
  refs_.EmitEdit(t.batch().GetWriteBatch());
  if (t.inode_delta() != 0)
    t.batch().GetWriteBatch()->Put(keys::Misc(kMiscInodes),
                                   EncodeLength(inodes_ + t.inode_delta()));
  rocksdb::Status s = db_->Write(rocksdb::WriteOptions(), t.batch().GetWriteBatch());
  if (!s.ok()) {
    // Not in the store, not in the memtable: the Txn rolls back the
    // in-memory mirrors and the operation fails with nothing done.
    wal_suspect_ = true;
    health_->Stop(s);
    return StoreError(s, "metadata commit failed");
  }
  inodes_ += t.inode_delta();
  for (uint64_t ino : t.forgotten()) extent_maps_.Forget(ino);
  ino_limit_ = std::max(ino_limit_, t.ino_limit());
  free_.Finish();
  refs_.Finish();
  committed_free_.store(free_.free_blocks(), std::memory_order_relaxed);
  committed_inodes_.store(inodes_, std::memory_order_relaxed);
  attrs_.Apply(t.attr_changes());
  DropStoredTimes(t);
  t.MarkDone();
  return Status::Ok();
}

// The two counters are stored one after the other: a statfs racing with a
// commit may pair one operation's free blocks with the previous one's inode
// count, which no caller can tell from a statfs a moment earlier or later.
VolumeStats Volume::Stats() {
  VolumeStats s;
  s.data_blocks = sb_.data_blocks();
  s.free_blocks = committed_free_.load(std::memory_order_relaxed);
  s.inodes = committed_inodes_.load(std::memory_order_relaxed);
  // The bytes of the store's files (log, tables, MANIFEST): a few dozen
  // stats, outside the lock. A file RocksDB deletes meanwhile is skipped.
  // Sizes, not allocation: RocksDB reserves tens of MiB ahead for its log
  // (fallocate), which would show an empty filesystem as 40 MiB used.
  std::error_code ec;
  for (const auto& e : std::filesystem::directory_iterator(dir_, ec)) {
    struct stat st {};
    if (lstat(e.path().c_str(), &st) == 0 && S_ISREG(st.st_mode))
      s.store_bytes += static_cast<uint64_t>(st.st_size);
  }
  return s;
}

Status Volume::Sync() {
  if (read_only_) return Status::Ok();  // nothing was ever written
  return SyncLog(FlushTimes());
}

Status Volume::SetReadOnly(bool ro) {
  if (!ro) {
    if (read_only_)
      return Status::Error(EROFS,
                           "mounted read-only from the start, so its metadata store is open "
                           "read-only: unmount it and mount it rw instead");
    commits_refused_ = false;
    remounted_ro_ = false;
    return Status::Ok();
  }
  if (read_only_ || commits_refused_.load()) return Status::Ok();
  {
    MutexLock g(&times_mu_);
    remounted_ro_ = true;
  }
  Status s = Sync();
  if (!s.ok()) {
    remounted_ro_ = false;
    return s;
  }
  commits_refused_ = true;
  return Status::Ok();
}

// Only this file's blocks are persisted: on a page-granular pool, msync of
// the whole mapping would write back every file's dirty pages. Blocks the
// file no longer maps need nothing: bytes that moved (copy-on-write,
// truncate's last block) were persisted in their new blocks before the
// batch that moved them committed. Adjacent pool ranges go as one call.
Status Volume::SyncFile(uint64_t ino) {
  if (read_only_) return Status::Ok();  // nothing was ever written
  InodeRecord r;
  DAXREF_RETURN_IF_ERROR(GetInode(ino, &r));
  uint64_t run_off = 0, run_len = 0;
  Status persisted;
  DAXREF_RETURN_IF_ERROR(
      MapRange(ino, 0, BlockCeil(r.size) << kBlockShift, [&](const MappedSegment& seg) {
        if (seg.hole) return true;
        if (run_len > 0 && run_off + run_len == seg.pool_off) {
          run_len += seg.len;
          return true;
        }
        if (run_len > 0) persisted = data_->Persist(run_off, run_len);
        run_off = seg.pool_off;
        run_len = seg.len;
        return persisted.ok();
      }));
  if (persisted.ok() && run_len > 0) persisted = data_->Persist(run_off, run_len);
  // A failed persist (the pool's host filesystem could not write pages
  // back) is this fsync's error, as it would be on any filesystem.
  DAXREF_RETURN_IF_ERROR(persisted);
  return SyncLog(FlushTimes(ino));
}

Status Volume::SyncLog(const Status& times) {
  MutexLock wal(&wal_mu_);
  if (health_->stopped()) {
    // What was acknowledged is in the log: make that durable, without
    // RocksDB's writer (above). The times that could not be stored are
    // this fsync's error.
    if (wal_suspect_) {
      DAXREF_RETURN_IF_ERROR(SyncLogFiles(dir_));
    } else {
      rocksdb::Status s = db_->SyncWAL();
      if (!s.ok()) return StoreError(s, "sync");
    }
    return times;
  }
  DAXREF_RETURN_IF_ERROR(times);
  rocksdb::Status s = db_->SyncWAL();
  if (s.IsNotSupported()) s = db_->FlushWAL(true);
  if (s.ok()) return Status::Ok();
  return StoreError(s, "sync");
}

bool Volume::store_stopped() {
  return health_->stopped();
}

Status Volume::StoreWritable() {
  if (!health_->stopped()) return Status::Ok();
  return StoreError(health_->error(),
                    "the metadata store takes no changes until the next mount, after an error of "
                    "its filesystem");
}

}  // namespace daxref
