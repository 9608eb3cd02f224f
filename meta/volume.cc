#include "meta/volume.h"

#include <fcntl.h>
#include <linux/fs.h>
#include <rocksdb/db.h>
#include <rocksdb/filter_policy.h>
#include <rocksdb/listener.h>
#include <rocksdb/table.h>
#include <rocksdb/utilities/write_batch_with_index.h>
#include <sys/stat.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <ctime>
#include <filesystem>
#include <vector>

#include "meta/codec.h"
#include "meta/store.h"
#include "meta/store_logger.h"
#include "meta/volume_txn.h"

namespace daxref {

using internal::BlockCeil;
using internal::BlockOf;
using internal::FromRocks;
using internal::PoolOff;
using internal::PrefixScan;

namespace {

constexpr uint32_t kMaxNameLen = 255;
constexpr uint32_t kMaxLinks = 65000;
constexpr size_t kMaxXattrValue = 65536;

bool IsDir(uint32_t mode) {
  return S_ISDIR(mode);
}

// The set-id bits a write, truncate or chown takes away: set-user-id, and
// set-group-id where it means "run as group" (with group execute; without
// it the bit marks mandatory locking and stays).
uint32_t KilledSetIdBits(uint32_t mode) {
  return (mode & S_ISUID) | ((mode & S_IXGRP) ? (mode & S_ISGID) : 0);
}

Status ValidName(std::string_view name) {
  if (name.empty() || name == "." || name == "..") return Status::Invalid("invalid name");
  if (name.size() > kMaxNameLen) return Status::Error(ENAMETOOLONG, "name too long");
  if (name.find('/') != std::string_view::npos) return Status::Invalid("name contains '/'");
  return Status::Ok();
}

}  // namespace

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

}  // namespace

Timespec Now() {
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  return Timespec{ts.tv_sec, static_cast<uint32_t>(ts.tv_nsec)};
}

Volume::Volume(std::unique_ptr<rocksdb::DB> db, const Superblock& sb, DataPlane* data)
    : db_(std::move(db)), sb_(sb), data_(data) {}

Volume::~Volume() {
  if (db_) {
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
  // a file the MANIFEST no longer names, or write a byte.
  {
    auto ro = OpenStoreReadOnly(dir);
    if (!ro.ok()) return ro.status();
    StoreIdentity id;
    DAXREF_RETURN_IF_ERROR(ReadStoreIdentity(ro->get(), rocksdb::ReadOptions(), &id));
    DAXREF_RETURN_IF_ERROR(VerifyStore(ro->get(), id, sb));
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
  if (id.format == kMetaFormatPreviousVersion) {
    // A format 2 store is a format 3 store without B records. It becomes
    // format 3 now, before this daemon can write one, so that a format 2
    // daemon (which would hand a bad block out again) refuses it.
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
  uint64_t next_ino = id.next_ino;
  uint64_t inodes = id.inodes;

  std::unique_ptr<Volume> vol(new Volume(std::move(db), current, data));
  vol->pool_path_ = opts.pool_path;
  vol->health_ = std::move(health);
  vol->dir_ = dir;
  {
    // No other thread knows the Volume yet; the lock is for the rule that
    // these are only touched under it.
    MutexLock g(&vol->mu_);
    vol->next_ino_ = next_ino;
    vol->inodes_ = inodes;
    DAXREF_RETURN_IF_ERROR(vol->free_.Load(vol->db_.get(), current.geometry()));
    DAXREF_RETURN_IF_ERROR(vol->refs_.Load(vol->db_.get(), current.geometry()));
    DAXREF_RETURN_IF_ERROR(vol->bad_.Load(vol->db_.get(), current.geometry()));
    vol->bad_count_ = vol->bad_.blocks();
  }
  {
    PrefixScan scan(std::string(1, prefix::kRmap));
    std::unique_ptr<rocksdb::Iterator> it(vol->db_->NewIterator(scan.Options()));
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
    vol->rmap_classes_ = mask;
  }

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

// ---------------------------------------------------------------------------
// Helpers inside a transaction.

Status Volume::LoadInode(Txn& t, uint64_t ino, InodeRecord* out) {
  std::string v;
  Status s = t.Get(keys::Inode(ino), &v);
  if (s.err() == ENOENT) return Status::NotFound("no inode " + std::to_string(ino));
  DAXREF_RETURN_IF_ERROR(s);
  DAXREF_RETURN_IF_ERROR(DecodeInode(ino, v, out));
  ApplyPendingTimes(out);
  return Status::Ok();
}

void Volume::ApplyPendingTimes(InodeRecord* r) {
  MutexLock g(&times_mu_);
  auto it = pending_times_.find(r->ino);
  if (it != pending_times_.end()) r->mtime = r->ctime = it->second;
}

void Volume::StoreInode(Txn& t, const InodeRecord& r) {
  t.Put(keys::Inode(r.ino), EncodeInode(r));
  // A fast-path write may have left a newer time meanwhile: keep that one.
  MutexLock g(&times_mu_);
  auto it = pending_times_.find(r.ino);
  if (it != pending_times_.end() && it->second.sec == r.mtime.sec &&
      it->second.nsec == r.mtime.nsec)
    pending_times_.erase(it);
}

Status Volume::LookupIn(Txn& t, uint64_t dir, std::string_view name, DirentRecord* out) {
  std::string v;
  Status s = t.Get(keys::Dirent(dir, name), &v);
  if (!s.ok()) return s;
  return DecodeDirent(v, out);
}

uint64_t Volume::NextIno(Txn& t) {
  uint64_t ino = next_ino_++;
  t.Put(keys::Misc(kMiscNextIno), EncodeLength(next_ino_));
  t.AddInodes(1);
  return ino;
}

Status Volume::AddEntry(Txn& t, InodeRecord* dir, std::string_view name, uint64_t ino,
                        uint32_t type) {
  DirentRecord d{ino, type & S_IFMT, dir->next_cookie++};
  t.Put(keys::Dirent(dir->ino, name), EncodeDirent(d));
  t.Put(keys::DirCookie(dir->ino, d.cookie), EncodeCookie(d, name));
  t.Put(keys::Parent(ino, dir->ino, name), "");
  dir->mtime = dir->ctime = Now();
  if (IsDir(type)) dir->nlink++;
  return Status::Ok();
}

Status Volume::RemoveEntry(Txn& t, InodeRecord* dir, std::string_view name, const DirentRecord& d) {
  t.Delete(keys::Dirent(dir->ino, name));
  t.Delete(keys::DirCookie(dir->ino, d.cookie));
  t.Delete(keys::Parent(d.ino, dir->ino, name));
  dir->mtime = dir->ctime = Now();
  if (IsDir(d.type)) dir->nlink--;
  return Status::Ok();
}

Status Volume::DirIsEmpty(Txn& t, uint64_t dir, bool* empty) {
  PrefixScan scan(keys::DirentPrefix(dir));
  auto it = t.Iter(scan);
  it->Seek(scan.prefix());
  *empty = !(it->Valid() && it->key().starts_with(scan.prefix()));
  return FromRocks(it->status(), "scan directory");
}

Status Volume::DropLink(Txn& t, InodeRecord* r, const LastLinkFn& last_link) {
  if (r->nlink > 0) r->nlink--;
  r->ctime = Now();
  if (r->nlink == 0) {
    if (last_link && last_link(r->ino)) return DeleteInode(t, *r, false);
    t.Put(keys::Orphan(r->ino), "");
  }
  StoreInode(t, *r);
  return Status::Ok();
}

// Deletes only the records that can exist, so that removing an empty file
// scans nothing and leaves no tombstones for keys that were never written.
Status Volume::DeleteInode(Txn& t, const InodeRecord& r, bool orphaned) {
  InodeRecord copy = r;
  if (r.blocks > 0) DAXREF_RETURN_IF_ERROR(UnmapRange(t, &copy, 0, UINT64_MAX));
  if (r.flags & kInodeHasXattrs) {
    PrefixScan scan(keys::XattrPrefix(r.ino));
    std::vector<std::string> names;
    {
      auto it = t.Iter(scan);
      for (it->Seek(scan.prefix()); it->Valid() && it->key().starts_with(scan.prefix()); it->Next())
        names.push_back(it->key().ToString());
    }
    for (const auto& k : names) t.Delete(k);
  }
  if (S_ISLNK(r.mode)) t.Delete(keys::Symlink(r.ino));
  if (orphaned) t.Delete(keys::Orphan(r.ino));
  t.Delete(keys::Inode(r.ino));
  t.AddInodes(-1);
  return Status::Ok();
}

Status Volume::Commit(Txn& t) {
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
  // Dropped before and after the write: a load racing with the commit is
  // either refused by the generation check or dropped by the second call.
  for (uint64_t ino : t.touched()) extent_cache_.Drop(ino);
  rocksdb::Status s = db_->Write(rocksdb::WriteOptions(), t.batch().GetWriteBatch());
  for (uint64_t ino : t.touched()) extent_cache_.Drop(ino);
  if (!s.ok()) {
    // Not in the store, not in the memtable: the Txn rolls back the
    // in-memory mirrors and the operation fails with nothing done.
    wal_suspect_ = true;
    health_->Stop(s);
    return StoreError(s, "metadata commit failed");
  }
  inodes_ += t.inode_delta();
  free_.Finish();
  refs_.Finish();
  t.MarkDone();
  return Status::Ok();
}

// ---------------------------------------------------------------------------
// Extent map. Keys E(ino, fblock) sort by file block, so the extents that
// overlap [fb0, fb1) are the one at or before fb0 (if it reaches past fb0)
// and those starting inside the range.

ExtentCache::Map Volume::CommittedExtents(uint64_t ino, bool load) {
  if (ExtentCache::Map m = extent_cache_.Get(ino)) return m;
  if (!load || extent_cache_.TooBig(ino)) return nullptr;
  uint64_t gen = extent_cache_.generation();
  auto v = std::make_shared<std::vector<Extent>>();
  PrefixScan scan(keys::ExtentPrefix(ino));
  std::unique_ptr<rocksdb::Iterator> it(db_->NewIterator(scan.Options()));
  for (it->Seek(scan.prefix()); it->Valid(); it->Next()) {
    if (v->size() == ExtentCache::kMaxPerFile) {
      extent_cache_.MarkTooBig(ino, gen);
      return nullptr;
    }
    Extent e;
    if (!DecodeExtent(it->key().ToStringView(), it->value().ToStringView(), sb_.geometry(), &e)
             .ok())
      return nullptr;
    v->push_back(e);
  }
  if (!it->status().ok()) return nullptr;
  ExtentCache::Map m = std::move(v);
  extent_cache_.Put(ino, m, gen);
  return m;
}

namespace {
// The first extent of a sorted map that ends after fblock.
std::vector<Extent>::const_iterator FirstEndingAfter(const std::vector<Extent>& m, uint64_t fb) {
  auto it = std::upper_bound(m.begin(), m.end(), fb,
                             [](uint64_t b, const Extent& e) { return b < e.fblock; });
  if (it != m.begin() && std::prev(it)->fend() > fb) --it;
  return it;
}
}  // namespace

Status Volume::WalkExtents(Txn& t, uint64_t ino, uint64_t fb0, uint64_t fb1, const ExtentFn& fn) {
  if (!t.ExtentsTouched(ino)) {
    if (ExtentCache::Map m = CommittedExtents(ino, false)) {
      for (auto it = FirstEndingAfter(*m, fb0); it != m->end() && it->fblock < fb1; ++it)
        if (!fn(*it)) break;
      return Status::Ok();
    }
  }
  PrefixScan scan(keys::ExtentPrefix(ino));
  const std::string& lo = scan.prefix();
  auto it = t.Iter(scan);
  // An extent starting before fb0 may reach into the range.
  it->SeekForPrev(keys::Extent(ino, fb0));
  if (it->Valid() && it->key().starts_with(lo)) {
    Extent e;
    DAXREF_RETURN_IF_ERROR(
        DecodeExtent(it->key().ToStringView(), it->value().ToStringView(), sb_.geometry(), &e));
    if (e.fblock < fb0 && e.fend() > fb0 && !fn(e)) return Status::Ok();
  }
  for (it->Seek(keys::Extent(ino, fb0)); it->Valid() && it->key().starts_with(lo); it->Next()) {
    Extent e;
    DAXREF_RETURN_IF_ERROR(
        DecodeExtent(it->key().ToStringView(), it->value().ToStringView(), sb_.geometry(), &e));
    if (e.fblock >= fb1) break;
    if (!fn(e)) break;
  }
  return FromRocks(it->status(), "scan extents");
}

//   Unmapping [fb0, fb1) from an extent keeps what lies outside:
//
//      e:   |----left----|=====unmapped=====|----right----|
//           e.fblock     fb0                fb1           e.fend
//
//   left keeps e's key with a shorter length, right gets a new key at fb1
//   with its pool block shifted by the same amount; the reverse map follows.
Status Volume::UnmapRange(Txn& t, InodeRecord* r, uint64_t fb0, uint64_t fb1) {
  // Extents are collected a chunk at a time: the batch is edited between
  // scans, never under a live iterator.
  constexpr size_t kChunk = 512;
  uint64_t from = fb0;
  for (;;) {
    std::vector<Extent> chunk;
    DAXREF_RETURN_IF_ERROR(WalkExtents(t, r->ino, from, fb1, [&](const Extent& e) {
      chunk.push_back(e);
      return chunk.size() < kChunk;
    }));
    if (chunk.empty()) return Status::Ok();
    t.TouchExtents(r->ino);
    for (const Extent& e : chunk) {
      uint64_t cut0 = std::max(e.fblock, fb0), cut1 = std::min(e.fend(), fb1);
      t.Delete(keys::Rmap(e.pblock, e.len, r->ino, e.fblock));
      if (e.fblock < cut0) {
        Extent left{e.fblock, e.pblock, cut0 - e.fblock};
        t.Put(keys::Extent(r->ino, left.fblock), EncodeExtent(left));
        PutRmap(t, left.pblock, left.len, r->ino, left.fblock);
      } else {
        t.Delete(keys::Extent(r->ino, e.fblock));
      }
      if (cut1 < e.fend()) {
        Extent right{cut1, e.pblock + (cut1 - e.fblock), e.fend() - cut1};
        t.Put(keys::Extent(r->ino, right.fblock), EncodeExtent(right));
        PutRmap(t, right.pblock, right.len, r->ino, right.fblock);
      }
      uint64_t n = cut1 - cut0;
      DAXREF_RETURN_IF_ERROR(DropBlocks(t, *r, e.pblock + (cut0 - e.fblock), n));
      r->blocks -= std::min(r->blocks, n);
    }
    if (chunk.size() < kChunk) return Status::Ok();
    from = std::min(chunk.back().fend(), fb1);
    if (from >= fb1) return Status::Ok();
  }
}

// Maps a hole [e.fblock, e.fend()) to pool blocks, merging with the extent
// before and after when both file and pool blocks are contiguous, so that a
// file written front to back stays one extent.
Status Volume::MapExtent(Txn& t, InodeRecord* r, const Extent& e, Extent* merged_out) {
  Extent merged = e;
  std::optional<Extent> left, right;
  if (e.fblock > 0) {
    DAXREF_RETURN_IF_ERROR(WalkExtents(t, r->ino, e.fblock - 1, e.fblock, [&](const Extent& x) {
      if (x.fend() == e.fblock && x.pend() == e.pblock) left = x;
      return false;
    }));
  }
  std::string v;
  Status s = t.Get(keys::Extent(r->ino, e.fend()), &v);
  if (s.ok()) {
    Extent x;
    DAXREF_RETURN_IF_ERROR(DecodeExtent(keys::Extent(r->ino, e.fend()), v, sb_.geometry(), &x));
    if (x.pblock == e.pend()) right = x;
  } else if (s.err() != ENOENT) {
    return s;
  }
  t.TouchExtents(r->ino);
  if (left) {
    merged.fblock = left->fblock;
    merged.pblock = left->pblock;
    merged.len += left->len;
  }
  if (right) {
    merged.len += right->len;
    t.Delete(keys::Extent(r->ino, right->fblock));
    t.Delete(keys::Rmap(right->pblock, right->len, r->ino, right->fblock));
  }
  if (left) t.Delete(keys::Rmap(left->pblock, left->len, r->ino, left->fblock));
  t.Put(keys::Extent(r->ino, merged.fblock), EncodeExtent(merged));
  PutRmap(t, merged.pblock, merged.len, r->ino, merged.fblock);
  r->blocks += e.len;
  if (merged_out) *merged_out = merged;
  return Status::Ok();
}

Status Volume::FillHoles(Txn& t, InodeRecord* r, uint64_t fb0, uint64_t fb1, uint64_t keep_off,
                         uint64_t keep_end) {
  // First find the holes, then allocate them all; only when every block is
  // in hand is anything written, so ENOSPC leaves the pool untouched.
  struct Hole {
    uint64_t fb, len, goal;
  };
  std::vector<Hole> holes;
  // Each hole is placed in line with the extent before it (for the first
  // hole, the file's last extent before the range), as if the gap between
  // them were filled too, so that filling the gap later can merge it all
  // into one extent. `anchor` is a file block and `goal` its pool block.
  uint64_t anchor = fb0, goal = 0;
  bool have_goal = false;
  std::optional<Extent> before;
  ExtentCache::Map m = t.ExtentsTouched(r->ino) ? nullptr : CommittedExtents(r->ino, false);
  if (m) {
    auto it = std::upper_bound(m->begin(), m->end(), fb0,
                               [](uint64_t b, const Extent& e) { return b < e.fblock; });
    if (it != m->begin()) before = *std::prev(it);
  } else {
    PrefixScan scan(keys::ExtentPrefix(r->ino));
    auto it = t.Iter(scan);
    it->SeekForPrev(keys::Extent(r->ino, fb0));
    if (it->Valid() && it->key().starts_with(scan.prefix())) {
      Extent e;
      DAXREF_RETURN_IF_ERROR(
          DecodeExtent(it->key().ToStringView(), it->value().ToStringView(), sb_.geometry(), &e));
      before = e;
    }
  }
  if (before && before->fend() <= fb0) {
    anchor = before->fend();
    goal = before->pend();
    have_goal = true;
  }
  auto goal_for = [&](uint64_t fb) { return have_goal ? goal + (fb - anchor) : 0; };
  uint64_t pos = fb0;
  DAXREF_RETURN_IF_ERROR(WalkExtents(t, r->ino, fb0, fb1, [&](const Extent& e) {
    if (e.fblock > pos) holes.push_back({pos, e.fblock - pos, goal_for(pos)});
    pos = std::max(pos, e.fend());
    anchor = e.fend();
    goal = e.pend();
    have_goal = true;
    return true;
  }));
  if (pos < fb1) holes.push_back({pos, fb1 - pos, goal_for(pos)});
  if (holes.empty()) return Status::Ok();

  std::vector<Extent> fresh;
  for (const Hole& h : holes)
    DAXREF_RETURN_IF_ERROR(
        AllocateFor(h.fb, h.len, h.goal ? h.goal : sb_.first_data_block(), &fresh));
  // New blocks hold whatever an earlier owner left: zero all but the bytes
  // the caller is about to write.
  for (const Extent& e : fresh) {
    data_->WillWrite(PoolOff(e.pblock), e.len << kBlockShift);
    uint64_t b0 = e.fblock << kBlockShift, b1 = e.fend() << kBlockShift;
    uint64_t k0 = std::clamp(keep_off, b0, b1), k1 = std::clamp(keep_end, k0, b1);
    if (k0 > b0) DAXREF_RETURN_IF_ERROR(data_->Zero(PoolOff(e.pblock), k0 - b0));
    if (b1 > k1) DAXREF_RETURN_IF_ERROR(data_->Zero(PoolOff(e.pblock) + (k1 - b0), b1 - k1));
  }
  for (const Extent& e : fresh) DAXREF_RETURN_IF_ERROR(MapExtent(t, r, e));
  t.NoteFresh(fresh);
  return Status::Ok();
}

Status Volume::AllocateFor(uint64_t fblock, uint64_t len, uint64_t goal, std::vector<Extent>* out) {
  for (uint64_t done = 0; done < len;) {
    std::optional<Extent> got = free_.Allocate(goal, len - done);
    if (!got) return Status::NoSpace("pool is full");
    out->push_back(Extent{fblock + done, got->pblock, got->len});
    done += got->len;
    goal = got->pend();
  }
  return Status::Ok();
}

Status Volume::ZeroBytes(Txn& t, uint64_t ino, uint64_t off, uint64_t len) {
  if (len == 0) return Status::Ok();
  Status st;
  DAXREF_RETURN_IF_ERROR(
      WalkExtents(t, ino, BlockOf(off), BlockCeil(off + len), [&](const Extent& e) REQUIRES(mu_) {
        uint64_t s = std::max(off, e.fblock << kBlockShift);
        uint64_t end = std::min(off + len, e.fend() << kBlockShift);
        if (end <= s) return true;
        uint64_t p = PoolOff(e.pblock) + (s - (e.fblock << kBlockShift));
        // Zeroing part of a bad block is a partial write into it.
        st = RefuseBad(BlockOf(p), BlockCeil(p + (end - s)), "zeroing bytes of");
        if (st.ok()) st = data_->Zero(p, end - s);
        return st.ok();
      }));
  return st;
}

// Bytes past EOF inside the last block are kept zero, so growing a file
// (truncate up, a write past EOF) never exposes old data.
Status Volume::Truncate(Txn& t, InodeRecord* r, uint64_t size) {
  if (size < r->size) {
    DAXREF_RETURN_IF_ERROR(UnmapRange(t, r, BlockCeil(size), UINT64_MAX));
    if (size % kBlockSize) {
      uint64_t block_end = BlockCeil(size) << kBlockShift;
      DAXREF_RETURN_IF_ERROR(Unshare(t, r, BlockOf(size), BlockCeil(size), size, block_end));
      DAXREF_RETURN_IF_ERROR(ZeroBytes(t, r->ino, size, block_end - size));
    }
  }
  r->size = size;
  return Status::Ok();
}

// ---------------------------------------------------------------------------
// Queries.

Status Volume::GetInode(uint64_t ino, InodeRecord* out) {
  std::string v;
  rocksdb::Status s = db_->Get(rocksdb::ReadOptions(), keys::Inode(ino), &v);
  if (s.IsNotFound()) return Status::NotFound("no inode " + std::to_string(ino));
  DAXREF_RETURN_IF_ERROR(FromRocks(s, "read inode"));
  DAXREF_RETURN_IF_ERROR(DecodeInode(ino, v, out));
  ApplyPendingTimes(out);
  return Status::Ok();
}

Status Volume::Lookup(uint64_t parent, std::string_view name, InodeRecord* out) {
  if (name.size() > kMaxNameLen) return Status::Error(ENAMETOOLONG, "name too long");
  std::string v;
  rocksdb::Status s = db_->Get(rocksdb::ReadOptions(), keys::Dirent(parent, name), &v);
  if (s.IsNotFound()) return Status::NotFound("no such entry");
  DAXREF_RETURN_IF_ERROR(FromRocks(s, "lookup"));
  DirentRecord d;
  DAXREF_RETURN_IF_ERROR(DecodeDirent(v, &d));
  return GetInode(d.ino, out);
}

Status Volume::ReadLink(uint64_t ino, std::string* target) {
  rocksdb::Status s = db_->Get(rocksdb::ReadOptions(), keys::Symlink(ino), target);
  if (s.IsNotFound()) return Status::Invalid("not a symlink");
  return FromRocks(s, "readlink");
}

Status Volume::ReadDir(uint64_t dir, uint64_t cookie, const DirentFn& fn) {
  InodeRecord d;
  DAXREF_RETURN_IF_ERROR(GetInode(dir, &d));
  if (!IsDir(d.mode)) return Status::Error(ENOTDIR, "not a directory");
  if (cookie < 1 && !fn(".", dir, S_IFDIR, 1)) return Status::Ok();
  if (cookie < 2 && !fn("..", d.parent, S_IFDIR, 2)) return Status::Ok();
  PrefixScan scan(keys::DirCookiePrefix(dir));
  std::unique_ptr<rocksdb::Iterator> it(db_->NewIterator(scan.Options()));
  for (it->Seek(keys::DirCookie(dir, std::max<uint64_t>(cookie + 1, kFirstCookie))); it->Valid();
       it->Next()) {
    DirentRecord e;
    std::string name;
    DAXREF_RETURN_IF_ERROR(
        DecodeCookie(it->key().ToStringView(), it->value().ToStringView(), &e, &name));
    if (!fn(name, e.ino, e.type, e.cookie)) break;
  }
  return FromRocks(it->status(), "readdir");
}

namespace {
// Turns the extents that overlap [pos, end), met in file order, into the
// segments MapRange reports: holes between them included. Add returns false
// when the walk should stop (the range is covered or the caller said stop).
class SegmentEmitter {
 public:
  SegmentEmitter(uint64_t off, uint64_t len, const Volume::SegmentFn& fn)
      : pos_(off), end_(off + len), fn_(fn) {}
  bool Add(const Extent& e) {
    uint64_t es = e.fblock << kBlockShift, ee = e.fend() << kBlockShift;
    if (ee <= pos_) return true;
    if (es >= end_) return false;
    if (es > pos_) {
      if (!Emit(MappedSegment{pos_, es - pos_, true, 0}, es)) return false;
    }
    uint64_t seg_end = std::min(ee, end_);
    return Emit(MappedSegment{pos_, seg_end - pos_, false, PoolOff(e.pblock) + (pos_ - es)},
                seg_end) &&
           pos_ < end_;
  }
  // The hole after the last extent, if any.
  void Finish() {
    if (!stopped_ && pos_ < end_) fn_(MappedSegment{pos_, end_ - pos_, true, 0});
  }

 private:
  bool Emit(const MappedSegment& s, uint64_t next) {
    pos_ = next;
    stopped_ = !fn_(s);
    return !stopped_;
  }
  uint64_t pos_, end_;
  const Volume::SegmentFn& fn_;
  bool stopped_ = false;
};
}  // namespace

Status Volume::MapRange(uint64_t ino, uint64_t off, uint64_t len, const SegmentFn& fn) {
  if (len == 0) return Status::Ok();
  SegmentEmitter out(off, len, fn);
  if (ExtentCache::Map m = CommittedExtents(ino, true)) {
    for (auto it = FirstEndingAfter(*m, BlockOf(off)); it != m->end(); ++it)
      if (!out.Add(*it)) break;
    out.Finish();
    return Status::Ok();
  }
  PrefixScan scan(keys::ExtentPrefix(ino));
  std::unique_ptr<rocksdb::Iterator> it(db_->NewIterator(scan.Options()));
  // The extent that may cover `off` starts at or before its block.
  it->SeekForPrev(keys::Extent(ino, BlockOf(off)));
  if (!it->Valid()) it->Seek(keys::Extent(ino, BlockOf(off)));
  for (; it->Valid(); it->Next()) {
    Extent e;
    DAXREF_RETURN_IF_ERROR(
        DecodeExtent(it->key().ToStringView(), it->value().ToStringView(), sb_.geometry(), &e));
    if (!out.Add(e)) break;
  }
  DAXREF_RETURN_IF_ERROR(FromRocks(it->status(), "map range"));
  out.Finish();
  return Status::Ok();
}

Status Volume::Seek(uint64_t ino, uint64_t off, int whence, uint64_t* out) {
  InodeRecord r;
  DAXREF_RETURN_IF_ERROR(GetInode(ino, &r));
  if (whence != SEEK_DATA && whence != SEEK_HOLE) return Status::Invalid("bad whence");
  if (off >= r.size) return Status::Error(ENXIO, "offset past end of file");
  std::optional<uint64_t> found;
  DAXREF_RETURN_IF_ERROR(MapRange(ino, off, r.size - off, [&](const MappedSegment& s) {
    if ((whence == SEEK_DATA) != s.hole) {
      found = s.off;
      return false;
    }
    return true;
  }));
  if (whence == SEEK_HOLE) {
    *out = found.value_or(r.size);
    return Status::Ok();
  }
  if (!found) return Status::Error(ENXIO, "no data past offset");
  *out = *found;
  return Status::Ok();
}

Status Volume::GetXattr(uint64_t ino, std::string_view name, std::string* value) {
  rocksdb::Status s = db_->Get(rocksdb::ReadOptions(), keys::Xattr(ino, name), value);
  if (s.IsNotFound()) return Status::Error(ENODATA, "no such attribute");
  return FromRocks(s, "getxattr");
}

Status Volume::ListXattr(uint64_t ino, std::string* names) {
  PrefixScan scan(keys::XattrPrefix(ino));
  std::unique_ptr<rocksdb::Iterator> it(db_->NewIterator(scan.Options()));
  names->clear();
  for (it->Seek(scan.prefix()); it->Valid(); it->Next()) {
    names->append(it->key().ToStringView().substr(scan.prefix().size()));
    names->push_back('\0');
  }
  return FromRocks(it->status(), "listxattr");
}

VolumeStats Volume::Stats() {
  MutexLock g(&mu_);
  VolumeStats s;
  s.data_blocks = sb_.data_blocks();
  s.free_blocks = free_.free_blocks();
  s.inodes = inodes_;
  return s;
}

// ---------------------------------------------------------------------------
// Namespace operations.

Status Volume::MakeNode(uint64_t parent, std::string_view name, uint32_t mode, uint64_t rdev,
                        const Caller& who, std::string_view link_target, InodeRecord* out) {
  DAXREF_RETURN_IF_ERROR(ValidName(name));
  if (S_ISLNK(mode) && (link_target.empty() || link_target.size() >= 4096))
    return Status::Error(link_target.empty() ? ENOENT : ENAMETOOLONG, "bad symlink target");
  MutexLock g(&mu_);
  Txn t(this);
  InodeRecord dir;
  DAXREF_RETURN_IF_ERROR(LoadInode(t, parent, &dir));
  if (!IsDir(dir.mode)) return Status::Error(ENOTDIR, "parent is not a directory");
  if (dir.nlink == 0) return Status::NotFound("directory was removed");
  DirentRecord existing;
  Status s = LookupIn(t, parent, name, &existing);
  if (s.ok()) return Status::Error(EEXIST, "entry exists");
  if (s.err() != ENOENT) return s;
  if (IsDir(mode) && dir.nlink >= kMaxLinks) return Status::Error(EMLINK, "too many links");

  InodeRecord r;
  r.ino = NextIno(t);
  r.mode = mode;
  r.uid = who.uid;
  r.gid = who.gid;
  // BSD group semantics in a setgid directory: the group comes from the
  // directory, and subdirectories inherit the setgid bit.
  if (dir.mode & S_ISGID) {
    r.gid = dir.gid;
    if (IsDir(mode)) r.mode |= S_ISGID;
  }
  r.nlink = IsDir(mode) ? 2 : 1;
  r.rdev = rdev;
  r.atime = r.mtime = r.ctime = r.btime = Now();
  if (IsDir(mode)) {
    r.parent = parent;
    r.next_cookie = kFirstCookie;
  }
  if (S_ISLNK(mode)) {
    r.size = link_target.size();
    t.Put(keys::Symlink(r.ino), std::string(link_target));
  }
  StoreInode(t, r);
  DAXREF_RETURN_IF_ERROR(AddEntry(t, &dir, name, r.ino, mode));
  StoreInode(t, dir);
  DAXREF_RETURN_IF_ERROR(Commit(t));
  *out = r;
  return Status::Ok();
}

Status Volume::Link(uint64_t ino, uint64_t newparent, std::string_view newname, InodeRecord* out) {
  DAXREF_RETURN_IF_ERROR(ValidName(newname));
  MutexLock g(&mu_);
  Txn t(this);
  InodeRecord r, dir;
  DAXREF_RETURN_IF_ERROR(LoadInode(t, ino, &r));
  DAXREF_RETURN_IF_ERROR(LoadInode(t, newparent, &dir));
  if (IsDir(r.mode)) return Status::Error(EPERM, "cannot hard-link a directory");
  if (!IsDir(dir.mode)) return Status::Error(ENOTDIR, "parent is not a directory");
  if (r.nlink == 0) return Status::NotFound("inode was unlinked");
  if (r.nlink >= kMaxLinks) return Status::Error(EMLINK, "too many links");
  DirentRecord existing;
  Status s = LookupIn(t, newparent, newname, &existing);
  if (s.ok()) return Status::Error(EEXIST, "entry exists");
  if (s.err() != ENOENT) return s;
  r.nlink++;
  r.ctime = Now();
  StoreInode(t, r);
  DAXREF_RETURN_IF_ERROR(AddEntry(t, &dir, newname, ino, r.mode));
  StoreInode(t, dir);
  DAXREF_RETURN_IF_ERROR(Commit(t));
  *out = r;
  return Status::Ok();
}

Status Volume::Unlink(uint64_t parent, std::string_view name, const LastLinkFn& last_link,
                      InodeRecord* victim) {
  MutexLock g(&mu_);
  Txn t(this);
  InodeRecord dir;
  DAXREF_RETURN_IF_ERROR(LoadInode(t, parent, &dir));
  if (!IsDir(dir.mode)) return Status::Error(ENOTDIR, "parent is not a directory");
  DirentRecord d;
  DAXREF_RETURN_IF_ERROR(LookupIn(t, parent, name, &d));
  if (IsDir(d.type)) return Status::Error(EISDIR, "is a directory");
  InodeRecord r;
  DAXREF_RETURN_IF_ERROR(LoadInode(t, d.ino, &r));
  DAXREF_RETURN_IF_ERROR(RemoveEntry(t, &dir, name, d));
  StoreInode(t, dir);
  DAXREF_RETURN_IF_ERROR(DropLink(t, &r, last_link));
  DAXREF_RETURN_IF_ERROR(Commit(t));
  *victim = r;
  return Status::Ok();
}

Status Volume::Rmdir(uint64_t parent, std::string_view name) {
  if (name == ".") return Status::Invalid("cannot remove '.'");
  if (name == "..") return Status::Error(ENOTEMPTY, "cannot remove '..'");
  MutexLock g(&mu_);
  Txn t(this);
  InodeRecord dir;
  DAXREF_RETURN_IF_ERROR(LoadInode(t, parent, &dir));
  DirentRecord d;
  DAXREF_RETURN_IF_ERROR(LookupIn(t, parent, name, &d));
  if (!IsDir(d.type)) return Status::Error(ENOTDIR, "not a directory");
  bool empty = false;
  DAXREF_RETURN_IF_ERROR(DirIsEmpty(t, d.ino, &empty));
  if (!empty) return Status::Error(ENOTEMPTY, "directory not empty");
  InodeRecord r;
  DAXREF_RETURN_IF_ERROR(LoadInode(t, d.ino, &r));
  DAXREF_RETURN_IF_ERROR(RemoveEntry(t, &dir, name, d));
  StoreInode(t, dir);
  DAXREF_RETURN_IF_ERROR(DeleteInode(t, r, false));
  return Commit(t);
}

Status Volume::Rename(uint64_t parent, std::string_view name, uint64_t newparent,
                      std::string_view newname, unsigned flags, const LastLinkFn& last_link,
                      InodeRecord* replaced) {
  replaced->ino = 0;
  if (flags & ~(RENAME_NOREPLACE | RENAME_EXCHANGE)) return Status::Invalid("unsupported flags");
  if ((flags & RENAME_NOREPLACE) && (flags & RENAME_EXCHANGE))
    return Status::Invalid("NOREPLACE with EXCHANGE");
  DAXREF_RETURN_IF_ERROR(ValidName(newname));
  MutexLock g(&mu_);
  Txn t(this);
  InodeRecord src_dir, dst_dir;
  DAXREF_RETURN_IF_ERROR(LoadInode(t, parent, &src_dir));
  DAXREF_RETURN_IF_ERROR(LoadInode(t, newparent, &dst_dir));
  if (!IsDir(src_dir.mode) || !IsDir(dst_dir.mode)) return Status::Error(ENOTDIR, "not a dir");
  DirentRecord src;
  DAXREF_RETURN_IF_ERROR(LookupIn(t, parent, name, &src));
  DirentRecord dst;
  Status s = LookupIn(t, newparent, newname, &dst);
  bool dst_exists = s.ok();
  if (!dst_exists && s.err() != ENOENT) return s;
  bool same_dir = parent == newparent;
  // With one directory on both sides, src_dir and dst_dir are the same
  // record: edit one copy and store it once.
  InodeRecord& to_dir = same_dir ? src_dir : dst_dir;
  Timespec now = Now();

  if (flags & RENAME_EXCHANGE) {
    if (!dst_exists) return Status::NotFound("exchange target missing");
    if (src.ino == dst.ino) return Status::Ok();
    InodeRecord a, b;
    DAXREF_RETURN_IF_ERROR(LoadInode(t, src.ino, &a));
    DAXREF_RETURN_IF_ERROR(LoadInode(t, dst.ino, &b));
    DirentRecord na{b.ino, b.mode & S_IFMT, src.cookie}, nb{a.ino, a.mode & S_IFMT, dst.cookie};
    t.Put(keys::Dirent(parent, name), EncodeDirent(na));
    t.Put(keys::DirCookie(parent, src.cookie), EncodeCookie(na, name));
    t.Put(keys::Dirent(newparent, newname), EncodeDirent(nb));
    t.Put(keys::DirCookie(newparent, dst.cookie), EncodeCookie(nb, newname));
    t.Delete(keys::Parent(a.ino, parent, name));
    t.Delete(keys::Parent(b.ino, newparent, newname));
    t.Put(keys::Parent(b.ino, parent, name), "");
    t.Put(keys::Parent(a.ino, newparent, newname), "");
    if (!same_dir) {
      if (IsDir(a.mode)) {
        a.parent = newparent;
        src_dir.nlink--;
        dst_dir.nlink++;
      }
      if (IsDir(b.mode)) {
        b.parent = parent;
        dst_dir.nlink--;
        src_dir.nlink++;
      }
    }
    a.ctime = b.ctime = now;
    StoreInode(t, a);
    StoreInode(t, b);
    src_dir.mtime = src_dir.ctime = to_dir.mtime = to_dir.ctime = now;
    StoreInode(t, src_dir);
    if (!same_dir) StoreInode(t, dst_dir);
    return Commit(t);
  }

  if (dst_exists) {
    if (flags & RENAME_NOREPLACE) return Status::Error(EEXIST, "target exists");
    if (dst.ino == src.ino) return Status::Ok();  // two links to one inode: nothing to do
    InodeRecord victim;
    DAXREF_RETURN_IF_ERROR(LoadInode(t, dst.ino, &victim));
    if (IsDir(src.type)) {
      if (!IsDir(victim.mode)) return Status::Error(ENOTDIR, "target is not a directory");
      bool empty = false;
      DAXREF_RETURN_IF_ERROR(DirIsEmpty(t, victim.ino, &empty));
      if (!empty) return Status::Error(ENOTEMPTY, "target directory not empty");
      DAXREF_RETURN_IF_ERROR(RemoveEntry(t, &to_dir, newname, dst));
      DAXREF_RETURN_IF_ERROR(DeleteInode(t, victim, false));
    } else {
      if (IsDir(victim.mode)) return Status::Error(EISDIR, "target is a directory");
      DAXREF_RETURN_IF_ERROR(RemoveEntry(t, &to_dir, newname, dst));
      DAXREF_RETURN_IF_ERROR(DropLink(t, &victim, last_link));
      *replaced = victim;
    }
  }
  InodeRecord moving;
  DAXREF_RETURN_IF_ERROR(LoadInode(t, src.ino, &moving));
  DAXREF_RETURN_IF_ERROR(RemoveEntry(t, &src_dir, name, src));
  if (IsDir(moving.mode) && to_dir.nlink >= kMaxLinks && !same_dir)
    return Status::Error(EMLINK, "too many links");
  DAXREF_RETURN_IF_ERROR(AddEntry(t, &to_dir, newname, moving.ino, moving.mode));
  if (IsDir(moving.mode)) moving.parent = newparent;
  moving.ctime = now;
  StoreInode(t, moving);
  StoreInode(t, src_dir);
  if (!same_dir) StoreInode(t, dst_dir);
  return Commit(t);
}

Status Volume::SetAttr(uint64_t ino, const SetAttrRequest& req, const Caller& who,
                       InodeRecord* out) {
  MutexLock g(&mu_);
  Txn t(this);
  InodeRecord r;
  DAXREF_RETURN_IF_ERROR(LoadInode(t, ino, &r));
  Timespec now = Now();
  bool changed = false;
  if (req.size && *req.size != r.size) {
    if (IsDir(r.mode)) return Status::Error(EISDIR, "is a directory");
    if (!S_ISREG(r.mode)) return Status::Invalid("not a regular file");
    if (*req.size > kMaxFileSize) return Status::Error(EFBIG, "file too large");
    DAXREF_RETURN_IF_ERROR(Truncate(t, &r, *req.size));
    r.mtime = now;
    changed = true;
  } else if (req.size) {
    r.mtime = now;  // truncate to the same size still updates the times
    changed = true;
  }
  if (req.mode) {
    r.mode = (r.mode & S_IFMT) | (*req.mode & 07777);
    changed = true;
  }
  bool owner_change = (req.uid && *req.uid != r.uid) || (req.gid && *req.gid != r.gid);
  if (req.uid) r.uid = *req.uid;
  if (req.gid) r.gid = *req.gid;
  if (req.uid || req.gid) changed = true;
  // A change of owner drops set-id bits and file capabilities of a
  // non-directory, as the kernel does for local filesystems.
  if (owner_change && !IsDir(r.mode)) {
    if (!req.mode) r.mode &= ~KilledSetIdBits(r.mode);
    if (r.flags & kInodeHasXattrs) t.Delete(keys::Xattr(ino, "security.capability"));
  }
  if (req.size && who.uid != 0 && S_ISREG(r.mode) && !req.mode) r.mode &= ~KilledSetIdBits(r.mode);
  if (req.atime) r.atime = *req.atime;
  if (req.mtime) r.mtime = *req.mtime;
  if (changed || req.atime || req.mtime) r.ctime = req.ctime.value_or(now);
  StoreInode(t, r);
  DAXREF_RETURN_IF_ERROR(Commit(t));
  *out = r;
  return Status::Ok();
}

Status Volume::SetXattr(uint64_t ino, std::string_view name, std::string_view value, int flags) {
  if (name.empty() || name.size() > 255) return Status::Error(ERANGE, "bad attribute name");
  if (value.size() > kMaxXattrValue) return Status::Error(E2BIG, "attribute value too large");
  MutexLock g(&mu_);
  Txn t(this);
  InodeRecord r;
  DAXREF_RETURN_IF_ERROR(LoadInode(t, ino, &r));
  std::string old;
  Status s = t.Get(keys::Xattr(ino, name), &old);
  if (!s.ok() && s.err() != ENOENT) return s;
  if ((flags & XATTR_CREATE) && s.ok()) return Status::Error(EEXIST, "attribute exists");
  if ((flags & XATTR_REPLACE) && !s.ok()) return Status::Error(ENODATA, "no such attribute");
  t.Put(keys::Xattr(ino, name), std::string(value));
  r.flags |= kInodeHasXattrs;
  r.ctime = Now();
  StoreInode(t, r);
  return Commit(t);
}

Status Volume::RemoveXattr(uint64_t ino, std::string_view name) {
  MutexLock g(&mu_);
  Txn t(this);
  InodeRecord r;
  DAXREF_RETURN_IF_ERROR(LoadInode(t, ino, &r));
  std::string old;
  Status s = t.Get(keys::Xattr(ino, name), &old);
  if (s.err() == ENOENT) return Status::Error(ENODATA, "no such attribute");
  DAXREF_RETURN_IF_ERROR(s);
  t.Delete(keys::Xattr(ino, name));
  r.ctime = Now();
  StoreInode(t, r);
  return Commit(t);
}

Status Volume::Reclaim(uint64_t ino) {
  MutexLock g(&mu_);
  Txn t(this);
  InodeRecord r;
  Status s = LoadInode(t, ino, &r);
  if (s.err() == ENOENT) {
    t.Delete(keys::Orphan(ino));
    return Commit(t);
  }
  DAXREF_RETURN_IF_ERROR(s);
  if (r.nlink != 0) return Status::Invalid("inode still linked");
  DAXREF_RETURN_IF_ERROR(DeleteInode(t, r, true));
  return Commit(t);
}

// ---------------------------------------------------------------------------
// Data.

// Writes that change no metadata but the times (an overwrite of mapped
// blocks inside EOF, by a writer with no privileges to clear) take a fast
// path: the bytes go straight into the mapped blocks and the new mtime/ctime
// wait in pending_times_ until FlushTimes (close, fsync, the daemon's timer,
// unmount) or the next operation on the inode stores them. A daemon killed
// in between keeps the data and loses only those timestamps.
Status Volume::Write(uint64_t ino, uint64_t off, const void* buf, size_t len, const Caller& who,
                     InodeRecord* out) {
  if (off >= kMaxFileSize || len > kMaxFileSize - off)
    return Status::Error(EFBIG, "file too large");
  const char* src = static_cast<const char*>(buf);
  uint64_t end = off + len;
  InodeRecord r;
  DAXREF_RETURN_IF_ERROR(GetInode(ino, &r));
  if (IsDir(r.mode)) return Status::Error(EISDIR, "is a directory");
  if (len > 0 && end <= r.size && (who.uid == 0 || KilledSetIdBits(r.mode) == 0)) {
    // A file capability must be dropped by the write: that needs a batch.
    bool fast = true;
    if (r.flags & kInodeHasXattrs) {
      std::string cap;
      fast = db_->Get(rocksdb::ReadOptions(), keys::Xattr(ino, "security.capability"), &cap)
                 .IsNotFound();
    }
    struct Piece {
      uint64_t pool_off, src_off, len;
    };
    Piece pieces[16];
    size_t n = 0;
    if (fast) {
      // Every block must already be mapped (and the range in few pieces).
      DAXREF_RETURN_IF_ERROR(MapRange(ino, off, len, [&](const MappedSegment& seg) {
        if (seg.hole || n == 16) {
          fast = false;
          return false;
        }
        pieces[n++] = Piece{seg.pool_off, seg.off - off, seg.len};
        return true;
      }));
    }
    // Blocks another file shares take the slow path, which unshares them;
    // so do bad ones, which it replaces or refuses.
    if (fast && (r.flags & kInodeReflinked)) {
      for (size_t i = 0; i < n && fast; ++i)
        fast =
            !SharedNow(BlockOf(pieces[i].pool_off), BlockCeil(pieces[i].pool_off + pieces[i].len));
    }
    for (size_t i = 0; i < n && fast; ++i)
      fast = !IsBad(BlockOf(pieces[i].pool_off), BlockCeil(pieces[i].pool_off + pieces[i].len));
    if (fast) {
      for (size_t i = 0; i < n; ++i)
        DAXREF_RETURN_IF_ERROR(
            data_->Write(pieces[i].pool_off, src + pieces[i].src_off, pieces[i].len));
      Timespec now = Now();
      MutexLock g(&times_mu_);
      pending_times_[ino] = now;
      r.mtime = r.ctime = now;
      *out = r;
      return Status::Ok();
    }
  }

  MutexLock g(&mu_);
  Txn t(this);
  DAXREF_RETURN_IF_ERROR(LoadInode(t, ino, &r));
  if (IsDir(r.mode)) return Status::Error(EISDIR, "is a directory");
  DAXREF_RETURN_IF_ERROR(WriteIn(t, &r, off, src, len));
  // Writing drops set-id bits (unless the writer is privileged) and always
  // drops file capabilities: the daemon clears privileges itself so that the
  // kernel need not ask for security.capability before every write.
  DropWritePrivileges(t, &r, who);
  r.mtime = r.ctime = Now();
  StoreInode(t, r);
  DAXREF_RETURN_IF_ERROR(Commit(t));
  *out = r;
  return Status::Ok();
}

void Volume::DropWritePrivileges(Txn& t, InodeRecord* r, const Caller& who) {
  if (who.uid != 0) r->mode &= ~KilledSetIdBits(r->mode);
  std::string cap;
  if ((r->flags & kInodeHasXattrs) && t.Get(keys::Xattr(r->ino, "security.capability"), &cap).ok())
    t.Delete(keys::Xattr(r->ino, "security.capability"));
}

Status Volume::WriteIn(Txn& t, InodeRecord* r, uint64_t off, const char* src, uint64_t len) {
  DAXREF_RETURN_IF_ERROR(PrepareWrite(t, r, off, len));
  return StoreBytes(t, r, off, src, len);
}

Status Volume::PrepareWrite(Txn& t, InodeRecord* r, uint64_t off, uint64_t len) {
  if (len == 0) return Status::Ok();
  uint64_t end = off + len;
  DAXREF_RETURN_IF_ERROR(FillHoles(t, r, BlockOf(off), BlockCeil(end), off, end));
  DAXREF_RETURN_IF_ERROR(ReplaceBadBlocks(t, r, BlockOf(off), BlockCeil(end), off, end));
  return Unshare(t, r, BlockOf(off), BlockCeil(end), off, end);
}

Status Volume::StoreBytes(Txn& t, InodeRecord* r, uint64_t off, const char* src, uint64_t len) {
  if (len == 0) return Status::Ok();
  uint64_t end = off + len;
  // Every block of the range is mapped, good and r's own (PrepareWrite).
  Status st;
  DAXREF_RETURN_IF_ERROR(WalkExtents(t, r->ino, BlockOf(off), BlockCeil(end), [&](const Extent& e) {
    uint64_t s = std::max(off, e.fblock << kBlockShift);
    uint64_t se = std::min(end, e.fend() << kBlockShift);
    if (se > s)
      st = data_->Write(PoolOff(e.pblock) + (s - (e.fblock << kBlockShift)), src + (s - off),
                        se - s);
    return st.ok();
  }));
  DAXREF_RETURN_IF_ERROR(st);
  r->size = std::max(r->size, end);
  return Status::Ok();
}

Status Volume::ReadIn(Txn& t, uint64_t ino, uint64_t off, uint64_t len, char* dst) {
  if (len == 0) return Status::Ok();
  memset(dst, 0, len);
  uint64_t end = off + len;
  Status st;
  DAXREF_RETURN_IF_ERROR(
      WalkExtents(t, ino, BlockOf(off), BlockCeil(end), [&](const Extent& e) REQUIRES(mu_) {
        uint64_t s = std::max(off, e.fblock << kBlockShift);
        uint64_t se = std::min(end, e.fend() << kBlockShift);
        if (se <= s) return true;
        uint64_t p = PoolOff(e.pblock) + (s - (e.fblock << kBlockShift));
        st = RefuseBad(BlockOf(p), BlockCeil(p + (se - s)), "reading");
        if (st.ok()) st = data_->Load(p, dst + (s - off), se - s);
        return st.ok();
      }));
  return st;
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

Status Volume::Fallocate(uint64_t ino, int mode, uint64_t off, uint64_t len, InodeRecord* out) {
  if (len == 0) return Status::Invalid("zero length");
  if (off >= kMaxFileSize || len > kMaxFileSize - off)
    return Status::Error(EFBIG, "file too large");
  const int known = kFallocKeepSize | kFallocPunchHole | kFallocZeroRange | kFallocUnshareRange;
  if (mode & ~known) return Status::Error(EOPNOTSUPP, "unsupported fallocate mode");
  if ((mode & kFallocUnshareRange) && (mode & ~(kFallocUnshareRange | kFallocKeepSize)))
    return Status::Invalid("unshare range takes only keep size");
  if ((mode & kFallocPunchHole) && !(mode & kFallocKeepSize))
    return Status::Error(EOPNOTSUPP, "punch hole needs keep size");
  if ((mode & kFallocPunchHole) && (mode & kFallocZeroRange))
    return Status::Invalid("punch hole with zero range");
  MutexLock g(&mu_);
  Txn t(this);
  InodeRecord r;
  DAXREF_RETURN_IF_ERROR(LoadInode(t, ino, &r));
  if (IsDir(r.mode)) return Status::Error(EISDIR, "is a directory");
  if (!S_ISREG(r.mode)) return Status::Error(ENODEV, "not a regular file");
  uint64_t end = off + len;
  if (mode & kFallocPunchHole) {
    // Whole blocks inside the range are unmapped; the partial blocks at
    // either edge are zeroed in place. Blocks past EOF are punched too:
    // KEEP_SIZE may have preallocated them.
    uint64_t fb0 = BlockCeil(off), fb1 = BlockOf(end);
    if (fb0 < fb1) DAXREF_RETURN_IF_ERROR(UnmapRange(t, &r, fb0, fb1));
    // What is left mapped in the range is the partial blocks at the edges:
    // they are zeroed in place, so this file needs its own copy first.
    DAXREF_RETURN_IF_ERROR(Unshare(t, &r, BlockOf(off), BlockCeil(end), off, end));
    if (fb0 < fb1) {
      DAXREF_RETURN_IF_ERROR(ZeroBytes(t, ino, off, (fb0 << kBlockShift) - off));
      DAXREF_RETURN_IF_ERROR(ZeroBytes(t, ino, fb1 << kBlockShift, end - (fb1 << kBlockShift)));
    } else {
      DAXREF_RETURN_IF_ERROR(ZeroBytes(t, ino, off, end - off));
    }
  } else {
    // Default and zero-range both leave [off, end) allocated; zero range also
    // clears what was already there. New blocks come zeroed from FillHoles.
    // Unsharing gives zero range private blocks to clear (only the bytes
    // outside the range are copied) and unshare range a private copy of all.
    // Zero range treats bad blocks as a write would: whole ones get fresh
    // blocks (zeroed below), a bad block it covers in part fails it.
    if (mode & kFallocZeroRange) {
      DAXREF_RETURN_IF_ERROR(ReplaceBadBlocks(t, &r, BlockOf(off), BlockCeil(end), off, end));
      DAXREF_RETURN_IF_ERROR(Unshare(t, &r, BlockOf(off), BlockCeil(end), off, end));
    }
    if (mode & kFallocUnshareRange)
      DAXREF_RETURN_IF_ERROR(Unshare(t, &r, BlockOf(off), BlockCeil(end), 0, 0));
    DAXREF_RETURN_IF_ERROR(FillHoles(t, &r, BlockOf(off), BlockCeil(end), 0, 0));
    if (mode & kFallocZeroRange) {
      // FillHoles zeroed only new blocks; clear the old ones in range too.
      DAXREF_RETURN_IF_ERROR(ZeroBytes(t, ino, off, len));
    }
    if (!(mode & kFallocKeepSize) && end > r.size) r.size = end;
  }
  r.ctime = Now();
  if (mode & (kFallocPunchHole | kFallocZeroRange)) r.mtime = r.ctime;
  StoreInode(t, r);
  DAXREF_RETURN_IF_ERROR(Commit(t));
  *out = r;
  return Status::Ok();
}

Status Volume::Sync() {
  Status times = FlushTimes();
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
