// Volume::Paths and Volume::PathResolver (meta/volume_owners.cc): every
// name of an inode as a path from the root, through links, renames,
// exchanges and unlinks, against a model of the tree.
#include <linux/fs.h>

#include <catch2/catch.hpp>
#include <functional>
#include <iterator>
#include <map>
#include <random>
#include <set>
#include <string>
#include <tuple>
#include <vector>

#include "meta/volume.h"
#include "meta_helpers.h"

namespace daxref {
namespace {

using testing::kNothingHoldsIt;
using testing::kStillOpen;
using testing::TestStore;

// Paths of ino, by Volume::Paths and by a fresh PathResolver, which must
// agree (Paths is a resolver used once: the same walk).
std::set<std::string> PathSet(Volume& v, uint64_t ino) {
  std::set<std::string> out, resolved;
  DAXREF_REQUIRE_OK(v.Paths(ino, [&](const std::string& p) {
    REQUIRE(out.insert(p).second);
    return true;
  }));
  Volume::PathResolver r(&v);
  DAXREF_REQUIRE_OK(r.Paths(ino, [&](const std::string& p) {
    REQUIRE(resolved.insert(p).second);
    return true;
  }));
  REQUIRE(resolved == out);
  return out;
}

TEST_CASE("One PathResolver answers for many inodes as Paths does", "[reflink][paths]") {
  TestStore st;
  Volume& v = st.vol();
  std::vector<uint64_t> inos;
  uint64_t d = kRootIno;
  for (int depth = 0; depth < 5; ++depth) {
    d = st.MakeDir(d, "d" + std::to_string(depth));
    inos.push_back(d);
    for (int i = 0; i < 20; ++i) inos.push_back(st.MakeFile(d, "f" + std::to_string(i)));
  }
  InodeRecord out;
  DAXREF_REQUIRE_OK(v.Link(inos[3], kRootIno, "top", &out));
  Volume::PathResolver r(&v);
  for (int pass = 0; pass < 2; ++pass) {  // the second from its directory cache
    for (uint64_t ino : inos) {
      std::set<std::string> want, got;
      DAXREF_REQUIRE_OK(v.Paths(ino, [&](const std::string& p) { return want.insert(p).second; }));
      DAXREF_REQUIRE_OK(r.Paths(ino, [&](const std::string& p) { return got.insert(p).second; }));
      REQUIRE(!want.empty());
      REQUIRE(got == want);
    }
  }
}

using Names = std::set<std::string>;

TEST_CASE("Paths names every link of an inode, through renames and exchanges", "[reflink][paths]") {
  TestStore st;
  Volume& v = st.vol();
  uint64_t a = st.MakeDir(kRootIno, "a");
  uint64_t ab = st.MakeDir(a, "b");
  uint64_t c = st.MakeDir(kRootIno, "c");
  uint64_t f = st.MakeFile(ab, "f");
  InodeRecord out;
  DAXREF_REQUIRE_OK(v.Link(f, c, "g", &out));
  DAXREF_REQUIRE_OK(v.Link(f, kRootIno, "h", &out));
  REQUIRE(PathSet(v, kRootIno) == Names{"/"});
  REQUIRE(PathSet(v, f) == Names{"/a/b/f", "/c/g", "/h"});
  REQUIRE(PathSet(v, ab) == Names{"/a/b"});

  // Stopping early.
  int calls = 0;
  DAXREF_REQUIRE_OK(v.Paths(f, [&](const std::string&) { return ++calls < 1; }));
  REQUIRE(calls == 1);

  InodeRecord replaced;
  DAXREF_REQUIRE_OK(v.Rename(kRootIno, "a", kRootIno, "x", 0, kNothingHoldsIt, &replaced));
  REQUIRE(PathSet(v, f) == Names{"/x/b/f", "/c/g", "/h"});
  DAXREF_REQUIRE_OK(v.Rename(a, "b", c, "b", 0, kNothingHoldsIt, &replaced));
  REQUIRE(PathSet(v, f) == Names{"/c/b/f", "/c/g", "/h"});
  REQUIRE(PathSet(v, ab) == Names{"/c/b"});
  DAXREF_REQUIRE_OK(v.Rename(c, "g", a, "g2", 0, kNothingHoldsIt, &replaced));
  REQUIRE(PathSet(v, f) == Names{"/c/b/f", "/x/g2", "/h"});

  // Exchange a file and a directory in one directory: names swap.
  DAXREF_REQUIRE_OK(v.Rename(kRootIno, "h", kRootIno, "x", RENAME_EXCHANGE, nullptr, &replaced));
  REQUIRE(PathSet(v, f) == Names{"/c/b/f", "/h/g2", "/x"});
  REQUIRE(PathSet(v, a) == Names{"/h"});
  // Exchange two files across directories.
  uint64_t k = st.MakeFile(kRootIno, "k");
  DAXREF_REQUIRE_OK(v.Rename(ab, "f", kRootIno, "k", RENAME_EXCHANGE, nullptr, &replaced));
  REQUIRE(PathSet(v, f) == Names{"/k", "/h/g2", "/x"});
  REQUIRE(PathSet(v, k) == Names{"/c/b/f"});
  // Exchange two directories across parents: everything below follows.
  DAXREF_REQUIRE_OK(v.Rename(kRootIno, "h", c, "b", RENAME_EXCHANGE, nullptr, &replaced));
  REQUIRE(PathSet(v, f) == Names{"/k", "/c/b/g2", "/x"});
  REQUIRE(PathSet(v, k) == Names{"/h/f"});
  // Exchanging two names of one inode changes nothing.
  DAXREF_REQUIRE_OK(v.Rename(kRootIno, "k", kRootIno, "x", RENAME_EXCHANGE, nullptr, &replaced));
  REQUIRE(PathSet(v, f) == Names{"/k", "/c/b/g2", "/x"});

  // Rename over a file with another link: it keeps only that one.
  uint64_t w = st.MakeFile(c, "w");
  DAXREF_REQUIRE_OK(v.Link(w, ab, "w2", &out));
  DAXREF_REQUIRE_OK(v.Rename(kRootIno, "x", c, "w", 0, kNothingHoldsIt, &replaced));
  REQUIRE(replaced.ino == w);
  REQUIRE(PathSet(v, w) == Names{"/h/w2"});
  REQUIRE(PathSet(v, f) == Names{"/k", "/c/b/g2", "/c/w"});
  // Renaming a name onto another name of the same inode changes nothing.
  DAXREF_REQUIRE_OK(v.Rename(kRootIno, "k", c, "w", 0, kNothingHoldsIt, &replaced));
  REQUIRE(PathSet(v, f) == Names{"/k", "/c/b/g2", "/c/w"});

  // Unlinking drops names; an open-unlinked (orphaned) inode has none.
  InodeRecord victim;
  DAXREF_REQUIRE_OK(v.Unlink(c, "w", kNothingHoldsIt, &victim));
  REQUIRE(PathSet(v, f) == Names{"/k", "/c/b/g2"});
  DAXREF_REQUIRE_OK(v.Unlink(ab, "w2", kStillOpen, &victim));
  REQUIRE(victim.nlink == 0);
  REQUIRE(PathSet(v, w).empty());
  st.WriteFile(w, 0, "still open");  // an orphan is still a file
  REQUIRE(PathSet(v, w).empty());
  DAXREF_REQUIRE_VOLUME_CLEAN(st);
  DAXREF_REQUIRE_OK(v.Reclaim(w));
  REQUIRE(PathSet(v, w).empty());
  // A directory that was removed has none either.
  uint64_t e = st.MakeDir(ab, "e");
  REQUIRE(PathSet(v, e) == Names{"/h/e"});
  DAXREF_REQUIRE_OK(v.Rmdir(ab, "e"));
  REQUIRE(PathSet(v, e).empty());
  st.Reopen();
  REQUIRE(PathSet(st.vol(), f) == Names{"/k", "/c/b/g2"});
  REQUIRE(PathSet(st.vol(), k) == Names{"/h/f"});
  DAXREF_REQUIRE_VOLUME_CLEAN(st);
}

// Random links, unlinks, renames and exchanges against a model of the tree;
// after each, every inode's paths are exactly its names in the model.
TEST_CASE("Paths follow random links, renames, exchanges and unlinks", "[reflink][paths]") {
  const uint64_t seed = GENERATE(1, 2);
  CAPTURE(seed);
  std::mt19937_64 rng(seed);
  TestStore st;
  Volume& v = st.vol();
  struct Entry {
    uint64_t dir;
    std::string name;
    bool operator<(const Entry& o) const { return std::tie(dir, name) < std::tie(o.dir, o.name); }
  };
  std::map<Entry, uint64_t> names;  // the model: every entry
  std::set<uint64_t> dirs{kRootIno}, files, gone;
  auto entry_of_dir = [&](uint64_t dir) {
    for (const auto& [e, ino] : names)
      if (ino == dir) return e;
    FAIL("directory " << dir << " has no entry");
    return Entry{};
  };
  std::function<std::string(uint64_t)> path_of = [&](uint64_t dir) -> std::string {
    if (dir == kRootIno) return "";
    Entry e = entry_of_dir(dir);
    return path_of(e.dir) + "/" + e.name;
  };
  // Is `dir` `top` or below it?
  auto within = [&](uint64_t dir, uint64_t top) {
    for (uint64_t d = dir; d != kRootIno; d = entry_of_dir(d).dir)
      if (d == top) return true;
    return top == kRootIno;
  };
  auto any_of = [&](const std::set<uint64_t>& s) {
    auto it = s.begin();
    std::advance(it, rng() % s.size());
    return *it;
  };
  auto any_entry = [&]() {
    auto it = names.begin();
    std::advance(it, rng() % names.size());
    return *it;
  };
  auto fresh_name = [&] { return "n" + std::to_string(rng() % 12); };
  for (int i = 0; i < 4; ++i) {
    uint64_t parent = any_of(dirs);
    std::string n = "d" + std::to_string(i);
    uint64_t d = st.MakeDir(parent, n);
    dirs.insert(d);
    names[{parent, n}] = d;
  }
  for (int i = 0; i < 6; ++i) {
    uint64_t parent = any_of(dirs);
    std::string n = "f" + std::to_string(i);
    uint64_t f = st.MakeFile(parent, n);
    files.insert(f);
    names[{parent, n}] = f;
  }
  InodeRecord out, replaced;
  for (int step = 0; step < 250; ++step) {
    CAPTURE(step);
    switch (rng() % 5) {
      case 0: {  // link
        if (files.empty()) break;
        uint64_t f = any_of(files), dir = any_of(dirs);
        std::string n = fresh_name();
        if (names.count({dir, n})) break;
        DAXREF_REQUIRE_OK(v.Link(f, dir, n, &out));
        names[{dir, n}] = f;
        break;
      }
      case 1: {  // unlink a file's name
        auto [e, ino] = any_entry();
        if (!files.count(ino)) break;
        InodeRecord victim;
        DAXREF_REQUIRE_OK(v.Unlink(e.dir, e.name, kNothingHoldsIt, &victim));
        names.erase(e);
        if (victim.nlink == 0) {
          files.erase(ino);
          gone.insert(ino);
        }
        break;
      }
      case 2:
      case 3: {  // rename anything to a name that is free or names a file
        auto [e, ino] = any_entry();
        uint64_t to = any_of(dirs);
        std::string n = fresh_name();
        if (dirs.count(ino) && within(to, ino)) break;  // the kernel refuses these
        auto target = names.find({to, n});
        if (target != names.end() && (dirs.count(target->second) || dirs.count(ino))) break;
        DAXREF_REQUIRE_OK(v.Rename(e.dir, e.name, to, n, 0, kNothingHoldsIt, &replaced));
        if (target != names.end() && target->second == ino) break;  // two names of one file
        if (target != names.end()) {
          uint64_t old = target->second;
          names.erase(target);
          bool named = false;
          for (const auto& [x, i] : names) named |= i == old;
          if (!named) {
            files.erase(old);
            gone.insert(old);
          }
        }
        names.erase(e);
        names[{to, n}] = ino;
        break;
      }
      case 4: {  // exchange two names
        auto [e1, i1] = any_entry();
        auto [e2, i2] = any_entry();
        if (dirs.count(i1) && within(e2.dir, i1)) break;
        if (dirs.count(i2) && within(e1.dir, i2)) break;
        DAXREF_REQUIRE_OK(
            v.Rename(e1.dir, e1.name, e2.dir, e2.name, RENAME_EXCHANGE, nullptr, &replaced));
        names[e1] = i2;
        names[e2] = i1;
        break;
      }
    }
    std::map<uint64_t, Names> want;
    for (const auto& [e, ino] : names) want[ino].insert(path_of(e.dir) + "/" + e.name);
    for (uint64_t ino : dirs)
      REQUIRE(PathSet(v, ino) == (ino == kRootIno ? Names{"/"} : want[ino]));
    for (uint64_t ino : files) {
      CAPTURE(ino);
      REQUIRE(PathSet(v, ino) == want[ino]);
    }
    for (uint64_t ino : gone) REQUIRE(PathSet(v, ino).empty());
  }
  DAXREF_REQUIRE_VOLUME_CLEAN(st);
}

}  // namespace
}  // namespace daxref
