// fsck.daxref as an administrator runs it (man/fsck.daxref.8, docs/fsck.md).
//
// One filesystem with a bit of everything (files, a directory tree, a hard
// link, a symlink, an extended attribute, blocks shared by cp, a retired bad
// block and an orphan left by a daemon that was killed) is made once through
// a real mount. Each damage case copies it, damages one kind of record with
// StoreEditor (store_damage.h) or the pool's superblock copies, and checks:
//   - fsck -n finds it: exit 4, the JSON lists the class, and not a byte of
//     SOURCE changed (every file hashed before and after);
//   - fsck -y repairs it: exit 1, every problem marked repaired;
//   - a second fsck -n exits 0 and the checker (CheckStoreAt) is clean;
//   - where the repair promises to keep bytes, the files read back, through
//     a mount, exactly as before (a double claim: both files keep theirs).
// Then: a mounted SOURCE is refused; the command line; and a fuzz loop of
// random record damage that must never crash fsck.
#include <fcntl.h>
#include <sys/stat.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <chrono>
#include <functional>
#include <map>
#include <random>
#include <string>
#include <vector>

#include "admin/lease_holders.h"
#include "meta/checker.h"
#include "meta/format.h"
#include "meta/lease_record.h"
#include "meta/superblock.h"
#include "test/cli_expect.h"
#include "test/fixture.h"
#include "test/fs_helpers.h"
#include "test/holder_process.h"
#include "test/store_damage.h"

using namespace daxref;
using namespace daxref::test;

namespace {

const std::string kFsck = DAXREF_TEST_FSCK;
const std::string kPoison = DAXREF_TEST_POISON;

RunResult Fsck(std::vector<std::string> args) {
  args.insert(args.begin(), kFsck);
  return Run(args);
}

// Evaluates a Python expression over the JSON document `json` (bound to d).
std::string Json(const std::string& json, const std::string& expr) {
  TempDir t;
  const std::string file = t.path() + "/doc.json";
  WriteFile(file, json);
  RunResult r =
      Run({"/usr/bin/python3", "-c",
           "import json, sys\nd = json.load(open(sys.argv[1], 'rb'))\nprint(" + expr + ")", file});
  INFO(json << "\n" << r.err);
  REQUIRE(r.status == 0);
  std::string out = r.out;
  while (!out.empty() && out.back() == '\n') out.pop_back();
  return out;
}

// The filesystem every case starts from, made once.
struct Base {
  TempDir dir{"/dev/shm"};
  std::string source = dir.path() + "/fs";
  std::map<std::string, std::string> content;  // path -> bytes
  uint64_t orphan_blocks = 0;
};

const Base& TheBase() {
  static Base* base = [] {
    auto* b = new Base();
    MountedFs::Options o;
    o.size = 64 * kMiB;
    MountedFs fs(o);
    auto put = [&](const std::string& path, std::string bytes) {
      WriteFile(fs.path(path), bytes);
      b->content["/" + path] = std::move(bytes);
    };
    put("a", NonZeroBytes(1, 64 * kKiB));
    put("b", NonZeroBytes(2, 4 * kKiB));
    REQUIRE(mkdir(fs.path("dir").c_str(), 0755) == 0);
    REQUIRE(mkdir(fs.path("dir/sub").c_str(), 0755) == 0);
    put("dir/c", NonZeroBytes(3, 12 * kKiB));
    put("dir/sub/d", NonZeroBytes(4, 100));
    put("big", NonZeroBytes(5, 256 * kKiB));
    {
      // cp's way: copy_file_range, which shares the blocks.
      Fd in(fs.path("big"), O_RDONLY), out(fs.path("clone"), O_WRONLY | O_CREAT, 0644);
      loff_t io = 0, oo = 0;
      REQUIRE(copy_file_range(in.get(), &io, out.get(), &oo, 256 * kKiB, 0) ==
              static_cast<ssize_t>(256 * kKiB));
      b->content["/clone"] = b->content["/big"];
    }
    REQUIRE(symlink("a", fs.path("sym").c_str()) == 0);
    REQUIRE(setxattr(fs.path("a").c_str(), "user.k", "v", 1, 0) == 0);
    REQUIRE(link(fs.path("a").c_str(), fs.path("dir/a2").c_str()) == 0);
    b->content["/dir/a2"] = b->content["/a"];
    // A retired bad block (free when it went bad), through the daemon.
    RunResult p = Run({kPoison, "inject", fs.mnt(), "48M"});
    INFO(p.err);
    REQUIRE(p.status == 0);
    // An orphan: unlinked while open, and the daemon killed before the
    // last close.
    {
      Fd f(fs.path("orphan"), O_RDWR | O_CREAT, 0644);
      PwriteAll(f.get(), NonZeroBytes(6, 8 * kKiB), 0);
      REQUIRE(unlink(fs.path("orphan").c_str()) == 0);
      b->orphan_blocks = 2;
      fs.KillDaemon();
    }
    CopySource(fs.source(), b->source);
    return b;
  }();
  return *base;
}

// Mounts `source`, runs fn with the mount, unmounts.
void WithMount(const std::string& source, const std::function<void(MountedFs&)>& fn) {
  MountedFs::Options o;
  o.source = source;
  MountedFs fs(o);
  fn(fs);
  fs.Unmount();
}

struct Case {
  std::string name;
  std::function<void(StoreEditor&, const std::string& source)> damage;
  std::vector<std::string> classes;                      // the -n report must name each
  std::function<void(const std::string& source)> after;  // checks on the repaired copy
  // A Python expression over the -n JSON document (d) that must be True.
  std::string json_expect = {};
};

void RunCase(const Case& c) {
  INFO("case: " << c.name);
  const Base& base = TheBase();
  TempDir t("/dev/shm");
  const std::string src = t.path() + "/fs";
  CopySource(base.source, src);
  {
    StoreEditor ed(src);
    c.damage(ed, src);
  }
  const std::string before = TreeDigest(src);

  // -n: found, reported, nothing changed.
  RunResult n = Fsck({"-n", "--json", src});
  INFO("fsck -n: status " << n.status << "\n" << n.out << n.err);
  REQUIRE(n.status == 4);
  ExpectValidJson(n.out);
  CHECK(Json(n.out, "d['format']") == "1");
  CHECK(Json(n.out, "d['status']") == "4");
  CHECK(Json(n.out, "d['mode']") == "check");
  const std::string classes =
      Json(n.out, "' '.join(sorted(set(p['class'] for p in d['problems'])))");
  for (const std::string& cls : c.classes) {
    INFO("expected class " << cls << " among: " << classes);
    CHECK(Contains(" " + classes + " ", " " + cls + " "));
  }
  CHECK(Json(n.out, "any(p['repaired'] for p in d['problems'])") == "False");
  CHECK(Json(n.out, "d['problems_found'] == len(d['problems']) > 0") == "True");
  if (!c.json_expect.empty()) CHECK(Json(n.out, c.json_expect) == "True");
  REQUIRE(TreeDigest(src) == before);
  // Text mode says the same, one problem a line.
  RunResult nt = Fsck({"-n", src});
  CHECK(nt.status == 4);
  CHECK(Contains(nt.out, "problems found"));

  // -y: repaired, and a second run is clean.
  RunResult y = Fsck({"-y", "--json", src});
  INFO("fsck -y: status " << y.status << "\n" << y.out << y.err);
  REQUIRE(y.status == 1);
  ExpectValidJson(y.out);
  CHECK(Json(y.out, "d['status']") == "1");
  CHECK(Json(y.out, "d['problems_left']") == "0");
  CHECK(Json(y.out, "all(p['repaired'] for p in d['problems'])") == "True");
  CHECK(Json(y.out, "d['repairs_made'] > 0 and len(d['repairs']) > 0") == "True");
  RunResult n2 = Fsck({"-n", "--json", src});
  INFO("second fsck -n: " << n2.out << n2.err);
  REQUIRE(n2.status == 0);
  CheckSource(src);
  if (c.after) c.after(src);
}

// The bytes every file of the base has, read through a mount of `source`,
// except those in `skip`.
void ExpectFilesIntact(MountedFs& fs, const std::vector<std::string>& skip = {}) {
  for (const auto& [path, bytes] : TheBase().content) {
    if (std::find(skip.begin(), skip.end(), path) != skip.end()) continue;
    INFO(path);
    REQUIRE_SAME(ReadFile(fs.mnt() + path), bytes);
  }
}

TEST_CASE(
    "fsck.daxref finds nothing wrong with a healthy filesystem, and -y only reclaims the "
    "orphan",
    "[fsck]") {
  const Base& base = TheBase();
  TempDir t("/dev/shm");
  const std::string src = t.path() + "/fs";
  CopySource(base.source, src);
  const std::string before = TreeDigest(src);
  RunResult n = Fsck({"-n", "--json", src});
  INFO(n.out << n.err);
  REQUIRE(n.status == 0);
  CHECK(n.err.empty());
  ExpectValidJson(n.out);
  CHECK(Json(n.out, "d['problems_found']") == "0");
  CHECK(Json(n.out, "d['counts']['orphans']") == "1");
  CHECK(Json(n.out, "d['counts']['bad_blocks']") == "1");
  CHECK(Json(n.out, "d['counts']['shared_blocks']") == "64");
  CHECK(Json(n.out, "d['counts']['directories']") == "3");
  REQUIRE(TreeDigest(src) == before);
  RunResult text = Fsck({src});  // no mode: check only
  CHECK(text.status == 0);
  CHECK(Contains(text.out, ": clean;"));
  REQUIRE(TreeDigest(src) == before);

  SECTION("-p reclaims the orphan (as a mount would) and says it changed something") {
    RunResult p = Fsck({"-p", "--json", src});
    INFO(p.out << p.err);
    REQUIRE(p.status == 1);
    // The orphan goes, and the blocks it had come back to free space.
    CHECK(Json(p.out, "sorted(set(r['class'] for r in d['repairs']))") ==
          "['free-space', 'orphan']");
    CHECK(Json(p.out, "d['counts']['orphans']") == "0");
    REQUIRE(Fsck({"-n", src}).status == 0);
    REQUIRE(Fsck({"-y", src}).status == 0);
  }
  SECTION("the files read back after -y") {
    REQUIRE(Fsck({"-y", src}).status == 1);
    WithMount(src, [](MountedFs& fs) { ExpectFilesIntact(fs); });
  }
}

TEST_CASE("fsck.daxref finds, reports and repairs each kind of damage", "[fsck]") {
  const Base& base = TheBase();
  Case c;
  // What a section's damage learns for its checks: here, not in the
  // section, because c's functions run after the section's block has ended.
  uint64_t b_ino = 0, dir = 0, bad = 0, d_ino = 0;
  SECTION("an inode record dropped: recreated from its extents, the file keeps its bytes") {
    c = {"drop I",
         [](StoreEditor& ed, const std::string&) { ed.Delete(keys::Inode(ed.Lookup("/b"))); },
         {"dirent", "extent-owner", "counters"},
         [&](const std::string& src) {
           WithMount(src, [&](MountedFs& fs) {
             ExpectFilesIntact(fs);
             CHECK((StatOf(fs.path("b")).st_mode & 07777) == 0600);
           });
         }};
  }
  SECTION("an inode's link count altered") {
    c = {"alter I",
         [](StoreEditor& ed, const std::string&) {
           InodeRecord r = ed.Inode(ed.Lookup("/dir/c"));
           r.nlink += 5;
           ed.PutInode(r);
         },
         {"nlink"},
         [&](const std::string& src) {
           WithMount(src, [](MountedFs& fs) { ExpectFilesIntact(fs); });
         }};
  }
  SECTION("an inode record cut short") {
    c = {"undecodable I",
         [](StoreEditor& ed, const std::string&) {
           const uint64_t ino = ed.Lookup("/dir/sub/d");
           ed.Put(keys::Inode(ino), ed.Get(keys::Inode(ino))->substr(0, 50));
         },
         {"undecodable"},
         nullptr};
  }
  SECTION("a directory entry dropped: restored from its cookie record") {
    c = {"drop D",
         [](StoreEditor& ed, const std::string&) { ed.Delete(keys::Dirent(kRootIno, "b")); },
         {"nlink", "cookie", "parent-pointer", "unreachable"},
         [&](const std::string& src) {
           WithMount(src, [](MountedFs& fs) { ExpectFilesIntact(fs); });
         }};
  }
  SECTION("a directory entry naming a missing inode: removed, the file goes to lost+found") {
    c = {"alter D",
         [&](StoreEditor& ed, const std::string&) {
           DirentRecord d = ed.Dirent(kRootIno, "b");
           b_ino = d.ino;
           d.ino = 999999;
           ed.Put(keys::Dirent(kRootIno, "b"), EncodeDirent(d));
         },
         {"dirent"},
         [&](const std::string& src) {
           WithMount(src, [&](MountedFs& fs) {
             ExpectFilesIntact(fs, {"/b"});
             REQUIRE_SAME(ReadFile(fs.path("lost+found/#" + std::to_string(b_ino))),
                          TheBase().content.at("/b"));
             CHECK(ErrnoOf(access(fs.path("b").c_str(), F_OK)) == ENOENT);
           });
         }};
  }
  SECTION("a directory cut off the tree (its entry and cookie record dropped)") {
    c = {"drop D and C",
         [&](StoreEditor& ed, const std::string&) {
           DirentRecord d = ed.Dirent(kRootIno, "dir");
           dir = d.ino;
           ed.Delete(keys::Dirent(kRootIno, "dir"));
           ed.Delete(keys::DirCookie(kRootIno, d.cookie));
         },
         {"unreachable", "nlink", "parent-pointer"},
         [&](const std::string& src) {
           WithMount(src, [&](MountedFs& fs) {
             const std::string lf = "lost+found/#" + std::to_string(dir);
             REQUIRE_SAME(ReadFile(fs.path(lf + "/c")), TheBase().content.at("/dir/c"));
             REQUIRE_SAME(ReadFile(fs.path(lf + "/sub/d")), TheBase().content.at("/dir/sub/d"));
             REQUIRE_SAME(ReadFile(fs.path("a")), TheBase().content.at("/a"));
           });
         }};
  }
  SECTION("a readdir cookie record dropped") {
    c = {"drop C",
         [](StoreEditor& ed, const std::string&) {
           ed.Delete(keys::DirCookie(ed.Lookup("/dir"), ed.Dirent(ed.Lookup("/dir"), "c").cookie));
         },
         {"cookie"},
         [&](const std::string& src) {
           WithMount(src, [](MountedFs& fs) { ExpectFilesIntact(fs); });
         }};
  }
  SECTION("an extent dropped: its reverse-map record goes, its blocks come back") {
    c = {"drop E",
         [](StoreEditor& ed, const std::string&) {
           const uint64_t ino = ed.Lookup("/dir/c");
           ed.Delete(keys::Extent(ino, ed.Extents(ino).at(0).fblock));
         },
         {"rmap", "blocks"},
         nullptr};
  }
  SECTION("an extent pointing outside the pool: dropped, the file named by path") {
    c = {"E outside the pool",
         [](StoreEditor& ed, const std::string&) {
           const uint64_t ino = ed.Lookup("/b");
           Extent e = ed.Extents(ino).at(0);
           e.pblock = ed.BlockCount() + 5;
           ed.Put(keys::Extent(ino, e.fblock), EncodeExtent(e));
         },
         {"extent-geometry"},
         [&](const std::string& src) {
           WithMount(src, [](MountedFs& fs) {
             ExpectFilesIntact(fs, {"/b"});
             CHECK(ReadFile(fs.path("b")) == std::string(4 * kKiB, '\0'));
           });
         },
         // The file is named by its path.
         "any(p['class'] == 'extent-geometry' and p.get('path') == '/b' for p in d['problems'])"};
  }
  SECTION("an extent pointing at a reserved block (the backup superblock)") {
    c = {"E at a reserved block",
         [](StoreEditor& ed, const std::string&) {
           const uint64_t ino = ed.Lookup("/b");
           Extent e = ed.Extents(ino).at(0);
           e.pblock = ed.BlockCount() - 1;
           ed.Put(keys::Extent(ino, e.fblock), EncodeExtent(e));
         },
         {"extent-geometry"},
         nullptr};
  }
  SECTION("a block claimed by two files that do not share it: copied, both keep their bytes") {
    c = {"double claim",
         [](StoreEditor& ed, const std::string&) {
           const uint64_t a = ed.Lookup("/a"), b = ed.Lookup("/b");
           const Extent ea = ed.Extents(a).at(0);
           Extent eb = ed.Extents(b).at(0);
           // b's extent and its reverse-map record both move onto a's
           // second block: the reverse map agrees, the refcount does not.
           ed.Delete(keys::Rmap(eb.pblock, eb.len, b, eb.fblock));
           eb.pblock = ea.pblock + 1;
           ed.Put(keys::Extent(b, eb.fblock), EncodeExtent(eb));
           ed.Put(keys::Rmap(eb.pblock, eb.len, b, eb.fblock), EncodeLength(eb.len));
         },
         {"double-claim", "leaked"},
         [&](const std::string& src) {
           const std::string& a = TheBase().content.at("/a");
           WithMount(src, [&](MountedFs& fs) {
             ExpectFilesIntact(fs, {"/b"});
             // b holds what it claimed: a's second block.
             REQUIRE_SAME(ReadFile(fs.path("b")), a.substr(kBlock, kBlock));
             // And the two are apart now: writing one leaves the other.
             WriteFile(fs.path("b"), std::string(kBlock, 'x'));
             REQUIRE_SAME(ReadFile(fs.path("a")), a);
           });
         }};
  }
  SECTION("a reverse-map record dropped") {
    c = {"drop R",
         [](StoreEditor& ed, const std::string&) {
           const uint64_t ino = ed.Lookup("/dir/c");
           const Extent e = ed.Extents(ino).at(0);
           ed.Delete(keys::Rmap(e.pblock, e.len, ino, e.fblock));
         },
         {"rmap"},
         [&](const std::string& src) {
           WithMount(src, [](MountedFs& fs) { ExpectFilesIntact(fs); });
         }};
  }
  SECTION("the refcount record of a shared range dropped: a double claim, copied") {
    c = {"drop N",
         [](StoreEditor& ed, const std::string&) {
           auto n = ed.Scan(std::string(1, prefix::kRefcount));
           REQUIRE(n.size() == 1);
           ed.Delete(n[0].first);
         },
         {"double-claim"},
         [&](const std::string& src) {
           WithMount(src, [](MountedFs& fs) {
             ExpectFilesIntact(fs);
             WriteFile(fs.path("clone"), "changed");
             REQUIRE_SAME(ReadFile(fs.path("big")), TheBase().content.at("/big"));
           });
         }};
  }
  SECTION("a refcount record with the wrong count: a double claim, copied") {
    c = {"alter N",
         [](StoreEditor& ed, const std::string&) {
           auto n = ed.Scan(std::string(1, prefix::kRefcount));
           REQUIRE(n.size() == 1);
           RefcountRecord r;
           REQUIRE(DecodeRefcount(n[0].first, n[0].second, PoolGeometry{UINT64_MAX}, &r).ok());
           r.refs = 3;
           ed.Put(n[0].first, EncodeRefcount(r));
         },
         {"double-claim"},
         [&](const std::string& src) {
           WithMount(src, [](MountedFs& fs) {
             ExpectFilesIntact(fs);
             WriteFile(fs.path("big"), "changed");
             REQUIRE_SAME(ReadFile(fs.path("clone")), TheBase().content.at("/clone"));
           });
         }};
  }
  SECTION("overlapping refcount records: rebuilt, the share stays") {
    c = {"overlapping N",
         [](StoreEditor& ed, const std::string&) {
           auto n = ed.Scan(std::string(1, prefix::kRefcount));
           REQUIRE(n.size() == 1);
           RefcountRecord r;
           REQUIRE(DecodeRefcount(n[0].first, n[0].second, PoolGeometry{UINT64_MAX}, &r).ok());
           ed.Put(keys::Refcount(r.pblock + 1), EncodeRefcount(RefcountRecord{r.pblock + 1, 2, 2}));
         },
         {"refcount"},
         [&](const std::string& src) {
           StoreEditor ed(src);
           CHECK(ed.Scan(std::string(1, prefix::kRefcount)).size() == 1);
         }};
  }
  SECTION("a free-space record dropped: the blocks are leaked, then freed") {
    c = {"drop F",
         [](StoreEditor& ed, const std::string&) {
           auto f = ed.Scan(std::string(1, prefix::kFree));
           REQUIRE(!f.empty());
           ed.Delete(f.back().first);
         },
         {"leaked"},
         nullptr};
  }
  SECTION("a free-space record grown over owned blocks") {
    c = {"alter F",
         [](StoreEditor& ed, const std::string&) {
           const uint64_t ino = ed.Lookup("/a");
           const Extent e = ed.Extents(ino).at(0);
           ed.Put(keys::Free(e.pblock), EncodeLength(4));
         },
         {"free-space"},
         [&](const std::string& src) {
           WithMount(src, [](MountedFs& fs) { ExpectFilesIntact(fs); });
         }};
  }
  SECTION("a bad-block record overlapped by another: merged, the block stays bad") {
    c = {"alter B",
         [&](StoreEditor& ed, const std::string&) {
           auto b = ed.Scan(std::string(1, prefix::kBad));
           REQUIRE(b.size() == 1);
           bad = keys::U64At(b[0].first, 1);
           ed.Put(keys::Bad(bad - 1), EncodeLength(2));  // over bad-1 (free) and bad
         },
         {"bad-blocks"},
         [&](const std::string& src) {
           StoreEditor ed(src);
           auto b = ed.Scan(std::string(1, prefix::kBad));
           REQUIRE(b.size() == 1);
           CHECK(keys::U64At(b[0].first, 1) == bad - 1);
           CHECK(b[0].second == EncodeLength(2));
         }};
  }
  SECTION("a bad-block record dropped: the retired block looks leaked, and is freed") {
    // fsck cannot know a block was bad once its record is gone (docs/fsck.md);
    // on real persistent memory the daemon records it again from the
    // device's list at the next mount.
    c = {"drop B",
         [](StoreEditor& ed, const std::string&) {
           auto b = ed.Scan(std::string(1, prefix::kBad));
           REQUIRE(b.size() == 1);
           ed.Delete(b[0].first);
         },
         {"leaked"},
         nullptr};
  }
  SECTION("a readdir cookie record naming another inode") {
    c = {"alter C",
         [](StoreEditor& ed, const std::string&) {
           const uint64_t dir = ed.Lookup("/dir");
           DirentRecord d = ed.Dirent(dir, "c");
           const std::string name = "c";
           DirentRecord wrong = d;
           wrong.ino = ed.Lookup("/b");
           ed.Put(keys::DirCookie(dir, d.cookie), EncodeCookie(wrong, name));
         },
         {"cookie"},
         [&](const std::string& src) {
           WithMount(src, [](MountedFs& fs) { ExpectFilesIntact(fs); });
         }};
  }
  SECTION("a parent pointer under the wrong name") {
    c = {"alter P",
         [](StoreEditor& ed, const std::string&) {
           const uint64_t ino = ed.Lookup("/dir/c"), dir = ed.Lookup("/dir");
           ed.Delete(keys::Parent(ino, dir, "c"));
           ed.Put(keys::Parent(ino, dir, "not-c"), "");
         },
         {"parent-pointer"},
         nullptr};
  }
  SECTION("an orphan record with a value") {
    c = {"alter O",
         [](StoreEditor& ed, const std::string&) {
           auto o = ed.Scan(std::string(1, prefix::kOrphan));
           REQUIRE(o.size() == 1);
           ed.Put(o[0].first, "x");
         },
         {"undecodable"},
         nullptr};
  }
  SECTION("a directory's inode record dropped: its entries go, its files to lost+found") {
    c = {"drop I of a directory",
         [&](StoreEditor& ed, const std::string&) {
           d_ino = ed.Lookup("/dir/sub/d");
           ed.Delete(keys::Inode(ed.Lookup("/dir/sub")));
         },
         {"dirent", "unreachable"},
         [&](const std::string& src) {
           WithMount(src, [&](MountedFs& fs) {
             ExpectFilesIntact(fs, {"/dir/sub/d"});
             CHECK(ErrnoOf(access(fs.path("dir/sub").c_str(), F_OK)) == ENOENT);
             REQUIRE_SAME(ReadFile(fs.path("lost+found/#" + std::to_string(d_ino))),
                          TheBase().content.at("/dir/sub/d"));
           });
         }};
  }
  SECTION("an orphan record dropped: the unlinked inode is reclaimed") {
    c = {"drop O",
         [](StoreEditor& ed, const std::string&) {
           auto o = ed.Scan(std::string(1, prefix::kOrphan));
           REQUIRE(o.size() == 1);
           ed.Delete(o[0].first);
         },
         {"orphan"},
         [&](const std::string& src) {
           StoreEditor ed(src);
           CHECK(ed.Scan(std::string(1, prefix::kOrphan)).empty());
         }};
  }
  SECTION("an extended attribute moved to a missing inode") {
    c = {"alter X",
         [](StoreEditor& ed, const std::string&) {
           const uint64_t ino = ed.Lookup("/a");
           ed.Delete(keys::Xattr(ino, "user.k"));
           ed.Put(keys::Xattr(777777, "user.k"), "v");
         },
         {"xattr"},
         nullptr};
  }
  SECTION("a symlink's target dropped: the symlink becomes an empty file") {
    c = {"drop L",
         [](StoreEditor& ed, const std::string&) { ed.Delete(keys::Symlink(ed.Lookup("/sym"))); },
         {"symlink"},
         [&](const std::string& src) {
           WithMount(src, [](MountedFs& fs) {
             ExpectFilesIntact(fs);
             struct stat st = Lstat(fs.path("sym"));
             CHECK(S_ISREG(st.st_mode));
             CHECK(st.st_size == 0);
           });
         }};
  }
  SECTION("a parent pointer dropped") {
    c = {"drop P",
         [](StoreEditor& ed, const std::string&) {
           ed.Delete(keys::Parent(ed.Lookup("/dir/c"), ed.Lookup("/dir"), "c"));
         },
         {"parent-pointer"},
         nullptr};
  }
  SECTION("the inode count dropped, and the inode counter set back") {
    c = {"drop and alter M",
         [](StoreEditor& ed, const std::string&) {
           ed.Delete(keys::Misc(kMiscInodes));
           ed.Put(keys::Misc(kMiscNextIno), EncodeLength(3));
         },
         {"counters"},
         nullptr};
  }
  SECTION("the pool uuid dropped from the store") {
    c = {"drop M uuid",
         [](StoreEditor& ed, const std::string&) { ed.Delete(keys::Misc(kMiscUuid)); },
         {"misc"},
         nullptr};
  }
  SECTION("a record of no known kind") {
    c = {"unknown record",
         [](StoreEditor& ed, const std::string&) { ed.Put("Zjunk", "x"); },
         {"unknown-record"},
         nullptr};
  }
  SECTION("the primary superblock damaged: rewritten from the backup") {
    c = {"primary superblock",
         [](StoreEditor&, const std::string& src) { ScribblePool(src, 20, 8, 'z'); },
         {"superblock"},
         [&](const std::string& src) {
           REQUIRE(ReadPool(src, 0, kBlock) == ReadPool(src, 64 * kMiB - kBlock, kBlock));
         }};
  }
  SECTION("the backup superblock damaged: rewritten from the primary") {
    c = {"backup superblock",
         [](StoreEditor&, const std::string& src) {
           ScribblePool(src, 64 * kMiB - kBlock, 16, '\0');
         },
         {"superblock"},
         [&](const std::string& src) {
           REQUIRE(ReadPool(src, 0, kBlock) == ReadPool(src, 64 * kMiB - kBlock, kBlock));
         }};
  }
  SECTION("a lease whose block moved (its holder gone): the G record is deleted") {
    c = {"lease moved",
         [](StoreEditor& ed, const std::string&) {
           const uint64_t ino = ed.Lookup("/b");
           const std::vector<Extent> ext = ed.Extents(ino);
           REQUIRE(ext.size() == 1);
           LeaseRecord r;
           r.id = 9;
           r.ino = ino;
           r.blocks = 1;
           r.mode = LeaseMode::kWrite;
           r.pid = 1;  // init, which started long before: not this start time
           r.start_time = 1;
           r.extents = {{0, ext[0].pblock + 1, 1}};  // not where /b's block is
           ed.Put(keys::Lease(9), EncodeLease(r));
         },
         {"lease"},
         [&](const std::string& src) {
           WithMount(src, [](MountedFs& fs) { ExpectFilesIntact(fs); });
         },
         "d['counts']['leases'] == 1 and d['leases_recorded'] == 1"};
  }
  (void)base;
  RunCase(c);
}

TEST_CASE("fsck.daxref -p repairs only what is safe, and changes nothing otherwise", "[fsck]") {
  const Base& base = TheBase();
  TempDir t("/dev/shm");
  const std::string src = t.path() + "/fs";
  CopySource(base.source, src);
  SECTION("a dropped reverse-map record is safe") {
    {
      StoreEditor ed(src);
      const uint64_t ino = ed.Lookup("/dir/c");
      const Extent e = ed.Extents(ino).at(0);
      ed.Delete(keys::Rmap(e.pblock, e.len, ino, e.fblock));
    }
    RunResult p = Fsck({"-p", src});
    INFO(p.out << p.err);
    REQUIRE(p.status == 1);
    REQUIRE(Fsck({"-n", src}).status == 0);
  }
  SECTION("an extent outside the pool is not: nothing changes, exit 4") {
    {
      StoreEditor ed(src);
      const uint64_t ino = ed.Lookup("/b");
      Extent e = ed.Extents(ino).at(0);
      e.pblock = ed.BlockCount() + 5;
      ed.Put(keys::Extent(ino, e.fblock), EncodeExtent(e));
    }
    const std::string before = TreeDigest(src);
    RunResult p = Fsck({"-p", "--json", src});
    INFO(p.out << p.err);
    REQUIRE(p.status == 4);
    CHECK(Json(p.out, "d['repairs_made']") == "0");
    CHECK(Contains(Json(p.out, "d['not_repaired']"), "UNEXPECTED INCONSISTENCY"));
    REQUIRE(TreeDigest(src) == before);
  }
}

TEST_CASE("fsck.daxref refuses a mounted filesystem and a store of another pool", "[fsck]") {
  SECTION("mounted") {
    MountedFs::Options o;
    o.size = 32 * kMiB;
    MountedFs fs(o);
    WriteFile(fs.path("f"), "data");
    for (const char* mode : {"-n", "-y", "-p"}) {
      RunResult r = Fsck({mode, fs.source()});
      ExpectOneLineFailure(r, "fsck.daxref", "mounted or in use", 8);
    }
    CHECK(ReadFile(fs.path("f")) == "data");
  }
  SECTION("a store made for another pool") {
    TempDir t("/dev/shm");
    const std::string s1 = t.path() + "/one", s2 = t.path() + "/two";
    for (const std::string& s : {s1, s2})
      REQUIRE(Run({MkfsBin(), "-q", "--size", "32M", s}).status == 0);
    REQUIRE(Run({"/bin/rm", "-rf", MetaPath(s1)}).status == 0);
    REQUIRE(Run({"/bin/cp", "-a", MetaPath(s2), MetaPath(s1)}).status == 0);
    const std::string before = TreeDigest(s1);
    RunResult n = Fsck({"-n", "--json", s1});
    REQUIRE(n.status == 4);
    CHECK(Contains(Json(n.out, "[p['class'] for p in d['problems']]"), "uuid"));
    RunResult y = Fsck({"-y", "--json", s1});
    INFO(y.out << y.err);
    REQUIRE(y.status == 4);
    CHECK(Json(y.out, "d['repairs_made']") == "0");
    // The store is opened read-write for -y, so RocksDB may have touched
    // its own files; the pool and the records are what must not change.
    RunResult n2 = Fsck({"-n", "--json", s1});
    CHECK(n2.status == 4);
  }
}

TEST_CASE(
    "fsck.daxref reports leases left by a daemon, and repairs only when no holder maps "
    "the pool",
    "[fsck][lease]") {
  const Base& base = TheBase();
  TempDir t("/dev/shm");
  const std::string src = t.path() + "/fs";
  CopySource(base.source, src);
  // A holder as the lease server records one: a process that maps the
  // pool file, with its start time and the boot's id.
  HolderProcess holder(t.path() + "/log");
  holder.Map(PoolPath(src));
  {
    StoreEditor ed(src);
    const uint64_t ino = ed.Lookup("/b");
    const std::vector<Extent> ext = ed.Extents(ino);
    REQUIRE(ext.size() == 1);
    LeaseRecord r;
    r.id = 3;
    r.ino = ino;
    r.blocks = 1;
    r.mode = LeaseMode::kWrite;
    r.uid = getuid();
    r.pid = static_cast<uint32_t>(holder.pid());
    r.start_time = ProcessStartTime(holder.pid());
    r.boot_id = BootId();
    r.extents = {{0, ext[0].pblock, 1}};
    ed.Put(keys::Lease(3), EncodeLease(r));
  }
  const std::string before = TreeDigest(src);

  // Reported, not a problem: a check exits 0.
  RunResult n = Fsck({"-n", "--json", src});
  INFO(n.out << n.err);
  REQUIRE(n.status == 0);
  ExpectValidJson(n.out);
  CHECK(Json(n.out, "d['problems_found']") == "0");
  CHECK(Json(n.out, "d['counts']['leases']") == "1");
  CHECK(Json(n.out, "d['leases_recorded']") == "1");
  RunResult text = Fsck({src});
  CHECK(text.status == 0);
  CHECK(Contains(text.out, "1 layout lease recorded by a daemon that did not unmount cleanly"));

  // No repair while the holder lives and maps the pool: one line, exit 8,
  // nothing changed.
  for (const char* mode : {"-y", "-p"}) {
    RunResult y = Fsck({mode, src});
    ExpectOneLineFailure(
        y, "fsck.daxref",
        "process " + std::to_string(holder.pid()) + " (holder of write lease 3 of inode", 8);
    CHECK(Contains(y.err, "is alive and maps the pool"));
  }
  REQUIRE(TreeDigest(src) == before);

  // Once it is gone, -y deletes the record.
  holder.Kill();
  RunResult y = Fsck({"-y", "--json", src});
  INFO(y.out << y.err);
  REQUIRE(y.status == 1);
  CHECK(Json(y.out, "[r['class'] for r in d['repairs'] if r['class'] == 'lease']") == "['lease']");
  CHECK(Json(y.out, "d['counts']['leases']") == "0");
  CHECK(Json(y.out, "d['leases_recorded']") == "1");
  RunResult n2 = Fsck({"-n", "--json", src});
  REQUIRE(n2.status == 0);
  CHECK(Json(n2.out, "d['counts']['leases']") == "0");
  CheckSource(src);
}

TEST_CASE("fsck.daxref's command line", "[fsck][cli]") {
  const std::string prog = "fsck.daxref";
  RunResult h = Fsck({"--help"});
  ExpectHelp(h, prog);
  CHECK(Contains(h.out, "-n"));
  CHECK(Contains(h.out, "--json"));
  ExpectVersion(Fsck({"--version"}), prog);
  auto usage = [&](const RunResult& r, const std::string& needle) {
    INFO(r.status << "\n" << r.out << r.err);
    CHECK(r.status == 8);
    CHECK(r.out.empty());
    std::vector<std::string> lines = Lines(r.err);
    REQUIRE(lines.size() == 2);
    CHECK(Contains(lines[0], needle));
    CHECK(lines[1] == "Try 'fsck.daxref --help' for more information.");
  };
  usage(Fsck({}), "missing SOURCE");
  usage(Fsck({"-n", "-y", "/tmp"}), "exclude each other");
  usage(Fsck({"--frobnicate", "/tmp"}), "unrecognized option");
  usage(Fsck({"/tmp", "/tmp"}), "too many arguments");
  ExpectOneLineFailure(Fsck({"-n", "/nonexistent/fs"}), prog, "No such file", 8);
  ExpectOneLineFailure(Fsck({"-n", "/tmp"}), prog, "not a daxref filesystem", 8);
}

TEST_CASE("fsck.daxref through fsck(8), and its progress line on a terminal", "[fsck][cli]") {
  const Base& base = TheBase();
  TempDir t("/dev/shm");
  const std::string src = t.path() + "/fs";
  CopySource(base.source, src);
  SECTION("fsck -t fuse.daxref finds fsck.fuse.daxref and passes the options on") {
    // As installed: fsck.fuse.daxref, a link to fsck.daxref, on the path.
    TempDir bin;
    REQUIRE(symlink(kFsck.c_str(), (bin.path() + "/fsck.fuse.daxref").c_str()) == 0);
    const std::vector<std::string> env = {"PATH=" + bin.path() + ":/usr/sbin:/usr/bin:/sbin:/bin"};
    RunResult r = RunWithEnv({"/sbin/fsck", "-t", "fuse.daxref", "-n", src}, env);
    INFO(r.out << r.err);
    CHECK(r.status == 0);
    CHECK(Contains(r.out, ": clean;"));
    {
      StoreEditor ed(src);
      ed.Delete(keys::Misc(kMiscInodes));
    }
    r = RunWithEnv({"/sbin/fsck", "-t", "fuse.daxref", "-n", src}, env);
    CHECK(r.status == 4);
    r = RunWithEnv({"/sbin/fsck", "-t", "fuse.daxref", "-a", src}, env);
    INFO(r.out << r.err);
    CHECK(r.status == 1);
    CHECK(RunWithEnv({"/sbin/fsck", "-t", "fuse.daxref", "-n", src}, env).status == 0);
  }
  SECTION("the progress line goes to a terminal, rewritten in place") {
    // script(1) runs fsck.daxref on a pseudo-terminal and copies what it
    // wrote there (stdout and stderr both) to our stdout.
    RunResult r = Run({"/usr/bin/script", "-qec", kFsck + " -n " + src, "/dev/null"});
    INFO(r.out << r.err);
    CHECK(r.status == 0);
    CHECK(Contains(r.out, "\rfsck.daxref: "));
    CHECK(Contains(r.out, "%"));
    CHECK(Contains(r.out, ": clean;"));
  }
}

// Random damage: fsck never crashes, -n never writes, and after -y a second
// run is clean, or -y said honestly that it was not. At least kMinRounds
// rounds however slow the machine, more while time allows.
TEST_CASE("fsck.daxref survives random record damage", "[fsck][fuzz]") {
  const Base& base = TheBase();
  std::mt19937_64 rng(Catch::rngSeed() ? Catch::rngSeed() : 20240611);
  constexpr int kMinRounds = 8;
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(20);
  int rounds = 0, repaired = 0, left = 0;
  std::string left_texts;
  while (rounds < kMinRounds || std::chrono::steady_clock::now() < deadline) {
    ++rounds;
    TempDir t("/dev/shm");
    const std::string src = t.path() + "/fs";
    CopySource(base.source, src);
    std::string what;
    {
      StoreEditor ed(src);
      const int n = 1 + static_cast<int>(rng() % 3);
      for (int i = 0; i < n; ++i) what += ed.RandomDamage(rng) + "; ";
    }
    INFO("round " << rounds << ": " << what);
    const std::string before = TreeDigest(src);
    RunResult n = Fsck({"-n", "--json", src});
    INFO("fsck -n: " << n.status << " " << n.err);
    REQUIRE((n.status == 0 || n.status == 4));
    if (n.status == 4) ExpectValidJson(n.out);
    REQUIRE(TreeDigest(src) == before);
    RunResult y = Fsck({"-y", "--json", src});
    INFO("fsck -y: " << y.status << " " << y.err << "\n" << y.out);
    REQUIRE((y.status == 0 || y.status == 1 || y.status == 4));
    RunResult n2 = Fsck({"-n", "--json", src});
    INFO("second fsck -n: " << n2.status << " " << n2.out << n2.err);
    REQUIRE((n2.status == 0 || n2.status == 4));
    if (y.status == 0 || y.status == 1) {
      REQUIRE(n2.status == 0);
      CheckSource(src);
      ++repaired;
    } else {
      // What -y left, a second look finds too.
      REQUIRE(n2.status == 4);
      ++left;
      left_texts += "after " + what + ": " +
                    Json(y.out,
                         "[p['class'] + ': ' + p['text'] for p in d['problems'] "
                         "if not p['repaired']][:5]") +
                    "\n";
    }
  }
  if (left > 0) WARN("damage -y left:\n" << left_texts);
  WARN("fuzz: " << rounds << " rounds, " << repaired << " repaired, " << left << " left");
  CHECK(repaired + left == rounds);
}

}  // namespace
