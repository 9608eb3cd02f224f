// daxref-bench-dax: the workloads of bench/dax.sh, one per run, printing
// one figure. Direct access through <daxref/dax.h> beside the ordinary
// paths (pwrite/pread, a page-cache mmap) on the same kind of file, so the
// script can run each on daxref and on tmpfs in one run.
//
// usage: daxref-bench-dax MODE FILE BYTES SECONDS
//   pwrite-rand | pread-rand        4 KiB pwrite/pread at random aligned offsets: IOPS
//   mmap-rand-write                 4 KiB stores into an ordinary MAP_SHARED mapping: IOPS
//   dax-rand-write | dax-rand-read  4 KiB stores (each followed by daxref_dax_persist) or
//                                   loads through a leased mapping: IOPS
//   dax-seq-write                   1 MiB stores + persist over the whole file, repeated
//                                   for SECONDS: MiB/s
//   memcpy                          single-thread memcpy of 1 MiB blocks between two
//                                   anonymous buffers of BYTES (FILE unused): MiB/s
//   revoke                          a child holds a write lease on the whole file; the
//                                   parent truncates the file to half and times it; then
//                                   the same truncate with no lease: "lease_us plain_us"
// FILE must exist with at least BYTES bytes (the script lays it out). The
// random offsets come from a fixed seed, so two targets see the same ones.
#include <daxref/dax.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <random>
#include <string>
#include <vector>

namespace {

using Clock = std::chrono::steady_clock;
constexpr size_t kSmall = 4096;
constexpr size_t kLarge = 1 << 20;

[[noreturn]] void Die(const char* what) {
  std::fprintf(stderr, "daxref-bench-dax: %s: %s\n", what, std::strerror(errno));
  std::exit(1);
}

double Seconds(Clock::time_point a, Clock::time_point b) {
  return std::chrono::duration<double>(b - a).count();
}

// Runs op(offset) at random 4 KiB-aligned offsets for `seconds`, checking the
// clock every 256 operations; returns operations per second.
template <typename Op>
double RandomOps(uint64_t bytes, double seconds, Op op) {
  std::mt19937_64 rng(42);
  uint64_t slots = bytes / kSmall;
  uint64_t n = 0;
  auto start = Clock::now();
  auto now = start;
  do {
    for (int i = 0; i < 256; ++i) op((rng() % slots) * kSmall), ++n;
    now = Clock::now();
  } while (Seconds(start, now) < seconds);
  return n / Seconds(start, now);
}

struct daxref_dax_map* Lease(int fd, uint64_t bytes, int flags, char** addr) {
  void* a = nullptr;
  struct daxref_dax_map* m = daxref_dax_map(fd, 0, bytes, flags, &a);
  if (m == nullptr) Die("daxref_dax_map");
  *addr = static_cast<char*>(a);
  return m;
}

long long TimedTruncate(const char* path, uint64_t bytes) {
  int fd = open(path, O_RDWR);
  if (fd < 0) Die("open");
  if (ftruncate(fd, bytes) != 0) Die("ftruncate (restore)");
  if (fsync(fd) != 0) Die("fsync");
  auto a = Clock::now();
  if (ftruncate(fd, bytes / 2) != 0) Die("ftruncate");
  auto b = Clock::now();
  close(fd);
  return std::chrono::duration_cast<std::chrono::microseconds>(b - a).count();
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 5) {
    std::fprintf(stderr, "usage: daxref-bench-dax MODE FILE BYTES SECONDS\n");
    return 2;
  }
  std::string mode = argv[1];
  const char* path = argv[2];
  uint64_t bytes = std::strtoull(argv[3], nullptr, 10);
  double seconds = std::strtod(argv[4], nullptr);
  if (bytes < kLarge || bytes % kLarge != 0 || seconds <= 0) {
    std::fprintf(stderr, "daxref-bench-dax: BYTES must be a multiple of 1 MiB, SECONDS > 0\n");
    return 2;
  }
  std::vector<char> block(kLarge);
  for (size_t i = 0; i < block.size(); ++i) block[i] = static_cast<char>(i * 31 + 7);

  if (mode == "memcpy") {
    std::vector<char> src(bytes, 1), dst(bytes, 0);
    uint64_t moved = 0;
    auto start = Clock::now();
    auto now = start;
    do {
      for (uint64_t off = 0; off < bytes; off += kLarge, moved += kLarge)
        std::memcpy(dst.data() + off, src.data() + off, kLarge);
      now = Clock::now();
    } while (Seconds(start, now) < seconds);
    std::printf("%.0f\n", moved / Seconds(start, now) / (1 << 20));
    return 0;
  }
  if (mode == "revoke") {
    // The child takes the lease and says so through a pipe; the parent then
    // truncates, which must revoke first. The file gets its whole size back
    // first (an earlier run left it at half).
    {
      int fd = open(path, O_RDWR);
      if (fd < 0 || ftruncate(fd, bytes) != 0) Die("restoring the size");
      close(fd);
    }
    int ready[2];
    if (pipe(ready) != 0) Die("pipe");
    pid_t child = fork();
    if (child < 0) Die("fork");
    if (child == 0) {
      int fd = open(path, O_RDWR);
      if (fd < 0) Die("open");
      char* addr;
      Lease(fd, bytes, DAXREF_DAX_WRITE, &addr);
      addr[0] = 1;
      if (write(ready[1], "x", 1) != 1) Die("write");
      pause();  // until the parent's kill; the library acks revocations on its own thread
      _exit(0);
    }
    close(ready[1]);
    char c;
    if (read(ready[0], &c, 1) != 1) {
      std::fprintf(stderr, "daxref-bench-dax: the lease holder failed\n");
      return 1;
    }
    long long leased = TimedTruncate(path, bytes);
    kill(child, SIGKILL);
    waitpid(child, nullptr, 0);
    long long plain = TimedTruncate(path, bytes);
    std::printf("%lld %lld\n", leased, plain);
    return 0;
  }

  bool writes = mode == "pwrite-rand" || mode == "mmap-rand-write" || mode == "dax-rand-write" ||
                mode == "dax-seq-write";
  int fd = open(path, writes ? O_RDWR : O_RDONLY);
  if (fd < 0) Die("open");
  struct stat st;
  if (fstat(fd, &st) != 0) Die("fstat");
  if (static_cast<uint64_t>(st.st_size) < bytes) {
    std::fprintf(stderr, "daxref-bench-dax: %s is smaller than %llu bytes\n", path,
                 static_cast<unsigned long long>(bytes));
    return 1;
  }

  double figure = 0;
  if (mode == "pwrite-rand") {
    figure = RandomOps(bytes, seconds, [&](uint64_t off) {
      if (pwrite(fd, block.data(), kSmall, off) != static_cast<ssize_t>(kSmall)) Die("pwrite");
    });
  } else if (mode == "pread-rand") {
    figure = RandomOps(bytes, seconds, [&](uint64_t off) {
      if (pread(fd, block.data(), kSmall, off) != static_cast<ssize_t>(kSmall)) Die("pread");
    });
  } else if (mode == "mmap-rand-write") {
    void* a = mmap(nullptr, bytes, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    if (a == MAP_FAILED) Die("mmap");
    char* addr = static_cast<char*>(a);
    figure = RandomOps(bytes, seconds,
                       [&](uint64_t off) { std::memcpy(addr + off, block.data(), kSmall); });
    munmap(a, bytes);
  } else if (mode == "dax-rand-write") {
    char* addr;
    struct daxref_dax_map* m = Lease(fd, bytes, DAXREF_DAX_WRITE, &addr);
    figure = RandomOps(bytes, seconds, [&](uint64_t off) {
      std::memcpy(addr + off, block.data(), kSmall);
      if (daxref_dax_persist(m, addr + off, kSmall) != 0) Die("daxref_dax_persist");
    });
    daxref_dax_unmap(m);
  } else if (mode == "dax-rand-read") {
    char* addr;
    struct daxref_dax_map* m = Lease(fd, bytes, DAXREF_DAX_READ, &addr);
    volatile char sink = 0;
    figure = RandomOps(bytes, seconds, [&](uint64_t off) {
      std::memcpy(block.data(), addr + off, kSmall);
      sink = sink + block[off % kSmall];
    });
    daxref_dax_unmap(m);
  } else if (mode == "dax-seq-write") {
    char* addr;
    struct daxref_dax_map* m = Lease(fd, bytes, DAXREF_DAX_WRITE, &addr);
    uint64_t moved = 0;
    auto start = Clock::now();
    auto now = start;
    do {
      for (uint64_t off = 0; off < bytes; off += kLarge, moved += kLarge) {
        std::memcpy(addr + off, block.data(), kLarge);
        if (daxref_dax_persist(m, addr + off, kLarge) != 0) Die("daxref_dax_persist");
      }
      now = Clock::now();
    } while (Seconds(start, now) < seconds);
    figure = moved / Seconds(start, now) / (1 << 20);
    daxref_dax_unmap(m);
  } else {
    std::fprintf(stderr, "daxref-bench-dax: unknown mode %s\n", mode.c_str());
    return 2;
  }
  std::printf("%.0f\n", figure);
  close(fd);
  return 0;
}
