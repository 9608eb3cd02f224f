// Pieces shared by the checker (checker.cc) and fsck's repair (repair.cc):
// the one fact record kept per inode, reads of the store through one view,
// progress, and the decoders and texts both need. Not part of meta/'s
// interface.
#pragma once

#include <rocksdb/db.h>

#include <cstdint>
#include <functional>
#include <initializer_list>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "meta/format.h"
#include "meta/status.h"

namespace daxref::check {

// What a pass over the store learns about one inode: its record's fields
// that other records are checked against, and counts of the records that
// refer to it. About 100 bytes per inode: the checker's memory.
struct InodeFacts {
  enum Reach : uint8_t { kUnknown, kVisiting, kReachable, kUnreachable };
  uint64_t ino = 0;
  uint64_t parent = 0;       // I: a directory's parent field
  uint64_t blocks = 0;       // I: blocks
  uint64_t size = 0;         // I: size
  uint64_t next_cookie = 0;  // I: a directory's next cookie
  uint64_t ext_blocks = 0;   // the sum of its E records' lengths
  uint64_t named_in = 0;     // the directory of the first entry naming it; 0: none
  uint64_t max_cookie = 0;   // a directory's largest entry cookie
  uint32_t mode = 0;
  uint32_t nlink = 0;
  uint32_t flags = 0;
  uint32_t links = 0;    // D records naming it
  uint32_t subdirs = 0;  // a directory's entries that name directories
  bool orphan = false;   // has an O record
  bool xattrs = false;   // has X records
  bool target = false;   // has an L record
  bool reflink_reported = false;
  bool gone = false;  // repair: deleted
  Reach reach = kUnknown;
};

// The facts of every inode, in inode order (I records are read in key
// order, so appending keeps it sorted).
class Census {
 public:
  void Append(const InodeRecord& r);
  InodeFacts* Find(uint64_t ino);
  std::vector<InodeFacts>& all() { return facts_; }
  size_t size() const { return facts_.size(); }
  void Clear() { facts_.clear(); }
  // Sets `reach` of every directory: reachable when the chain of entries
  // naming it (named_in) leads to the root; unreachable when it breaks off
  // or loops.
  void ResolveDirectories();

 private:
  std::vector<InodeFacts> facts_;
};

// Reads of one view of the store: a snapshot, or the store as it is.
class Scanner {
 public:
  Scanner(rocksdb::DB* db, const rocksdb::Snapshot* snapshot);
  const rocksdb::ReadOptions& options() const { return ro_; }
  // Every record whose key starts with `prefix`, in key order: fn(key,
  // value) returns a Status, and the first failure ends the walk.
  Status Walk(const std::string& prefix,
              const std::function<Status(std::string_view, std::string_view)>& fn);
  // Ok with the value, ENOENT, or EIO.
  Status Get(const std::string& key, std::string* value);
  // Every key whose first byte is not in `known` (and the empty key).
  Status WalkOutside(std::string_view known, const std::function<Status(std::string_view)>& fn);

 private:
  rocksdb::DB* db_;
  rocksdb::ReadOptions ro_;
};

// The caller's progress callback, fed from the passes: each phase is a set
// of key prefixes, whose share of the store's keys is estimated once.
class Progress {
 public:
  using Fn = std::function<bool(std::string_view phase, double done)>;
  explicit Progress(const Fn& fn) : fn_(fn) {}
  void Estimate(rocksdb::DB* db);
  Status Phase(std::string_view name, std::initializer_list<char> prefixes);
  Status Phase(std::string_view name, char prefix) { return Phase(name, {prefix}); }
  // A phase that reads no prefix in full (its percent stays low).
  Status Phase(std::string_view name) { return Phase(name, std::initializer_list<char>{}); }
  // One record visited: ECANCELED when the callback says stop.
  Status Tick() {
    if (++seen_ % 4096 != 0 || !fn_) return Status::Ok();
    return Report();
  }
  Status Done();

 private:
  Status Report();
  const Fn& fn_;
  rocksdb::DB* db_ = nullptr;
  std::string phase_;
  uint64_t seen_ = 0, expected_ = 1;
  double keys_per_byte_ = 0;
};

// A directory entry, decoded from its D key and value.
struct Entry {
  uint64_t dir = 0;
  std::string name;
  DirentRecord d;
};
Status DecodeEntry(std::string_view key, std::string_view value, Entry* out);

// A readdir cookie record, decoded from its C key and value.
struct CookieEntry {
  uint64_t dir = 0;
  uint64_t cookie = 0;
  std::string name;
  DirentRecord d;
};
Status DecodeCookieEntry(std::string_view key, std::string_view value, CookieEntry* out);

// Record shapes, without the pool's geometry: the fields decode and hold
// together (lengths, length classes, file block runs, owner and count),
// wherever the pool blocks lie. The decoders of format.h also refuse pool
// blocks outside the data area; the checker and repair place the blocks
// themselves, so that an extent outside the pool is reported and dropped as
// such rather than as undecodable.
Status DecodeExtentShape(std::string_view key, std::string_view v, Extent* out);
Status DecodeRmapShape(std::string_view key, std::string_view v, RmapRecord* out);
Status DecodeRefcountShape(std::string_view key, std::string_view v, RefcountRecord* out);
// F and B records.
Status DecodeRunShape(std::string_view key, std::string_view v, uint64_t* pblock, uint64_t* len);

// Whether a record decodes and its numbers hold together (the rules the
// checker applies prefix by prefix, in one place for repair): Ok, or why
// not. M records always pass (their names are checked one by one); a key of
// no known kind fails.
Status ValidateRecord(std::string_view key, std::string_view value);

// What is wrong with where an extent lies, or "" when it lies inside the
// data area [1, block_count - 1) and its file blocks fit a file.
std::string ExtentGeometry(const Extent& e, uint64_t block_count);

bool ValidName(std::string_view name);
bool KnownType(uint32_t mode);
const char* TypeName(uint32_t type);
std::string Str(uint64_t v);
// A name or key fragment safe for one line: quoted, with control
// characters, quotes, backslashes and bytes past 0x7e as \xNN.
std::string Quote(std::string_view s);
// A key for a message: its prefix byte, then its bytes in hex (shortened).
std::string KeyText(std::string_view key);

// One path naming `ino` ("/a/b"), found by following parent pointers up to
// the root; "" when none leads there (unlinked, or cut off).
std::string PathOf(Scanner* scan, uint64_t ino);

}  // namespace daxref::check
