// The metadata store's on-disk format: key prefixes, record layouts and their
// encoders. docs/format.md is the prose version of this file; change both or
// neither, and bump kMetaFormatVersion on any incompatible change.
//
// In-memory records (host order, plain structs) are distinct from their
// encoded form; Decode* validates and reports corruption instead of guessing.
#pragma once

#include <sys/types.h>

#include <array>
#include <compare>
#include <cstdint>
#include <string>
#include <string_view>

#include "meta/status.h"

namespace daxref {

// ---- On-disk constants: do not change these values. -----------------------
inline constexpr uint32_t kMetaFormatVersion = 5;
// Opened and upgraded in place: format 5 only adds G records (layout
// leases), format 4 only added Q records (where poison came from), format 3
// only added B records (poison). Every version from
// kMetaFormatOldestVersion up is read (MetaFormatReadable).
inline constexpr uint32_t kMetaFormatPreviousVersion = 4;
inline constexpr uint32_t kMetaFormatOldestVersion = 2;
constexpr bool MetaFormatReadable(uint32_t f) {
  return f >= kMetaFormatOldestVersion && f <= kMetaFormatVersion;
}
inline constexpr uint32_t kBlockSize = 4096;
inline constexpr uint32_t kBlockShift = 12;
inline constexpr uint64_t kRootIno = 1;

namespace prefix {
inline constexpr char kMisc = 'M';       // M name                     -> misc value
inline constexpr char kInode = 'I';      // I ino                      -> InodeRecord
inline constexpr char kDirent = 'D';     // D dir name                 -> DirentRecord
inline constexpr char kDirCookie = 'C';  // C dir cookie               -> DirentRecord + name
inline constexpr char kExtent = 'E';     // E ino fileblock            -> Extent
inline constexpr char kRmap = 'R';       // R class pblock ino fblock  -> length (blocks)
inline constexpr char kRefcount = 'N';   // N pblock                   -> length, refcount
inline constexpr char kFree = 'F';       // F pblock                   -> length (blocks)
inline constexpr char kBad = 'B';        // B pblock                   -> length (blocks)
inline constexpr char kBadOrigin = 'Q';  // Q pblock                   -> BadOriginRecord
inline constexpr char kOrphan = 'O';     // O ino                      -> (empty)
inline constexpr char kXattr = 'X';      // X ino name                 -> value bytes
inline constexpr char kSymlink = 'L';    // L ino                      -> target bytes
inline constexpr char kParent = 'P';     // P ino parent name          -> (empty)
inline constexpr char kLease = 'G';      // G lease id                 -> LeaseRecord
}  // namespace prefix

// Names under prefix::kMisc.
inline constexpr std::string_view kMiscUuid = "uuid";
inline constexpr std::string_view kMiscFormat = "format";
inline constexpr std::string_view kMiscBlocks = "blocks";
inline constexpr std::string_view kMiscNextIno = "next_ino";
inline constexpr std::string_view kMiscInodes = "inodes";  // inodes in use
// The generation this store shares with its pool's superblock, and the one
// an open is moving both to (present only between its first and last step).
inline constexpr std::string_view kMiscGeneration = "generation";
inline constexpr std::string_view kMiscGenerationPending = "generation_pending";
// The filesystem's label (mkfs.daxref -L): up to kMaxLabelLen bytes, absent
// when it has none. Read by daxref-info only; no daemon needs it, so it
// came without a format change (docs/format.md).
inline constexpr std::string_view kMiscLabel = "label";
inline constexpr size_t kMaxLabelLen = 255;

// InodeRecord::flags bits.
inline constexpr uint32_t kInodeHasXattrs = 1u << 0;  // X records may exist
inline constexpr uint32_t kInodeReflinked = 1u << 1;  // extents may be shared (N records)
// The extended attribute holding a file's capabilities. A write drops it (as
// the kernel's file_remove_privs does), so that a modified program does not
// keep the privileges granted to the old one.
inline constexpr std::string_view kCapabilityXattr = "security.capability";

// Dirent cookies 1 and 2 are "." and ".."; real entries start here.
inline constexpr uint64_t kFirstCookie = 3;
// Reverse-map records are filed under a length class, floor(log2(len)), so
// that the records overlapping a pool block can be found: in class c every
// record is at least 2^c and less than 2^(c+1) blocks long, so one that
// covers block b starts no earlier than b - 2^(c+1) + 1 (docs/format.md).
inline constexpr unsigned kRmapClasses = 64;
// Largest file size (exclusive): keeps every byte offset and block number of
// a file in a signed 64-bit off_t. No record may describe a file block at or
// past kMaxFileBlocks.
inline constexpr uint64_t kMaxFileSize = uint64_t{1} << 62;
inline constexpr uint64_t kMaxFileBlocks = kMaxFileSize >> kBlockShift;
// The longest name of a directory entry and of an extended attribute, and
// the largest attribute value, in bytes: Linux's NAME_MAX, XATTR_NAME_MAX and
// XATTR_SIZE_MAX. Volume refuses more, the decoders and the checker call
// more corruption, and statfs reports kMaxNameLen.
inline constexpr size_t kMaxNameLen = 255;
inline constexpr size_t kMaxXattrNameLen = 255;
inline constexpr size_t kMaxXattrValueLen = 65536;
// What one inode's extended attributes may hold together (docs/design.md,
// "Metadata space"): names with a NUL each, plus values, at most 128 KiB,
// so one attribute of the largest size always fits; and the names list
// alone at most 64 KiB (the kernel's XATTR_LIST_MAX), so listxattr can
// always return it. Past either: ENOSPC, as ext4 when an inode's attribute
// space is full. Not a format constant: only new attributes are checked.
inline constexpr size_t kMaxXattrBytesPerInode = 128 * 1024;
inline constexpr size_t kMaxXattrListLen = 64 * 1024;
// ---- end of on-disk constants. ---------------------------------------------

// The pool's shape as the decoders check records against it: blocks
// [0, block_count), of which block 0 and the last block hold the superblock
// copies and the rest is the data area. Every record that names pool blocks
// is validated against it where it is decoded (a damaged record is
// Corruption, never an address).
struct PoolGeometry {
  uint64_t block_count = 0;
  uint64_t first_data_block() const { return 1; }
  uint64_t data_end() const { return block_count > 0 ? block_count - 1 : 0; }
  // [pblock, pblock+len) is a non-empty run inside the data area, without overflow.
  bool InData(uint64_t pblock, uint64_t len) const {
    return len > 0 && pblock >= first_data_block() && pblock < data_end() &&
           len <= data_end() - pblock;
  }
  // [pblock, pblock+len) is a non-empty run of the pool's blocks.
  bool InPool(uint64_t pblock, uint64_t len) const {
    return len > 0 && pblock < block_count && len <= block_count - pblock;
  }
};

// [fblock, fblock+len) is a non-empty run of file blocks a file may have.
inline bool ValidFileRun(uint64_t fblock, uint64_t len) {
  return len > 0 && fblock < kMaxFileBlocks && len <= kMaxFileBlocks - fblock;
}

using Uuid = std::array<uint8_t, 16>;
std::string UuidToString(const Uuid& u);

struct Timespec {
  int64_t sec = 0;
  uint32_t nsec = 0;
  auto operator<=>(const Timespec&) const = default;  // by sec, then nsec
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
// at file block fblock. Records of different owners may overlap in any way
// once blocks are shared.
struct RmapRecord {
  uint64_t pblock = 0;
  uint64_t ino = 0;
  uint64_t fblock = 0;
  uint64_t len = 0;
  uint64_t pend() const { return pblock + len; }
};

// Refcount record: each of pool blocks [pblock, pblock+len) is referenced by
// `refs` extents (always >= 2). Only shared blocks have one: an owned block
// with no refcount record is referenced once. Refcount records never overlap.
struct RefcountRecord {
  uint64_t pblock = 0;
  uint64_t len = 0;
  uint64_t refs = 0;
  uint64_t pend() const { return pblock + len; }
};

// Where bad blocks came from (Q records). The origin byte is on disk: do
// not change these values.
enum class BadOriginKind : uint8_t {
  kUnknown = 0,            // in memory only: a B block with no Q record (recorded before format 4)
  kInjected = 1,           // daxref-poison inject (uid: who asked)
  kMachineCheck = 2,       // a machine check met by the daemon in a guarded access (BUS_MCEERR_AR)
  kMachineCheckAsync = 3,  // a machine check the kernel reported early (BUS_MCEERR_AO)
  kDevice = 4,             // the device's bad-block list (libpmem2, at mount or rescan)
};
inline constexpr uint8_t kBadOriginKindMax = 4;
// Its name in daxref-poison's output ("injected", "machine-check", ...).
const char* BadOriginName(BadOriginKind k);
inline constexpr uint32_t kNoUid = 0xffffffff;  // uid when nobody asked

// Pool blocks [pblock, pblock + len) went bad this way at `time` (seconds
// since the epoch, UTC).
struct BadOrigin {
  BadOriginKind kind = BadOriginKind::kUnknown;
  uint32_t uid = kNoUid;
  uint64_t time = 0;
  bool operator==(const BadOrigin&) const = default;
};
struct BadOriginRecord {
  uint64_t pblock = 0;
  uint64_t len = 0;
  BadOrigin origin;
  uint64_t pend() const { return pblock + len; }
};

// Parent pointer: inode `ino` is named `name` in directory `parent`. One per
// directory entry; lets the daemon turn an inode into its paths.
struct ParentRecord {
  uint64_t ino = 0;
  uint64_t parent = 0;
  std::string name;
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
unsigned RmapClass(uint64_t len);
std::string Rmap(uint64_t pblock, uint64_t len, uint64_t ino, uint64_t fblock);
// Where class `cls` starts, and its first key at or after pool block pblock.
std::string RmapClassPrefix(unsigned cls);
std::string RmapClassAt(unsigned cls, uint64_t pblock);
std::string Refcount(uint64_t pblock);
std::string Parent(uint64_t ino, uint64_t parent, std::string_view name);
std::string ParentPrefix(uint64_t ino);
std::string Free(uint64_t pblock);
std::string Bad(uint64_t pblock);
std::string BadOrigin(uint64_t pblock);
std::string Orphan(uint64_t ino);
std::string Xattr(uint64_t ino, std::string_view name);
std::string XattrPrefix(uint64_t ino);
std::string Symlink(uint64_t ino);
std::string Lease(uint64_t id);
// The first key past every key that starts with p (p must not be all 0xff).
std::string Successor(std::string p);
// Reads the big-endian u64 at byte offset `at` of key `k`.
uint64_t U64At(std::string_view k, size_t at);
}  // namespace keys

// Decoders validate what they decode, as XFS's record checks do: lengths,
// file block runs, and every pool block run against the geometry. A record
// that fails is Corruption (EUCLEAN) with a message naming the record.
std::string EncodeInode(const InodeRecord& r);
Status DecodeInode(uint64_t ino, std::string_view v, InodeRecord* out);
std::string EncodeDirent(const DirentRecord& r);
Status DecodeDirent(std::string_view v, DirentRecord* out);
// The cookie index value carries the name after the dirent fields. The
// cookie in the value must be the one in the key: readdir hands it to the
// kernel as the position to continue from, and a smaller one would make
// the walk start over for ever.
std::string EncodeCookie(const DirentRecord& r, std::string_view name);
Status DecodeCookie(std::string_view key, std::string_view v, DirentRecord* out, std::string* name);
std::string EncodeExtent(const Extent& e);  // key carries ino and fblock
Status DecodeExtent(std::string_view key, std::string_view v, const PoolGeometry& geo, Extent* out);
// R records have no value encoder: the value is EncodeLength(len).
Status DecodeRmap(std::string_view key, std::string_view v, const PoolGeometry& geo,
                  RmapRecord* out);
std::string EncodeRefcount(const RefcountRecord& r);  // key carries pblock
Status DecodeRefcount(std::string_view key, std::string_view v, const PoolGeometry& geo,
                      RefcountRecord* out);
// F (free) records: a run inside the data area. B (bad) records: a run
// anywhere in the pool (the superblock copies can go bad too).
Status DecodeFree(std::string_view key, std::string_view v, const PoolGeometry& geo,
                  uint64_t* pblock, uint64_t* len);
Status DecodeBad(std::string_view key, std::string_view v, const PoolGeometry& geo,
                 uint64_t* pblock, uint64_t* len);
// Q (bad-block origin) records: where blocks [pblock, pblock + len) of a B
// record came from and when.
std::string EncodeBadOrigin(const BadOriginRecord& r);  // key carries pblock
Status DecodeBadOrigin(std::string_view key, std::string_view v, const PoolGeometry& geo,
                       BadOriginRecord* out);
Status DecodeParent(std::string_view key, ParentRecord* out);
std::string EncodeLength(uint64_t len);
Status DecodeLength(std::string_view v, uint64_t* len);

}  // namespace daxref
