// Golden bytes of the on-disk format: every key and record encoder of
// meta/format.h and the pool superblock of meta/superblock.h, against byte
// strings written out by hand from docs/format.md. A failure here means the
// code and the document disagree about what is on disk: fix whichever is
// wrong, and if it is the code's layout that has to change, that is a new
// format version (docs/format.md, "Versions, and changing the format").
//
// Each expected string is spelled field by field, in the order and widths of
// the document's tables; spaces separate fields and carry no meaning. The
// decoders must read the same bytes back to the same values.
#include <sys/stat.h>

#include <array>
#include <catch2/catch.hpp>
#include <cstdint>
#include <map>
#include <string>
#include <string_view>

#include "meta/format.h"
#include "meta/lease_record.h"
#include "meta/superblock.h"
#include "test/meta_helpers.h"

namespace daxref {
namespace {

using testing::TestStore;

// Bytes from hex digits; spaces are ignored, and 'text' in quotes is taken
// as its ASCII bytes ("'M' 'uuid'" is "Muuid"), so keys read like the
// document's "prefix, fields" notation.
std::string Hex(std::string_view spec) {
  std::string out;
  auto digit = [](char c) -> int {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    FAIL("bad hex digit '" << c << "'");
    return 0;
  };
  for (size_t i = 0; i < spec.size();) {
    char c = spec[i];
    if (c == ' ' || c == '\n') {
      ++i;
    } else if (c == '\'') {
      size_t end = spec.find('\'', i + 1);
      REQUIRE(end != std::string_view::npos);
      out.append(spec.substr(i + 1, end - i - 1));
      i = end + 1;
    } else {
      REQUIRE(i + 1 < spec.size());
      out.push_back(static_cast<char>(digit(spec[i]) * 16 + digit(spec[i + 1])));
      i += 2;
    }
  }
  return out;
}

// Printable form for failure messages.
std::string Show(std::string_view b) {
  static const char* kDigits = "0123456789abcdef";
  std::string s;
  for (unsigned char c : b) {
    s.push_back(kDigits[c >> 4]);
    s.push_back(kDigits[c & 15]);
    s.push_back(' ');
  }
  return s;
}

#define REQUIRE_BYTES(actual, expected)                           \
  do {                                                            \
    std::string a_ = (actual), e_ = (expected);                   \
    INFO("actual:   " << Show(a_) << "\nexpected: " << Show(e_)); \
    REQUIRE(a_ == e_);                                            \
  } while (0)

// A pool of 0x10000 blocks: every pool block below is inside its data area.
constexpr PoolGeometry kGeo{0x10000};

}  // namespace

TEST_CASE("format: on-disk constants are the documented ones", "[format]") {
  STATIC_REQUIRE(kMetaFormatVersion == 5);
  STATIC_REQUIRE(kMetaFormatPreviousVersion == 4);
  STATIC_REQUIRE(kMetaFormatOldestVersion == 2);
  STATIC_REQUIRE(!MetaFormatReadable(1) && MetaFormatReadable(2) && MetaFormatReadable(4) &&
                 MetaFormatReadable(5) && !MetaFormatReadable(6));
  STATIC_REQUIRE(kPoolFormatVersion == 2);
  STATIC_REQUIRE(kPoolFormatPreviousVersion == 1);
  STATIC_REQUIRE(kBlockSize == 4096);
  STATIC_REQUIRE(kBlockShift == 12);
  STATIC_REQUIRE(kRootIno == 1);
  STATIC_REQUIRE(kFirstCookie == 3);
  STATIC_REQUIRE(kRmapClasses == 64);
  STATIC_REQUIRE(kMaxFileSize == uint64_t{1} << 62);
  STATIC_REQUIRE(kMaxFileBlocks == uint64_t{1} << 50);
  STATIC_REQUIRE(kMinPoolBlocks == 16);
  STATIC_REQUIRE(kInodeHasXattrs == 1);
  STATIC_REQUIRE(kInodeReflinked == 2);

  // The prefix table.
  STATIC_REQUIRE(prefix::kMisc == 'M');
  STATIC_REQUIRE(prefix::kInode == 'I');
  STATIC_REQUIRE(prefix::kDirent == 'D');
  STATIC_REQUIRE(prefix::kDirCookie == 'C');
  STATIC_REQUIRE(prefix::kExtent == 'E');
  STATIC_REQUIRE(prefix::kRmap == 'R');
  STATIC_REQUIRE(prefix::kRefcount == 'N');
  STATIC_REQUIRE(prefix::kFree == 'F');
  STATIC_REQUIRE(prefix::kBad == 'B');
  STATIC_REQUIRE(prefix::kBadOrigin == 'Q');
  STATIC_REQUIRE(static_cast<uint8_t>(BadOriginKind::kInjected) == 1);
  STATIC_REQUIRE(static_cast<uint8_t>(BadOriginKind::kMachineCheck) == 2);
  STATIC_REQUIRE(static_cast<uint8_t>(BadOriginKind::kMachineCheckAsync) == 3);
  STATIC_REQUIRE(static_cast<uint8_t>(BadOriginKind::kDevice) == 4);
  STATIC_REQUIRE(kBadOriginKindMax == 4);
  STATIC_REQUIRE(kNoUid == 0xffffffff);
  STATIC_REQUIRE(prefix::kOrphan == 'O');
  STATIC_REQUIRE(prefix::kXattr == 'X');
  STATIC_REQUIRE(prefix::kSymlink == 'L');
  STATIC_REQUIRE(prefix::kParent == 'P');
  STATIC_REQUIRE(prefix::kLease == 'G');
  STATIC_REQUIRE(static_cast<uint8_t>(LeaseMode::kRead) == 1);
  STATIC_REQUIRE(static_cast<uint8_t>(LeaseMode::kWrite) == 2);
  STATIC_REQUIRE(kLeaseHeaderSize == 61);
  STATIC_REQUIRE(kLeaseExtentSize == 24);
  REQUIRE(std::string_view(kPoolMagic, sizeof(kPoolMagic)) == "DAXREFPL");
}

TEST_CASE("format: keys are prefix byte and big-endian fields", "[format]") {
  // M: name as ASCII, nothing else.
  REQUIRE_BYTES(keys::Misc(kMiscUuid), Hex("'M' 'uuid'"));
  REQUIRE_BYTES(keys::Misc(kMiscFormat), Hex("'M' 'format'"));
  REQUIRE_BYTES(keys::Misc(kMiscBlocks), Hex("'M' 'blocks'"));
  REQUIRE_BYTES(keys::Misc(kMiscNextIno), Hex("'M' 'next_ino'"));
  REQUIRE_BYTES(keys::Misc(kMiscInodes), Hex("'M' 'inodes'"));
  REQUIRE_BYTES(keys::Misc(kMiscGeneration), Hex("'M' 'generation'"));
  REQUIRE_BYTES(keys::Misc(kMiscGenerationPending), Hex("'M' 'generation_pending'"));

  // I ino (9 bytes).
  REQUIRE_BYTES(keys::Inode(0x0102030405060708), Hex("'I' 0102030405060708"));
  // D dir name; the name runs to the end of the key.
  REQUIRE_BYTES(keys::Dirent(0x1122, "a.b"), Hex("'D' 0000000000001122 'a.b'"));
  REQUIRE_BYTES(keys::DirentPrefix(0x1122), Hex("'D' 0000000000001122"));
  // C dir cookie (17 bytes).
  REQUIRE_BYTES(keys::DirCookie(0x1122, 0x0a0b), Hex("'C' 0000000000001122 0000000000000a0b"));
  REQUIRE_BYTES(keys::DirCookiePrefix(0x1122), Hex("'C' 0000000000001122"));
  // E ino fblock (17 bytes).
  REQUIRE_BYTES(keys::Extent(0x33, 0x0102030405), Hex("'E' 0000000000000033 0000000102030405"));
  REQUIRE_BYTES(keys::ExtentPrefix(0x33), Hex("'E' 0000000000000033"));
  // N pblock, F pblock, B pblock, O ino, L ino (9 bytes each).
  REQUIRE_BYTES(keys::Refcount(0xabcdef), Hex("'N' 0000000000abcdef"));
  REQUIRE_BYTES(keys::Free(0xabcdef), Hex("'F' 0000000000abcdef"));
  REQUIRE_BYTES(keys::Bad(0xabcdef), Hex("'B' 0000000000abcdef"));
  REQUIRE_BYTES(keys::BadOrigin(0xabcdef), Hex("'Q' 0000000000abcdef"));
  REQUIRE_BYTES(keys::Orphan(0x44), Hex("'O' 0000000000000044"));
  REQUIRE_BYTES(keys::Symlink(0x44), Hex("'L' 0000000000000044"));
  // G lease id (9 bytes).
  REQUIRE_BYTES(keys::Lease(0x0102030405060708), Hex("'G' 0102030405060708"));
  // X ino name.
  REQUIRE_BYTES(keys::Xattr(0x44, "user.k"), Hex("'X' 0000000000000044 'user.k'"));
  REQUIRE_BYTES(keys::XattrPrefix(0x44), Hex("'X' 0000000000000044"));
  // P ino parent name.
  REQUIRE_BYTES(keys::Parent(0x44, 0x01, "f"), Hex("'P' 0000000000000044 0000000000000001 'f'"));
  REQUIRE_BYTES(keys::ParentPrefix(0x44), Hex("'P' 0000000000000044"));
}

TEST_CASE("format: reverse-map keys are filed under floor(log2(len))", "[format]") {
  REQUIRE(keys::RmapClass(1) == 0);
  REQUIRE(keys::RmapClass(2) == 1);
  REQUIRE(keys::RmapClass(3) == 1);
  REQUIRE(keys::RmapClass(4) == 2);
  REQUIRE(keys::RmapClass(7) == 2);
  REQUIRE(keys::RmapClass(8) == 3);
  REQUIRE(keys::RmapClass(uint64_t{1} << 50) == 50);
  REQUIRE(keys::RmapClass(UINT64_MAX) == 63);

  // R class pblock ino fblock (26 bytes): 5 blocks are class 2.
  std::string key = keys::Rmap(0x0100, 5, 0x0203, 0x0405);
  REQUIRE_BYTES(key, Hex("'R' 02 0000000000000100 0000000000000203 0000000000000405"));
  REQUIRE(key.size() == 26);
  REQUIRE_BYTES(keys::RmapClassPrefix(2), Hex("'R' 02"));
  REQUIRE_BYTES(keys::RmapClassAt(2, 0x0100), Hex("'R' 02 0000000000000100"));
  // One block is class 0; a class-0 key sorts before every class-1 key.
  REQUIRE_BYTES(keys::Rmap(0xffff, 1, 9, 0), Hex("'R' 00 000000000000ffff 0000000000000009 "
                                                 "0000000000000000"));
  REQUIRE(keys::Rmap(0xffff, 1, 9, 0) < keys::Rmap(1, 2, 9, 0));

  // Value: length u64.
  std::string value = EncodeLength(5);
  REQUIRE_BYTES(value, Hex("0000000000000005"));
  RmapRecord r;
  DAXREF_REQUIRE_OK(DecodeRmap(key, value, kGeo, &r));
  REQUIRE(r.pblock == 0x0100);
  REQUIRE(r.len == 5);
  REQUIRE(r.ino == 0x0203);
  REQUIRE(r.fblock == 0x0405);
  // The same record filed under class 1 is corruption.
  std::string misfiled = Hex("'R' 01 0000000000000100 0000000000000203 0000000000000405");
  DAXREF_REQUIRE_ERR(DecodeRmap(misfiled, value, kGeo, &r), EUCLEAN);
}

TEST_CASE("format: key order is numeric order", "[format]") {
  // Big-endian: 0x100 sorts after 0xff bytewise, as it does numerically.
  REQUIRE(keys::Extent(7, 0xff) < keys::Extent(7, 0x100));
  REQUIRE(keys::Extent(7, UINT64_MAX) < keys::Extent(8, 0));
  REQUIRE(keys::Free(1) < keys::Free(0x100));
  REQUIRE(keys::DirCookie(2, 3) < keys::DirCookie(2, 0x1000));
  // Successor: the first key past every key with the prefix.
  REQUIRE_BYTES(keys::Successor(Hex("'E' 0000000000000007")), Hex("'E' 0000000000000008"));
  // A trailing 0xff is dropped, not carried: the successor is shorter.
  REQUIRE_BYTES(keys::Successor(Hex("'E' 00000000000000ff")), Hex("'E' 00000000000001"));
  REQUIRE_BYTES(keys::Successor(Hex("'R' ffff")), Hex("'S'"));
  REQUIRE(keys::U64At(Hex("'E' 0000000000000033 0000000102030405"), 9) == 0x0102030405);
}

TEST_CASE("format: inode record version 1 is 109 bytes", "[format]") {
  InodeRecord in;
  in.ino = 0x77;  // from the key, not in the value
  in.mode = S_IFREG | 0644;
  in.uid = 0x03e8;
  in.gid = 0x03e9;
  in.nlink = 2;
  in.size = 0x0102030405;
  in.blocks = 0x0103;
  in.rdev = 0x0801;
  in.atime = {-1, 999999999};  // i64 as two's complement
  in.mtime = {0x5f5e1000, 1};
  in.ctime = {0x5f5e1001, 2};
  in.btime = {0x5f5e0fff, 3};
  in.parent = 0;
  in.next_cookie = 0;
  in.flags = kInodeHasXattrs | kInodeReflinked;

  const std::string expected =
      Hex("01"                         //   0 version
          "000081a4"                   //   1 mode: S_IFREG | 0644
          "000003e8"                   //   5 uid
          "000003e9"                   //   9 gid
          "00000002"                   //  13 nlink
          "0000000102030405"           //  17 size
          "0000000000000103"           //  25 blocks
          "0000000000000801"           //  33 rdev
          "ffffffffffffffff 3b9ac9ff"  //  41 atime.sec -1, 49 atime.nsec 999999999
          "000000005f5e1000 00000001"  //  53 mtime
          "000000005f5e1001 00000002"  //  65 ctime
          "000000005f5e0fff 00000003"  //  77 btime
          "0000000000000000"           //  89 parent
          "0000000000000000"           //  97 next_cookie
          "00000003");                 // 105 flags
  REQUIRE(expected.size() == 109);
  REQUIRE_BYTES(EncodeInode(in), expected);

  InodeRecord out;
  DAXREF_REQUIRE_OK(DecodeInode(0x77, expected, &out));
  REQUIRE(out.ino == 0x77);
  REQUIRE(out.mode == in.mode);
  REQUIRE(out.uid == in.uid);
  REQUIRE(out.gid == in.gid);
  REQUIRE(out.nlink == in.nlink);
  REQUIRE(out.size == in.size);
  REQUIRE(out.blocks == in.blocks);
  REQUIRE(out.rdev == in.rdev);
  REQUIRE(out.atime.sec == -1);
  REQUIRE(out.atime.nsec == 999999999);
  REQUIRE(out.mtime.sec == in.mtime.sec);
  REQUIRE(out.mtime.nsec == in.mtime.nsec);
  REQUIRE(out.ctime.sec == in.ctime.sec);
  REQUIRE(out.ctime.nsec == in.ctime.nsec);
  REQUIRE(out.btime.sec == in.btime.sec);
  REQUIRE(out.btime.nsec == in.btime.nsec);
  REQUIRE(out.parent == 0);
  REQUIRE(out.next_cookie == 0);
  REQUIRE(out.flags == in.flags);
  REQUIRE(EncodeInode(out) == expected);

  // A directory: parent and next_cookie are set.
  InodeRecord dir = in;
  dir.mode = S_IFDIR | 0755;
  dir.parent = kRootIno;
  dir.next_cookie = 0x0a;
  std::string dir_bytes = EncodeInode(dir);
  REQUIRE_BYTES(dir_bytes.substr(1, 4), Hex("000041ed"));
  REQUIRE_BYTES(dir_bytes.substr(89, 16), Hex("0000000000000001 000000000000000a"));

  // Another version byte, or one byte more or less, is corruption.
  std::string v2 = expected;
  v2[0] = 2;
  DAXREF_REQUIRE_ERR(DecodeInode(0x77, v2, &out), EUCLEAN);
  DAXREF_REQUIRE_ERR(DecodeInode(0x77, expected.substr(0, 108), &out), EUCLEAN);
  DAXREF_REQUIRE_ERR(DecodeInode(0x77, expected + '\0', &out), EUCLEAN);
}

TEST_CASE("format: dirent and cookie records", "[format]") {
  DirentRecord d{0x0102, S_IFDIR, 0x0a};
  // ino u64, type u32, cookie u64 (20 bytes).
  const std::string expected = Hex("0000000000000102 00004000 000000000000000a");
  REQUIRE_BYTES(EncodeDirent(d), expected);
  DirentRecord out;
  DAXREF_REQUIRE_OK(DecodeDirent(expected, &out));
  REQUIRE(out.ino == 0x0102);
  REQUIRE(out.type == S_IFDIR);
  REQUIRE(out.cookie == 0x0a);

  // C value: the same 20 bytes, then the name.
  REQUIRE_BYTES(EncodeCookie(d, "sub"), expected + "sub");
  std::string key = keys::DirCookie(kRootIno, 0x0a);
  std::string name;
  DAXREF_REQUIRE_OK(DecodeCookie(key, expected + "sub", &out, &name));
  REQUIRE(out.ino == 0x0102);
  REQUIRE(out.cookie == 0x0a);
  REQUIRE(name == "sub");
  // The cookie in the value must be the key's.
  DAXREF_REQUIRE_ERR(DecodeCookie(keys::DirCookie(kRootIno, 0x0b), expected + "sub", &out, &name),
                     EUCLEAN);
}

TEST_CASE("format: extent, refcount, free and bad records", "[format]") {
  // E value: pool block u64, length u64.
  Extent e{0x0405, 0x0100, 0x20};
  const std::string extent = Hex("0000000000000100 0000000000000020");
  REQUIRE_BYTES(EncodeExtent(e), extent);
  Extent eo;
  DAXREF_REQUIRE_OK(DecodeExtent(keys::Extent(0x33, 0x0405), extent, kGeo, &eo));
  REQUIRE(eo.fblock == 0x0405);
  REQUIRE(eo.pblock == 0x0100);
  REQUIRE(eo.len == 0x20);
  // Length 0 and a run outside the data area are corruption.
  DAXREF_REQUIRE_ERR(
      DecodeExtent(keys::Extent(0x33, 0), Hex("0000000000000100 0000000000000000"), kGeo, &eo),
      EUCLEAN);
  DAXREF_REQUIRE_ERR(
      DecodeExtent(keys::Extent(0x33, 0), Hex("0000000000000000 0000000000000001"), kGeo, &eo),
      EUCLEAN);

  // N value: length u64, refcount u64.
  RefcountRecord n{0x0100, 0x20, 3};
  const std::string refcount = Hex("0000000000000020 0000000000000003");
  REQUIRE_BYTES(EncodeRefcount(n), refcount);
  RefcountRecord no;
  DAXREF_REQUIRE_OK(DecodeRefcount(keys::Refcount(0x0100), refcount, kGeo, &no));
  REQUIRE(no.pblock == 0x0100);
  REQUIRE(no.len == 0x20);
  REQUIRE(no.refs == 3);
  DAXREF_REQUIRE_ERR(
      DecodeRefcount(keys::Refcount(0x0100), Hex("0000000000000020 0000000000000001"), kGeo, &no),
      EUCLEAN);

  // F and B values: length u64. B records may name the superblock copies.
  uint64_t pblock = 0, len = 0;
  DAXREF_REQUIRE_OK(
      DecodeFree(Hex("'F' 0000000000000001"), Hex("000000000000fffe"), kGeo, &pblock, &len));
  REQUIRE(pblock == 1);
  REQUIRE(len == 0xfffe);
  DAXREF_REQUIRE_ERR(
      DecodeFree(Hex("'F' 0000000000000000"), Hex("0000000000000001"), kGeo, &pblock, &len),
      EUCLEAN);
  DAXREF_REQUIRE_OK(
      DecodeBad(Hex("'B' 0000000000000000"), Hex("0000000000000001"), kGeo, &pblock, &len));
  REQUIRE(pblock == 0);
  REQUIRE(len == 1);
  DAXREF_REQUIRE_OK(
      DecodeBad(Hex("'B' 000000000000ffff"), Hex("0000000000000001"), kGeo, &pblock, &len));
  REQUIRE(pblock == 0xffff);
  DAXREF_REQUIRE_ERR(DecodeLength(Hex("0000000000000000"), &len), EUCLEAN);
  DAXREF_REQUIRE_ERR(DecodeLength(Hex("00000001"), &len), EUCLEAN);
}

TEST_CASE("format: bad-block origin records", "[format]") {
  // Value: length u64, origin u8, uid u32, time u64.
  const BadOriginRecord r{0x1234, 3, {BadOriginKind::kInjected, 1001, 0x5f5e1000}};
  REQUIRE_BYTES(EncodeBadOrigin(r), Hex("0000000000000003 01 000003e9 000000005f5e1000"));
  BadOriginRecord d;
  DAXREF_REQUIRE_OK(DecodeBadOrigin(keys::BadOrigin(0x1234), EncodeBadOrigin(r), kGeo, &d));
  REQUIRE(d.pblock == 0x1234);
  REQUIRE(d.len == 3);
  REQUIRE(d.origin == r.origin);
  DAXREF_REQUIRE_OK(DecodeBadOrigin(
      Hex("'Q' 0000000000000000"), Hex("0000000000000001 04 ffffffff 0000000000000000"), kGeo, &d));
  REQUIRE(d.origin.kind == BadOriginKind::kDevice);
  REQUIRE(d.origin.uid == kNoUid);
  REQUIRE(std::string(BadOriginName(BadOriginKind::kInjected)) == "injected");
  REQUIRE(std::string(BadOriginName(BadOriginKind::kMachineCheck)) == "machine-check");
  REQUIRE(std::string(BadOriginName(BadOriginKind::kMachineCheckAsync)) == "machine-check-async");
  REQUIRE(std::string(BadOriginName(BadOriginKind::kDevice)) == "device");
  REQUIRE(std::string(BadOriginName(BadOriginKind::kUnknown)) == "unknown");
  // Validated where decoded: length 0, an unknown origin (0 is in memory
  // only), outside the pool, a short or long value, a bad key.
  const std::string key = keys::BadOrigin(0x10);
  DAXREF_REQUIRE_ERR(
      DecodeBadOrigin(key, Hex("0000000000000000 01 00000000 0000000000000000"), kGeo, &d),
      EUCLEAN);
  DAXREF_REQUIRE_ERR(
      DecodeBadOrigin(key, Hex("0000000000000001 00 00000000 0000000000000000"), kGeo, &d),
      EUCLEAN);
  DAXREF_REQUIRE_ERR(
      DecodeBadOrigin(key, Hex("0000000000000001 05 00000000 0000000000000000"), kGeo, &d),
      EUCLEAN);
  DAXREF_REQUIRE_ERR(
      DecodeBadOrigin(Hex("'Q' 000000000000ffff"),
                      Hex("0000000000000002 01 00000000 0000000000000000"), kGeo, &d),
      EUCLEAN);
  DAXREF_REQUIRE_ERR(
      DecodeBadOrigin(key, Hex("0000000000000001 01 00000000 00000000000000"), kGeo, &d), EUCLEAN);
  DAXREF_REQUIRE_ERR(
      DecodeBadOrigin(key, Hex("0000000000000001 01 00000000 0000000000000000 00"), kGeo, &d),
      EUCLEAN);
  DAXREF_REQUIRE_ERR(
      DecodeBadOrigin(Hex("'Q' 00000000000010"),
                      Hex("0000000000000001 01 00000000 0000000000000000"), kGeo, &d),
      EUCLEAN);
}

TEST_CASE("format: layout lease records", "[format]") {
  LeaseRecord r;
  r.id = 7;
  r.ino = 0x21;
  r.fblock = 0x10;
  r.blocks = 4;
  r.mode = LeaseMode::kWrite;
  r.uid = 1001;
  r.pid = 0x4242;
  r.start_time = 0x123456;
  for (size_t i = 0; i < r.boot_id.size(); ++i) r.boot_id[i] = static_cast<uint8_t>(0xa0 + i);
  r.extents = {{0x10, 0x300, 1}, {0x11, 0x500, 3}};
  const std::string v = EncodeLease(r);
  REQUIRE_BYTES(v, Hex("0000000000000021 0000000000000010 0000000000000004 02 000003e9 00004242 "
                       "0000000000123456 a0a1a2a3a4a5a6a7a8a9aaabacadaeaf 00000002 "
                       "0000000000000010 0000000000000300 0000000000000001 "
                       "0000000000000011 0000000000000500 0000000000000003"));
  REQUIRE(v.size() == kLeaseHeaderSize + 2 * kLeaseExtentSize);
  LeaseRecord d;
  DAXREF_REQUIRE_OK(DecodeLease(keys::Lease(7), v, kGeo, &d));
  REQUIRE(d.id == 7);
  REQUIRE(d.ino == r.ino);
  REQUIRE(d.fblock == r.fblock);
  REQUIRE(d.blocks == r.blocks);
  REQUIRE(d.mode == LeaseMode::kWrite);
  REQUIRE(d.uid == 1001);
  REQUIRE(d.pid == 0x4242);
  REQUIRE(d.start_time == 0x123456);
  REQUIRE(d.boot_id == r.boot_id);
  REQUIRE(d.extents == r.extents);

  // A read lease may have holes (they are not recorded), even no extent.
  LeaseRecord rd = r;
  rd.mode = LeaseMode::kRead;
  rd.extents = {{0x11, 0x500, 2}};
  DAXREF_REQUIRE_OK(DecodeLease(keys::Lease(8), EncodeLease(rd), kGeo, &d));
  rd.extents.clear();
  DAXREF_REQUIRE_OK(DecodeLease(keys::Lease(8), EncodeLease(rd), kGeo, &d));
  REQUIRE(d.extents.empty());

  // Validated where decoded.
  auto bad = [&](LeaseRecord x) {
    DAXREF_REQUIRE_ERR(DecodeLease(keys::Lease(9), EncodeLease(x), kGeo, &d), EUCLEAN);
    DAXREF_REQUIRE_ERR(ValidateLease(x, kGeo), EINVAL);
  };
  LeaseRecord x = r;
  x.blocks = 0;  // length 0
  bad(x);
  x = r;
  x.ino = 0;
  bad(x);
  x = r;
  x.mode = static_cast<LeaseMode>(3);  // unknown mode
  bad(x);
  x = r;
  x.pid = 0;
  bad(x);
  x = r;
  x.extents[1].pblock = 0xffff;  // past the data area [1, 0xffff)
  bad(x);
  x = r;
  x.extents[0].pblock = 0;  // the primary superblock
  bad(x);
  x = r;
  x.extents[1].blocks = 4;  // past the lease's file range
  bad(x);
  x = rd;
  x.extents = {{0x12, 0x500, 1}, {0x11, 0x600, 1}};  // out of order
  bad(x);
  x = rd;
  x.extents = {{0x10, 0x500, 2}, {0x11, 0x600, 1}};  // overlapping
  bad(x);
  x = rd;
  x.extents = {{0xf, 0x500, 2}};  // starts before the lease
  bad(x);
  x = rd;
  x.extents = {{0x11, 0x500, 0}};  // length 0
  bad(x);
  x = r;
  x.extents = {{0x10, 0x300, 1}, {0x12, 0x500, 2}};  // a write lease with a hole
  bad(x);
  x = r;
  x.fblock = kMaxFileBlocks - 2;  // past the largest file
  x.extents.clear();
  x.mode = LeaseMode::kRead;
  bad(x);
  // The count must match the size; a short value; a bad key.
  std::string w = v;
  w[60] = 3;  // extent count 3, two extents
  DAXREF_REQUIRE_ERR(DecodeLease(keys::Lease(7), w, kGeo, &d), EUCLEAN);
  DAXREF_REQUIRE_ERR(DecodeLease(keys::Lease(7), v.substr(0, v.size() - 1), kGeo, &d), EUCLEAN);
  DAXREF_REQUIRE_ERR(DecodeLease(keys::Lease(7), v.substr(0, 40), kGeo, &d), EUCLEAN);
  DAXREF_REQUIRE_ERR(DecodeLease(keys::Lease(7), v + std::string(24, '\0'), kGeo, &d), EUCLEAN);
  DAXREF_REQUIRE_ERR(DecodeLease(Hex("'G' 00000000000007"), v, kGeo, &d), EUCLEAN);
}

TEST_CASE("format: parent pointers", "[format]") {
  ParentRecord p;
  DAXREF_REQUIRE_OK(DecodeParent(Hex("'P' 0000000000000044 0000000000000001 'name'"), &p));
  REQUIRE(p.ino == 0x44);
  REQUIRE(p.parent == 1);
  REQUIRE(p.name == "name");
  DAXREF_REQUIRE_ERR(DecodeParent(Hex("'P' 0000000000000044 0000000000000001"), &p), EUCLEAN);
}

TEST_CASE("format: a new store holds exactly the documented records", "[format]") {
  TestStore st(256);
  const Superblock& sb = st.sb();
  std::string uuid(reinterpret_cast<const char*>(sb.uuid.data()), sb.uuid.size());
  auto records = testing::ScanPrefix(st.db(), "");
  std::map<std::string, std::string> got(records.begin(), records.end());

  REQUIRE(got.at(Hex("'M' 'uuid'")) == uuid);
  REQUIRE_BYTES(got.at(Hex("'M' 'format'")), Hex("00000005"));
  REQUIRE_BYTES(got.at(Hex("'M' 'blocks'")), Hex("0000000000000100"));
  REQUIRE_BYTES(got.at(Hex("'M' 'next_ino'")), Hex("0000000000000002"));
  REQUIRE_BYTES(got.at(Hex("'M' 'inodes'")), Hex("0000000000000001"));
  // One free extent: [1, N-1).
  REQUIRE_BYTES(got.at(Hex("'F' 0000000000000001")), Hex("00000000000000fe"));
  // The root directory: its own parent, next cookie 3, two links.
  std::string root = got.at(Hex("'I' 0000000000000001"));
  REQUIRE(root.size() == 109);
  REQUIRE_BYTES(root.substr(0, 1), Hex("01"));
  REQUIRE_BYTES(root.substr(1, 4), Hex("000041ed"));
  REQUIRE_BYTES(root.substr(13, 4), Hex("00000002"));
  REQUIRE_BYTES(root.substr(89, 16), Hex("0000000000000001 0000000000000003"));
  // Nothing else but the generation records an open may add.
  for (const auto& [k, v] : got) {
    INFO("key " << Show(k));
    bool known = k == Hex("'M' 'uuid'") || k == Hex("'M' 'format'") || k == Hex("'M' 'blocks'") ||
                 k == Hex("'M' 'next_ino'") || k == Hex("'M' 'inodes'") ||
                 k == Hex("'M' 'generation'") || k == Hex("'M' 'generation_pending'") ||
                 k == Hex("'F' 0000000000000001") || k == Hex("'I' 0000000000000001");
    REQUIRE(known);
  }
}

TEST_CASE("format: CRC32C is the Castagnoli CRC", "[format]") {
  // The standard check value of CRC-32C over "123456789".
  REQUIRE(Crc32c("123456789", 9) == 0xe3069283u);
  REQUIRE(Crc32c("", 0) == 0);
}

TEST_CASE("format: pool superblock format 2", "[format]") {
  Superblock sb;
  sb.block_count = 0x0000000102030405;
  for (size_t i = 0; i < sb.uuid.size(); ++i) sb.uuid[i] = static_cast<uint8_t>(0x10 + i);
  sb.created = 0x65a1b2c3;
  sb.generation = 7;
  sb.store_sequence = 0xabcdef;

  const std::string head =
      Hex("'DAXREFPL'"                        //  0 magic
          "00000002"                          //  8 version
          "00001000"                          // 12 block_size
          "0000000102030405"                  // 16 block_count
          "101112131415161718191a1b1c1d1e1f"  // 24 uuid
          "0000000065a1b2c3"                  // 40 created
          "0000000000000007"                  // 48 generation
          "0000000000abcdef"                  // 56 store_seq
          "eb8e1457");                        // 64 crc32c of [0, 64), computed aside
  REQUIRE(head.size() == 68);
  std::string block(kBlockSize, '\x5a');
  EncodeSuperblock(sb, block.data());
  REQUIRE_BYTES(block.substr(0, 68), head);
  REQUIRE(block.substr(68) == std::string(kBlockSize - 68, '\0'));

  std::string expected = head + std::string(kBlockSize - 68, '\0');
  Superblock out;
  DAXREF_REQUIRE_OK(DecodeSuperblock(expected.data(), &out));
  REQUIRE(out.version == 2);
  REQUIRE(out.block_size == kBlockSize);
  REQUIRE(out.block_count == sb.block_count);
  REQUIRE(out.uuid == sb.uuid);
  REQUIRE(out.created == sb.created);
  REQUIRE(out.generation == 7);
  REQUIRE(out.store_sequence == 0xabcdef);

  // Bytes past the checksum are not covered by it.
  std::string tail = expected;
  tail[100] = 1;
  DAXREF_REQUIRE_OK(DecodeSuperblock(tail.data(), &out));
  // One bit of the covered bytes is.
  std::string flipped = expected;
  flipped[63] ^= 1;
  DAXREF_REQUIRE_ERR(DecodeSuperblock(flipped.data(), &out), EUCLEAN);
  // Magic, then version, are checked before the checksum.
  std::string magic = expected;
  magic[0] = 'd';
  DAXREF_REQUIRE_ERR(DecodeSuperblock(magic.data(), &out), EINVAL);
  std::string version = expected;
  version[11] = 3;
  DAXREF_REQUIRE_ERR(DecodeSuperblock(version.data(), &out), EINVAL);
}

TEST_CASE("format: pool superblock format 1 is still read", "[format]") {
  // Format 1: no generation and no store_seq; the checksum at 48 covers [0, 48).
  std::string block = Hex("'DAXREFPL'"                        //  0 magic
                          "00000001"                          //  8 version
                          "00001000"                          // 12 block_size
                          "0000000102030405"                  // 16 block_count
                          "101112131415161718191a1b1c1d1e1f"  // 24 uuid
                          "0000000065a1b2c3"                  // 40 created
                          "fdabafc1") +                       // 48 crc32c of [0, 48)
                      std::string(kBlockSize - 52, '\0');
  Superblock out;
  DAXREF_REQUIRE_OK(DecodeSuperblock(block.data(), &out));
  REQUIRE(out.version == 1);
  REQUIRE(out.block_count == 0x0000000102030405);
  REQUIRE(out.created == 0x65a1b2c3);
  REQUIRE(out.generation == 0);
  REQUIRE(out.store_sequence == 0);
  REQUIRE(out.uuid[0] == 0x10);
  REQUIRE(out.uuid[15] == 0x1f);

  // Written back, it is format 2 with the same fields.
  std::string now(kBlockSize, '\0');
  EncodeSuperblock(out, now.data());
  REQUIRE_BYTES(now.substr(0, 12), Hex("'DAXREFPL' 00000002"));
  Superblock again;
  DAXREF_REQUIRE_OK(DecodeSuperblock(now.data(), &again));
  REQUIRE(again.version == 2);
  REQUIRE(again.uuid == out.uuid);
  REQUIRE(again.block_count == out.block_count);
}

}  // namespace daxref
