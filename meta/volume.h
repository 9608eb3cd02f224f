// Volume: a daxref filesystem's metadata, and every operation on it.
//
// Each mutating method is one filesystem operation and commits exactly one
// RocksDB WriteBatch: inode, directory entries, extent map, reverse map and
// free space change together or not at all. Data for newly allocated blocks
// is written (and persisted, through the DataPlane) before the batch that
// points at it commits, so a crash at any point leaves either the old state or
// the new one, never a block that is both free and owned.
//
// Thread safety: all methods are safe to call concurrently, with one rule
// for the caller: Write, Fallocate, SetAttr with a size, and Reclaim of the
// same inode must not overlap each other or a reader copying that inode's
// blocks (the daemon's per-inode I/O lock). Mutations are serialized by one
// internal lock; lookups read the store directly. Volume frees blocks as soon
// as the operation that unmaps them commits.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <unordered_map>

#include "meta/data_plane.h"
#include "meta/extent_cache.h"
#include "meta/format.h"
#include "meta/free_space.h"
#include "meta/status.h"
#include "meta/superblock.h"

namespace rocksdb {
class DB;
class WriteBatchWithIndex;
}  // namespace rocksdb

namespace daxref {

// Who asks: the caller's uid and gid (for ownership of new inodes and the
// privilege-clearing rules).
struct Caller {
  uint32_t uid = 0;
  uint32_t gid = 0;
};

// Which attributes SetAttr changes.
struct SetAttrRequest {
  std::optional<uint32_t> mode;
  std::optional<uint32_t> uid;
  std::optional<uint32_t> gid;
  std::optional<uint64_t> size;
  std::optional<Timespec> atime;  // already resolved from UTIME_NOW
  std::optional<Timespec> mtime;
  std::optional<Timespec> ctime;
};

// A piece of a file range as the extent map sees it: `len` bytes at file
// offset `off`, stored at pool byte offset `pool_off`, or a hole.
struct MappedSegment {
  uint64_t off = 0;
  uint64_t len = 0;
  bool hole = true;
  uint64_t pool_off = 0;
};

struct VolumeStats {
  uint64_t data_blocks = 0;  // blocks a file could ever use
  uint64_t free_blocks = 0;
  uint64_t inodes = 0;  // inodes in use
};

// Mode bits for Fallocate (the Linux FALLOC_FL_* values).
inline constexpr int kFallocKeepSize = 0x01;
inline constexpr int kFallocPunchHole = 0x02;
inline constexpr int kFallocZeroRange = 0x10;

class Volume {
 public:
  struct Options {
    size_t block_cache_bytes = 64 << 20;
  };

  // Creates a fresh store in `dir` for the pool described by `sb`; fails if
  // `dir` already holds a store.
  static Status Create(const std::string& dir, const Superblock& sb, const Caller& root_owner,
                       uint32_t root_mode);
  // Opens the store in `dir`, checks that it belongs to the pool `sb`, loads
  // free space and reclaims orphans left by a daemon that died.
  static Result<std::unique_ptr<Volume>> Open(const std::string& dir, const Superblock& sb,
                                              DataPlane* data, const Options& opts);
  ~Volume();
  Volume(const Volume&) = delete;
  Volume& operator=(const Volume&) = delete;

  // ---- queries ----
  Status GetInode(uint64_t ino, InodeRecord* out);
  Status Lookup(uint64_t parent, std::string_view name, InodeRecord* out);
  Status ReadLink(uint64_t ino, std::string* target);
  // Walks the entries of `dir` after `cookie` ("." and ".." included, as
  // cookies 1 and 2). fn(name, ino, type, cookie) returns false to stop.
  using DirentFn =
      std::function<bool(std::string_view name, uint64_t ino, uint32_t type, uint64_t cookie)>;
  Status ReadDir(uint64_t dir, uint64_t cookie, const DirentFn& fn);
  // Walks [off, off+len) clipped to nothing: holes included. fn returns false to stop.
  using SegmentFn = std::function<bool(const MappedSegment&)>;
  Status MapRange(uint64_t ino, uint64_t off, uint64_t len, const SegmentFn& fn);
  // SEEK_DATA / SEEK_HOLE from `off`.
  Status Seek(uint64_t ino, uint64_t off, int whence, uint64_t* out);
  Status GetXattr(uint64_t ino, std::string_view name, std::string* value);
  // Names, each followed by a NUL, as listxattr(2) returns them.
  Status ListXattr(uint64_t ino, std::string* names);
  VolumeStats Stats();

  // ---- namespace operations ----
  // mode carries the S_IFMT type. For symlinks `link_target` is the target.
  Status MakeNode(uint64_t parent, std::string_view name, uint32_t mode, uint64_t rdev,
                  const Caller& who, std::string_view link_target, InodeRecord* out);
  Status Link(uint64_t ino, uint64_t newparent, std::string_view newname, InodeRecord* out);
  // Asked, inside an operation, when an inode loses its last name: true
  // means nothing holds it, and it is deleted (blocks freed) in the same
  // batch; false leaves it on the orphan list for a later Reclaim. Null means
  // "always orphan".
  using LastLinkFn = std::function<bool(uint64_t ino)>;
  // Removes a non-directory entry. `*victim` gets the inode after the change
  // (nlink 0: deleted or orphaned, as `last_link` said).
  Status Unlink(uint64_t parent, std::string_view name, const LastLinkFn& last_link,
                InodeRecord* victim);
  Status Rmdir(uint64_t parent, std::string_view name);
  // flags: 0, RENAME_NOREPLACE or RENAME_EXCHANGE. A replaced non-directory
  // is reported in `*replaced` (ino 0 if none) and treated as by Unlink.
  Status Rename(uint64_t parent, std::string_view name, uint64_t newparent,
                std::string_view newname, unsigned flags, const LastLinkFn& last_link,
                InodeRecord* replaced);
  Status SetAttr(uint64_t ino, const SetAttrRequest& req, const Caller& who, InodeRecord* out);
  Status SetXattr(uint64_t ino, std::string_view name, std::string_view value, int flags);
  Status RemoveXattr(uint64_t ino, std::string_view name);
  // Deletes an unlinked inode and frees its blocks.
  Status Reclaim(uint64_t ino);

  // ---- data ----
  Status Write(uint64_t ino, uint64_t off, const void* buf, size_t len, const Caller& who,
               InodeRecord* out);
  Status Fallocate(uint64_t ino, int mode, uint64_t off, uint64_t len, InodeRecord* out);

  // Stores the timestamps that in-place overwrites left pending.
  Status FlushTimes();
  // Makes every committed operation durable (pending times stored, the
  // write-ahead log synced).
  Status Sync();

  // ---- reverse map ----
  // Walks every reverse-map record that overlaps pool blocks [pb0, pb1), in
  // pool order, acting on each as it is met. fn returns false to stop.
  using RmapFn = std::function<bool(const RmapRecord&)>;
  Status QueryOwners(uint64_t pb0, uint64_t pb1, const RmapFn& fn);

  const Superblock& superblock() const { return sb_; }
  rocksdb::DB* db() { return db_.get(); }

 private:
  class Txn;
  Volume(std::unique_ptr<rocksdb::DB> db, const Superblock& sb, DataPlane* data);

  Status LoadInode(Txn& t, uint64_t ino, InodeRecord* out);
  void ApplyPendingTimes(InodeRecord* r);
  void StoreInode(Txn& t, const InodeRecord& r);
  Status LookupIn(Txn& t, uint64_t dir, std::string_view name, DirentRecord* out);
  Status AddEntry(Txn& t, InodeRecord* dir, std::string_view name, uint64_t ino, uint32_t type);
  Status RemoveEntry(Txn& t, InodeRecord* dir, std::string_view name, const DirentRecord& d);
  Status DirIsEmpty(Txn& t, uint64_t dir, bool* empty);
  // Drops one link of a non-directory; at zero deletes or orphans it.
  Status DropLink(Txn& t, InodeRecord* r, const LastLinkFn& last_link);
  // `orphaned`: the inode has an O record to delete too.
  Status DeleteInode(Txn& t, const InodeRecord& r, bool orphaned);

  // The committed extents of `ino` from the cache, or null: then read the
  // store. Only reads (MapRange) `load` a missing entry; operations that are
  // about to edit the extents, and so drop the entry again, do not.
  ExtentCache::Map CommittedExtents(uint64_t ino, bool load);
  // Extent-map editing; each keeps the reverse map and free space in step.
  using ExtentFn = std::function<bool(const Extent&)>;
  Status WalkExtents(Txn& t, uint64_t ino, uint64_t fb0, uint64_t fb1, const ExtentFn& fn);
  Status UnmapRange(Txn& t, InodeRecord* r, uint64_t fb0, uint64_t fb1);
  Status MapExtent(Txn& t, InodeRecord* r, const Extent& e);
  // Allocates blocks for every hole in [fb0, fb1), zeroing the parts of new
  // blocks outside [zero_keep_off, zero_keep_end) (bytes the caller is about
  // to write). Nothing is written to existing blocks.
  Status FillHoles(Txn& t, InodeRecord* r, uint64_t fb0, uint64_t fb1, uint64_t keep_off,
                   uint64_t keep_end);
  Status ZeroBytes(Txn& t, uint64_t ino, uint64_t off, uint64_t len);
  Status Truncate(Txn& t, InodeRecord* r, uint64_t size);
  Status Commit(Txn& t);
  uint64_t NextIno(Txn& t);

  std::unique_ptr<rocksdb::DB> db_;
  Superblock sb_;
  DataPlane* data_;
  std::mutex mu_;  // serializes mutations; guards free_ and next_ino_
  FreeSpace free_;
  uint64_t next_ino_ = 0;
  uint64_t inodes_ = 0;  // inodes in use, mirrored by the M "inodes" record
  ExtentCache extent_cache_;
  // mtime/ctime of in-place overwrites not yet stored. Its own lock, a leaf
  // (taken inside mu_, never the other way round), so that reads and
  // fast-path writes never wait behind a batch being built.
  std::mutex times_mu_;
  std::unordered_map<uint64_t, Timespec> pending_times_;  // guarded by times_mu_
};

Timespec Now();

}  // namespace daxref
