#include "meta/checker.h"

#include <rocksdb/db.h>
#include <sys/stat.h>

#include <algorithm>
#include <map>
#include <memory>
#include <set>
#include <unordered_map>
#include <vector>

#include "meta/format.h"

namespace daxref {

namespace {

// Changes of coverage at one pool block, for a sweep over the pool.
struct Edge {
  int64_t owners = 0;   // reverse-map records starting (+) or ending (-)
  int64_t refs = 0;     // refcount value starting (+) or ending (-)
  int64_t counted = 0;  // refcount records starting or ending
  int64_t free = 0;     // free records starting or ending
  int64_t bad = 0;      // bad records starting or ending
};

std::string Str(uint64_t v) {
  return std::to_string(v);
}

}  // namespace

Status CheckStore(rocksdb::DB* db, uint64_t block_count,
                  const std::function<void(const std::string&)>& problem, CheckReport* report) {
  *report = CheckReport{};
  const PoolGeometry geo{block_count};
  auto bad = [&](const std::string& s) {
    report->problems++;
    problem(s);
  };
  std::map<uint64_t, InodeRecord> inodes;
  std::map<std::pair<uint64_t, uint64_t>, Extent> extents;            // (ino, fblock)
  std::map<std::tuple<uint64_t, uint64_t, uint64_t>, uint64_t> rmap;  // (pb, ino, fb) -> len
  std::map<uint64_t, Edge> edges;
  auto cover = [&](uint64_t start, uint64_t len, Edge e) {
    Edge& a = edges[start];
    a.owners += e.owners, a.refs += e.refs, a.counted += e.counted, a.free += e.free,
        a.bad += e.bad;
    Edge& b = edges[start + len];
    b.owners -= e.owners, b.refs -= e.refs, b.counted -= e.counted, b.free -= e.free,
        b.bad -= e.bad;
  };
  std::set<std::tuple<uint64_t, uint64_t, std::string>> names_from_dirents, parent_pointers;
  std::unordered_map<uint64_t, uint32_t> links;    // ino -> dirents naming it
  std::unordered_map<uint64_t, uint32_t> subdirs;  // dir -> subdirectory entries
  std::map<uint64_t, std::vector<uint64_t>> children;
  std::set<std::pair<uint64_t, uint64_t>> cookies_from_dirents, cookies;
  std::set<uint64_t> orphans;
  uint64_t recorded_inodes = 0;
  std::set<uint64_t> xattr_owners, symlink_owners;

  std::unique_ptr<rocksdb::Iterator> it(db->NewIterator(rocksdb::ReadOptions()));
  for (it->SeekToFirst(); it->Valid(); it->Next()) {
    std::string_view k = it->key().ToStringView(), v = it->value().ToStringView();
    char p = k[0];
    Status s;
    if (p == prefix::kInode) {
      InodeRecord r;
      s = DecodeInode(keys::U64At(k, 1), v, &r);
      if (s.ok()) inodes[r.ino] = r;
    } else if (p == prefix::kDirent) {
      DirentRecord d;
      s = DecodeDirent(v, &d);
      if (s.ok()) {
        uint64_t dir = keys::U64At(k, 1);
        links[d.ino]++;
        names_from_dirents.insert({d.ino, dir, std::string(k.substr(9))});
        if (S_ISDIR(d.type)) subdirs[dir]++;
        children[dir].push_back(d.ino);
        cookies_from_dirents.insert({dir, d.cookie});
      }
    } else if (p == prefix::kDirCookie) {
      cookies.insert({keys::U64At(k, 1), keys::U64At(k, 9)});
    } else if (p == prefix::kExtent) {
      Extent e;
      s = DecodeExtent(k, v, geo, &e);
      if (s.ok()) {
        extents[{keys::U64At(k, 1), e.fblock}] = e;
        report->extents++;
      }
    } else if (p == prefix::kRmap) {
      RmapRecord r;
      s = DecodeRmap(k, v, geo, &r);
      if (s.ok()) {
        rmap[{r.pblock, r.ino, r.fblock}] = r.len;
        cover(r.pblock, r.len, Edge{1, 0, 0, 0, 0});
      }
    } else if (p == prefix::kFree || p == prefix::kBad) {
      uint64_t len = 0;
      s = DecodeLength(v, &len);
      if (s.ok()) {
        cover(keys::U64At(k, 1), len,
              p == prefix::kFree ? Edge{0, 0, 0, 1, 0} : Edge{0, 0, 0, 0, 1});
        (p == prefix::kFree ? report->free_blocks : report->bad_blocks) += len;
      }
    } else if (p == prefix::kOrphan) {
      orphans.insert(keys::U64At(k, 1));
    } else if (p == prefix::kXattr) {
      xattr_owners.insert(keys::U64At(k, 1));
    } else if (p == prefix::kSymlink) {
      symlink_owners.insert(keys::U64At(k, 1));
    } else if (p == prefix::kRefcount) {
      RefcountRecord r;
      s = DecodeRefcount(k, v, geo, &r);
      if (s.ok()) cover(r.pblock, r.len, Edge{0, static_cast<int64_t>(r.refs), 1, 0, 0});
    } else if (p == prefix::kParent) {
      ParentRecord r;
      s = DecodeParent(k, &r);
      if (s.ok()) parent_pointers.insert({r.ino, r.parent, r.name});
    } else if (k == keys::Misc(kMiscInodes)) {
      s = DecodeLength(v, &recorded_inodes);
    }
    if (!s.ok()) bad("undecodable record with prefix '" + std::string(1, p) + "': " + s.message());
  }
  if (!it->status().ok()) return Status::IOError(it->status().ToString());

  // 1-3: pool space. Sweep the pool once: between two consecutive edges
  // the coverage is constant, and each such run must be exactly one of free,
  // owned, or bad and unowned (retired); a bad block may also be owned (files
  // still reference the poisoned block), never free. An owned run has a
  // refcount record exactly when it has two or more owners, and then its
  // count equals the owners. With E and R in one-to-one correspondence
  // (below), owners are also extent references. The reserved blocks (the
  // superblock copies) may only be bad.
  uint64_t data_end = block_count - 1;
  Edge cur;
  uint64_t pos = 0;
  auto check_run = [&](uint64_t a, uint64_t b) {
    std::string where = "blocks [" + Str(a) + ", " + Str(b) + ")";
    bool any = cur.owners > 0 || cur.free > 0 || cur.bad > 0 || cur.counted > 0;
    if (a >= block_count) {
      if (any) bad(where + " lie past the end of the pool");
      return;
    }
    if (a < 1 || b > data_end) {
      if (cur.owners > 0 || cur.free > 0 || cur.counted > 0)
        bad(where + " reach reserved blocks");
      else if (cur.bad > 1)
        bad(where + " are in overlapping bad-block records");
      return;
    }
    if (cur.bad > 0 && cur.owners > 0) report->poisoned_blocks += b - a;
    if (cur.owners > 0) report->owned_blocks += b - a;
    if (cur.owners >= 2) report->shared_blocks += b - a;
    if (!any) {
      bad(where + " are neither free, owned nor bad (unaccounted)");
    } else if (cur.free > 1 || (cur.free > 0 && (cur.owners > 0 || cur.bad > 0))) {
      bad("block " + Str(a) + " is claimed twice (" + Str(cur.owners) + " owners, " +
          Str(cur.free) + " free and " + Str(cur.bad) + " bad records)");
    } else if (cur.bad > 1) {
      bad(where + " are in overlapping bad-block records");
    } else if (cur.counted > 1) {
      bad(where + " are in overlapping refcount records");
    } else if (cur.owners == 0 && cur.counted > 0) {
      bad(where + " have a refcount record but no owner");
    } else if (cur.owners == 1 && cur.counted > 0) {
      bad(where + ": refcount " + Str(cur.refs) + " but 1 owner");
    } else if (cur.owners >= 2 && (cur.counted == 0 || cur.refs != cur.owners)) {
      bad(where + ": refcount " + Str(cur.counted ? cur.refs : 1) + " but " + Str(cur.owners) +
          " owners");
    }
  };
  // A run with constant coverage, split where the data area and the pool
  // begin and end.
  auto run = [&](uint64_t a, uint64_t b) {
    for (uint64_t cut : {uint64_t{1}, data_end, block_count}) {
      if (a < cut && cut < b) {
        check_run(a, cut);
        a = cut;
      }
    }
    if (a < b) check_run(a, b);
  };
  for (const auto& [at, e] : edges) {
    run(pos, at);
    cur.owners += e.owners, cur.refs += e.refs, cur.counted += e.counted, cur.free += e.free,
        cur.bad += e.bad;
    pos = at;
  }
  run(pos, std::max(pos, block_count));
  if (names_from_dirents != parent_pointers)
    bad("parent pointers do not match the directory entries");

  // Extent map and reverse map describe the same mappings.
  std::map<uint64_t, uint64_t> blocks_of;
  uint64_t prev_ino = 0, prev_end = 0;
  for (const auto& [key, e] : extents) {
    uint64_t ino = key.first;
    if (ino == prev_ino && e.fblock < prev_end) bad("inode " + Str(ino) + ": extents overlap");
    prev_ino = ino;
    prev_end = e.fend();
    blocks_of[ino] += e.len;
    auto r = rmap.find({e.pblock, ino, e.fblock});
    if (r == rmap.end() || r->second != e.len)
      bad("inode " + Str(ino) + " extent at file block " + Str(e.fblock) +
          " has no matching reverse-map record");
    if (!inodes.count(ino)) bad("extent of missing inode " + Str(ino));
  }
  for (const auto& [key, len] : rmap) {
    auto [pb, ino, fb] = key;
    auto e = extents.find({ino, fb});
    if (e == extents.end() || e->second.pblock != pb || e->second.len != len)
      bad("reverse-map record at pool block " + Str(pb) + " names inode " + Str(ino) +
          " which does not map it");
  }

  // 4: namespace.
  for (const auto& [ino, r] : inodes) {
    report->inodes++;
    if (blocks_of[ino] != r.blocks)
      bad("inode " + Str(ino) + ": blocks " + Str(r.blocks) + " but extents hold " +
          Str(blocks_of[ino]));
    if (S_ISDIR(r.mode)) {
      report->directories++;
      uint32_t want = 2 + subdirs[ino];
      if (r.nlink != want)
        bad("directory " + Str(ino) + ": nlink " + Str(r.nlink) + ", expected " + Str(want));
      if (ino != kRootIno && links[ino] != 1)
        bad("directory " + Str(ino) + " has " + Str(links[ino]) + " entries naming it");
    } else {
      if (r.nlink != links[ino])
        bad("inode " + Str(ino) + ": nlink " + Str(r.nlink) + " but " + Str(links[ino]) +
            " entries");
      if (r.nlink == 0 && !orphans.count(ino))
        bad("inode " + Str(ino) + " has no links and is not on the orphan list");
    }
  }
  for (uint64_t o : orphans) {
    report->orphans++;
    auto r = inodes.find(o);
    if (r != inodes.end() && r->second.nlink != 0) bad("orphan " + Str(o) + " still has links");
  }
  for (const auto& [dir, kids] : children) {
    auto d = inodes.find(dir);
    if (d == inodes.end() || !S_ISDIR(d->second.mode))
      bad("entries in " + Str(dir) + " which is not a directory");
    for (uint64_t kid : kids) {
      auto k = inodes.find(kid);
      if (k == inodes.end())
        bad("entry in directory " + Str(dir) + " names missing inode " + Str(kid));
      else if (S_ISDIR(k->second.mode) && k->second.parent != dir)
        bad("directory " + Str(kid) + " says its parent is " + Str(k->second.parent) +
            " but it is named in " + Str(dir));
    }
  }
  if (cookies != cookies_from_dirents) bad("readdir cookie index does not match the entries");
  // Connectivity: every directory reachable from the root.
  std::set<uint64_t> seen{kRootIno};
  std::vector<uint64_t> todo{kRootIno};
  while (!todo.empty()) {
    uint64_t d = todo.back();
    todo.pop_back();
    for (uint64_t kid : children[d])
      if (seen.insert(kid).second) todo.push_back(kid);
  }
  if (!inodes.count(kRootIno)) bad("root inode missing");
  for (uint64_t ino : xattr_owners) {
    auto r = inodes.find(ino);
    if (r == inodes.end())
      bad("extended attributes of missing inode " + Str(ino));
    else if (!(r->second.flags & kInodeHasXattrs))
      bad("inode " + Str(ino) + " has extended attributes but not the flag that says so");
  }
  for (uint64_t ino : symlink_owners) {
    auto r = inodes.find(ino);
    if (r == inodes.end() || !S_ISLNK(r->second.mode))
      bad("symlink target of " + Str(ino) + ", which is not a symlink");
  }
  if (recorded_inodes != inodes.size())
    bad("inode count says " + Str(recorded_inodes) + " but " + Str(inodes.size()) + " exist");
  for (const auto& [ino, r] : inodes)
    if (!seen.count(ino) && !orphans.count(ino)) bad("inode " + Str(ino) + " is unreachable");
  return Status::Ok();
}

Status CheckStoreAt(const std::string& meta_dir, uint64_t block_count,
                    const std::function<void(const std::string&)>& problem, CheckReport* report) {
  rocksdb::DB* raw = nullptr;
  rocksdb::Status s = rocksdb::DB::OpenForReadOnly(rocksdb::Options(), meta_dir, &raw);
  if (!s.ok()) return Status::IOError("cannot open " + meta_dir + ": " + s.ToString());
  std::unique_ptr<rocksdb::DB> db(raw);
  return CheckStore(db.get(), block_count, problem, report);
}

}  // namespace daxref
