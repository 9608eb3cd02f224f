// A bounded fuzz loop of random damage to the metadata store, against the
// real daemon: whatever one damaged record does, the daemon either refuses
// the mount with one line or serves the filesystem (errors where the damage
// is) and exits cleanly at unmount. It never dies of a signal, never hangs,
// and never aborts.
#include <dirent.h>
#include <fcntl.h>
#include <rocksdb/db.h>
#include <signal.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <chrono>
#include <filesystem>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "meta/superblock.h"
#include "test/fixture.h"

namespace daxref::test {
namespace {

using Clock = std::chrono::steady_clock;

bool Mounted(const std::string& mnt) {
  struct stat a {
  }, b{};
  if (stat(mnt.c_str(), &a) != 0) return false;
  if (stat((mnt + "/..").c_str(), &b) != 0) return false;
  return a.st_dev != b.st_dev;
}

// One damage to a random record of the store at `meta`: deleted, a bit of
// the value flipped, the value cut short, or the record moved to a key one
// bit away. Returns what it did.
std::string DamageOneRecord(const std::string& meta, std::mt19937_64& rng) {
  rocksdb::DB* raw = nullptr;
  rocksdb::Status s = rocksdb::DB::Open(rocksdb::Options(), meta, &raw);
  REQUIRE(s.ok());
  std::unique_ptr<rocksdb::DB> db(raw);
  std::vector<std::pair<std::string, std::string>> all;
  std::unique_ptr<rocksdb::Iterator> it(db->NewIterator(rocksdb::ReadOptions()));
  for (it->SeekToFirst(); it->Valid(); it->Next())
    all.emplace_back(it->key().ToString(), it->value().ToString());
  REQUIRE(!all.empty());
  auto [key, value] = all[rng() % all.size()];
  rocksdb::WriteOptions wo;
  std::string what = "record '" + key.substr(0, 1) + "' (" + std::to_string(key.size()) + " bytes)";
  switch (rng() % 4) {
    case 0:
      REQUIRE(db->Delete(wo, key).ok());
      return what + " deleted";
    case 1:
      if (value.empty()) value.push_back('\0');
      value[rng() % value.size()] ^= static_cast<char>(1 << (rng() % 8));
      REQUIRE(db->Put(wo, key, value).ok());
      return what + " value bit flipped";
    case 2:
      value.resize(value.empty() ? 0 : rng() % value.size());
      REQUIRE(db->Put(wo, key, value).ok());
      return what + " value cut to " + std::to_string(value.size());
    default: {
      std::string moved = key;
      size_t at = moved.size() > 1 ? 1 + rng() % (moved.size() - 1) : 0;
      moved[at] ^= static_cast<char>(1 << (rng() % 8));
      REQUIRE(db->Delete(wo, key).ok());
      REQUIRE(db->Put(wo, moved, value).ok());
      return what + " key bit flipped at " + std::to_string(at);
    }
  }
}

// Everything a user might do on the mount, each failure tolerated: the
// point is that the daemon survives it.
void Exercise(const std::string& dir, int depth = 0) {
  DIR* d = opendir(dir.c_str());
  if (!d) return;
  std::vector<std::string> names;
  while (dirent* e = readdir(d)) {
    std::string n = e->d_name;
    if (n != "." && n != "..") names.push_back(n);
  }
  closedir(d);
  for (const auto& n : names) {
    std::string p = dir + "/" + n;
    struct stat st {};
    if (lstat(p.c_str(), &st) != 0) continue;
    char buf[256];
    (void)listxattr(p.c_str(), buf, sizeof(buf));
    if (S_ISDIR(st.st_mode) && depth < 4) {
      Exercise(p, depth + 1);
    } else if (S_ISREG(st.st_mode)) {
      int fd = open(p.c_str(), O_RDWR);
      if (fd < 0) continue;
      std::vector<char> data(1 << 16);
      for (off_t off = 0; pread(fd, data.data(), data.size(), off) > 0; off += data.size()) {
      }
      (void)pwrite(fd, "damage fuzz", 11, 4096);
      (void)fallocate(fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, 0, 4096);
      (void)ftruncate(fd, st.st_size / 2);
      (void)fsync(fd);
      close(fd);
    } else if (S_ISLNK(st.st_mode)) {
      (void)readlink(p.c_str(), buf, sizeof(buf));
    }
  }
  std::string fresh = dir + "/fuzz-new";
  int fd = open(fresh.c_str(), O_RDWR | O_CREAT, 0644);
  if (fd >= 0) {
    (void)pwrite(fd, "new", 3, 0);
    close(fd);
  }
  if (!names.empty()) {
    (void)rename((dir + "/" + names[0]).c_str(), (dir + "/renamed").c_str());
    (void)unlink((dir + "/" + names.back()).c_str());
  }
}

TEST_CASE("damaged store records never crash the daemon", "[fs][fuzz]") {
  MountedFs::Options o;
  o.size = 32ull << 20;
  MountedFs fs(o);
  REQUIRE(mkdir(fs.path("d").c_str(), 0755) == 0);
  REQUIRE(mkdir(fs.path("d/e").c_str(), 0755) == 0);
  for (int i = 0; i < 12; ++i)
    WriteFile(fs.path((i % 2 ? "d/f" : "d/e/g") + std::to_string(i)),
              std::string(1000 + 5000 * i, static_cast<char>('a' + i)));
  REQUIRE(symlink("d/f1", fs.path("link").c_str()) == 0);
  REQUIRE(setxattr(fs.path("d/f1").c_str(), "user.k", "v", 1, 0) == 0);
  {
    // A shared copy: refcount records.
    int in = open(fs.path("d/f3").c_str(), O_RDONLY),
        out = open(fs.path("copy").c_str(), O_WRONLY | O_CREAT, 0644);
    REQUIRE((in >= 0 && out >= 0));
    REQUIRE(copy_file_range(in, nullptr, out, nullptr, 16000, 0) == 16000);
    close(in);
    close(out);
  }
  fs.Unmount();

  TempDir scratch;
  const std::string mnt = scratch.path() + "/m", work = scratch.path() + "/S";
  REQUIRE(mkdir(mnt.c_str(), 0755) == 0);
  std::mt19937_64 rng(Catch::rngSeed() ? Catch::rngSeed() : 4242);
  const auto deadline = Clock::now() + std::chrono::seconds(25);
  int refused = 0, served = 0;
  for (int round = 0; round < 60 && Clock::now() < deadline; ++round) {
    std::filesystem::remove_all(work);
    REQUIRE(Run({"/bin/cp", "-a", fs.source(), work}).status == 0);
    std::string what = DamageOneRecord(MetaPath(work), rng);
    CAPTURE(round, what);

    int errpipe[2];
    REQUIRE(pipe(errpipe) == 0);
    pid_t pid = fork();
    REQUIRE(pid >= 0);
    if (pid == 0) {
      dup2(errpipe[1], 2);
      close(errpipe[0]);
      std::string bin = DaemonBin();
      execl(bin.c_str(), bin.c_str(), "-f", "--log-level", "error", work.c_str(), mnt.c_str(),
            static_cast<char*>(nullptr));
      _exit(127);
    }
    close(errpipe[1]);
    int status = 0;
    bool exited = false;
    auto until = Clock::now() + std::chrono::seconds(30);
    while (!Mounted(mnt)) {
      if (waitpid(pid, &status, WNOHANG) == pid) {
        exited = true;
        break;
      }
      REQUIRE(Clock::now() < until);
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    std::string err;
    if (exited) {
      char buf[4096];
      ssize_t n;
      while ((n = read(errpipe[0], buf, sizeof(buf))) > 0) err.append(buf, n);
      close(errpipe[0]);
      INFO("stderr: " << err);
      REQUIRE(ExitCode(status) == 1);
      refused++;
      continue;
    }
    // In a child, so that a daemon that loops on the damage (a readdir
    // that never ends) fails the test instead of hanging it.
    pid_t user = fork();
    REQUIRE(user >= 0);
    if (user == 0) {
      Exercise(mnt);
      _exit(0);
    }
    int user_status = 0;
    auto user_until = Clock::now() + std::chrono::seconds(60);
    while (waitpid(user, &user_status, WNOHANG) != user) {
      if (Clock::now() > user_until) {
        kill(user, SIGKILL);
        waitpid(user, &user_status, 0);
        umount2(mnt.c_str(), MNT_DETACH);
        kill(pid, SIGKILL);
        waitpid(pid, &status, 0);
        FAIL("the filesystem hung on the damage for 60 s");
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    {
      RunResult um = UnmountMountPoint(mnt);
      INFO(um.err);
      REQUIRE(um.status == 0);
    }
    REQUIRE(waitpid(pid, &status, 0) == pid);
    char buf[4096];
    ssize_t n;
    while ((n = read(errpipe[0], buf, sizeof(buf))) > 0) err.append(buf, n);
    close(errpipe[0]);
    INFO("stderr: " << err);
    REQUIRE(WIFEXITED(status));
    REQUIRE(WEXITSTATUS(status) == 0);
    served++;
  }
  INFO("refused " << refused << ", served " << served);
  REQUIRE(refused + served > 5);
}

}  // namespace
}  // namespace daxref::test
