#include "test/fs_helpers.h"

#include <fcntl.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstring>
#include <memory>
#include <thread>

namespace daxref::test {

TmpfsMount::TmpfsMount(uint64_t bytes) {
  const std::string opts = "size=" + std::to_string(bytes) + ",mode=0755";
  int rc = mount("daxref-test", dir_.path().c_str(), "tmpfs", 0, opts.c_str());
  INFO("mount tmpfs on " << dir_.path() << ": " << strerror(errno));
  REQUIRE(rc == 0);
}

TmpfsMount::~TmpfsMount() {
  umount2(dir_.path().c_str(), MNT_DETACH);
}

uint64_t TmpfsMount::Available() const {
  struct statvfs v {};
  REQUIRE(statvfs(dir_.path().c_str(), &v) == 0);
  return static_cast<uint64_t>(v.f_bavail) * v.f_frsize;
}

Fd::Fd(const std::string& path, int flags, mode_t mode) : fd_(open(path.c_str(), flags, mode)) {
  INFO(path << ": " << strerror(errno));
  REQUIRE(fd_ >= 0);
}

Fd& Fd::operator=(Fd&& o) noexcept {
  if (this != &o) {
    Close();
    fd_ = o.fd_;
    o.fd_ = -1;
  }
  return *this;
}

void Fd::Close() {
  if (fd_ >= 0) close(fd_);
  fd_ = -1;
}

void PwriteAll(int fd, const std::string& data, uint64_t off) {
  size_t done = 0;
  while (done < data.size()) {
    ssize_t n = pwrite(fd, data.data() + done, data.size() - done, off + done);
    INFO("pwrite at " << off + done << ": " << strerror(errno));
    REQUIRE(n > 0);
    done += n;
  }
}

void PwriteExact(int fd, const std::string& data, uint64_t off) {
  REQUIRE(pwrite(fd, data.data(), data.size(), off) == static_cast<ssize_t>(data.size()));
}

std::string PreadAll(int fd, uint64_t off, size_t len) {
  std::string s(len, '\0');
  size_t done = 0;
  while (done < len) {
    ssize_t n = pread(fd, s.data() + done, len - done, off + done);
    INFO("pread at " << off + done << ": " << strerror(errno));
    REQUIRE(n >= 0);
    if (n == 0) break;
    done += n;
  }
  s.resize(done);
  return s;
}

std::string PreadExact(int fd, uint64_t off, size_t len) {
  std::string s(len, '\0');
  REQUIRE(pread(fd, s.data(), s.size(), off) == static_cast<ssize_t>(s.size()));
  return s;
}

struct stat StatOf(int fd) {
  struct stat st;
  REQUIRE(fstat(fd, &st) == 0);
  return st;
}

struct stat StatOf(const std::string& path) {
  struct stat st;
  int rc = stat(path.c_str(), &st);
  INFO(path << ": " << strerror(errno));
  REQUIRE(rc == 0);
  return st;
}

struct stat Lstat(const std::string& path) {
  struct stat st {};
  int rc = lstat(path.c_str(), &st);
  INFO(path << ": " << strerror(errno));
  REQUIRE(rc == 0);
  return st;
}

struct statvfs Vfs(const MountedFs& fs) {
  struct statvfs v {};
  REQUIRE(statvfs(fs.mnt().c_str(), &v) == 0);
  return v;
}

uint64_t FreeBlocks(const MountedFs& fs) {
  return Vfs(fs).f_bfree;
}

uint64_t FreeBlocksSettled(const MountedFs& fs, uint64_t want) {
  uint64_t got = FreeBlocks(fs);
  for (int i = 0; got != want && i < 200; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(25));
    got = FreeBlocks(fs);
  }
  return got;
}

void DirtyFreeSpace(const MountedFs& fs, uint64_t bytes) {
  uint64_t free0 = FreeBlocks(fs);
  {
    Fd fd(fs.path(".dirty"), O_WRONLY | O_CREAT | O_TRUNC);
    PwriteExact(fd.get(), std::string(bytes, '\xee'), 0);
  }
  REQUIRE(unlink(fs.path(".dirty").c_str()) == 0);
  REQUIRE(FreeBlocksSettled(fs, free0) == free0);
}

std::string NonZeroBytes(std::mt19937_64& rng, size_t n) {
  std::string s(n, '\0');
  for (auto& c : s) c = static_cast<char>(rng() | 1);
  return s;
}

std::string NonZeroBytes(uint64_t seed, size_t n) {
  std::mt19937_64 rng(seed);
  return NonZeroBytes(rng, n);
}

std::string ZeroedFrom(const std::string& data, uint64_t keep, uint64_t size) {
  return data.substr(0, keep) + std::string(size - keep, '\0');
}

int64_t FirstDiff(const std::string& a, const std::string& b) {
  size_t n = std::min(a.size(), b.size());
  for (size_t i = 0; i < n; ++i)
    if (a[i] != b[i]) return static_cast<int64_t>(i);
  return a.size() == b.size() ? -1 : static_cast<int64_t>(n);
}

int GetToken(int src_fd, daxref_token* out) {
  *out = daxref_token{};
  return ioctl(src_fd, DAXREF_IOC_TOKEN, out) == 0 ? 0 : errno;
}

int CloneWithToken(const daxref_token& token, uint64_t src_off, uint64_t len, int dst_fd,
                   uint64_t dst_off) {
  daxref_clone_range a{};
  a.src = token;
  a.src_offset = src_off;
  a.src_length = len;
  a.dest_offset = dst_off;
  return ioctl(dst_fd, DAXREF_IOC_CLONE_RANGE, &a) == 0 ? 0 : errno;
}

int CloneRange(int src_fd, uint64_t src_off, uint64_t len, int dst_fd, uint64_t dst_off) {
  daxref_token t;
  if (int err = GetToken(src_fd, &t)) return err;
  return CloneWithToken(t, src_off, len, dst_fd, dst_off);
}

DedupeOutcome Dedupe(int src_fd, uint64_t src_off, uint64_t len, int dst_fd, uint64_t dst_off) {
  DedupeOutcome out;
  daxref_dedupe_range a{};
  if ((out.err = GetToken(src_fd, &a.src)) != 0) return out;
  a.src_offset = src_off;
  a.src_length = len;
  a.dest_offset = dst_off;
  a.status = 12345;  // the daemon must overwrite it
  if (ioctl(dst_fd, DAXREF_IOC_DEDUPE_RANGE, &a) != 0) {
    out.err = errno;
    return out;
  }
  out.status = a.status;
  out.bytes = a.bytes_deduped;
  return out;
}

int UnshareRange(int fd, uint64_t off, uint64_t len) {
  daxref_range a{};
  a.offset = off;
  a.length = len;
  return ioctl(fd, DAXREF_IOC_UNSHARE_RANGE, &a) == 0 ? 0 : errno;
}

std::vector<daxref_extent> Extents(int fd) {
  std::vector<daxref_extent> all;
  auto q = std::make_unique<daxref_extent_query>();
  uint64_t start = 0;
  for (int calls = 0;; ++calls) {
    REQUIRE(calls < 100000);
    memset(q.get(), 0, sizeof(*q));
    q->start = start;
    int rc = ioctl(fd, DAXREF_IOC_EXTENTS, q.get());
    INFO("DAXREF_IOC_EXTENTS: " << strerror(errno));
    REQUIRE(rc == 0);
    REQUIRE(q->count <= DAXREF_EXTENTS_PER_CALL);
    all.insert(all.end(), q->extents, q->extents + q->count);
    if (!(q->flags & DAXREF_QUERY_MORE)) break;
    REQUIRE(q->next > start);
    start = q->next;
  }
  return all;
}

std::vector<daxref_extent> Extents(const std::string& path) {
  Fd fd(path, O_RDONLY);
  return Extents(fd.get());
}

}  // namespace daxref::test
