// readdir while the directory changes, through a real mount (issue 11
// item 6; docs/design.md, "readdir under rename"): a walk that renames every
// entry it reads ends and meets each entry at most once, as on XFS and
// ext4; telldir positions stay valid across the renames; two walkers of one
// directory each keep that; a rewind starts a walk that sees what is there.
//
// POSIX leaves open whether a walk sees an entry added or renamed after
// opendir or rewinddir; it never allows one entry twice or a walk without
// end. Before the fix, renaming 5,000 entries while reading made the walk
// meet each renamed entry again under its new name, without end.
#include <dirent.h>
#include <fcntl.h>
#include <stdio.h>
#include <sys/stat.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <cerrno>
#include <cstring>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <tuple>
#include <vector>

#include "test/fs_helpers.h"

namespace daxref::test {
namespace {

constexpr int kFiles = 5000;

struct CloseDir {
  void operator()(DIR* d) const { closedir(d); }
};
using Dir = std::unique_ptr<DIR, CloseDir>;

Dir OpenDir(const std::string& path) {
  Dir d(opendir(path.c_str()));
  INFO(path << ": " << strerror(errno));
  REQUIRE(d);
  return d;
}

void MakeFiles(const std::string& dir, int n) {
  for (int i = 0; i < n; ++i) Fd(dir + "/f" + std::to_string(i), O_CREAT | O_WRONLY);
}

// The name an entry was created with: the name without its ".x" suffixes.
std::string Base(std::string name) {
  while (name.size() > 2 && name.compare(name.size() - 2, 2, ".x") == 0)
    name.resize(name.size() - 2);
  return name;
}

// The next entry that is not "." or "..", or nullptr at the end.
dirent* NextEntry(DIR* d) {
  for (;;) {
    errno = 0;
    dirent* e = readdir(d);
    if (!e) {
      REQUIRE(errno == 0);
      return nullptr;
    }
    if (strcmp(e->d_name, ".") != 0 && strcmp(e->d_name, "..") != 0) return e;
  }
}

// Renames the entry to name + ".x" in its directory; an entry another walker
// renamed first is gone (ENOENT), which is fine.
void RenameOn(DIR* d, const char* name) {
  std::string to = std::string(name) + ".x";
  int rc = renameat(dirfd(d), name, dirfd(d), to.c_str());
  INFO(name << ": " << strerror(errno));
  REQUIRE((rc == 0 || errno == ENOENT));
}

TEST_CASE("a walk that renames every entry it reads sees each once and ends", "[fs][readdir]") {
  MountedFs fs;
  const std::string dir = fs.path("d");
  REQUIRE(mkdir(dir.c_str(), 0755) == 0);
  MakeFiles(dir, kFiles);
  Dir d = OpenDir(dir);
  std::map<std::string, int> seen;
  int total = 0;
  long mid = -1;  // telldir half-way
  while (dirent* e = NextEntry(d.get())) {
    ++total;
    REQUIRE(total <= 2 * kFiles);  // a walk without end fails here, not by timeout
    ++seen[Base(e->d_name)];
    RenameOn(d.get(), e->d_name);
    if (total == kFiles / 2) mid = telldir(d.get());
  }
  for (const auto& [name, n] : seen) {
    INFO(name);
    REQUIRE(n == 1);
  }
  // Nothing was added meanwhile but under new names: every entry was met.
  REQUIRE(total == kFiles);

  // Back to the position half-way: everything after it was renamed since,
  // so the rest of this walk is empty (the new names are past its end).
  REQUIRE(mid >= 0);
  seekdir(d.get(), mid);
  REQUIRE(NextEntry(d.get()) == nullptr);

  // A rewind starts a new walk: every entry once, under its new name.
  rewinddir(d.get());
  std::set<std::string> names;
  while (dirent* e = NextEntry(d.get())) REQUIRE(names.insert(e->d_name).second);
  REQUIRE(names.size() == static_cast<size_t>(kFiles));
  for (const std::string& n : names) REQUIRE(n.size() > 2);
  for (const std::string& n : names) REQUIRE(n.compare(n.size() - 2, 2, ".x") == 0);
}

TEST_CASE("telldir positions stay valid while entries are renamed", "[fs][readdir]") {
  MountedFs fs;
  const std::string dir = fs.path("d");
  REQUIRE(mkdir(dir.c_str(), 0755) == 0);
  MakeFiles(dir, 1000);
  Dir d = OpenDir(dir);
  // The positions after each entry, and the entry that follows each.
  std::vector<long> pos;
  std::vector<std::string> names;
  pos.push_back(telldir(d.get()));
  while (dirent* e = NextEntry(d.get())) {
    names.push_back(e->d_name);
    pos.push_back(telldir(d.get()));
  }
  REQUIRE(names.size() == 1000);
  // Rename every other entry, then go back to positions: the entry read
  // there is the next one in the walk that was not renamed. Position 0 goes
  // last: it is a rewind, which starts a walk that includes the new names.
  for (size_t i = 0; i < names.size(); i += 2)
    REQUIRE(renameat(dirfd(d.get()), names[i].c_str(), dirfd(d.get()), (names[i] + ".x").c_str()) ==
            0);
  for (size_t k : {1, 2, 500, 501, 997, 998, 999, 1000, 0}) {
    INFO("position " << k);
    seekdir(d.get(), pos[k]);
    dirent* e = NextEntry(d.get());
    size_t want = k % 2 == 0 ? k + 1 : k;
    if (want >= names.size()) {
      REQUIRE(e == nullptr);
    } else {
      REQUIRE(e != nullptr);
      REQUIRE(std::string(e->d_name) == names[want]);
    }
  }
}

TEST_CASE("two walkers that rename what they read each see every entry at most once",
          "[fs][readdir]") {
  MountedFs fs;
  const std::string dir = fs.path("d");
  REQUIRE(mkdir(dir.c_str(), 0755) == 0);
  MakeFiles(dir, kFiles);
  Dir a = OpenDir(dir), b = OpenDir(dir);
  std::map<std::string, int> seen_a, seen_b;
  bool a_done = false, b_done = false;
  int steps = 0;
  while (!a_done || !b_done) {
    REQUIRE(++steps <= 4 * kFiles);
    for (auto [d, seen, done] :
         {std::tuple{a.get(), &seen_a, &a_done}, std::tuple{b.get(), &seen_b, &b_done}}) {
      if (*done) continue;
      dirent* e = NextEntry(d);
      if (!e) {
        *done = true;
        continue;
      }
      ++(*seen)[Base(e->d_name)];
      RenameOn(d, e->d_name);
    }
  }
  for (const auto* seen : {&seen_a, &seen_b})
    for (const auto& [name, n] : *seen) {
      INFO(name);
      REQUIRE(n == 1);
    }
  // Every entry is renamed by one of them at least once.
  std::set<std::string> all;
  for (const auto* seen : {&seen_a, &seen_b})
    for (const auto& [name, n] : *seen) all.insert(name);
  REQUIRE(all.size() == static_cast<size_t>(kFiles));
}

}  // namespace
}  // namespace daxref::test
