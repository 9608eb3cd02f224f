// The daxref ioctls (include/daxref/ioctl.h, docs/ioctl.md): clone, dedupe
// and unshare on behalf of FICLONE, FICLONERANGE, FIDEDUPERANGE and
// FALLOC_FL_UNSHARE_RANGE, which the kernel keeps from FUSE, and the
// sharing queries behind daxref-map.
#include "fs/ioctl_handler.h"

#include <daxref/ioctl.h>
#include <linux/fs.h>
#include <spdlog/spdlog.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <memory>

namespace daxref {

namespace {

void ReplyStatus(fuse_req_t req, const Status& s) {
  fuse_reply_err(req, KernelErrno(s));
}

// Root, or the user the daemon runs as (who mounted it).
bool IsAdmin(fuse_req_t req) {
  uid_t uid = fuse_req_ctx(req)->uid;
  return uid == 0 || uid == getuid();
}

template <typename T>
bool TakeArg(const void* in_buf, size_t in_bufsz, T* out) {
  if (in_bufsz != sizeof(T)) return false;
  memcpy(out, in_buf, sizeof(T));
  return true;
}

Token TokenOf(const daxref_token& t) {
  return Token{t.value[0], t.value[1]};
}

void Info(Filesystem* fs, fuse_req_t req) {
  VolumeStats v = fs->volume()->Stats();
  daxref_info out{};
  out.magic = DAXREF_INFO_MAGIC;
  out.abi_version = 1;
  out.block_size = kBlockSize;
  out.pool_blocks = fs->volume()->superblock().block_count;
  out.free_blocks = v.free_blocks;
  fuse_reply_ioctl(req, 0, &out, sizeof(out));
}

// Where this mount's lease socket is (docs/dax.md, "The channel"). Anyone
// may ask; the socket admits only root and the pool's owner.
void DaxInfo(Filesystem* fs, fuse_req_t req) {
  if (fs->dax_socket().empty()) return (void)fuse_reply_err(req, EOPNOTSUPP);
  daxref_dax_info out{};
  out.magic = DAXREF_INFO_MAGIC;
  out.abi_version = 1;
  out.block_size = kBlockSize;
  if (fs->dax_socket().size() >= sizeof(out.socket))
    return (void)fuse_reply_err(req, ENAMETOOLONG);
  memcpy(out.socket, fs->dax_socket().c_str(), fs->dax_socket().size() + 1);
  fuse_reply_ioctl(req, 0, &out, sizeof(out));
}

void IssueToken(Filesystem* fs, fuse_req_t req, fuse_file_info* fi) {
  Handle h;
  if (!fs->handles().Find(fi->fh, &h)) return (void)fuse_reply_err(req, EBADF);
  if (!h.readable()) return (void)fuse_reply_err(req, EBADF);
  Token t;
  if (!fs->handles().Issue(fi->fh, &t)) return (void)fuse_reply_err(req, EAGAIN);
  daxref_token out{{t[0], t[1]}};
  fuse_reply_ioctl(req, 0, &out, sizeof(out));
}

// The destination of a clone must be open for writing, and not for
// appending only (ioctl_ficlone(2): EBADF).
bool WritableDest(Filesystem* fs, fuse_file_info* fi) {
  Handle h;
  return fs->handles().Find(fi->fh, &h) && h.writable() && !h.append();
}

void CloneRange(Filesystem* fs, fuse_req_t req, fuse_ino_t dst, fuse_file_info* fi,
                const void* in_buf, size_t in_bufsz) {
  daxref_clone_range a;
  if (!TakeArg(in_buf, in_bufsz, &a) || a.flags != 0) return (void)fuse_reply_err(req, EINVAL);
  if (!WritableDest(fs, fi)) return (void)fuse_reply_err(req, EBADF);
  uint64_t src = 0;
  // A token this daemon did not issue (or no longer knows) stands for a
  // file it does not serve: another filesystem, as far as it can tell.
  if (!fs->handles().Redeem(TokenOf(a.src), &src)) return (void)fuse_reply_err(req, EXDEV);
  Caller who{fuse_req_ctx(req)->uid, fuse_req_ctx(req)->gid};
  // The rest runs on the clone worker (fs/worker_thread.h says why), which
  // replies. No daemon lock is held while the kernel is told, and the
  // kernel holds no inode lock for an ioctl.
  fs->clone_worker().Post([fs, req, src, dst, a, who] {
    // The request's own pass through the modify gate ended when it handed
    // the clone over; the clone passes again, so pre-remove waits for it.
    ModifyScope scope(fs->modify_gate());
    if (!scope || fs->shut_down()) return (void)fuse_reply_err(req, EIO);
    fs->InvalidateCache(dst, a.dest_offset, 0);
    InodeRecord out;
    Status s;
    {
      SourceDestLock locks(fs->inodes(), src, dst);
      // Length 0 is "to the source's end".
      const uint64_t n = a.src_length ? a.src_length : UINT64_MAX;
      s = fs->RevokeLeases(dst, a.dest_offset, n, LeaseWhich::kAll, "clone into");
      if (s.ok()) s = fs->RevokeLeases(src, a.src_offset, n, LeaseWhich::kWrite, "clone from");
      if (s.ok())
        s = fs->volume()->Clone(src, a.src_offset, dst, a.dest_offset, a.src_length, who, &out);
    }
    if (!s.ok()) return ReplyStatus(req, s);
    fs->InvalidateCache(dst, a.dest_offset, 0);
    fuse_reply_ioctl(req, 0, nullptr, 0);
  });
}

// Who may dedupe into a file (as the kernel's allow_file_dedupe): an
// administrator, a handle open for writing, the file's owner, or a caller
// with write permission on it.
bool MayDedupeInto(Filesystem* fs, fuse_req_t req, fuse_ino_t dst, fuse_file_info* fi) {
  const fuse_ctx* c = fuse_req_ctx(req);
  if (c->uid == 0) return true;
  Handle h;
  if (fs->handles().Find(fi->fh, &h) && h.writable()) return true;
  InodeRecord r;
  if (!fs->volume()->GetInode(dst, &r).ok()) return false;
  if (c->uid == r.uid) return true;  // the owner, whatever the mode
  bool in_group = c->gid == r.gid;
  if (!in_group) {
    gid_t groups[64];
    int n = fuse_req_getgroups(req, 64, groups);
    for (int i = 0; i < std::min(n, 64) && !in_group; ++i) in_group = groups[i] == r.gid;
  }
  return in_group ? (r.mode & S_IWGRP) : (r.mode & S_IWOTH);
}

void DedupeRange(Filesystem* fs, fuse_req_t req, fuse_ino_t dst, fuse_file_info* fi,
                 const void* in_buf, size_t in_bufsz) {
  daxref_dedupe_range a;
  if (!TakeArg(in_buf, in_bufsz, &a) || a.reserved != 0) return (void)fuse_reply_err(req, EINVAL);
  uint64_t src = 0;
  if (!fs->handles().Redeem(TokenOf(a.src), &src)) return (void)fuse_reply_err(req, EXDEV);
  a.bytes_deduped = 0;
  if (!MayDedupeInto(fs, req, dst, fi)) {
    a.status = -EPERM;
  } else {
    DedupeResult r;
    Status s;
    {
      SourceDestLock locks(fs->inodes(), src, dst);
      s = fs->RevokeLeases(dst, a.dest_offset, a.src_length, LeaseWhich::kAll, "dedupe into");
      if (s.ok())
        s = fs->RevokeLeases(src, a.src_offset, a.src_length, LeaseWhich::kWrite, "dedupe from");
      if (s.ok()) s = fs->volume()->Dedupe(src, a.src_offset, dst, a.dest_offset, a.src_length, &r);
    }
    if (!s.ok()) {
      a.status = -KernelErrno(s);
    } else {
      a.status = r.same ? FILE_DEDUPE_RANGE_SAME : FILE_DEDUPE_RANGE_DIFFERS;
      a.bytes_deduped = r.bytes;
      // Holes deduped against zeros gain blocks: st_blocks changed.
      if (r.bytes > 0) fs->InvalidateAttributes(dst);
    }
  }
  // The bytes did not change, so the kernel's cached pages stay valid.
  fuse_reply_ioctl(req, 0, &a, sizeof(a));
}

// The fallocate modes the kernel keeps from FUSE, as ioctls: unshare
// (holes filled, so st_blocks changes) and collapse / insert (every byte
// after the offset moves: the kernel's cached pages from there on, and the
// size, are stale once the batch commits).
void FallocateRange(Filesystem* fs, fuse_req_t req, fuse_ino_t ino, fuse_file_info* fi, int mode,
                    const void* in_buf, size_t in_bufsz) {
  daxref_range a;
  if (!TakeArg(in_buf, in_bufsz, &a) || a.flags != 0) return (void)fuse_reply_err(req, EINVAL);
  if (!WritableDest(fs, fi)) return (void)fuse_reply_err(req, EBADF);
  if (a.length == 0 || a.offset > INT64_MAX || a.length > INT64_MAX)
    return (void)fuse_reply_err(req, EINVAL);
  auto state = fs->inodes().Get(ino);
  InodeRecord out;
  Status s;
  {
    WriterLock io(&state->io);
    s = fs->RevokeForFallocate(ino, mode, a.offset, a.length);
    if (s.ok()) s = fs->volume()->Fallocate(ino, mode, a.offset, a.length, CallerOf(req), &out);
  }
  if (!s.ok()) return ReplyStatus(req, s);
  if (mode & kFallocUnshareRange)
    fs->InvalidateAttributes(ino);
  else
    fs->InvalidateCache(ino, a.offset, 0);
  fuse_reply_ioctl(req, 0, nullptr, 0);
}

void Extents(Filesystem* fs, fuse_req_t req, fuse_ino_t ino, const void* in_buf, size_t in_bufsz) {
  auto q = std::make_unique<daxref_extent_query>();
  if (!TakeArg(in_buf, in_bufsz, q.get())) return (void)fuse_reply_err(req, EINVAL);
  uint64_t start = q->start, end = q->length ? q->start + q->length : UINT64_MAX;
  if (end < start) return (void)fuse_reply_err(req, EINVAL);
  q->count = 0;
  q->flags = 0;
  q->next = start;
  uint64_t fb0 = start >> kBlockShift;
  uint64_t fb1 =
      end == UINT64_MAX ? (UINT64_MAX >> kBlockShift) : (end + kBlockSize - 1) >> kBlockShift;
  Status s = fs->volume()->WalkSharing(ino, fb0, fb1, [&](const SharedExtent& e) {
    if (q->count == DAXREF_EXTENTS_PER_CALL) {
      q->flags |= DAXREF_QUERY_MORE;
      return false;
    }
    daxref_extent& x = q->extents[q->count++];
    x.logical = e.fblock << kBlockShift;
    x.physical = e.pblock << kBlockShift;
    x.length = e.len << kBlockShift;
    x.refcount = static_cast<uint32_t>(std::min<uint64_t>(e.refs, UINT32_MAX));
    x.flags = e.refs > 1 ? DAXREF_EXTENT_SHARED : 0;
    q->next = x.logical + x.length;
    return true;
  });
  if (!s.ok()) return ReplyStatus(req, s);
  // The walk reached the end of the file's map: its final piece is the last.
  if (!(q->flags & DAXREF_QUERY_MORE) && q->length == 0 && q->count > 0)
    q->extents[q->count - 1].flags |= DAXREF_EXTENT_LAST;
  fuse_reply_ioctl(req, 0, q.get(), sizeof(*q));
}

void Owners(Filesystem* fs, fuse_req_t req, const void* in_buf, size_t in_bufsz) {
  if (!IsAdmin(req)) return (void)fuse_reply_err(req, EPERM);
  auto q = std::make_unique<daxref_owner_query>();
  if (!TakeArg(in_buf, in_bufsz, q.get())) return (void)fuse_reply_err(req, EINVAL);
  uint64_t pool_bytes = fs->volume()->superblock().block_count << kBlockShift;
  if (q->length == 0 || q->physical >= pool_bytes) return (void)fuse_reply_err(req, EINVAL);
  uint64_t end =
      std::min<uint64_t>(pool_bytes, q->physical + std::min<uint64_t>(q->length, pool_bytes));
  uint64_t pb0 = q->physical >> kBlockShift, pb1 = (end + kBlockSize - 1) >> kBlockShift;
  RmapRecord after;
  bool resume = q->flags & DAXREF_QUERY_MORE;
  if (resume) {
    after = RmapRecord{q->cursor.physical >> kBlockShift, q->cursor.ino,
                       q->cursor.logical >> kBlockShift, q->cursor.length >> kBlockShift};
    if (after.len == 0) return (void)fuse_reply_err(req, EINVAL);
  }
  q->count = 0;
  q->flags = 0;
  Status s = fs->volume()->QueryOwners(
      pb0, pb1,
      [&](const RmapRecord& r) {
        if (q->count == DAXREF_OWNERS_PER_CALL) {
          q->flags |= DAXREF_QUERY_MORE;
          return false;
        }
        daxref_owner& o = q->owners[q->count++];
        o.physical = r.pblock << kBlockShift;
        o.length = r.len << kBlockShift;
        o.ino = r.ino;
        o.logical = r.fblock << kBlockShift;
        q->cursor = o;
        return true;
      },
      resume ? &after : nullptr);
  if (!s.ok()) return ReplyStatus(req, s);
  fuse_reply_ioctl(req, 0, q.get(), sizeof(*q));
}

void Paths(Filesystem* fs, fuse_req_t req, const void* in_buf, size_t in_bufsz) {
  if (!IsAdmin(req)) return (void)fuse_reply_err(req, EPERM);
  auto q = std::make_unique<daxref_paths_query>();
  if (!TakeArg(in_buf, in_bufsz, q.get())) return (void)fuse_reply_err(req, EINVAL);
  InodeRecord r;
  Status s = fs->volume()->GetInode(q->ino, &r);
  if (!s.ok()) return ReplyStatus(req, s);
  uint32_t seen = 0;
  q->count = q->flags = q->bytes = 0;
  bool too_long = false;
  s = fs->volume()->Paths(q->ino, [&](const std::string& path) {
    if (seen++ < q->skip) return true;
    if (q->bytes + path.size() + 1 > DAXREF_PATHS_BYTES) {
      if (q->count == 0) too_long = true;
      q->flags |= DAXREF_QUERY_MORE;
      return false;
    }
    memcpy(q->buf + q->bytes, path.c_str(), path.size() + 1);
    q->bytes += path.size() + 1;
    q->count++;
    return true;
  });
  if (!s.ok()) return ReplyStatus(req, s);
  if (too_long) return (void)fuse_reply_err(req, ENAMETOOLONG);
  fuse_reply_ioctl(req, 0, q.get(), sizeof(*q));
}

}  // namespace

void HandleIoctl(Filesystem* fs, fuse_req_t req, fuse_ino_t ino, unsigned int cmd,
                 fuse_file_info* fi, unsigned flags, const void* in_buf, size_t in_bufsz,
                 size_t out_bufsz) {
  // Only the 64-bit layouts exist; unknown commands are ENOTTY, which is how
  // tools probe for features.
  if (flags & FUSE_IOCTL_COMPAT) return (void)fuse_reply_err(req, ENOTTY);
  bool dir = flags & FUSE_IOCTL_DIR;
  switch (cmd) {
    case DAXREF_IOC_INFO:
      return Info(fs, req);
    case DAXREF_IOC_DAX_INFO:
      return DaxInfo(fs, req);
    case DAXREF_IOC_OWNERS:
      return Owners(fs, req, in_buf, in_bufsz);
    case DAXREF_IOC_PATHS:
      return Paths(fs, req, in_buf, in_bufsz);
    default:
      break;
  }
  bool file_op = cmd == DAXREF_IOC_TOKEN || cmd == DAXREF_IOC_CLONE_RANGE ||
                 cmd == DAXREF_IOC_DEDUPE_RANGE || cmd == DAXREF_IOC_UNSHARE_RANGE ||
                 cmd == DAXREF_IOC_COLLAPSE_RANGE || cmd == DAXREF_IOC_INSERT_RANGE ||
                 cmd == DAXREF_IOC_EXTENTS;
  if (!file_op) return (void)fuse_reply_err(req, ENOTTY);
  if (dir) return (void)fuse_reply_err(req, EISDIR);
  switch (cmd) {
    case DAXREF_IOC_TOKEN:
      return IssueToken(fs, req, fi);
    case DAXREF_IOC_CLONE_RANGE:
      return CloneRange(fs, req, ino, fi, in_buf, in_bufsz);
    case DAXREF_IOC_DEDUPE_RANGE:
      return DedupeRange(fs, req, ino, fi, in_buf, in_bufsz);
    case DAXREF_IOC_UNSHARE_RANGE:
      return FallocateRange(fs, req, ino, fi, kFallocUnshareRange | kFallocKeepSize, in_buf,
                            in_bufsz);
    case DAXREF_IOC_COLLAPSE_RANGE:
      return FallocateRange(fs, req, ino, fi, kFallocCollapseRange, in_buf, in_bufsz);
    case DAXREF_IOC_INSERT_RANGE:
      return FallocateRange(fs, req, ino, fi, kFallocInsertRange, in_buf, in_bufsz);
    default:
      return Extents(fs, req, ino, in_buf, in_bufsz);
  }
}

}  // namespace daxref
