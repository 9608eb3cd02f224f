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
//
// The implementation is one file per concern, around the one Txn of
// meta/volume_txn.h; meta/volume.cc opens with the list of which file owns
// what, and the private declarations below are grouped the same way.
#pragma once

#include <sys/types.h>

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <unordered_map>

#include "base/mutex.h"
#include "base/thread_annotations.h"
#include "meta/attr_cache.h"
#include "meta/bad_blocks.h"
#include "meta/data_plane.h"
#include "meta/extent_maps.h"
#include "meta/format.h"
#include "meta/free_space.h"
#include "meta/lease_record.h"
#include "meta/refcount_map.h"
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
  // Whether the caller's supplementary groups hold a group: asked only on
  // the rare path that needs it (a set-group-id file without group execute,
  // not of the caller's own group), since the answer costs a read of /proc.
  // Unset: the caller is in its own group only.
  bool (*in_supplementary_group)(const void* context, uint32_t gid) = nullptr;
  const void* context = nullptr;

  bool InGroup(uint32_t g) const {
    return g == gid || (in_supplementary_group && in_supplementary_group(context, g));
  }
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
  // The metadata store's size (the bytes of every file in its directory).
  // Not pool space, but space on the host this filesystem uses: statfs
  // counts it as used.
  uint64_t store_bytes = 0;
};

// Mode bits for Fallocate (the Linux FALLOC_FL_* values).
inline constexpr int kFallocKeepSize = 0x01;
inline constexpr int kFallocPunchHole = 0x02;
inline constexpr int kFallocZeroRange = 0x10;
inline constexpr int kFallocUnshareRange = 0x40;
// Removes [off, off+len) and moves what follows down; inserts a hole of len
// bytes at off and moves what follows up. Whole blocks; alone, as on Linux.
inline constexpr int kFallocCollapseRange = 0x08;
inline constexpr int kFallocInsertRange = 0x20;

// A piece of a file's extent map with the refcount of its blocks: file
// blocks [fblock, fblock+len) at pool blocks [pblock, pblock+len), each
// referenced `refs` times (1: this file's own; 2 or more: shared).
struct SharedExtent {
  uint64_t fblock = 0;
  uint64_t pblock = 0;
  uint64_t len = 0;
  uint64_t refs = 1;
};

// What MarkBad did to a pool range, in blocks newly recorded bad.
struct PoisonOutcome {
  uint64_t added = 0;     // blocks recorded bad by this call
  uint64_t retired = 0;   // of those, free blocks taken out of service
  uint64_t owned = 0;     // of those, blocks that files still reference
  uint64_t reserved = 0;  // of those, the pool's own blocks (superblock copies)
};

// What ClearBad did.
struct ClearOutcome {
  uint64_t cleared = 0;   // blocks no longer bad
  uint64_t returned = 0;  // of those, unowned blocks given back to free space
};

// The outcome of a dedupe: whether the ranges held the same bytes, and how
// many bytes now share blocks.
struct DedupeResult {
  bool same = false;
  uint64_t bytes = 0;
};

class StoreHealth;
struct StoreIdentity;

class Volume {
 public:
  struct Options {
    size_t block_cache_bytes = 64 << 20;
    // The pool file whose superblock copies carry the generation. When set,
    // Open advances the generation of store and pool (meta/store.h); the
    // daemon and the tools that change a filesystem set it. Unset (meta's
    // own tests, with no pool file), the generation is checked only.
    std::string pool_path = {};
    // Told, one line each, when the metadata store stops taking writes
    // after an error of its host filesystem (see "When the store's filesystem
    // fails" in meta/volume.cc).
    std::function<void(const std::string& line)> log = {};
    // A read-only Volume (a `-o ro` mount; docs/design.md, "Read-only
    // mounts"): the store is opened with RocksDB's OpenForReadOnly, so
    // nothing in its directory is created or written, not even its info
    // log; the format is not upgraded, the generation not advanced (the
    // pool is not written), orphans are left for the next read-write
    // mount. Every operation that would change the filesystem fails with
    // EROFS before it changes anything, in memory, the store or the pool
    // (its data stores go through a plane that refuses them). Poison is
    // the exception: MarkBad records bad blocks in memory only (reads of
    // them fail as on any mount; the next read-write mount does not know
    // them), and ClearBad is refused (EROFS).
    bool read_only = false;
  };

  // Creates a fresh store in `dir` for the pool described by `sb`; fails if
  // `dir` already holds a store.
  static Status Create(const std::string& dir, const Superblock& sb, const Caller& root_owner,
                       uint32_t root_mode);
  // Opens the store in `dir`, checks that it belongs to the pool `sb` and is
  // as new as it (meta/store.h: a store that fails is left untouched),
  // loads free space and reclaims orphans left by a daemon that died.
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
  Status ReadDir(uint64_t dir, uint64_t cookie, const DirentFn& fn) {
    uint64_t end = UINT64_MAX;
    return ReadDir(dir, cookie, &end, fn);
  }
  // As above, for one walk of a directory (an open directory handle, from
  // its first readdir or its last rewind): only entries whose cookie is
  // below *end. *end == 0 asks for the walk's end to be set now, to the
  // directory's next cookie. Cookies only grow, and an entry renamed into
  // the directory gets a new one, so a walk that renames the entries it
  // reads meets each at most once and ends (docs/design.md, "readdir
  // under rename").
  Status ReadDir(uint64_t dir, uint64_t cookie, uint64_t* end, const DirentFn& fn);
  // Walks [off, off+len) clipped to nothing: holes included. fn returns false to stop.
  using SegmentFn = std::function<bool(const MappedSegment&)>;
  Status MapRange(uint64_t ino, uint64_t off, uint64_t len, const SegmentFn& fn);
  // SEEK_DATA / SEEK_HOLE from `off`.
  Status Seek(uint64_t ino, uint64_t off, int whence, uint64_t* out);
  Status GetXattr(uint64_t ino, std::string_view name, std::string* value);
  // Names, each followed by a NUL, as listxattr(2) returns them.
  Status ListXattr(uint64_t ino, std::string* names);
  // Committed counters, read without the mutation lock (statfs never waits
  // behind a batch being built).
  VolumeStats Stats();

  // ---- namespace operations ----
  // mode carries the S_IFMT type. For symlinks `link_target` is the target.
  Status MakeNode(uint64_t parent, std::string_view name, uint32_t mode, uint64_t rdev,
                  const Caller& who, std::string_view link_target, InodeRecord* out) EXCLUDES(mu_);
  Status Link(uint64_t ino, uint64_t newparent, std::string_view newname, InodeRecord* out)
      EXCLUDES(mu_);
  // Asked, inside an operation, when an inode loses its last name: true
  // means nothing holds it, and it is deleted (blocks freed) in the same
  // batch; false leaves it on the orphan list for a later Reclaim. Null means
  // "always orphan".
  using LastLinkFn = std::function<bool(uint64_t ino)>;
  // Removes a non-directory entry. `*victim` gets the inode after the change
  // (nlink 0: deleted or orphaned, as `last_link` said).
  Status Unlink(uint64_t parent, std::string_view name, const LastLinkFn& last_link,
                InodeRecord* victim) EXCLUDES(mu_);
  // A removed directory that last_link says is still open keeps its (empty)
  // record with nlink 0 on the orphan list, so fstat of the open descriptor
  // answers; the last release (or the next mount) reclaims it. Without
  // last_link it is deleted at once.
  Status Rmdir(uint64_t parent, std::string_view name, const LastLinkFn& last_link = {})
      EXCLUDES(mu_);
  // flags: 0, RENAME_NOREPLACE or RENAME_EXCHANGE. A replaced non-directory
  // is reported in `*replaced` (ino 0 if none) and treated as by Unlink.
  // RENAME_WHITEOUT leaves in the source's place, in the same batch, a
  // whiteout: a character device 0:0 with mode 0, owned by `who`.
  Status Rename(uint64_t parent, std::string_view name, uint64_t newparent,
                std::string_view newname, unsigned flags, const LastLinkFn& last_link,
                InodeRecord* replaced, const Caller& who = Caller{}) EXCLUDES(mu_);
  Status SetAttr(uint64_t ino, const SetAttrRequest& req, const Caller& who, InodeRecord* out)
      EXCLUDES(mu_);
  Status SetXattr(uint64_t ino, std::string_view name, std::string_view value, int flags)
      EXCLUDES(mu_);
  Status RemoveXattr(uint64_t ino, std::string_view name) EXCLUDES(mu_);
  // Deletes an unlinked inode and frees its blocks.
  Status Reclaim(uint64_t ino) EXCLUDES(mu_);

  // ---- data ----
  // *privileges_dropped (when given) tells whether the write took set-id
  // bits or a file capability away: the kernel's cached attributes are then
  // stale.
  // With `written`, a write that does not fit stores a prefix that does and
  // sets *written to its length (a short write, as POSIX asks); without,
  // or when nothing fits, it is ENOSPC with nothing stored.
  Status Write(uint64_t ino, uint64_t off, const void* buf, size_t len, const Caller& who,
               InodeRecord* out, bool* privileges_dropped = nullptr, size_t* written = nullptr)
      EXCLUDES(mu_);
  // Fallocate drops set-id bits as a write does when `who` is not root
  // (Linux does so for every mode that changes the file: allocate, punch,
  // zero, unshare, collapse, insert). The form without a caller acts as root.
  Status Fallocate(uint64_t ino, int mode, uint64_t off, uint64_t len, const Caller& who,
                   InodeRecord* out) EXCLUDES(mu_);
  Status Fallocate(uint64_t ino, int mode, uint64_t off, uint64_t len, InodeRecord* out)
      EXCLUDES(mu_) {
    return Fallocate(ino, mode, off, len, Caller{}, out);
  }

  // Records `now` as ino's atime, in memory only: stat sees it at once, and
  // it is stored with the inode's next batch or by FlushTimes (no batch per
  // read; docs/design.md, "Access times"). The caller decided that the read
  // updates it (meta/atime_policy.h). Nothing on a read-only Volume.
  void TouchAtime(uint64_t ino, Timespec now) EXCLUDES(times_mu_);
  // Stores the timestamps that in-place overwrites and reads left pending:
  // of every inode, or of `ino` only (its last handle closed).
  Status FlushTimes() EXCLUDES(mu_);
  Status FlushTimes(uint64_t ino) EXCLUDES(mu_);
  // Makes every committed operation durable (pending times stored, the
  // write-ahead log synced). Works on a stopped store too (below): what was
  // acknowledged is made durable; times it could not store are its error.
  Status Sync() EXCLUDES(mu_);
  // fsync(2) of one file: persists the pool ranges its extents map (through
  // the DataPlane; not the rest of the pool), stores its pending times, and
  // syncs the write-ahead log as Sync does.
  Status SyncFile(uint64_t ino) EXCLUDES(mu_);

  // When the store's host filesystem fails a write (it is full: ENOSPC; or
  // it fails: EIO), RocksDB stops taking writes. Every operation that
  // changes something then fails with that error, nothing half-done, until
  // the next mount; reads go on (volume.cc, "When the store's filesystem
  // fails", says why there is no recovery while mounted). True while
  // stopped.
  bool store_stopped();
  // Opened with Options::read_only, or made read-only by SetReadOnly.
  bool read_only() const { return read_only_ || remounted_ro_.load(); }
  // `mount -o remount,ro` / `remount,rw` (docs/design.md, "Remounting").
  // Read-only: no new pending time is taken (TouchAtime does nothing, a
  // fast-path write fails), the pending ones are stored and the log synced
  // (Sync), and from then on every commit fails with EROFS and poison is
  // kept in memory only, as on a Volume opened read-only; if the sync fails,
  // the Volume stays read-write and says why. Read-write again: only for a
  // Volume that was opened read-write (EROFS otherwise: its store was
  // opened read-only).
  Status SetReadOnly(bool ro) EXCLUDES(mu_, times_mu_);

  // ---- sharing (reflink) ----
  // Makes dst's bytes [dst_off, dst_off+len) share src's blocks at
  // [src_off, src_off+len), with the checks and semantics of FICLONERANGE
  // (ioctl_ficlone(2)): block-aligned offsets, len aligned unless it ends at
  // src's EOF, len 0 meaning "to src's EOF", no overlap within one file.
  // Whatever dst had in the range is released. One batch.
  Status Clone(uint64_t src, uint64_t src_off, uint64_t dst, uint64_t dst_off, uint64_t len,
               const Caller& who, InodeRecord* dst_out) EXCLUDES(mu_);
  // FIDEDUPERANGE for one destination: shares the range only if both hold
  // the same bytes now. Both ranges must lie within EOF; len is rounded
  // down to whole blocks unless both ranges end at their files' EOF.
  Status Dedupe(uint64_t src, uint64_t src_off, uint64_t dst, uint64_t dst_off, uint64_t len,
                DedupeResult* result) EXCLUDES(mu_);
  // copy_file_range(2): shares what can be shared (whole blocks at the same
  // offset within a block on both sides), copies the rest. May copy less
  // than asked (*copied), as copy_file_range may; 0 at src's EOF.
  Status CopyRange(uint64_t src, uint64_t src_off, uint64_t dst, uint64_t dst_off, uint64_t len,
                   const Caller& who, uint64_t* copied, InodeRecord* dst_out) EXCLUDES(mu_);
  // Walks ino's extents overlapping file blocks [fb0, fb1), split where the
  // refcount changes, in file order. fn returns false to stop.
  using SharedExtentFn = std::function<bool(const SharedExtent&)>;
  Status WalkSharing(uint64_t ino, uint64_t fb0, uint64_t fb1, const SharedExtentFn& fn)
      EXCLUDES(mu_);

  // ---- reverse map ----
  // Walks every reverse-map record that overlaps pool blocks [pb0, pb1),
  // acting on each as it is met; fn returns false to stop. Records come
  // grouped by length class, each group in pool order. A walk resumes after
  // the record `after` when it is given (a cursor for callers that page).
  using RmapFn = std::function<bool(const RmapRecord&)>;
  Status QueryOwners(uint64_t pb0, uint64_t pb1, const RmapFn& fn,
                     const RmapRecord* after = nullptr);
  // Walks the paths (from the root, "/a/b") that name ino. fn returns false
  // to stop. An unlinked inode has none.
  using PathFn = std::function<bool(const std::string& path)>;
  Status Paths(uint64_t ino, const PathFn& fn);
  // Paths for many inodes in a row (the owners of one block, which mostly
  // live in a few directories): one snapshot and one iterator for all of
  // them, and the paths of the directories met remembered, up to a bound.
  // Paths above is a resolver used once: the two walk alike by construction.
  class PathResolver {
   public:
    explicit PathResolver(Volume* v);
    ~PathResolver();
    PathResolver(const PathResolver&) = delete;
    PathResolver& operator=(const PathResolver&) = delete;
    Status Paths(uint64_t ino, const PathFn& fn);

   private:
    struct State;
    std::unique_ptr<State> st_;
  };

  // ---- poison (bad blocks; volume_poison.cc, docs/design.md "Poison") ----
  // A bad block is never handed out again. While files still reference it,
  // it stays theirs, but every read, copy or clone of it fails with EIO and
  // only a write covering the whole block (which maps a fresh one) or
  // dropping it (punch, truncate, unlink) ends that file's part in it; when
  // the last reference goes, the block is retired instead of freed.
  //
  // Records [pb0, pb1) as bad, in one batch: free blocks in it are retired,
  // owned ones poisoned, reserved ones (the superblock copies) noted. With
  // `strict` the call fails (EEXIST) if any block of the range is bad
  // already; without, only the blocks not yet bad are added. Any block of
  // the pool is accepted, [0, block_count).
  // `origin` says where the new blocks came from (Q records; kUnknown
  // records none).
  Status MarkBad(uint64_t pb0, uint64_t pb1, bool strict, const BadOrigin& origin,
                 PoisonOutcome* out) EXCLUDES(mu_);
  // Takes [pb0, pb1) out of the bad list (the memory was repaired): unowned
  // blocks go back to free space, owned ones are served again. ENOENT if no
  // block of the range is bad.
  Status ClearBad(uint64_t pb0, uint64_t pb1, ClearOutcome* out) EXCLUDES(mu_);
  // EINVAL unless [pb0, pb1) is a non-empty range of the pool's blocks.
  Status CheckPoolRange(uint64_t pb0, uint64_t pb1) const;
  // Is any block of [pb0, pb1) bad? Committed state; safe from any thread,
  // and cheap when no block is bad at all.
  bool IsBad(uint64_t pb0, uint64_t pb1);
  // Walks the bad ranges in pool order: fn(pblock, len) returns false to
  // stop. Each range is a B record; adjacent ones are merged.
  using BadFn = std::function<bool(uint64_t pblock, uint64_t len)>;
  void WalkBad(const BadFn& fn);
  // Walks the bad ranges cut into pieces of one origin (BadBlocks::
  // ForEachPiece), in pool order; fn returns false to stop.
  using BadPieceFn = std::function<bool(const BadOriginRecord& piece)>;
  void WalkBadPieces(const BadPieceFn& fn);
  uint64_t bad_blocks();

  // ---- layout leases (volume_lease.cc, docs/dax.md) ----
  // The G records: a lease exists in the store before its holder can store
  // a byte, so that the mount after a daemon crash revokes every recorded
  // holder before it reuses a block. The lease table itself (sessions,
  // revocation) is the daemon's; the Volume keeps the records and makes
  // ranges ready for them.
  //
  // A lease id unique in this store: at Open, one past the largest G id
  // found (1 on a store without any); then counted up. Never 0.
  uint64_t NewLeaseId();
  // Writes r's G record (validated first: EINVAL for a record the decoder
  // would call corrupt) in one batch, committed and the WAL synced before
  // it returns.
  Status RecordLease(const LeaseRecord& r) EXCLUDES(mu_);
  // Deletes the G records of `ids` in one batch (ids without a record are
  // fine), committed (not synced: a record a crash brings back only costs
  // the next mount a look at a holder that is gone).
  Status DropLeases(std::span<const uint64_t> ids) EXCLUDES(mu_);
  // Walks the committed G records in id order; fn returns false to stop. A
  // record that does not decode stops the walk: Corruption (EUCLEAN).
  Status WalkLeases(const std::function<bool(const LeaseRecord&)>& fn) EXCLUDES(mu_);
  // Makes file blocks [fblock, fblock+blocks) of regular file ino safe to
  // store into with no daemon in the way: every hole allocated and zeroed
  // (the size unchanged), every shared block unshared (copy-on-write ahead
  // of time), all in one batch, committed and the WAL synced; then fn gets
  // the range's extents in file order (after the batch, each owned by ino
  // alone, refcount 1). Fails before changing anything with EINVAL (blocks
  // 0, not a regular file), ENXIO (the range ends past the size rounded up
  // to a block), EIO (a pool block of the range is bad), ENOSPC, EROFS.
  // The caller holds ino's I/O lock exclusive (the daemon's per-inode io
  // lock) from before the call until it has used the extents: nothing else
  // may change the file's map in between.
  Status PrepareForStores(uint64_t ino, uint64_t fblock, uint64_t blocks,
                          const std::function<void(const LeasedExtent&)>& fn) EXCLUDES(mu_);
  // The read side: fn gets the extents of [fblock, fblock+blocks) of
  // regular file ino as they are, in file order (holes skipped). EINVAL,
  // ENXIO and EIO as PrepareForStores; changes nothing. The caller holds
  // ino's I/O lock (shared is enough) while it uses the extents.
  Status LeaseExtents(uint64_t ino, uint64_t fblock, uint64_t blocks,
                      const std::function<void(const LeasedExtent&)>& fn) EXCLUDES(mu_);

  // Compares every extent map held in memory with the E records in the
  // store: Corruption naming the first file and block where they differ.
  // For tests and scrubs; maps being edited are waited for.
  Status CheckExtentMaps();
  // How many files' maps, and extents, are in memory.
  size_t extent_map_files() { return extent_maps_.files(); }
  int64_t extent_map_extents() const { return extent_maps_.extents(); }

  const Superblock& superblock() const { return sb_; }
  rocksdb::DB* db() { return db_.get(); }

 private:
  class Txn;
  Volume(std::unique_ptr<rocksdb::DB> db, const Superblock& sb, DataPlane* data);

  // ---- the store (volume.cc) ----
  static Result<std::unique_ptr<Volume>> OpenReadOnlyVolume(const std::string& dir,
                                                            const Superblock& sb, DataPlane* data);
  // Loads free space, refcounts, bad blocks and the reverse map's classes
  // from the store; at Open, before any other thread knows the Volume.
  Status LoadMirrors(const StoreIdentity& id) EXCLUDES(mu_);
  Status Commit(Txn& t) REQUIRES(mu_);
  // Ok, or the error that stopped the store (as ENOSPC or EIO). Caller
  // holds wal_mu_.
  Status StoreWritable() REQUIRES(wal_mu_);
  // Sync's second half: the log made durable; `times` is the outcome of
  // storing pending times before it.
  Status SyncLog(const Status& times) EXCLUDES(mu_);

  // ---- inode records and pending times (volume_inode.cc) ----
  Status LoadInode(Txn& t, uint64_t ino, InodeRecord* out) REQUIRES(mu_);
  void ApplyPendingTimes(InodeRecord* r) EXCLUDES(times_mu_);
  // The fast path's view of ino (meta/attr_cache.h): from the cache, or
  // read from the store and remembered.
  Status LoadAttrs(uint64_t ino, AttrCache::Entry* out);
  // Puts r in the batch. A pending time stays pending unless r carries it,
  // or the operation set that time itself (utimensat: the time it names
  // wins over any read's or fast-path write's).
  struct TimesSet {
    bool atime;
    bool mtime;
  };
  void StoreInode(Txn& t, const InodeRecord& r, TimesSet set = {false, false}) REQUIRES(mu_);
  // At commit: drops the pending times the batch's inode records made stale.
  void DropStoredTimes(const Txn& t) REQUIRES(mu_) EXCLUDES(times_mu_);
  uint64_t NextIno(Txn& t) REQUIRES(mu_);

  // ---- names (volume_namespace.cc) ----
  Status LookupIn(Txn& t, uint64_t dir, std::string_view name, DirentRecord* out) REQUIRES(mu_);
  Status AddEntry(Txn& t, InodeRecord* dir, std::string_view name, uint64_t ino, uint32_t type)
      REQUIRES(mu_);
  Status RemoveEntry(Txn& t, InodeRecord* dir, std::string_view name, const DirentRecord& d)
      REQUIRES(mu_);
  Status DirIsEmpty(Txn& t, uint64_t dir, bool* empty) REQUIRES(mu_);
  // Drops one link of a non-directory; at zero deletes or orphans it.
  Status DropLink(Txn& t, InodeRecord* r, const LastLinkFn& last_link) REQUIRES(mu_);
  // `orphaned`: the inode has an O record to delete too.
  // Drops an empty directory that loses its name: deleted, or orphaned
  // with nlink 0 while last_link says it is open.
  Status DropDir(Txn& t, InodeRecord* r, const LastLinkFn& last_link) REQUIRES(mu_);
  Status DeleteInode(Txn& t, const InodeRecord& r, bool orphaned) REQUIRES(mu_);

  // ---- extent-map and reverse-map editing (extent_edit.cc) ----
  // The only code that writes E and R records; the rest of Volume changes a
  // file's mapping through these. Each edit keeps the reverse map and,
  // through DropBlocks, refcounts and free space in step, in the caller's
  // Txn.
  // Reads ino's committed E records into *out, validated (the loader of
  // extent_maps_: the only read of E records while mounted).
  Status LoadExtents(uint64_t ino, FileExtents::Map* out);
  using ExtentFn = std::function<bool(const Extent&)>;
  Status WalkExtents(Txn& t, uint64_t ino, uint64_t fb0, uint64_t fb1, const ExtentFn& fn)
      REQUIRES(mu_);
  Status UnmapRange(Txn& t, InodeRecord* r, uint64_t fb0, uint64_t fb1) REQUIRES(mu_);
  // *merged (if given) is the extent e became part of.
  Status MapExtent(Txn& t, InodeRecord* r, const Extent& e, Extent* merged = nullptr) REQUIRES(mu_);
  // Allocates blocks for every hole in [fb0, fb1), zeroing the parts of new
  // blocks outside [zero_keep_off, zero_keep_end) (bytes the caller is about
  // to write). Nothing is written to existing blocks.
  Status FillHoles(Txn& t, InodeRecord* r, uint64_t fb0, uint64_t fb1, uint64_t keep_off,
                   uint64_t keep_end) REQUIRES(mu_);
  // Takes `len` free blocks for file blocks from `fblock` on, as few runs as
  // free space allows, starting at pool block `goal`; appends each run
  // (file block, pool block, length) to *out. ENOSPC when the pool runs out
  // (what was taken goes back with the batch's rollback).
  Status AllocateFor(uint64_t fblock, uint64_t len, uint64_t goal, std::vector<Extent>* out)
      REQUIRES(mu_);
  // Points r's file blocks [to.fblock, to.fend()), all inside one mapped
  // extent, at pool blocks to.pblock..., dropping a reference to the old ones.
  Status Repoint(Txn& t, InodeRecord* r, const Extent& to) REQUIRES(mu_);
  // Maps n blocks of src at file block sfb into dst at dfb, sharing them;
  // dst's range must be a hole.
  Status ShareBlocks(Txn& t, InodeRecord* src, uint64_t sfb, InodeRecord* dst, uint64_t dfb,
                     uint64_t n) REQUIRES(mu_);
  void PutRmap(Txn& t, uint64_t pblock, uint64_t len, uint64_t ino, uint64_t fblock) REQUIRES(mu_);
  // Splits the extent of r that covers file block fb (if one starts before
  // it), so that an extent starts at fb.
  Status SplitAt(Txn& t, InodeRecord* r, uint64_t fb) REQUIRES(mu_);
  // Moves every extent of r at or after file block `from` by `delta`
  // blocks: down (delta < 0) into a range the caller has unmapped, or up.
  // No extent may start before `from` and reach past it.
  Status ShiftExtents(Txn& t, InodeRecord* r, uint64_t from, int64_t delta) REQUIRES(mu_);

  // ---- data (volume_data.cc) ----
  Status ZeroBytes(Txn& t, uint64_t ino, uint64_t off, uint64_t len) REQUIRES(mu_);
  Status Truncate(Txn& t, InodeRecord* r, uint64_t size) REQUIRES(mu_);
  // Stores len bytes at off, allocating holes and unsharing shared blocks
  // first; grows the size. Privileges and times are the caller's business.
  Status WriteIn(Txn& t, InodeRecord* r, uint64_t off, const char* src, uint64_t len) REQUIRES(mu_);
  // WriteIn's two halves: every allocation and copy-on-write the range
  // needs, then the bytes. Nothing that can fail for lack of space comes
  // after bytes are stored in place, so a failed batch leaves data as it was.
  Status PrepareWrite(Txn& t, InodeRecord* r, uint64_t off, uint64_t len) REQUIRES(mu_);
  Status StoreBytes(Txn& t, InodeRecord* r, uint64_t off, const char* src, uint64_t len)
      REQUIRES(mu_);
  // Copies [off, off+len) of ino, as this batch sees it, into dst.
  Status ReadIn(Txn& t, uint64_t ino, uint64_t off, uint64_t len, char* dst) REQUIRES(mu_);
  // What a change of a file's bytes takes away: set-id bits (unless who is
  // privileged) and file capabilities.
  // True if anything was dropped.
  bool DropWritePrivileges(Txn& t, InodeRecord* r, const Caller& who) REQUIRES(mu_);

  // ---- fallocate (volume_fallocate.cc) ----
  Status ShiftRange(uint64_t ino, int mode, uint64_t off, uint64_t len, const Caller& who,
                    InodeRecord* out) EXCLUDES(mu_);

  // ---- refcounts and reflink (volume_share.cc) ----
  // refs_ reflects a batch's edits at once.
  // Adds delta (+1 or -1) to the refcount of each block of [pb0, pb1), all
  // owned. Blocks left with no reference are released.
  Status AdjustRefs(Txn& t, uint64_t pb0, uint64_t pb1, int delta) REQUIRES(mu_);
  // One reference of r's to [pb0, pb0+len) goes away.
  Status DropBlocks(Txn& t, const InodeRecord& r, uint64_t pb0, uint64_t len) REQUIRES(mu_);
  // Gives r its own blocks for every shared block in file blocks [fb0, fb1),
  // copying the old bytes except those in [keep_off, keep_end), which the
  // caller is about to overwrite.
  Status Unshare(Txn& t, InodeRecord* r, uint64_t fb0, uint64_t fb1, uint64_t keep_off,
                 uint64_t keep_end) REQUIRES(mu_);
  // Gives r new blocks for the mapped pieces (file block, pool block,
  // length), copying the old bytes except those in [keep_off, keep_end);
  // the old blocks lose r's reference. The old bytes stay as they were until
  // the batch commits.
  Status MoveBlocks(Txn& t, InodeRecord* r, const std::vector<Extent>& pieces, uint64_t keep_off,
                    uint64_t keep_end) REQUIRES(mu_);
  // Where copy-on-write puts new blocks for the piece (file block, old pool
  // block, length) of r: in line with r's own blocks of the same window of
  // kCowWindow file blocks (or a neighbouring window's), else at the
  // matching offset of a free aligned window (docs/design.md, "Where new
  // blocks go"). `fresh` are blocks this operation took and has not mapped yet.
  uint64_t CowGoal(Txn& t, const InodeRecord& r, const Extent& piece,
                   const std::vector<Extent>& fresh) REQUIRES(mu_);
  // Copies [off, off+len) of ino, as committed, into dst, without mu_ (the
  // caller holds the file's I/O lock); EIO for a bad block.
  Status ReadCommitted(uint64_t ino, uint64_t off, uint64_t len, char* dst) EXCLUDES(mu_);
  // Dedupe's and CopyRange's check, under mu_, that the two inodes read
  // before it are unchanged; loads the current records into *src and *dst.
  Status ReloadUnchanged(Txn& t, uint64_t src_ino, uint64_t dst_ino, InodeRecord* src,
                         InodeRecord* dst) REQUIRES(mu_);
  // Is any block of [pb0, pb1) shared, as committed? For callers outside mu_.
  bool SharedNow(uint64_t pb0, uint64_t pb1) EXCLUDES(mu_);
  // The common end of Clone and CopyRange.
  Status FinishRemap(Txn& t, InodeRecord* src, InodeRecord* to, uint64_t end, const Caller& who)
      REQUIRES(mu_);

  // ---- layout leases (volume_lease.cc) ----
  // Emits the mapped pieces of [fblock, fblock+blocks) of ino from the
  // committed map (the caller holds the I/O lock); EIO if one is bad.
  Status EmitLeaseExtents(uint64_t ino, uint64_t fblock, uint64_t blocks,
                          const std::function<void(const LeasedExtent&)>& fn) EXCLUDES(mu_);

  // ---- bad blocks (volume_poison.cc) ----
  // Blocks whose last reference went: to free space, except bad ones, which
  // are retired (they stay in their B record only).
  void ReleaseBlocks(uint64_t pblock, uint64_t len) REQUIRES(mu_);
  // For a write of [keep_off, keep_end): maps a fresh block in place of
  // every bad block of r's in file blocks [fb0, fb1) that the write covers
  // whole; EIO if it would cover one only in part.
  Status ReplaceBadBlocks(Txn& t, InodeRecord* r, uint64_t fb0, uint64_t fb1, uint64_t keep_off,
                          uint64_t keep_end) REQUIRES(mu_);
  // EIO if any block of [pb0, pb1) is bad; for the copies and shares that
  // would hand a bad block's bytes to someone.
  Status RefuseBad(uint64_t pb0, uint64_t pb1, const char* what) REQUIRES(mu_);

  std::unique_ptr<rocksdb::DB> db_;
  // Options::read_only. Set at Open, before any other thread knows the
  // Volume; never changed.
  bool read_only_ = false;
  // SetReadOnly(true): remounted_ro_ stops new pending times (set under
  // times_mu_, so none slips in after the flush), commits_refused_ then
  // refuses commits once they are stored. Both false again at remount,rw.
  std::atomic<bool> remounted_ro_{false};
  std::atomic<bool> commits_refused_{false};
  // On a read-only Volume, the plane data_ points at: the caller's, with
  // every store refused (volume.cc).
  std::unique_ptr<DataPlane> read_only_plane_;
  Superblock sb_;
  std::string pool_path_;  // Options::pool_path
  DataPlane* data_;
  // The store's write path after an error (volume.cc, "When the store's
  // filesystem fails"). wal_mu_ is a leaf under mu_: held around every
  // DB::Write (Commit) and SyncWAL (Sync, the destructor), so that a sync
  // never runs on a log writer a concurrent failed write has just marked
  // (RocksDB 7.8 asserts on that). wal_suspect_: a DB::Write failed, so a
  // log writer may carry that failure and must not be synced.
  Mutex wal_mu_ ACQUIRED_AFTER(mu_, refs_mu_);
  bool wal_suspect_ GUARDED_BY(wal_mu_) = false;
  std::shared_ptr<StoreHealth> health_;
  std::string dir_;  // the store's directory
  Mutex mu_;         // serializes mutations: every Txn lives under it
  FreeSpace free_ GUARDED_BY(mu_);
  // Refcounts of shared blocks. Edited under mu_; an operation that edits
  // them holds refs_mu_ exclusive from its first edit until it commits or
  // rolls back (Txn::LockRefcounts), so readers outside mu_ (shared, through
  // committed_refs) see committed state only.
  RefcountMap refs_ GUARDED_BY(mu_);
  SharedMutex refs_mu_ ACQUIRED_AFTER(mu_);
  const RefcountMap& committed_refs() REQUIRES_SHARED(refs_mu_);
  uint64_t next_ino_ GUARDED_BY(mu_) = 0;
  // The committed M next_ino record: no inode at or above it was handed out
  // (NextIno reserves kInoReserve numbers at a time).
  uint64_t ino_limit_ GUARDED_BY(mu_) = 0;
  static constexpr uint64_t kInoReserve = 1024;
  uint64_t inodes_ GUARDED_BY(mu_) = 0;  // inodes in use, mirrored by the M "inodes" record
  // free_.free_blocks() and inodes_ as last committed, for Stats.
  std::atomic<uint64_t> committed_free_{0};
  std::atomic<uint64_t> committed_inodes_{0};
  // What the overwrite fast path needs of an inode; kept exact by Commit.
  AttrCache attrs_;
  // The extent maps of the files in use, authoritative (extent_maps.h).
  ExtentMaps extent_maps_;
  // Length classes that hold reverse-map records (bit c: class c). Bits are
  // only ever set while mounted: a stale bit costs a seek, a missing one
  // would hide owners.
  std::atomic<uint64_t> rmap_classes_{0};
  // Bad blocks, mirrored by the B records. Changed only under mu_ (and
  // bad_mu_ exclusive); readers outside mu_ take bad_mu_ shared (through
  // committed_bad), and skip it while bad_count_ is 0.
  BadBlocks bad_ GUARDED_BY(mu_);
  SharedMutex bad_mu_ ACQUIRED_AFTER(mu_);
  const BadBlocks& committed_bad() REQUIRES_SHARED(bad_mu_);
  std::atomic<uint64_t> bad_count_{0};
  // The next lease id NewLeaseId hands out (set at Open).
  std::atomic<uint64_t> next_lease_id_{1};
  // Times not yet stored: the mtime/ctime of in-place overwrites, and the
  // atime of reads (TouchAtime). Its own lock, a leaf (taken inside mu_,
  // never the other way round), so that reads and fast-path writes never
  // wait behind a batch being built.
  struct PendingTimes {
    bool has_mctime = false;
    Timespec mctime;  // mtime and ctime
    bool has_atime = false;
    Timespec atime;
    void ApplyTo(InodeRecord* r) const {
      if (has_mctime) r->mtime = r->ctime = mctime;
      if (has_atime) r->atime = atime;
    }
  };
  Mutex times_mu_ ACQUIRED_AFTER(mu_);
  std::unordered_map<uint64_t, PendingTimes> pending_times_ GUARDED_BY(times_mu_);
};

Timespec Now();

}  // namespace daxref
