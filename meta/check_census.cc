#include "meta/check_census.h"

#include <sys/stat.h>

#include <algorithm>
#include <cstdio>

#include "meta/codec.h"
#include "meta/lease_record.h"

namespace daxref::check {

// ---- Census -------------------------------------------------------------------

void Census::Append(const InodeRecord& r) {
  InodeFacts f;
  f.ino = r.ino;
  f.parent = r.parent;
  f.blocks = r.blocks;
  f.size = r.size;
  f.next_cookie = r.next_cookie;
  f.mode = r.mode;
  f.nlink = r.nlink;
  f.flags = r.flags;
  if (!facts_.empty() && facts_.back().ino >= r.ino) {
    // Not in key order (a caller appending by hand): keep the vector sorted.
    auto at = std::lower_bound(facts_.begin(), facts_.end(), r.ino,
                               [](const InodeFacts& a, uint64_t ino) { return a.ino < ino; });
    if (at != facts_.end() && at->ino == r.ino)
      *at = f;
    else
      facts_.insert(at, f);
    return;
  }
  facts_.push_back(f);
}

InodeFacts* Census::Find(uint64_t ino) {
  auto at = std::lower_bound(facts_.begin(), facts_.end(), ino,
                             [](const InodeFacts& a, uint64_t i) { return a.ino < i; });
  return at != facts_.end() && at->ino == ino ? &*at : nullptr;
}

void Census::ResolveDirectories() {
  for (InodeFacts& f : facts_)
    if (S_ISDIR(f.mode))
      f.reach = f.ino == kRootIno ? InodeFacts::kReachable : InodeFacts::kUnknown;
  std::vector<InodeFacts*> chain;
  for (InodeFacts& start : facts_) {
    if (!S_ISDIR(start.mode) || start.reach != InodeFacts::kUnknown) continue;
    // Follow the entries naming each directory towards the root, marking
    // the chain as visited, until it reaches a directory whose fate is
    // known, breaks off, or comes back to itself (a loop cut off from the
    // root).
    chain.clear();
    InodeFacts* f = &start;
    InodeFacts::Reach fate = InodeFacts::kUnreachable;
    for (;;) {
      if (f->reach == InodeFacts::kReachable || f->reach == InodeFacts::kUnreachable) {
        fate = f->reach;
        break;
      }
      if (f->reach == InodeFacts::kVisiting) break;  // a loop
      f->reach = InodeFacts::kVisiting;
      chain.push_back(f);
      InodeFacts* up = f->named_in != 0 ? Find(f->named_in) : nullptr;
      if (up == nullptr || !S_ISDIR(up->mode)) break;
      f = up;
    }
    for (InodeFacts* c : chain) c->reach = fate;
  }
}

// ---- Scanner ------------------------------------------------------------------

Scanner::Scanner(rocksdb::DB* db, const rocksdb::Snapshot* snapshot) : db_(db) {
  ro_.snapshot = snapshot;
}

Status Scanner::Walk(const std::string& prefix,
                     const std::function<Status(std::string_view, std::string_view)>& fn) {
  // Both bounds: without the lower one a seek would step over every deleted
  // key before the prefix.
  const std::string hi = keys::Successor(prefix);
  rocksdb::Slice lower(prefix), upper(hi);
  rocksdb::ReadOptions ro = ro_;
  ro.iterate_lower_bound = &lower;
  ro.iterate_upper_bound = hi.empty() ? nullptr : &upper;
  std::unique_ptr<rocksdb::Iterator> it(db_->NewIterator(ro));
  for (it->Seek(lower); it->Valid(); it->Next()) {
    Status s = fn(it->key().ToStringView(), it->value().ToStringView());
    if (!s.ok()) return s;
  }
  if (!it->status().ok()) return Status::IOError("reading the store: " + it->status().ToString());
  return Status::Ok();
}

Status Scanner::Get(const std::string& key, std::string* value) {
  rocksdb::Status s = db_->Get(ro_, key, value);
  if (s.IsNotFound()) return Status::NotFound("");
  if (!s.ok()) return Status::IOError("reading the store: " + s.ToString());
  return Status::Ok();
}

Status Scanner::WalkOutside(std::string_view known,
                            const std::function<Status(std::string_view)>& fn) {
  std::unique_ptr<rocksdb::Iterator> it(db_->NewIterator(ro_));
  it->SeekToFirst();
  while (it->Valid()) {
    std::string_view k = it->key().ToStringView();
    if (!k.empty() && known.find(k[0]) != std::string_view::npos) {
      // Skip the whole known prefix in one seek.
      std::string next = keys::Successor(std::string(1, k[0]));
      if (next.empty()) break;
      it->Seek(next);
      continue;
    }
    DAXREF_RETURN_IF_ERROR(fn(k));
    it->Next();
  }
  if (!it->status().ok()) return Status::IOError("reading the store: " + it->status().ToString());
  return Status::Ok();
}

// ---- Progress -----------------------------------------------------------------

void Progress::Estimate(rocksdb::DB* db) {
  if (!fn_) return;
  db_ = db;
  uint64_t keys = 0;
  db->GetIntProperty("rocksdb.estimate-num-keys", &keys);
  rocksdb::Range all("", "\xff");
  uint64_t bytes = 0;
  rocksdb::SizeApproximationOptions o;
  o.include_memtables = true;
  o.include_files = true;
  if (db->GetApproximateSizes(o, db->DefaultColumnFamily(), &all, 1, &bytes).ok() && bytes > 0)
    keys_per_byte_ = static_cast<double>(keys) / static_cast<double>(bytes);
}

Status Progress::Phase(std::string_view name, std::initializer_list<char> prefixes) {
  if (!fn_) return Status::Ok();
  phase_ = name;
  seen_ = 0;
  double expected = 0;
  for (char p : prefixes) {
    std::string lo(1, p), hi = keys::Successor(lo);
    rocksdb::Range r(lo, hi);
    uint64_t bytes = 0;
    rocksdb::SizeApproximationOptions o;
    o.include_memtables = true;
    o.include_files = true;
    if (db_ && db_->GetApproximateSizes(o, db_->DefaultColumnFamily(), &r, 1, &bytes).ok())
      expected += keys_per_byte_ * static_cast<double>(bytes);
  }
  expected_ = std::max<uint64_t>(1, static_cast<uint64_t>(expected));
  return Report();
}

Status Progress::Report() {
  const double done = std::min(0.99, static_cast<double>(seen_) / static_cast<double>(expected_));
  if (!fn_(phase_, done)) return Status::Error(ECANCELED, "check cancelled");
  return Status::Ok();
}

Status Progress::Done() {
  if (fn_ && !fn_("done", 1.0)) return Status::Error(ECANCELED, "check cancelled");
  return Status::Ok();
}

// ---- records and texts --------------------------------------------------------

Status DecodeEntry(std::string_view key, std::string_view value, Entry* out) {
  if (key.size() < 10) return Status::Corruption("bad directory entry key");
  out->dir = keys::U64At(key, 1);
  out->name.assign(key.substr(9));
  return DecodeDirent(value, &out->d);
}

Status DecodeCookieEntry(std::string_view key, std::string_view value, CookieEntry* out) {
  if (key.size() != 17) return Status::Corruption("bad readdir cookie key");
  out->dir = keys::U64At(key, 1);
  out->cookie = keys::U64At(key, 9);
  return DecodeCookie(key, value, &out->d, &out->name);
}

Status DecodeExtentShape(std::string_view key, std::string_view v, Extent* out) {
  if (key.size() != 17 || v.size() != 16) return Status::Corruption("bad extent record length");
  out->fblock = keys::U64At(key, 9);
  out->pblock = codec::LoadU64(v.data());
  out->len = codec::LoadU64(v.data() + 8);
  if (!ValidFileRun(out->fblock, out->len))
    return Status::Corruption("extent of file blocks [" + Str(out->fblock) + ", +" + Str(out->len) +
                              ") is not a valid run");
  return Status::Ok();
}

Status DecodeRmapShape(std::string_view key, std::string_view v, RmapRecord* out) {
  if (key.size() != 26) return Status::Corruption("bad reverse-map key length");
  out->pblock = keys::U64At(key, 2);
  out->ino = keys::U64At(key, 10);
  out->fblock = keys::U64At(key, 18);
  DAXREF_RETURN_IF_ERROR(DecodeLength(v, &out->len));
  if (keys::RmapClass(out->len) != static_cast<uint8_t>(key[1]))
    return Status::Corruption("reverse-map record filed under the wrong length class");
  if (out->ino == 0) return Status::Corruption("reverse-map record naming inode 0");
  if (!ValidFileRun(out->fblock, out->len))
    return Status::Corruption("reverse-map record of file blocks that are not a valid run");
  return Status::Ok();
}

Status DecodeRefcountShape(std::string_view key, std::string_view v, RefcountRecord* out) {
  if (key.size() != 9 || v.size() != 16) return Status::Corruption("bad refcount record length");
  out->pblock = keys::U64At(key, 1);
  out->len = codec::LoadU64(v.data());
  out->refs = codec::LoadU64(v.data() + 8);
  if (out->len == 0) return Status::Corruption("zero-length refcount record");
  if (out->refs < 2) return Status::Corruption("refcount record with a count below 2");
  return Status::Ok();
}

Status DecodeRunShape(std::string_view key, std::string_view v, uint64_t* pblock, uint64_t* len) {
  if (key.size() != 9) return Status::Corruption("bad key length");
  *pblock = keys::U64At(key, 1);
  return DecodeLength(v, len);
}

Status ValidateRecord(std::string_view k, std::string_view v) {
  if (k.empty()) return Status::Corruption("empty key");
  auto no_wrap = [](uint64_t pblock, uint64_t len) {
    return pblock + len > pblock && pblock + len != UINT64_MAX
               ? Status::Ok()
               : Status::Corruption("range runs past the last block number");
  };
  switch (k[0]) {
    case prefix::kMisc:
      return Status::Ok();
    case prefix::kInode: {
      InodeRecord r;
      if (k.size() != 9) return Status::Corruption("bad key length");
      if (keys::U64At(k, 1) == 0) return Status::Corruption("inode number 0");
      return DecodeInode(keys::U64At(k, 1), v, &r);
    }
    case prefix::kDirent: {
      Entry e;
      return DecodeEntry(k, v, &e);
    }
    case prefix::kDirCookie: {
      CookieEntry c;
      return DecodeCookieEntry(k, v, &c);
    }
    case prefix::kExtent: {
      Extent e;
      return DecodeExtentShape(k, v, &e);
    }
    case prefix::kRmap: {
      RmapRecord r;
      DAXREF_RETURN_IF_ERROR(DecodeRmapShape(k, v, &r));
      return no_wrap(r.pblock, r.len);
    }
    case prefix::kRefcount: {
      RefcountRecord r;
      DAXREF_RETURN_IF_ERROR(DecodeRefcountShape(k, v, &r));
      return no_wrap(r.pblock, r.len);
    }
    case prefix::kFree:
    case prefix::kBad: {
      uint64_t pblock = 0, len = 0;
      DAXREF_RETURN_IF_ERROR(DecodeRunShape(k, v, &pblock, &len));
      return no_wrap(pblock, len);
    }
    case prefix::kBadOrigin: {
      // The shape only: the pool's size is checked against the pool later.
      BadOriginRecord r;
      DAXREF_RETURN_IF_ERROR(DecodeBadOrigin(k, v, PoolGeometry{UINT64_MAX}, &r));
      return no_wrap(r.pblock, r.len);
    }
    case prefix::kOrphan:
      return k.size() == 9 && v.empty() ? Status::Ok() : Status::Corruption("bad orphan record");
    case prefix::kXattr:
      return k.size() >= 10 && k.size() <= 9 + kMaxXattrNameLen && v.size() <= kMaxXattrValueLen
                 ? Status::Ok()
                 : Status::Corruption("bad extended attribute record");
    case prefix::kSymlink:
      return k.size() == 9 && !v.empty() && v.size() <= 4095
                 ? Status::Ok()
                 : Status::Corruption("bad symlink target record");
    case prefix::kParent: {
      ParentRecord p;
      return DecodeParent(k, &p);
    }
    case prefix::kLease: {
      // The shape only: the pool's size is checked against the pool later.
      LeaseRecord r;
      return DecodeLease(k, v, PoolGeometry{UINT64_MAX}, &r);
    }
  }
  return Status::Corruption("unknown kind of record");
}

std::string ExtentGeometry(const Extent& e, uint64_t block_count) {
  const PoolGeometry geo{block_count};
  if (e.pblock + e.len < e.pblock)
    return "pool blocks from " + Str(e.pblock) + " wrap past the last block number";
  if (!geo.InData(e.pblock, e.len))
    return "pool blocks [" + Str(e.pblock) + ", " + Str(e.pend()) +
           ") lie outside the data area [1, " + Str(geo.data_end()) + ")";
  if (!ValidFileRun(e.fblock, e.len))
    return "file blocks from " + Str(e.fblock) + " run past the largest file";
  return "";
}

bool ValidName(std::string_view name) {
  return !name.empty() && name.size() <= kMaxNameLen && name != "." && name != ".." &&
         name.find('/') == std::string_view::npos && name.find('\0') == std::string_view::npos;
}

bool KnownType(uint32_t mode) {
  switch (mode & S_IFMT) {
    case S_IFREG:
    case S_IFDIR:
    case S_IFLNK:
    case S_IFCHR:
    case S_IFBLK:
    case S_IFIFO:
    case S_IFSOCK:
      return true;
  }
  return false;
}

const char* TypeName(uint32_t type) {
  switch (type & S_IFMT) {
    case S_IFREG:
      return "regular file";
    case S_IFDIR:
      return "directory";
    case S_IFLNK:
      return "symlink";
    case S_IFCHR:
      return "character device";
    case S_IFBLK:
      return "block device";
    case S_IFIFO:
      return "fifo";
    case S_IFSOCK:
      return "socket";
  }
  return "file of unknown type";
}

std::string Str(uint64_t v) {
  return std::to_string(v);
}

std::string Quote(std::string_view s) {
  std::string out = "'";
  for (char c : s) {
    unsigned char u = static_cast<unsigned char>(c);
    if (u < 0x20 || u > 0x7e || c == '\'' || c == '\\') {
      char buf[8];
      snprintf(buf, sizeof(buf), "\\x%02x", u);
      out += buf;
    } else {
      out.push_back(c);
    }
  }
  out.push_back('\'');
  return out;
}

std::string KeyText(std::string_view key) {
  if (key.empty()) return "empty key";
  static const char kHex[] = "0123456789abcdef";
  std::string out = "key ";
  unsigned char p = static_cast<unsigned char>(key[0]);
  if (p >= 0x21 && p <= 0x7e) {
    out.push_back(key[0]);
  } else {
    out += "\\x";
    out.push_back(kHex[p >> 4]);
    out.push_back(kHex[p & 15]);
  }
  const size_t shown = std::min<size_t>(key.size() - 1, 32);
  if (shown > 0) out.push_back(' ');
  for (size_t i = 1; i <= shown; ++i) {
    unsigned char u = static_cast<unsigned char>(key[i]);
    out.push_back(kHex[u >> 4]);
    out.push_back(kHex[u & 15]);
  }
  if (key.size() - 1 > shown) out += "...";
  return out;
}

std::string PathOf(Scanner* scan, uint64_t ino) {
  // Each step takes the first parent pointer of the inode; a chain longer
  // than any real tree (a loop) gives up.
  std::string path;
  for (int depth = 0; ino != kRootIno; ++depth) {
    if (depth > 4096) return "";
    ParentRecord p;
    bool found = false;
    Status s = scan->Walk(keys::ParentPrefix(ino), [&](std::string_view k, std::string_view) {
      if (DecodeParent(k, &p).ok()) found = true;
      return found ? Status::Error(ECANCELED, "") : Status::Ok();
    });
    if (!found || (!s.ok() && s.err() != ECANCELED)) return "";
    path = "/" + p.name + path;
    ino = p.parent;
  }
  return path.empty() ? "/" : path;
}

}  // namespace daxref::check
