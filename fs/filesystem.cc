#include "fs/filesystem.h"

#include <fcntl.h>
#include <linux/fs.h>
#include <spdlog/spdlog.h>
#include <sys/mman.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/sysmacros.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <cstring>
#include <string>
#include <vector>

#include "fs/ioctl_handler.h"
#include "meta/format.h"

namespace daxref {

int KernelErrno(const Status& s) {
  return s.err() == 0 || s.err() == EUCLEAN ? EIO : s.err();
}

Caller CallerOf(fuse_req_t req) {
  const fuse_ctx* c = fuse_req_ctx(req);
  Caller who{c->uid, c->gid};
  // The request is valid while it is served, which is as long as a Caller
  // made from it is used.
  who.context = req;
  who.in_supplementary_group = [](const void* r, uint32_t gid) {
    gid_t groups[256];
    const int n = fuse_req_getgroups(static_cast<fuse_req_t>(const_cast<void*>(r)), 256, groups);
    for (int i = 0; i < std::min(n, 256); ++i)
      if (groups[i] == gid) return true;
    return false;
  };
  return who;
}

namespace {

Filesystem* Fs(fuse_req_t req) {
  return static_cast<Filesystem*>(fuse_req_userdata(req));
}

void ReplyErr(fuse_req_t req, const Status& s) {
  const int err = KernelErrno(s);
  if (s.err() == EUCLEAN) {
    // The message names the record. The operation wrote nothing.
    spdlog::error("metadata corruption: {}; the request fails with EIO (run fsck.daxref)",
                  s.message());
  } else if (err != ENOENT) {
    spdlog::debug("request failed: {} ({})", s.message(), strerror(err));
  }
  fuse_reply_err(req, err);
}

// Reads of holes are served from here: an anonymous mapping that is never
// written, so every page of it is the kernel's shared zero page.
const char* ZeroRegion() {
  static const char* zeros = [] {
    void* p = mmap(nullptr, 2 << 20, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    return p == MAP_FAILED ? nullptr : static_cast<const char*>(p);
  }();
  return zeros;
}
constexpr size_t kZeroRegionSize = 2 << 20;

// ---- namespace ----

// How long statfs waits for the reclaim of an unlinked file that nothing
// has open (docs/design.md, "Orphans and reclaim"): the kernel's FORGET
// normally comes within microseconds; one that does not come within this
// is held by the kernel (a cwd, an O_PATH descriptor) and may stay long.
constexpr std::chrono::milliseconds kReclaimGrace{500};

void Init(void* userdata, fuse_conn_info* conn) {
  conn->max_write = 1 << 20;
  conn->max_readahead = 1 << 20;
  if (conn->capable & FUSE_CAP_PARALLEL_DIROPS) conn->want |= FUSE_CAP_PARALLEL_DIROPS;
  // Splice would hand the kernel pages of the pool mapping to hold on to
  // beyond the reply; copies out of the mapping keep block reuse safe.
  conn->want &= ~(FUSE_CAP_SPLICE_READ | FUSE_CAP_SPLICE_WRITE | FUSE_CAP_SPLICE_MOVE);
  // Never the writeback cache: a write() that returned must already be in
  // the pool, or a daemon crash would lose it.
  conn->want &= ~FUSE_CAP_WRITEBACK_CACHE;
  // Every change to file data reaches the kernel's cache through the kernel
  // itself, or is announced with notify_inval_inode (ioctl clones). So a
  // new mtime seen in an attribute reply is not a reason to drop every
  // cached page of the file, which with auto_inval_data the kernel would do,
  // in the caller's time: 0.1 s per GiB cached, after every write.
  conn->want &= ~FUSE_CAP_AUTO_INVAL_DATA;
  // NFS export and open_by_handle_at: a handle holds the inode number and
  // generation, and for an inode that left the kernel's cache the kernel
  // asks LOOKUP(ino, ".") (and ".." for a directory's parent), which Lookup
  // answers (docs/design.md, "NFS export").
  if (conn->capable & FUSE_CAP_EXPORT_SUPPORT) conn->want |= FUSE_CAP_EXPORT_SUPPORT;
  conn->time_gran = 1;
}

// LOOKUP of "." or ".." in `ino`: never sent for a path (the VFS resolves
// those itself), only by the kernel's export operations, to find an inode
// by number from a file handle (".") or a directory's parent (".."). An
// inode that is deleted, or unlinked and held by nothing (it is being
// reclaimed), is ESTALE: the handle outlived its file.
void LookupByHandle(fuse_req_t req, fuse_ino_t ino, const char* name) {
  Filesystem* fs = Fs(req);
  InodeRecord r;
  Status s = fs->volume()->GetInode(ino, &r);
  if (s.ok() && r.nlink == 0) s = Status::Error(ESTALE, "unlinked");
  if (s.ok() && strcmp(name, "..") == 0) {
    if (!S_ISDIR(r.mode)) return (void)fuse_reply_err(req, ENOTDIR);
    uint64_t parent = r.ino == kRootIno ? kRootIno : r.parent;
    s = fs->volume()->GetInode(parent, &r);
  }
  if (s.err() == ENOENT) s = Status::Error(ESTALE, "deleted");
  if (!s.ok()) return ReplyErr(req, s);
  fuse_entry_param e;
  fs->ToEntry(r, &e);
  fs->inodes().AddLookup(r.ino);
  fuse_reply_entry(req, &e);
}

void Lookup(fuse_req_t req, fuse_ino_t parent, const char* name) {
  if (strcmp(name, ".") == 0 || strcmp(name, "..") == 0) return LookupByHandle(req, parent, name);
  Filesystem* fs = Fs(req);
  InodeRecord r;
  Status s = fs->volume()->Lookup(parent, name, &r);
  fuse_entry_param e{};
  if (s.err() == ENOENT) {
    // A negative entry: the kernel may cache the miss.
    e.ino = 0;
    e.entry_timeout = fs->options().entry_timeout;
    fuse_reply_entry(req, &e);
    return;
  }
  if (!s.ok()) return ReplyErr(req, s);
  fs->ToEntry(r, &e);
  fs->inodes().AddLookup(r.ino);
  fuse_reply_entry(req, &e);
}

// The kernel let go of an inode. If it was the last hold on an unlinked
// one, it is reclaimed here, on this request thread, holding nothing: the
// kernel sends FORGET from the eviction that follows the unlink of a file
// nobody has open, before unlink(2) returns, so the space is back by the
// time the caller can ask statfs (docs/design.md, "Orphans and reclaim").
void Forget(fuse_req_t req, fuse_ino_t ino, uint64_t nlookup) {
  Filesystem* fs = Fs(req);
  fuse_reply_none(req);
  if (fs->inodes().Forget(ino, nlookup)) fs->ReclaimNow(ino);
}

void ForgetMulti(fuse_req_t req, size_t count, fuse_forget_data* forgets) {
  Filesystem* fs = Fs(req);
  for (size_t i = 0; i < count; ++i)
    if (fs->inodes().Forget(forgets[i].ino, forgets[i].nlookup)) fs->ReclaimNow(forgets[i].ino);
  fuse_reply_none(req);
}

void GetAttr(fuse_req_t req, fuse_ino_t ino, fuse_file_info*) {
  Filesystem* fs = Fs(req);
  InodeRecord r;
  Status s = fs->volume()->GetInode(ino, &r);
  if (!s.ok()) return ReplyErr(req, s);
  struct stat st;
  Filesystem::ToStat(r, &st);
  fuse_reply_attr(req, &st, fs->options().attr_timeout);
}

Timespec FromTimespec(const struct timespec& t) {
  return Timespec{t.tv_sec, static_cast<uint32_t>(t.tv_nsec)};
}

void SetAttr(fuse_req_t req, fuse_ino_t ino, struct stat* attr, int to_set, fuse_file_info*) {
  Filesystem* fs = Fs(req);
  SetAttrRequest r;
  Timespec now = Now();
  if (to_set & FUSE_SET_ATTR_MODE) r.mode = attr->st_mode;
  if (to_set & FUSE_SET_ATTR_UID) r.uid = attr->st_uid;
  if (to_set & FUSE_SET_ATTR_GID) r.gid = attr->st_gid;
  if (to_set & FUSE_SET_ATTR_SIZE) r.size = attr->st_size;
  if (to_set & FUSE_SET_ATTR_ATIME_NOW)
    r.atime = now;
  else if (to_set & FUSE_SET_ATTR_ATIME)
    r.atime = FromTimespec(attr->st_atim);
  if (to_set & FUSE_SET_ATTR_MTIME_NOW)
    r.mtime = now;
  else if (to_set & FUSE_SET_ATTR_MTIME)
    r.mtime = FromTimespec(attr->st_mtim);
  if (to_set & FUSE_SET_ATTR_CTIME) r.ctime = FromTimespec(attr->st_ctim);
  // chown(f, -1, -1) reaches the daemon as a setattr with nothing to set;
  // Linux filesystems still mark the inode changed.
  if (!r.mode && !r.uid && !r.gid && !r.size && !r.atime && !r.mtime && !r.ctime) r.ctime = now;
  if (r.size && attr->st_size < 0) return (void)fuse_reply_err(req, EINVAL);
  InodeRecord out;
  Status s;
  if (r.size) {
    // Truncation frees blocks: no reader of this inode may be mid-copy.
    auto st = fs->inodes().Get(ino);
    WriterLock io(&st->io);
    // Leases reaching past the new size lose their blocks (or their tail).
    s = fs->RevokeLeases(ino, *r.size, UINT64_MAX, LeaseWhich::kAll, "truncate");
    if (s.ok()) s = fs->volume()->SetAttr(ino, r, CallerOf(req), &out);
  } else {
    s = fs->volume()->SetAttr(ino, r, CallerOf(req), &out);
  }
  if (!s.ok()) return ReplyErr(req, s);
  struct stat st;
  Filesystem::ToStat(out, &st);
  fuse_reply_attr(req, &st, fs->options().attr_timeout);
}

void ReadLink(fuse_req_t req, fuse_ino_t ino) {
  std::string target;
  Status s = Fs(req)->volume()->ReadLink(ino, &target);
  if (!s.ok()) return ReplyErr(req, s);
  fuse_reply_readlink(req, target.c_str());
}

void MakeAndReply(fuse_req_t req, fuse_ino_t parent, const char* name, mode_t mode, dev_t rdev,
                  const char* link) {
  Filesystem* fs = Fs(req);
  InodeRecord r;
  Status s = fs->volume()->MakeNode(parent, name, mode, rdev, CallerOf(req), link ? link : "", &r);
  if (!s.ok()) return ReplyErr(req, s);
  fuse_entry_param e;
  fs->ToEntry(r, &e);
  fs->inodes().AddLookup(r.ino);
  fuse_reply_entry(req, &e);
}

void MkNod(fuse_req_t req, fuse_ino_t parent, const char* name, mode_t mode, dev_t rdev) {
  if (!S_ISREG(mode) && !S_ISFIFO(mode) && !S_ISCHR(mode) && !S_ISBLK(mode) && !S_ISSOCK(mode))
    return (void)fuse_reply_err(req, EINVAL);
  MakeAndReply(req, parent, name, mode, rdev, nullptr);
}

void MkDir(fuse_req_t req, fuse_ino_t parent, const char* name, mode_t mode) {
  MakeAndReply(req, parent, name, S_IFDIR | (mode & 07777), 0, nullptr);
}

void Symlink(fuse_req_t req, const char* link, fuse_ino_t parent, const char* name) {
  MakeAndReply(req, parent, name, S_IFLNK | 0777, 0, link);
}

void Link(fuse_req_t req, fuse_ino_t ino, fuse_ino_t newparent, const char* newname) {
  Filesystem* fs = Fs(req);
  InodeRecord r;
  Status s = fs->volume()->Link(ino, newparent, newname, &r);
  if (!s.ok()) return ReplyErr(req, s);
  fuse_entry_param e;
  fs->ToEntry(r, &e);
  fs->inodes().AddLookup(r.ino);
  fuse_reply_entry(req, &e);
}

void Unlink(fuse_req_t req, fuse_ino_t parent, const char* name) {
  Filesystem* fs = Fs(req);
  InodeRecord victim;
  Status s = fs->volume()->Unlink(parent, name, fs->LastLinkCheck(), &victim);
  if (!s.ok()) return ReplyErr(req, s);
  fuse_reply_err(req, 0);
}

void Rmdir(fuse_req_t req, fuse_ino_t parent, const char* name) {
  Filesystem* fs = Fs(req);
  Status s = fs->volume()->Rmdir(parent, name, fs->LastLinkCheck());
  if (!s.ok()) return ReplyErr(req, s);
  fuse_reply_err(req, 0);
}

void Rename(fuse_req_t req, fuse_ino_t parent, const char* name, fuse_ino_t newparent,
            const char* newname, unsigned int flags) {
  Filesystem* fs = Fs(req);
  InodeRecord replaced;
  Status s = fs->volume()->Rename(parent, name, newparent, newname, flags, fs->LastLinkCheck(),
                                  &replaced, CallerOf(req));
  if (!s.ok()) return ReplyErr(req, s);
  fuse_reply_err(req, 0);
}

// ---- files ----

void Open(fuse_req_t req, fuse_ino_t ino, fuse_file_info* fi) {
  Filesystem* fs = Fs(req);
  // Registered before the inode is read, so an unlink racing with this open
  // either sees the handle (and orphans the inode) or makes Open fail.
  if (!fs->inodes().Open(ino)) return (void)fuse_reply_err(req, ENOENT);
  InodeRecord r;
  Status s = fs->volume()->GetInode(ino, &r);
  if (s.ok() && S_ISDIR(r.mode)) s = Status::Error(EISDIR, "is a directory");
  if (s.ok() && (fi->flags & O_TRUNC)) {
    // The kernel uses atomic O_TRUNC (libfuse asks for it): the truncation
    // is this open's to do, with the same rules as a size change by setattr.
    auto state = fs->inodes().Get(ino);
    WriterLock io(&state->io);
    SetAttrRequest trunc;
    trunc.size = 0;
    s = fs->RevokeLeases(ino, 0, UINT64_MAX, LeaseWhich::kAll, "truncate");
    if (s.ok()) s = fs->volume()->SetAttr(ino, trunc, CallerOf(req), &r);
  }
  if (!s.ok()) {
    if (fs->inodes().Release(ino)) fs->ReclaimNow(ino);
    return ReplyErr(req, s);
  }
  // Every change to file data passes through this daemon and the kernel, so
  // the kernel's cached pages stay valid across opens. Except when a read
  // through this open is due to update the atime: a read the page cache
  // answers never reaches the daemon, so the cache goes (docs/design.md,
  // "Access times").
  fi->keep_cache = 1;
  if ((fi->flags & O_ACCMODE) != O_WRONLY && AtimeNeedsUpdate(fs->atime(), r, false, Now()))
    fi->keep_cache = 0;
  // While a write lease exists the holder stores behind the kernel's back:
  // this open is served uncached (docs/dax.md, "Coherency").
  if (fs->leases() && fs->leases()->HasWriteLease(ino)) {
    fi->direct_io = 1;
    fi->keep_cache = 0;
  }
  fi->noflush = 1;
  // O_DIRECT is the kernel's own direct path (fuse_direct_IO), not direct_io:
  // it writes back and invalidates the page cache around each direct request
  // and leaves mmap working (docs/design.md, "O_DIRECT").
  fi->fh = fs->handles().Add(ino, fi->flags);
  if (fuse_reply_open(req, fi) != 0) {
    fs->handles().Remove(fi->fh);
    if (fs->inodes().Release(ino)) fs->ReclaimNow(ino);
  }
}

void Create(fuse_req_t req, fuse_ino_t parent, const char* name, mode_t mode, fuse_file_info* fi) {
  Filesystem* fs = Fs(req);
  InodeRecord r;
  Status s =
      fs->volume()->MakeNode(parent, name, S_IFREG | (mode & 07777), 0, CallerOf(req), "", &r);
  if (!s.ok()) return ReplyErr(req, s);
  fuse_entry_param e;
  fs->ToEntry(r, &e);
  fs->inodes().AddLookup(r.ino);
  fs->inodes().Open(r.ino);  // a new inode: nothing can have deleted it yet
  fi->keep_cache = 1;
  fi->noflush = 1;
  fi->fh = fs->handles().Add(r.ino, fi->flags);
  if (fuse_reply_create(req, &e, fi) != 0) {
    fs->handles().Remove(fi->fh);
    bool released = fs->inodes().Release(r.ino);
    if (fs->inodes().Forget(r.ino, 1) || released) fs->ReclaimNow(r.ino);
  }
}

void Read(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off, fuse_file_info*) {
  Filesystem* fs = Fs(req);
  auto state = fs->inodes().Get(ino);
  // Held until the reply has been copied out of the mapping: no block of
  // this file can be freed and reused meanwhile.
  ReaderLock io(&state->io);
  InodeRecord r;
  Status s = fs->volume()->GetInode(ino, &r);
  if (!s.ok()) return ReplyErr(req, s);
  if (off < 0) return (void)fuse_reply_err(req, EINVAL);
  // The kernel drops the atime it caches once this read is answered (it
  // asks again at the next stat), so the new one is seen at once.
  if (Timespec now = Now(); AtimeNeedsUpdate(fs->atime(), r, false, now))
    fs->volume()->TouchAtime(ino, now);
  uint64_t uoff = off;
  if (uoff >= r.size || size == 0) return (void)fuse_reply_buf(req, nullptr, 0);
  uint64_t len = std::min<uint64_t>(size, r.size - uoff);
  std::vector<iovec> iov;
  iov.reserve(8);
  const char* base = fs->pool()->base();
  bool bad = false;
  Status outside;
  s = fs->volume()->MapRange(ino, uoff, len, [&](const MappedSegment& seg) {
    if (!seg.hole &&
        fs->volume()->IsBad(seg.pool_off >> kBlockShift,
                            (seg.pool_off + seg.len + kBlockSize - 1) >> kBlockShift)) {
      bad = true;
      return false;
    }
    if (seg.hole) {
      for (uint64_t done = 0; done < seg.len;) {
        size_t n = std::min<uint64_t>(seg.len - done, kZeroRegionSize);
        iov.push_back({const_cast<char*>(ZeroRegion()), n});
        done += n;
      }
    } else {
      // The extent was checked against the pool's geometry when it was
      // decoded; the mapping checks again, so that no reply ever points
      // outside it.
      if (!fs->pool()->Contains(seg.pool_off, seg.len)) {
        outside = Status::Corruption("inode " + std::to_string(ino) + " maps file bytes at " +
                                     std::to_string(seg.off) + " outside the pool");
        return false;
      }
      iov.push_back({const_cast<char*>(base + seg.pool_off), seg.len});
    }
    return true;
  });
  if (!s.ok()) return ReplyErr(req, s);
  if (!outside.ok()) return ReplyErr(req, outside);
  // The whole request fails, never a short read: FUSE takes a short read
  // for the end of the file. The kernel then asks again page by page for
  // what its caller wanted, so the good pages around a bad block still read.
  if (bad) return (void)fuse_reply_err(req, EIO);
  if (fuse_reply_iov(req, iov.data(), static_cast<int>(iov.size())) == -EFAULT) {
    // The kernel's copy out of the mapping faulted: memory went bad under
    // it (the kernel has failed the read with EIO). Find the bad block;
    // the pool's fault sink starts the poison path for it.
    for (const iovec& v : iov) {
      const char* p = static_cast<const char*>(v.iov_base);
      if (p < base || p >= base + fs->pool()->size()) continue;  // zeros
      uint64_t bad_off = 0;
      if (!fs->pool()->CheckReadable(p - base, v.iov_len, &bad_off).ok()) break;
    }
  }
}

void Write(fuse_req_t req, fuse_ino_t ino, const char* buf, size_t size, off_t off,
           fuse_file_info*) {
  Filesystem* fs = Fs(req);
  if (off < 0) return (void)fuse_reply_err(req, EINVAL);
  auto state = fs->inodes().Get(ino);
  WriterLock io(&state->io);
  InodeRecord r;
  bool dropped = false;
  size_t written = 0;
  // A write that cannot store in place (Volume::Write's fast path) moves or
  // adds blocks under a lease of the range: those leases go first.
  Status s;
  if (size > 0 && fs->leases() && fs->leases()->HasLeases(ino) &&
      !fs->OverwritesInPlace(ino, off, size))
    s = fs->RevokeLeases(ino, off, size, LeaseWhich::kAll, "write");
  if (s.ok())
    s = fs->volume()->Write(ino, off, buf, size, CallerOf(req), &r, &dropped, &written);
  if (!s.ok()) return ReplyErr(req, s);
  // The daemon, not the kernel, took set-id bits or a capability away
  // (handle_killpriv): the kernel learns it before the writer returns, or
  // stat and exec would go on seeing the old mode for the attribute timeout.
  if (dropped) fs->InvalidateAttributes(ino);
  fuse_reply_write(req, written);  // short when the pool filled up
}

void Flush(fuse_req_t req, fuse_ino_t, fuse_file_info*) {
  fuse_reply_err(req, 0);
}

void Release(fuse_req_t req, fuse_ino_t ino, fuse_file_info* fi) {
  Filesystem* fs = Fs(req);
  fs->handles().Remove(fi->fh);
  bool reclaim = fs->inodes().Release(ino);
  // This inode's pending times only: a close must not commit every
  // other file's (the daemon's timer and sync do that).
  Status s = fs->volume()->FlushTimes(ino);
  if (!s.ok()) spdlog::warn("storing file times failed: {}", s.message());
  fuse_reply_err(req, 0);
  if (reclaim) fs->ReclaimNow(ino);
}

void Fsync(fuse_req_t req, fuse_ino_t ino, int, fuse_file_info*) {
  Filesystem* fs = Fs(req);
  // The file's own pool ranges first (msync on a page-granular pool), then
  // the metadata log, so the synced metadata never points at unsynced data.
  // A failed msync (the pool's host filesystem could not write pages back)
  // is this fsync's error, as it would be on any filesystem.
  Status s = fs->volume()->SyncFile(ino);
  if (!s.ok()) {
    spdlog::error("fsync: {}", s.message());
    return ReplyErr(req, s);
  }
  fuse_reply_err(req, 0);
}

void FsyncDir(fuse_req_t req, fuse_ino_t, int, fuse_file_info*) {
  Status s = Fs(req)->volume()->Sync();
  if (!s.ok()) return ReplyErr(req, s);
  fuse_reply_err(req, 0);
}

void Fallocate(fuse_req_t req, fuse_ino_t ino, int mode, off_t off, off_t len, fuse_file_info*) {
  Filesystem* fs = Fs(req);
  if (off < 0 || len <= 0) return (void)fuse_reply_err(req, EINVAL);
  auto state = fs->inodes().Get(ino);
  WriterLock io(&state->io);
  InodeRecord r;
  Status s = fs->RevokeForFallocate(ino, mode, off, len);
  if (s.ok()) s = fs->volume()->Fallocate(ino, mode, off, len, CallerOf(req), &r);
  if (!s.ok()) return ReplyErr(req, s);
  // Set-id bits an unprivileged fallocate dropped, and st_blocks, changed
  // behind the kernel's back.
  fs->InvalidateAttributes(ino);
  fuse_reply_err(req, 0);
}

void Lseek(fuse_req_t req, fuse_ino_t ino, off_t off, int whence, fuse_file_info*) {
  Filesystem* fs = Fs(req);
  if (off < 0) return (void)fuse_reply_err(req, ENXIO);
  if (whence != SEEK_DATA && whence != SEEK_HOLE) return (void)fuse_reply_err(req, EINVAL);
  uint64_t out = 0;
  Status s = fs->volume()->Seek(ino, off, whence, &out);
  if (!s.ok()) return ReplyErr(req, s);
  fuse_reply_lseek(req, out);
}

void Ioctl(fuse_req_t req, fuse_ino_t ino, unsigned int cmd, void*, fuse_file_info* fi,
           unsigned flags, const void* in_buf, size_t in_bufsz, size_t out_bufsz) {
  HandleIoctl(Fs(req), req, ino, cmd, fi, flags, in_buf, in_bufsz, out_bufsz);
}

// The kernel holds the destination's inode lock, and drops the pages it
// cached for the destination range itself once this returns: nothing to
// notify. A reply carries a 32-bit count, so one call moves less than 2 GiB
// (callers loop, as for any short copy).
void CopyFileRange(fuse_req_t req, fuse_ino_t ino_in, off_t off_in, fuse_file_info*,
                   fuse_ino_t ino_out, off_t off_out, fuse_file_info*, size_t len, int flags) {
  Filesystem* fs = Fs(req);
  if (flags != 0 || off_in < 0 || off_out < 0) return (void)fuse_reply_err(req, EINVAL);
  constexpr size_t kMaxPerCall = 0x7ffff000;  // the kernel's MAX_RW_COUNT
  uint64_t copied = 0;
  InodeRecord out;
  Status s;
  {
    SourceDestLock locks(fs->inodes(), ino_in, ino_out);
    const uint64_t n = std::min(len, kMaxPerCall);
    s = fs->RevokeLeases(ino_out, off_out, n, LeaseWhich::kAll, "copy_file_range into");
    if (s.ok())
      s = fs->RevokeLeases(ino_in, off_in, n, LeaseWhich::kWrite, "copy_file_range from");
    if (s.ok())
      s = fs->volume()->CopyRange(ino_in, off_in, ino_out, off_out, n, CallerOf(req), &copied,
                                  &out);
  }
  if (!s.ok()) return ReplyErr(req, s);
  fuse_reply_write(req, copied);
}

// ---- directories ----

// An open directory is counted as an open file is: removed while open, it
// keeps its record (nlink 0) until the last release, so fstat still answers.
void OpenDir(fuse_req_t req, fuse_ino_t ino, fuse_file_info* fi) {
  Filesystem* fs = Fs(req);
  if (!fs->inodes().Open(ino)) return (void)fuse_reply_err(req, ENOENT);
  InodeRecord r;
  Status s = fs->volume()->GetInode(ino, &r);
  if (s.ok() && !S_ISDIR(r.mode)) s = Status::Error(ENOTDIR, "not a directory");
  if (s.ok()) fi->fh = fs->handles().AddDir();
  if (!s.ok() || fuse_reply_open(req, fi) != 0) {
    if (s.ok()) fs->handles().RemoveDir(fi->fh);
    if (fs->inodes().Release(ino)) fs->ReclaimNow(ino);
    if (!s.ok()) ReplyErr(req, s);
  }
}

// One walk of a directory handle ends where the directory's cookies stood at
// its first readdir (or its last rewind): entries renamed or created since
// are not returned, so a walk that renames what it reads ends and meets
// each entry at most once (Volume::ReadDir).
void DoReadDir(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off, fuse_file_info* fi,
               bool plus) {
  Filesystem* fs = Fs(req);
  std::vector<char> buf(size);
  size_t used = 0;
  Status inner;
  uint64_t end = fs->handles().WalkEnd(fi->fh, off);
  bool new_walk = end == 0;
  Status s = fs->volume()->ReadDir(
      ino, off, &end, [&](std::string_view name, uint64_t child, uint32_t type, uint64_t cookie) {
        std::string n(name);
        size_t need;
        if (plus) {
          fuse_entry_param e{};
          bool dot = name == "." || name == "..";
          if (dot) {
            // The kernel takes no reference for "." and "..": give no inode.
            e.attr.st_ino = child;
            e.attr.st_mode = S_IFDIR;
          } else {
            InodeRecord r;
            inner = fs->volume()->GetInode(child, &r);
            if (inner.err() == ENOENT) return true;  // removed meanwhile
            if (!inner.ok()) return false;
            fs->ToEntry(r, &e);
          }
          need = fuse_add_direntry_plus(req, buf.data() + used, size - used, n.c_str(), &e, cookie);
          if (need > size - used) return false;
          if (!dot) fs->inodes().AddLookup(child);
        } else {
          struct stat st {};
          st.st_ino = child;
          st.st_mode = type;
          need = fuse_add_direntry(req, buf.data() + used, size - used, n.c_str(), &st, cookie);
          if (need > size - used) return false;
        }
        used += need;
        return true;
      });
  if (!s.ok()) return ReplyErr(req, s);
  if (new_walk) fs->handles().SetWalkEnd(fi->fh, end);
  if (!inner.ok() && used == 0) return ReplyErr(req, inner);
  // getdents updates the directory's atime as read does a file's; the
  // kernel drops its cached atime after each readdir reply. The inode is
  // read only when the policy may update it (not under noatime, nodiratime).
  InodeRecord dir;
  if (Timespec now = Now(); UpdatesAtime(fs->atime(), true) &&
                            fs->volume()->GetInode(ino, &dir).ok() &&
                            AtimeNeedsUpdate(fs->atime(), dir, true, now))
    fs->volume()->TouchAtime(ino, now);
  fuse_reply_buf(req, buf.data(), used);
}

void ReadDir(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off, fuse_file_info* fi) {
  DoReadDir(req, ino, size, off, fi, false);
}

void ReadDirPlus(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off, fuse_file_info* fi) {
  DoReadDir(req, ino, size, off, fi, true);
}

void ReleaseDir(fuse_req_t req, fuse_ino_t ino, fuse_file_info* fi) {
  Filesystem* fs = Fs(req);
  fs->handles().RemoveDir(fi->fh);
  bool reclaim = fs->inodes().Release(ino);
  fuse_reply_err(req, 0);
  if (reclaim) fs->ReclaimNow(ino);
}

void StatFs(fuse_req_t req, fuse_ino_t) {
  // A file unlinked just before is reclaimed when the kernel's FORGET
  // arrives, maybe on another thread right now: wait for that (bounded).
  Fs(req)->inodes().AwaitReclaims(kReclaimGrace);
  VolumeStats v = Fs(req)->volume()->Stats();
  struct statvfs st {};
  st.f_bsize = kBlockSize;
  st.f_frsize = kBlockSize;
  // The metadata store is counted as used (docs/design.md, "Metadata
  // space"): total = pool data blocks + the store's blocks on its host.
  st.f_blocks = v.data_blocks + (v.store_bytes + kBlockSize - 1) / kBlockSize;
  st.f_bfree = v.free_blocks;
  st.f_bavail = v.free_blocks;
  // Inodes are records in the metadata store, not a fixed table: report a
  // large budget so tools that check for free inodes are satisfied.
  st.f_files = uint64_t{1} << 32;
  st.f_ffree = st.f_files - std::min<uint64_t>(v.inodes, st.f_files);
  st.f_favail = st.f_ffree;
  st.f_namemax = kMaxNameLen;
  fuse_reply_statfs(req, &st);
}

// ---- extended attributes ----

bool IsPosixAcl(const char* name) {
  return strncmp(name, "system.posix_acl_", 17) == 0;
}

void SetXattr(fuse_req_t req, fuse_ino_t ino, const char* name, const char* value, size_t size,
              int flags) {
  // POSIX ACLs would be stored but not enforced: refuse them rather than
  // pretend (docs/design.md).
  if (IsPosixAcl(name)) return (void)fuse_reply_err(req, EOPNOTSUPP);
  Status s = Fs(req)->volume()->SetXattr(ino, name, std::string_view(value, size), flags);
  if (!s.ok()) return ReplyErr(req, s);
  fuse_reply_err(req, 0);
}

void GetXattr(fuse_req_t req, fuse_ino_t ino, const char* name, size_t size) {
  if (IsPosixAcl(name)) return (void)fuse_reply_err(req, ENODATA);
  std::string v;
  Status s = Fs(req)->volume()->GetXattr(ino, name, &v);
  if (!s.ok()) return ReplyErr(req, s);
  if (size == 0) return (void)fuse_reply_xattr(req, v.size());
  if (v.size() > size) return (void)fuse_reply_err(req, ERANGE);
  fuse_reply_buf(req, v.data(), v.size());
}

void ListXattr(fuse_req_t req, fuse_ino_t ino, size_t size) {
  std::string names;
  Status s = Fs(req)->volume()->ListXattr(ino, &names);
  if (!s.ok()) return ReplyErr(req, s);
  if (size == 0) return (void)fuse_reply_xattr(req, names.size());
  if (names.size() > size) return (void)fuse_reply_err(req, ERANGE);
  fuse_reply_buf(req, names.data(), names.size());
}

void RemoveXattr(fuse_req_t req, fuse_ino_t ino, const char* name) {
  Status s = Fs(req)->volume()->RemoveXattr(ino, name);
  if (!s.ok()) return ReplyErr(req, s);
  fuse_reply_err(req, 0);
}

// With default_permissions the kernel checks access itself; this answers
// for the cases it still forwards (and for F_OK on a removed inode).
void Access(fuse_req_t req, fuse_ino_t ino, int mask) {
  Filesystem* fs = Fs(req);
  InodeRecord r;
  Status s = fs->volume()->GetInode(ino, &r);
  if (!s.ok()) return ReplyErr(req, s);
  const fuse_ctx* c = fuse_req_ctx(req);
  if (mask == F_OK || c->uid == 0) {
    if (c->uid == 0 && (mask & X_OK) && !S_ISDIR(r.mode) && !(r.mode & 0111))
      return (void)fuse_reply_err(req, EACCES);
    return (void)fuse_reply_err(req, 0);
  }
  unsigned bits = r.mode & 07;
  if (c->uid == r.uid)
    bits = (r.mode >> 6) & 07;
  else if (c->gid == r.gid)
    bits = (r.mode >> 3) & 07;
  fuse_reply_err(req, (static_cast<unsigned>(mask) & ~bits) ? EACCES : 0);
}

}  // namespace

void Filesystem::ToStat(const InodeRecord& r, struct stat* st) {
  memset(st, 0, sizeof(*st));
  st->st_ino = r.ino;
  st->st_mode = r.mode;
  st->st_nlink = r.nlink;
  st->st_uid = r.uid;
  st->st_gid = r.gid;
  st->st_rdev = r.rdev;
  st->st_size = r.size;
  st->st_blksize = kBlockSize;
  st->st_blocks = r.blocks * (kBlockSize / 512);
  st->st_atim = {r.atime.sec, r.atime.nsec};
  st->st_mtim = {r.mtime.sec, r.mtime.nsec};
  st->st_ctim = {r.ctime.sec, r.ctime.nsec};
}

uint32_t Filesystem::GenerationOf(const PoolMapping* pool) {
  if (!pool) return 1;
  uint32_t g = 0;
  const Uuid& u = pool->superblock().uuid;
  for (size_t i = 0; i < u.size(); ++i) g ^= static_cast<uint32_t>(u[i]) << (8 * (i % 4));
  return g != 0 ? g : 1;
}

void Filesystem::ToEntry(const InodeRecord& r, fuse_entry_param* e) const {
  memset(e, 0, sizeof(*e));
  e->ino = r.ino;
  // The kernel wants 0 for the root; other inodes carry this filesystem's
  // generation (inode numbers are never reused within it).
  e->generation = r.ino == kRootIno ? 0 : generation_;
  ToStat(r, &e->attr);
  e->attr_timeout = opts_.attr_timeout;
  e->entry_timeout = opts_.entry_timeout;
}

Volume::LastLinkFn Filesystem::LastLinkCheck() {
  // Deleting in the unlink's own batch is safe only when nothing has the
  // inode open: then no reader can be copying its blocks.
  return [this](uint64_t ino) { return inodes_.Unlinked(ino); };
}

void Filesystem::ReclaimNow(uint64_t ino) {
  {
    // Frozen or shut down: the orphan stays on its list for the next mount.
    ModifyScope scope(gate_);
    if (scope && !shut_down()) {
      auto state = inodes_.Get(ino);
      {
        WriterLock io(&state->io);
        Status s = RevokeLeases(ino, 0, UINT64_MAX, LeaseWhich::kAll, "reclaim");
        // A holder that could not be made to go keeps the inode on the
        // orphan list (the next mount reclaims it, after killing it).
        if (s.ok()) s = volume_->Reclaim(ino);
        if (!s.ok()) spdlog::error("reclaim of inode {} failed: {}", ino, s.message());
      }
      (void)inodes_.Forget(ino, 0);  // drops the state Get made (nothing else holds it)
    }
  }
  inodes_.Reclaimed(ino);
}

Status Filesystem::RevokeForFallocate(uint64_t ino, int mode, uint64_t off, uint64_t len) {
  if (!leases_ || leases_->empty()) return Status::Ok();
  if (mode & (kFallocCollapseRange | kFallocInsertRange))
    return leases_->Revoke(ino, off, UINT64_MAX, LeaseWhich::kAll, "collapse or insert range");
  if (mode & kFallocPunchHole) return leases_->Revoke(ino, off, len, LeaseWhich::kAll, "punch hole");
  if (mode & kFallocZeroRange) return leases_->Revoke(ino, off, len, LeaseWhich::kAll, "zero range");
  if (mode & kFallocUnshareRange)
    return leases_->Revoke(ino, off, len, LeaseWhich::kAll, "unshare range");
  // Allocation fills holes: only a read lease has holes (a write lease's
  // range was allocated at the grant).
  return leases_->Revoke(ino, off, len, LeaseWhich::kRead, "allocate");
}

bool Filesystem::OverwritesInPlace(uint64_t ino, uint64_t off, uint64_t len) {
  InodeRecord r;
  if (!volume_->GetInode(ino, &r).ok() || off + len > r.size || off + len < off) return false;
  bool in_place = true;
  Status s = volume_->MapRange(ino, off, len, [&](const MappedSegment& seg) {
    if (seg.hole ||
        volume_->IsBad(seg.pool_off >> kBlockShift,
                       (seg.pool_off + seg.len + kBlockSize - 1) >> kBlockShift))
      in_place = false;
    return in_place;
  });
  if (!s.ok() || !in_place) return false;
  s = volume_->WalkSharing(ino, off >> kBlockShift, (off + len + kBlockSize - 1) >> kBlockShift,
                           [&](const SharedExtent& e) {
                             if (e.refs > 1) in_place = false;
                             return in_place;
                           });
  return s.ok() && in_place;
}

void Filesystem::InvalidateCache(uint64_t ino, uint64_t off, uint64_t len) {
  if (!session_) return;
  int rc = fuse_lowlevel_notify_inval_inode(session_, ino, static_cast<off_t>(off),
                                            static_cast<off_t>(len));
  // ENOENT: the kernel holds nothing of this inode, so nothing is stale.
  if (rc != 0 && rc != -ENOENT)
    spdlog::warn("invalidating the kernel's cache of inode {} failed: {}", ino, strerror(-rc));
}

void Filesystem::InvalidateAttributes(uint64_t ino) {
  if (!session_) return;
  int rc = fuse_lowlevel_notify_inval_inode(session_, ino, -1, 0);
  if (rc != 0 && rc != -ENOENT)
    spdlog::warn("invalidating the kernel's attributes of inode {} failed: {}", ino, strerror(-rc));
}

namespace {

// Every request fails with EIO once the filesystem is shut down.
template <auto Handler>
struct Checked;
template <typename... Args, void (*Handler)(fuse_req_t, Args...)>
struct Checked<Handler> {
  static void Call(fuse_req_t req, Args... args) {
    if (Fs(req)->shut_down()) return (void)fuse_reply_err(req, EIO);
    Handler(req, args...);
  }
};

// Requests that change the filesystem also pass the modify gate, which
// pre-remove freezes.
template <auto Handler>
struct Modifying;
template <typename... Args, void (*Handler)(fuse_req_t, Args...)>
struct Modifying<Handler> {
  static void Call(fuse_req_t req, Args... args) {
    Filesystem* fs = Fs(req);
    if (fs->shut_down()) return (void)fuse_reply_err(req, EIO);
    ModifyScope scope(fs->modify_gate());
    if (!scope) return (void)fuse_reply_err(req, EIO);
    Handler(req, args...);
  }
};

}  // namespace

void Filesystem::Shutdown(const std::string& reason) {
  {
    MutexLock g(&shutdown_mu_);
    if (shut_down_.load()) return;
    shutdown_reason_ = reason;
    shut_down_.store(true, std::memory_order_release);
  }
  spdlog::critical("filesystem shut down: {}; every operation now fails with EIO until unmount",
                   reason);
  // No lease may outlive the filesystem's service: revoked away from the
  // caller, which may hold a poison lock.
  if (leases_ && !leases_->empty())
    poison_worker_.Post([this] {
      Status s = leases_->RevokeAll("shutdown");
      if (!s.ok()) spdlog::error("shutdown: {}", s.message());
    });
}

std::string Filesystem::shutdown_reason() {
  MutexLock g(&shutdown_mu_);
  return shutdown_reason_;
}

void Filesystem::Detach() {
  if (mountpoint_.empty()) return;
  // The connection ends first, failing whatever still holds a file
  // (ENOTCONN), so the session loop returns even while files are open.
  // Only root may abort; without it the loop ends when the last holder
  // lets go of the detached mount.
  const char* conns = "/sys/fs/fuse/connections";
  std::string abort_path = std::string(conns) + "/" + std::to_string(minor(dev_)) + "/abort";
  int fd = open(abort_path.c_str(), O_WRONLY | O_CLOEXEC);
  if (fd < 0 && errno == ENOENT) {
    // fusectl may not be mounted (EBUSY from mount: it is, after all).
    if (mount("fusectl", conns, "fusectl", 0, nullptr) != 0 && errno != EBUSY)
      spdlog::warn("cannot mount fusectl on {}: {}", conns, strerror(errno));
    fd = open(abort_path.c_str(), O_WRONLY | O_CLOEXEC);
  }
  if (fd >= 0) {
    if (write(fd, "1", 1) != 1) spdlog::warn("aborting the FUSE connection failed");
    close(fd);
  } else {
    spdlog::warn(
        "cannot abort the FUSE connection ({}): the daemon exits when the last file "
        "is closed",
        strerror(errno));
  }
  // Then out of every namespace.
  if (umount2(mountpoint_.c_str(), MNT_DETACH) != 0) {
    // Not root: the setuid helper does the same.
    std::string cmd = "fusermount3 -u -z -q -- '" + mountpoint_ + "' >/dev/null 2>&1";
    if (mountpoint_.find('\'') != std::string::npos || system(cmd.c_str()) != 0)
      spdlog::error("cannot detach {}: {}", mountpoint_, strerror(errno));
  }
  if (session_) fuse_session_exit(session_);
}

const fuse_lowlevel_ops& Filesystem::Ops() {
  static const fuse_lowlevel_ops ops = [] {
    fuse_lowlevel_ops o{};
    o.init = Init;
    o.lookup = Checked<Lookup>::Call;
    o.forget = Forget;
    o.forget_multi = ForgetMulti;
    o.getattr = Checked<GetAttr>::Call;
    o.setattr = Modifying<SetAttr>::Call;
    o.readlink = Checked<ReadLink>::Call;
    o.mknod = Modifying<MkNod>::Call;
    o.mkdir = Modifying<MkDir>::Call;
    o.symlink = Modifying<Symlink>::Call;
    o.link = Modifying<Link>::Call;
    o.unlink = Modifying<Unlink>::Call;
    o.rmdir = Modifying<Rmdir>::Call;
    o.rename = Modifying<Rename>::Call;
    o.open = Modifying<Open>::Call;  // O_TRUNC truncates
    o.create = Modifying<Create>::Call;
    o.read = Checked<Read>::Call;
    o.write = Modifying<Write>::Call;
    o.flush = Flush;
    o.release = Release;
    o.fsync = Checked<Fsync>::Call;
    o.opendir = Checked<OpenDir>::Call;
    o.readdir = Checked<ReadDir>::Call;
    o.readdirplus = Checked<ReadDirPlus>::Call;
    o.releasedir = ReleaseDir;
    o.fsyncdir = Checked<FsyncDir>::Call;
    o.statfs = Checked<StatFs>::Call;
    o.setxattr = Modifying<SetXattr>::Call;
    o.getxattr = Checked<GetXattr>::Call;
    o.listxattr = Checked<ListXattr>::Call;
    o.removexattr = Modifying<RemoveXattr>::Call;
    o.access = Checked<Access>::Call;
    o.fallocate = Modifying<Fallocate>::Call;
    o.lseek = Checked<Lseek>::Call;
    o.ioctl = Modifying<Ioctl>::Call;
    o.copy_file_range = Modifying<CopyFileRange>::Call;
    return o;
  }();
  return ops;
}

}  // namespace daxref
