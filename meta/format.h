// The metadata store's on-disk format: key prefixes, record layouts and their
// encoders. docs/format.md is the prose version of this file; change both or
// neither, and bump kMetaFormatVersion on any incompatible change.
//
// In-memory records (host order, plain structs) are distinct from their
// encoded form; Decode* validates and reports corruption instead of guessing.
#pragma once

#include <sys/types.h>

#include <array>
#include <cstdint>
#include <string>
#include <string_view>

#include "meta/status.h"

namespace daxref {

// ---- On-disk constants: do not change these values. -----------------------
inline constexpr uint32_t kMetaFormatVersion = 1;
inline constexpr uint32_t kBlockSize = 4096;
inline constexpr uint32_t kBlockShift = 12;
inline constexpr uint64_t kRootIno = 1;

namespace prefix {
inline constexpr char kMisc = 'M';       // M name                     -> misc value
inline constexpr char kInode = 'I';      // I ino                      -> InodeRecord
inline constexpr char kDirent = 'D';     // D dir name                 -> DirentRecord
inline constexpr char kDirCookie = 'C';  // C dir cookie               -> DirentRecord + name
inline constexpr char kExtent = 'E';     // E ino fileblock            -> Extent
inline constexpr char kRmap = 'R';       // R pblock ino fileblock     -> RmapRecord
inline constexpr char kRefcount = 'N';   // N pblock                   -> (reserved for reflink)
inline constexpr char kFree = 'F';       // F pblock                   -> length (blocks)
inline constexpr char kBad = 'B';        // B pblock                   -> length (blocks)
inline constexpr char kOrphan = 'O';     // O ino                      -> (empty)
inline constexpr char kXattr = 'X';      // X ino name                 -> value bytes
inline constexpr char kSymlink = 'L';    // L ino                      -> target bytes
}  // namespace prefix

// Names under prefix::kMisc.
inline constexpr std::string_view kMiscUuid = "uuid";
inline constexpr std::string_view kMiscFormat = "format";
inline constexpr std::string_view kMiscBlocks = "blocks";
inline constexpr std::string_view kMiscNextIno = "next_ino";
inline constexpr std::string_view kMiscInodes = "inodes";  // inodes in use

// InodeRecord::flags bits.
inline constexpr uint32_t kInodeHasXattrs = 1u << 0;  // X records may exist

// Dirent cookies 1 and 2 are "." and ".."; real entries start here.
inline constexpr uint64_t kFirstCookie = 3;
// ---- end of on-disk constants. ---------------------------------------------

using Uuid = std::array<uint8_t, 16>;
std::string UuidToString(const Uuid& u);

struct Timespec {
  int64_t sec = 0;
  uint32_t nsec = 0;
};

struct InodeRecord {
  uint64_t ino = 0;  // not encoded in the value; filled from the key
  uint32_t mode = 0;
  uint32_t uid = 0;
  uint32_t gid = 0;
  uint32_t nlink = 0;
  uint64_t size = 0;
  uint64_t blocks = 0;  // 4 KiB blocks the file's extents reference
  uint64_t rdev = 0;
  Timespec atime, mtime, ctime, btime;
  uint64_t parent = 0;       // directories: the parent directory
  uint64_t next_cookie = 0;  // directories: next readdir cookie to hand out
  uint32_t flags = 0;
};

struct DirentRecord {
  uint64_t ino = 0;
  uint32_t type = 0;  // S_IFMT bits of the target
  uint64_t cookie = 0;
};

// One extent of a file: file blocks [fblock, fblock+len) live at pool blocks
// [pblock, pblock+len).
struct Extent {
  uint64_t fblock = 0;
  uint64_t pblock = 0;
  uint64_t len = 0;
  uint64_t fend() const { return fblock + len; }
  uint64_t pend() const { return pblock + len; }
};

// Reverse-map record: pool blocks [pblock, pblock+len) are owned by inode ino
// at file block fblock.
struct RmapRecord {
  uint64_t pblock = 0;
  uint64_t ino = 0;
  uint64_t fblock = 0;
  uint64_t len = 0;
};

namespace keys {
std::string Misc(std::string_view name);
std::string Inode(uint64_t ino);
std::string Dirent(uint64_t dir, std::string_view name);
std::string DirentPrefix(uint64_t dir);
std::string DirCookie(uint64_t dir, uint64_t cookie);
std::string DirCookiePrefix(uint64_t dir);
std::string Extent(uint64_t ino, uint64_t fblock);
std::string ExtentPrefix(uint64_t ino);
std::string Rmap(uint64_t pblock, uint64_t ino, uint64_t fblock);
std::string Free(uint64_t pblock);
std::string Bad(uint64_t pblock);
std::string Orphan(uint64_t ino);
std::string Xattr(uint64_t ino, std::string_view name);
std::string XattrPrefix(uint64_t ino);
std::string Symlink(uint64_t ino);
// The first key past every key that starts with p (p must not be all 0xff).
std::string Successor(std::string p);
// Reads the big-endian u64 at byte offset `at` of key `k`.
uint64_t U64At(std::string_view k, size_t at);
}  // namespace keys

std::string EncodeInode(const InodeRecord& r);
Status DecodeInode(uint64_t ino, std::string_view v, InodeRecord* out);
std::string EncodeDirent(const DirentRecord& r);
Status DecodeDirent(std::string_view v, DirentRecord* out);
// The cookie index value carries the name after the dirent fields.
std::string EncodeCookie(const DirentRecord& r, std::string_view name);
Status DecodeCookie(std::string_view v, DirentRecord* out, std::string* name);
std::string EncodeExtent(const Extent& e);  // key carries fblock
Status DecodeExtent(std::string_view key, std::string_view v, Extent* out);
std::string EncodeRmap(const RmapRecord& r);  // key carries pblock/ino/fblock
Status DecodeRmap(std::string_view key, std::string_view v, RmapRecord* out);
std::string EncodeLength(uint64_t len);
Status DecodeLength(std::string_view v, uint64_t* len);

}  // namespace daxref
