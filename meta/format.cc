#include "meta/format.h"

#include <sys/stat.h>

#include <cassert>
#include <cstdio>

#include "meta/codec.h"

namespace daxref {

using codec::PutU32;
using codec::PutU64;
using codec::PutU8;

std::string UuidToString(const Uuid& u) {
  char buf[40];
  snprintf(buf, sizeof(buf), "%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x",
           u[0], u[1], u[2], u[3], u[4], u[5], u[6], u[7], u[8], u[9], u[10], u[11], u[12], u[13],
           u[14], u[15]);
  return buf;
}

namespace keys {
namespace {
std::string WithIno(char p, uint64_t ino) {
  std::string k(1, p);
  PutU64(&k, ino);
  return k;
}
}  // namespace

std::string Misc(std::string_view name) {
  return std::string(1, prefix::kMisc).append(name);
}
std::string Inode(uint64_t ino) {
  return WithIno(prefix::kInode, ino);
}
std::string Dirent(uint64_t dir, std::string_view name) {
  return WithIno(prefix::kDirent, dir).append(name);
}
std::string DirentPrefix(uint64_t dir) {
  return WithIno(prefix::kDirent, dir);
}
std::string DirCookie(uint64_t dir, uint64_t cookie) {
  std::string k = WithIno(prefix::kDirCookie, dir);
  PutU64(&k, cookie);
  return k;
}
std::string DirCookiePrefix(uint64_t dir) {
  return WithIno(prefix::kDirCookie, dir);
}
std::string Extent(uint64_t ino, uint64_t fblock) {
  std::string k = WithIno(prefix::kExtent, ino);
  PutU64(&k, fblock);
  return k;
}
std::string ExtentPrefix(uint64_t ino) {
  return WithIno(prefix::kExtent, ino);
}
unsigned RmapClass(uint64_t len) {
  return len == 0 ? 0 : 63 - static_cast<unsigned>(__builtin_clzll(len));
}
std::string RmapClassPrefix(unsigned cls) {
  std::string k(1, prefix::kRmap);
  codec::PutU8(&k, static_cast<uint8_t>(cls));
  return k;
}
std::string RmapClassAt(unsigned cls, uint64_t pblock) {
  std::string k = RmapClassPrefix(cls);
  PutU64(&k, pblock);
  return k;
}
std::string Rmap(uint64_t pblock, uint64_t len, uint64_t ino, uint64_t fblock) {
  std::string k = RmapClassAt(RmapClass(len), pblock);
  PutU64(&k, ino);
  PutU64(&k, fblock);
  return k;
}
std::string Refcount(uint64_t pblock) {
  return WithIno(prefix::kRefcount, pblock);
}
std::string Parent(uint64_t ino, uint64_t parent, std::string_view name) {
  std::string k = WithIno(prefix::kParent, ino);
  PutU64(&k, parent);
  return k.append(name);
}
std::string ParentPrefix(uint64_t ino) {
  return WithIno(prefix::kParent, ino);
}
std::string Free(uint64_t pblock) {
  return WithIno(prefix::kFree, pblock);
}
std::string Bad(uint64_t pblock) {
  return WithIno(prefix::kBad, pblock);
}
std::string BadOrigin(uint64_t pblock) {
  return WithIno(prefix::kBadOrigin, pblock);
}
std::string Lease(uint64_t id) {
  return WithIno(prefix::kLease, id);
}
std::string Orphan(uint64_t ino) {
  return WithIno(prefix::kOrphan, ino);
}
std::string Xattr(uint64_t ino, std::string_view name) {
  return WithIno(prefix::kXattr, ino).append(name);
}
std::string XattrPrefix(uint64_t ino) {
  return WithIno(prefix::kXattr, ino);
}
std::string Symlink(uint64_t ino) {
  return WithIno(prefix::kSymlink, ino);
}

std::string Successor(std::string p) {
  while (!p.empty()) {
    unsigned char c = static_cast<unsigned char>(p.back());
    if (c != 0xff) {
      p.back() = static_cast<char>(c + 1);
      return p;
    }
    p.pop_back();
  }
  return p;
}

uint64_t U64At(std::string_view k, size_t at) {
  return k.size() >= at + 8 ? codec::LoadU64(k.data() + at) : 0;
}
}  // namespace keys

namespace {
// Value layout version bytes. Do not change: they are on disk.
constexpr uint8_t kInodeV1 = 1;

bool ValidFileType(uint32_t mode) {
  switch (mode & S_IFMT) {
    case S_IFREG:
    case S_IFDIR:
    case S_IFLNK:
    case S_IFCHR:
    case S_IFBLK:
    case S_IFIFO:
    case S_IFSOCK:
      return true;
    default:
      return false;
  }
}

void PutTime(std::string* d, const Timespec& t) {
  codec::PutI64(d, t.sec);
  PutU32(d, t.nsec);
}
Timespec GetTime(codec::Reader* r) {
  Timespec t;
  t.sec = r->I64();
  t.nsec = r->U32();
  return t;
}
}  // namespace

std::string EncodeInode(const InodeRecord& r) {
  std::string v;
  v.reserve(128);
  codec::PutU8(&v, kInodeV1);
  PutU32(&v, r.mode);
  PutU32(&v, r.uid);
  PutU32(&v, r.gid);
  PutU32(&v, r.nlink);
  PutU64(&v, r.size);
  PutU64(&v, r.blocks);
  PutU64(&v, r.rdev);
  PutTime(&v, r.atime);
  PutTime(&v, r.mtime);
  PutTime(&v, r.ctime);
  PutTime(&v, r.btime);
  PutU64(&v, r.parent);
  PutU64(&v, r.next_cookie);
  PutU32(&v, r.flags);
  return v;
}

Status DecodeInode(uint64_t ino, std::string_view v, InodeRecord* out) {
  codec::Reader r(v);
  if (r.U8() != kInodeV1)
    return Status::Corruption("inode " + std::to_string(ino) + ": bad version");
  out->ino = ino;
  out->mode = r.U32();
  out->uid = r.U32();
  out->gid = r.U32();
  out->nlink = r.U32();
  out->size = r.U64();
  out->blocks = r.U64();
  out->rdev = r.U64();
  out->atime = GetTime(&r);
  out->mtime = GetTime(&r);
  out->ctime = GetTime(&r);
  out->btime = GetTime(&r);
  out->parent = r.U64();
  out->next_cookie = r.U64();
  out->flags = r.U32();
  if (!r.ok() || !r.done())
    return Status::Corruption("inode " + std::to_string(ino) + ": bad length");
  if (!ValidFileType(out->mode))
    return Status::Corruption("inode " + std::to_string(ino) + ": bad file type in mode " +
                              std::to_string(out->mode));
  if (out->size > kMaxFileSize || out->blocks > kMaxFileBlocks)
    return Status::Corruption("inode " + std::to_string(ino) + ": size " +
                              std::to_string(out->size) + " or block count " +
                              std::to_string(out->blocks) + " out of range");
  return Status::Ok();
}

std::string EncodeDirent(const DirentRecord& r) {
  std::string v;
  PutU64(&v, r.ino);
  PutU32(&v, r.type);
  PutU64(&v, r.cookie);
  return v;
}

Status DecodeDirent(std::string_view v, DirentRecord* out) {
  codec::Reader r(v);
  out->ino = r.U64();
  out->type = r.U32();
  out->cookie = r.U64();
  if (!r.ok() || !r.done()) return Status::Corruption("bad dirent record");
  if (out->ino == 0 || !ValidFileType(out->type))
    return Status::Corruption("dirent record for inode " + std::to_string(out->ino) +
                              ": bad inode or type");
  return Status::Ok();
}

std::string EncodeCookie(const DirentRecord& r, std::string_view name) {
  return EncodeDirent(r).append(name);
}

Status DecodeCookie(std::string_view key, std::string_view v, DirentRecord* out,
                    std::string* name) {
  if (key.size() != 17) return Status::Corruption("readdir cookie record with a bad key");
  uint64_t dir = keys::U64At(key, 1), cookie = keys::U64At(key, 9);
  std::string who = "readdir cookie record of directory " + std::to_string(dir) + " at cookie " +
                    std::to_string(cookie);
  if (v.size() < 20) return Status::Corruption(who + ": bad length");
  Status s = DecodeDirent(v.substr(0, 20), out);
  if (!s.ok()) return Status::Corruption(who + ": " + s.message());
  if (out->cookie != cookie || cookie < kFirstCookie)
    return Status::Corruption(who + ": names cookie " + std::to_string(out->cookie));
  name->assign(v.substr(20));
  if (name->empty() || name->size() > kMaxNameLen || name->find('/') != std::string::npos ||
      *name == "." || *name == "..")
    return Status::Corruption(who + ": bad name");
  return Status::Ok();
}

std::string EncodeExtent(const Extent& e) {
  // The daemon writes no record its own decoder refuses: every extent it
  // makes is a piece of an allocation or of a decoded extent.
  assert(e.len > 0 && ValidFileRun(e.fblock, e.len));
  std::string v;
  PutU64(&v, e.pblock);
  PutU64(&v, e.len);
  return v;
}

namespace {

std::string Blocks(uint64_t pblock, uint64_t len) {
  return "[" + std::to_string(pblock) + ", +" + std::to_string(len) + ")";
}

std::string Area(const PoolGeometry& geo) {
  return "[" + std::to_string(geo.first_data_block()) + ", " + std::to_string(geo.data_end()) + ")";
}

// A record keyed by one byte of prefix and a pool block, valued by a length:
// F and B records.
Status DecodeRun(const char* what, std::string_view key, std::string_view v, uint64_t* pblock,
                 uint64_t* len) {
  if (key.size() != 9) return Status::Corruption(std::string(what) + " record with a bad key");
  *pblock = keys::U64At(key, 1);
  Status s = DecodeLength(v, len);
  if (!s.ok())
    return Status::Corruption(std::string(what) + " record at pool block " +
                              std::to_string(*pblock) + ": " + s.message());
  return Status::Ok();
}

}  // namespace

Status DecodeExtent(std::string_view key, std::string_view v, const PoolGeometry& geo,
                    Extent* out) {
  if (key.size() != 17) return Status::Corruption("extent record with a bad key");
  uint64_t ino = keys::U64At(key, 1);
  codec::Reader r(v);
  out->fblock = keys::U64At(key, 9);
  out->pblock = r.U64();
  out->len = r.U64();
  std::string who = "extent record of inode " + std::to_string(ino) + " at file block " +
                    std::to_string(out->fblock);
  if (!r.ok() || !r.done()) return Status::Corruption(who + ": bad length");
  if (!ValidFileRun(out->fblock, out->len))
    return Status::Corruption(who + ": file blocks " + Blocks(out->fblock, out->len) +
                              " are not a valid run");
  if (!geo.InData(out->pblock, out->len))
    return Status::Corruption(who + ": pool blocks " + Blocks(out->pblock, out->len) +
                              " are outside the data area " + Area(geo));
  return Status::Ok();
}

Status DecodeRmap(std::string_view key, std::string_view v, const PoolGeometry& geo,
                  RmapRecord* out) {
  if (key.size() != 26) return Status::Corruption("reverse-map record with a bad key");
  out->pblock = keys::U64At(key, 2);
  out->ino = keys::U64At(key, 10);
  out->fblock = keys::U64At(key, 18);
  std::string who = "reverse-map record at pool block " + std::to_string(out->pblock) + " (inode " +
                    std::to_string(out->ino) + ", file block " + std::to_string(out->fblock) + ")";
  Status s = DecodeLength(v, &out->len);
  if (!s.ok()) return Status::Corruption(who + ": " + s.message());
  if (keys::RmapClass(out->len) != static_cast<uint8_t>(key[1]))
    return Status::Corruption(who + ": filed under the wrong length class");
  if (out->ino == 0) return Status::Corruption(who + ": owner inode 0");
  if (!ValidFileRun(out->fblock, out->len))
    return Status::Corruption(who + ": file blocks " + Blocks(out->fblock, out->len) +
                              " are not a valid run");
  if (!geo.InData(out->pblock, out->len))
    return Status::Corruption(who + ": pool blocks " + Blocks(out->pblock, out->len) +
                              " are outside the data area " + Area(geo));
  return Status::Ok();
}

std::string EncodeRefcount(const RefcountRecord& r) {
  assert(r.len > 0 && r.refs >= 2);
  std::string v;
  PutU64(&v, r.len);
  PutU64(&v, r.refs);
  return v;
}

Status DecodeRefcount(std::string_view key, std::string_view v, const PoolGeometry& geo,
                      RefcountRecord* out) {
  if (key.size() != 9) return Status::Corruption("refcount record with a bad key");
  codec::Reader r(v);
  out->pblock = keys::U64At(key, 1);
  out->len = r.U64();
  out->refs = r.U64();
  std::string who = "refcount record at pool block " + std::to_string(out->pblock);
  if (!r.ok() || !r.done()) return Status::Corruption(who + ": bad length");
  if (out->refs < 2)
    return Status::Corruption(who + ": count " + std::to_string(out->refs) + " < 2");
  if (!geo.InData(out->pblock, out->len))
    return Status::Corruption(who + ": pool blocks " + Blocks(out->pblock, out->len) +
                              " are outside the data area " + Area(geo));
  return Status::Ok();
}

Status DecodeFree(std::string_view key, std::string_view v, const PoolGeometry& geo,
                  uint64_t* pblock, uint64_t* len) {
  DAXREF_RETURN_IF_ERROR(DecodeRun("free-space", key, v, pblock, len));
  if (!geo.InData(*pblock, *len))
    return Status::Corruption("free-space record: pool blocks " + Blocks(*pblock, *len) +
                              " are outside the data area " + Area(geo));
  return Status::Ok();
}

Status DecodeBad(std::string_view key, std::string_view v, const PoolGeometry& geo,
                 uint64_t* pblock, uint64_t* len) {
  DAXREF_RETURN_IF_ERROR(DecodeRun("bad-block", key, v, pblock, len));
  if (!geo.InPool(*pblock, *len))
    return Status::Corruption("bad-block record: pool blocks " + Blocks(*pblock, *len) +
                              " are outside the pool's " + std::to_string(geo.block_count) +
                              " blocks");
  return Status::Ok();
}

const char* BadOriginName(BadOriginKind k) {
  switch (k) {
    case BadOriginKind::kInjected:
      return "injected";
    case BadOriginKind::kMachineCheck:
      return "machine-check";
    case BadOriginKind::kMachineCheckAsync:
      return "machine-check-async";
    case BadOriginKind::kDevice:
      return "device";
    case BadOriginKind::kUnknown:
      break;
  }
  return "unknown";
}

// Value: length u64, origin u8, uid u32, time u64: 21 bytes.
std::string EncodeBadOrigin(const BadOriginRecord& r) {
  assert(r.len > 0 && r.origin.kind != BadOriginKind::kUnknown);
  std::string v;
  PutU64(&v, r.len);
  PutU8(&v, static_cast<uint8_t>(r.origin.kind));
  PutU32(&v, r.origin.uid);
  PutU64(&v, r.origin.time);
  return v;
}

Status DecodeBadOrigin(std::string_view key, std::string_view v, const PoolGeometry& geo,
                       BadOriginRecord* out) {
  if (key.size() != 9) return Status::Corruption("bad-block origin record with a bad key");
  codec::Reader r(v);
  out->pblock = keys::U64At(key, 1);
  out->len = r.U64();
  const uint8_t kind = r.U8();
  out->origin.uid = r.U32();
  out->origin.time = r.U64();
  std::string who = "bad-block origin record at pool block " + std::to_string(out->pblock);
  if (!r.ok() || !r.done()) return Status::Corruption(who + ": bad size");
  if (out->len == 0) return Status::Corruption(who + ": length 0");
  if (kind == 0 || kind > kBadOriginKindMax)
    return Status::Corruption(who + ": unknown origin " + std::to_string(kind));
  out->origin.kind = static_cast<BadOriginKind>(kind);
  if (!geo.InPool(out->pblock, out->len))
    return Status::Corruption(who + ": pool blocks " + Blocks(out->pblock, out->len) +
                              " are outside the pool's " + std::to_string(geo.block_count) +
                              " blocks");
  return Status::Ok();
}

Status DecodeParent(std::string_view key, ParentRecord* out) {
  if (key.size() < 18) return Status::Corruption("bad parent record");
  out->ino = keys::U64At(key, 1);
  out->parent = keys::U64At(key, 9);
  out->name.assign(key.substr(17));
  return Status::Ok();
}

std::string EncodeLength(uint64_t len) {
  std::string v;
  PutU64(&v, len);
  return v;
}

Status DecodeLength(std::string_view v, uint64_t* len) {
  if (v.size() != 8) return Status::Corruption("bad length record");
  *len = codec::LoadU64(v.data());
  if (*len == 0) return Status::Corruption("zero-length record");
  return Status::Ok();
}

}  // namespace daxref
