// daxref-bench-clone: the file-level steps of bench/reflink.sh, on daxref or
// on any other filesystem (XFS, btrfs, ...).
//
//   daxref-bench-clone fill FILE SIZE [--drop-cache]
//       Creates FILE (it must not exist) with SIZE bytes (suffix K, M, G:
//       powers of 1024) of pseudo-random data, written with 1 MiB pwrite()s,
//       then fsync()s it. With --drop-cache, also drops the file's pages from
//       the page cache afterwards (posix_fadvise DONTNEED).
//   daxref-bench-clone holes FILE N
//       Creates FILE (it must not exist) with N separate extents: 4 KiB of
//       pseudo-random data at every other 4 KiB block (offsets 0, 8 KiB,
//       16 KiB, ...), so every written block is an extent of its own between
//       two holes; then fsync()s it. The file is given its final size
//       (ftruncate) before the first write.
//   daxref-bench-clone extents FILE
//       Prints the number of extents of FILE: on daxref the pieces reported
//       by DAXREF_IOC_EXTENTS, elsewhere the extents FIEMAP reports.
//   daxref-bench-clone stat FILE
//       Times one stat() of FILE; prints "stat <seconds>".
//   daxref-bench-clone clone SRC DST
//       Makes DST (it must not exist) a clone of the whole of SRC, and prints
//         clone <method> <call seconds> <total seconds>
//       where method is "daxref" (DAXREF_IOC_TOKEN on SRC, then
//       DAXREF_IOC_CLONE_RANGE on DST with src_length 0) if SRC is on
//       daxref (DAXREF_IOC_INFO answers with DAXREF_INFO_MAGIC), else
//       "ficlone" (FICLONE on DST). "call" is the time of the clone ioctl(s)
//       only; "total" runs from open(SRC) to close(DST), so it also holds
//       both opens (DST is created), the daxref probe and both closes.
//
// Times come from clock_gettime(CLOCK_MONOTONIC). Errors go to stderr with
// exit status 1; bad usage gives 2.

#include <daxref/ioctl.h>
#include <fcntl.h>
#include <linux/fiemap.h>
#include <linux/fs.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

namespace {

constexpr size_t kChunk = 1 << 20;
constexpr size_t kBlock = 4096;

[[noreturn]] void usage() {
  std::fprintf(stderr,
               "usage: daxref-bench-clone fill FILE SIZE [--drop-cache]\n"
               "       daxref-bench-clone holes FILE N\n"
               "       daxref-bench-clone extents FILE\n"
               "       daxref-bench-clone stat FILE\n"
               "       daxref-bench-clone clone SRC DST\n");
  std::exit(2);
}

[[noreturn]] void die(const char* what, const std::string& path, int err) {
  std::fprintf(stderr, "daxref-bench-clone: %s %s: %s\n", what, path.c_str(), std::strerror(err));
  std::exit(1);
}

double now() {
  timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<double>(ts.tv_sec) + static_cast<double>(ts.tv_nsec) * 1e-9;
}

bool parse_u64(const char* s, uint64_t* out, bool suffixes) {
  if (s[0] < '0' || s[0] > '9') return false;
  char* end = nullptr;
  errno = 0;
  unsigned long long v = std::strtoull(s, &end, 10);
  if (errno != 0 || end == s) return false;
  unsigned shift = 0;
  if (suffixes && *end != '\0' && end[1] == '\0') {
    switch (*end) {
      case 'K':
      case 'k':
        shift = 10;
        break;
      case 'M':
      case 'm':
        shift = 20;
        break;
      case 'G':
      case 'g':
        shift = 30;
        break;
      default:
        return false;
    }
    ++end;
  }
  if (*end != '\0' || v > (UINT64_MAX >> shift)) return false;
  *out = static_cast<uint64_t>(v) << shift;
  return true;
}

// xorshift64*: fast, never-zero, incompressible enough that no filesystem
// mistakes the data for zeros or for a repeated pattern.
struct Random {
  uint64_t s;
  explicit Random(uint64_t seed) : s(seed | 1) {}
  uint64_t next() {
    s ^= s >> 12;
    s ^= s << 25;
    s ^= s >> 27;
    return s * 0x2545F4914F6CDD1DULL;
  }
  void fill(char* buf, size_t n) {
    for (size_t i = 0; i + 8 <= n; i += 8) {
      uint64_t v = next();
      std::memcpy(buf + i, &v, 8);
    }
  }
};

int create_new(const std::string& path) {
  int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
  if (fd < 0) die("create", path, errno);
  return fd;
}

void write_all(int fd, const char* buf, size_t n, uint64_t off, const std::string& path) {
  while (n > 0) {
    ssize_t w = ::pwrite(fd, buf, n, static_cast<off_t>(off));
    if (w < 0) {
      if (errno == EINTR) continue;
      die("write", path, errno);
    }
    buf += w;
    n -= static_cast<size_t>(w);
    off += static_cast<uint64_t>(w);
  }
}

void finish(int fd, const std::string& path, bool drop_cache) {
  if (::fsync(fd) != 0) die("fsync", path, errno);
  if (drop_cache) {
    int err = ::posix_fadvise(fd, 0, 0, POSIX_FADV_DONTNEED);
    if (err != 0) die("posix_fadvise", path, err);
  }
  if (::close(fd) != 0) die("close", path, errno);
}

int cmd_fill(const std::string& path, uint64_t size, bool drop_cache) {
  int fd = create_new(path);
  std::vector<char> buf(kChunk);
  Random rng(0x9E3779B97F4A7C15ULL ^ size);
  for (uint64_t off = 0; off < size; off += kChunk) {
    size_t n = static_cast<size_t>(std::min<uint64_t>(kChunk, size - off));
    rng.fill(buf.data(), n);
    write_all(fd, buf.data(), n, off, path);
  }
  finish(fd, path, drop_cache);
  return 0;
}

int cmd_holes(const std::string& path, uint64_t n) {
  int fd = create_new(path);
  std::vector<char> buf(kBlock);
  Random rng(0xD1B54A32D192ED03ULL ^ n);
  // Size the file first: every write then lands inside EOF, where XFS makes
  // no speculative preallocation (which would fill the holes with unwritten
  // extents and double the extent count).
  if (::ftruncate(fd, static_cast<off_t>((2 * n - 1) * kBlock)) != 0) die("ftruncate", path, errno);
  for (uint64_t i = 0; i < n; ++i) {
    rng.fill(buf.data(), kBlock);
    write_all(fd, buf.data(), kBlock, i * 2 * kBlock, path);
  }
  finish(fd, path, false);
  return 0;
}

bool is_daxref(int fd) {
  daxref_info info{};
  return ::ioctl(fd, DAXREF_IOC_INFO, &info) == 0 && info.magic == DAXREF_INFO_MAGIC;
}

int cmd_extents(const std::string& path) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) die("open", path, errno);
  uint64_t count = 0;
  if (is_daxref(fd)) {
    auto q = std::make_unique<daxref_extent_query>();
    uint64_t start = 0;
    for (;;) {
      std::memset(q.get(), 0, sizeof(*q));
      q->start = start;
      if (::ioctl(fd, DAXREF_IOC_EXTENTS, q.get()) != 0) die("DAXREF_IOC_EXTENTS", path, errno);
      count += q->count;
      if (!(q->flags & DAXREF_QUERY_MORE)) break;
      if (q->next <= start) {
        std::fprintf(stderr, "daxref-bench-clone: %s: extents query does not advance\n",
                     path.c_str());
        return 1;
      }
      start = q->next;
    }
  } else {
    // FIEMAP with room for kBatch extents at a time, from where the last
    // batch ended, until the extent flagged FIEMAP_EXTENT_LAST.
    constexpr uint32_t kBatch = 512;
    std::vector<char> buf(sizeof(fiemap) + kBatch * sizeof(fiemap_extent));
    auto* fm = reinterpret_cast<fiemap*>(buf.data());
    uint64_t start = 0;
    uint32_t flags = FIEMAP_FLAG_SYNC;
    for (;;) {
      std::memset(buf.data(), 0, buf.size());
      fm->fm_start = start;
      fm->fm_length = FIEMAP_MAX_OFFSET - start;
      fm->fm_flags = flags;
      fm->fm_extent_count = kBatch;
      if (::ioctl(fd, FS_IOC_FIEMAP, fm) != 0) die("FS_IOC_FIEMAP", path, errno);
      flags = 0;  // synced once is enough
      if (fm->fm_mapped_extents == 0) break;
      count += fm->fm_mapped_extents;
      const fiemap_extent& last = fm->fm_extents[fm->fm_mapped_extents - 1];
      if (last.fe_flags & FIEMAP_EXTENT_LAST) break;
      start = last.fe_logical + last.fe_length;
    }
  }
  ::close(fd);
  std::printf("%llu\n", static_cast<unsigned long long>(count));
  return 0;
}

int cmd_stat(const std::string& path) {
  struct stat st {};
  double t0 = now();
  int r = ::stat(path.c_str(), &st);
  double t1 = now();
  if (r != 0) die("stat", path, errno);
  std::printf("stat %.6f\n", t1 - t0);
  return 0;
}

int cmd_clone(const std::string& src_path, const std::string& dst_path) {
  double t0 = now();
  int src = ::open(src_path.c_str(), O_RDONLY | O_CLOEXEC);
  if (src < 0) die("open", src_path, errno);
  bool daxref = is_daxref(src);
  int dst = create_new(dst_path);
  double c0 = 0, c1 = 0;
  if (daxref) {
    c0 = now();
    daxref_token tok{};
    if (::ioctl(src, DAXREF_IOC_TOKEN, &tok) != 0) die("DAXREF_IOC_TOKEN", src_path, errno);
    daxref_clone_range req{};
    req.src = tok;
    req.src_offset = 0;
    req.src_length = 0;  // to the source's end of file
    req.dest_offset = 0;
    req.flags = 0;
    if (::ioctl(dst, DAXREF_IOC_CLONE_RANGE, &req) != 0)
      die("DAXREF_IOC_CLONE_RANGE", dst_path, errno);
    c1 = now();
  } else {
    c0 = now();
    if (::ioctl(dst, FICLONE, src) != 0) die("FICLONE", dst_path, errno);
    c1 = now();
  }
  if (::close(src) != 0) die("close", src_path, errno);
  if (::close(dst) != 0) die("close", dst_path, errno);
  double t1 = now();
  std::printf("clone %s %.6f %.6f\n", daxref ? "daxref" : "ficlone", c1 - c0, t1 - t0);
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 3) usage();
  const std::string cmd = argv[1];
  const std::string file = argv[2];
  uint64_t n = 0;
  if (cmd == "fill" && (argc == 4 || argc == 5)) {
    bool drop = argc == 5 && std::strcmp(argv[4], "--drop-cache") == 0;
    if ((argc == 5 && !drop) || !parse_u64(argv[3], &n, true) || n == 0) usage();
    return cmd_fill(file, n, drop);
  }
  if (cmd == "holes" && argc == 4) {
    if (!parse_u64(argv[3], &n, false) || n == 0) usage();
    return cmd_holes(file, n);
  }
  if (cmd == "extents" && argc == 3) return cmd_extents(file);
  if (cmd == "stat" && argc == 3) return cmd_stat(file);
  if (cmd == "clone" && argc == 4) return cmd_clone(file, argv[3]);
  usage();
}
