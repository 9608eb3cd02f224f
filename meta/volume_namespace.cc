// Namespace operations: lookups, directories, links, rename, attributes
// and extended attributes, and the deletion of an inode that lost its last
// name (now, or later by Reclaim).
//
// Invariants, each kept in the operation's one batch: every name has a D
// record (parent, name), a C record (parent, cookie) for readdir and a P
// record (ino, parent, name) for the walk back to the root
// (volume_owners.cc); a directory's nlink is 2 plus its subdirectories and
// its `parent` is its one name's directory; an inode with nlink 0 either
// has an O (orphan) record or is deleted in the same batch (DropLink).
#include <linux/fs.h>
#include <rocksdb/db.h>
#include <sys/stat.h>
#include <sys/xattr.h>

#include <algorithm>
#include <string>
#include <vector>

#include "base/mutex.h"
#include "meta/volume.h"
#include "meta/volume_txn.h"

namespace daxref {

using internal::FromRocks;
using internal::IsDir;
using internal::KilledSetIdBits;
using internal::PrefixScan;

namespace {

constexpr uint32_t kMaxLinks = 65000;

Status ValidName(std::string_view name) {
  if (name.empty() || name == "." || name == "..") return Status::Invalid("invalid name");
  if (name.size() > kMaxNameLen) return Status::Error(ENAMETOOLONG, "name too long");
  if (name.find('/') != std::string_view::npos) return Status::Invalid("name contains '/'");
  return Status::Ok();
}

}  // namespace

Status Volume::LookupIn(Txn& t, uint64_t dir, std::string_view name, DirentRecord* out) {
  std::string v;
  Status s = t.Get(keys::Dirent(dir, name), &v);
  if (!s.ok()) return s;
  return DecodeDirent(v, out);
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

Status Volume::DropDir(Txn& t, InodeRecord* r, const LastLinkFn& last_link) {
  if (!last_link || last_link(r->ino)) return DeleteInode(t, *r, false);
  // Empty, so nothing but the record itself waits for the reclaim.
  r->nlink = 0;
  r->ctime = Now();
  t.Put(keys::Orphan(r->ino), "");
  StoreInode(t, *r);
  return Status::Ok();
}

// Deletes only the records that can exist, so that removing an empty file
// scans nothing and leaves no tombstones for keys that were never written.
Status Volume::DeleteInode(Txn& t, const InodeRecord& r, bool orphaned) {
  InodeRecord copy = r;
  if (r.blocks > 0) DAXREF_RETURN_IF_ERROR(UnmapRange(t, &copy, 0, UINT64_MAX));
  t.ForgetExtents(r.ino);
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

Status Volume::Lookup(uint64_t parent, std::string_view name, InodeRecord* out) {
  internal::NoRocksPerfCounters();
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

Status Volume::ReadDir(uint64_t dir, uint64_t cookie, uint64_t* end, const DirentFn& fn) {
  InodeRecord d;
  DAXREF_RETURN_IF_ERROR(GetInode(dir, &d));
  if (!IsDir(d.mode)) return Status::Error(ENOTDIR, "not a directory");
  // Every entry stored before this point has a cookie below next_cookie;
  // the scan below may also meet entries added since, which stop it.
  if (*end == 0) *end = std::max<uint64_t>(d.next_cookie, kFirstCookie);
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
    if (e.cookie >= *end || !fn(name, e.ino, e.type, e.cookie)) break;
  }
  return FromRocks(it->status(), "readdir");
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

Status Volume::Rmdir(uint64_t parent, std::string_view name, const LastLinkFn& last_link) {
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
  DAXREF_RETURN_IF_ERROR(DropDir(t, &r, last_link));
  return Commit(t);
}

Status Volume::Rename(uint64_t parent, std::string_view name, uint64_t newparent,
                      std::string_view newname, unsigned flags, const LastLinkFn& last_link,
                      InodeRecord* replaced, const Caller& who) {
  replaced->ino = 0;
  if (flags & ~(RENAME_NOREPLACE | RENAME_EXCHANGE | RENAME_WHITEOUT))
    return Status::Invalid("unsupported flags");
  if ((flags & RENAME_EXCHANGE) && (flags & (RENAME_NOREPLACE | RENAME_WHITEOUT)))
    return Status::Invalid("EXCHANGE with NOREPLACE or WHITEOUT");
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
      DAXREF_RETURN_IF_ERROR(DropDir(t, &victim, last_link));
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
  if (flags & RENAME_WHITEOUT) {
    // overlayfs' mark for "deleted in the upper layer": the source name
    // never goes missing, it names the whiteout as the rename commits.
    InodeRecord w;
    w.ino = NextIno(t);
    w.mode = S_IFCHR;
    w.uid = who.uid;
    w.gid = (src_dir.mode & S_ISGID) ? src_dir.gid : who.gid;
    w.nlink = 1;
    w.rdev = 0;
    w.atime = w.mtime = w.ctime = w.btime = now;
    StoreInode(t, w);
    DAXREF_RETURN_IF_ERROR(AddEntry(t, &src_dir, name, w.ino, w.mode));
  }
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
  const uint32_t old_gid = r.gid;
  if (req.uid) r.uid = *req.uid;
  if (req.gid) r.gid = *req.gid;
  if (req.uid || req.gid) changed = true;
  // Every chown of a non-directory drops its set-id bits and capability,
  // even one that names the owner it already has, as Linux does for local
  // filesystems (the kernel leaves that to us: handle_killpriv).
  if ((req.uid || req.gid) && !IsDir(r.mode)) {
    if (!req.mode) r.mode &= ~KilledSetIdBits(r.mode, old_gid, who, false);
    if (r.flags & kInodeHasXattrs) t.Delete(keys::Xattr(ino, kCapabilityXattr));
  }
  if (req.size && S_ISREG(r.mode) && !req.mode)
    r.mode &= ~KilledSetIdBits(r.mode, r.gid, who, true);
  if (req.atime) r.atime = *req.atime;
  if (req.mtime) r.mtime = *req.mtime;
  if (changed || req.atime || req.mtime || req.ctime) r.ctime = req.ctime.value_or(now);
  StoreInode(t, r, {req.atime.has_value(), req.mtime.has_value()});
  DAXREF_RETURN_IF_ERROR(Commit(t));
  *out = r;
  return Status::Ok();
}

Status Volume::SetXattr(uint64_t ino, std::string_view name, std::string_view value, int flags) {
  if (name.empty() || name.size() > kMaxXattrNameLen)
    return Status::Error(ERANGE, "bad attribute name");
  if (value.size() > kMaxXattrValueLen) return Status::Error(E2BIG, "attribute value too large");
  MutexLock g(&mu_);
  Txn t(this);
  InodeRecord r;
  DAXREF_RETURN_IF_ERROR(LoadInode(t, ino, &r));
  std::string old;
  Status s = t.Get(keys::Xattr(ino, name), &old);
  if (!s.ok() && s.err() != ENOENT) return s;
  if ((flags & XATTR_CREATE) && s.ok()) return Status::Error(EEXIST, "attribute exists");
  if ((flags & XATTR_REPLACE) && !s.ok()) return Status::Error(ENODATA, "no such attribute");
  // The per-inode bound (format.h, kMaxXattrBytesPerInode): what the
  // inode's attributes would hold after this call, the one replaced left out.
  uint64_t list = 0, total = 0;
  {
    PrefixScan scan(keys::XattrPrefix(ino));
    std::unique_ptr<rocksdb::Iterator> it = t.Iter(scan);
    for (it->Seek(scan.prefix()); it->Valid(); it->Next()) {
      std::string_view k = it->key().ToStringView();
      if (k.substr(0, scan.prefix().size()) != scan.prefix()) break;
      std::string_view n = k.substr(scan.prefix().size());
      if (n == name) continue;
      list += n.size() + 1;
      total += n.size() + 1 + it->value().size();
    }
    DAXREF_RETURN_IF_ERROR(FromRocks(it->status(), "setxattr"));
  }
  list += name.size() + 1;
  total += name.size() + 1 + value.size();
  if (total > kMaxXattrBytesPerInode || list > kMaxXattrListLen)
    return Status::NoSpace(
        "the file's extended attributes would exceed " +
        std::to_string(total > kMaxXattrBytesPerInode ? kMaxXattrBytesPerInode : kMaxXattrListLen) +
        " bytes");
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

}  // namespace daxref
