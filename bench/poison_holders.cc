// daxref-bench-poison: the file-level steps of bench/poison.sh — one block
// shared by many files, processes holding some of them, and a check that
// each of those processes was told when the block went bad.
//
//   daxref-bench-poison make DIR N
//       Creates DIR (it must not exist) and in it f0, one 4 KiB block of
//       pseudo-random data (fsync'd), then f1 .. f<N-1>, each a new file
//       filled by one copy_file_range() of the whole of f0, which daxref
//       answers by sharing the block. Then asks f0's extents
//       (DAXREF_IOC_EXTENTS) and prints
//         made <N> <seconds> pblock <pool block> refcount <references>
//       where seconds is the time of the N-1 clones (open, copy, close).
//   daxref-bench-poison hold DIR N H [--map-every K] [--wait SECONDS]
//       Forks H holder processes. Holder i takes file f<i*N/H>: it reads
//       the block (so the kernel caches it) and, for every K-th holder
//       (default 2: half of them), maps it MAP_SHARED, touches the page and
//       closes the descriptor, so that it holds the file through the
//       mapping only; the others keep the descriptor. Each holder installs a
//       SA_SIGINFO handler for SIGBUS that writes what it got (signal code,
//       errno, value, CLOCK_REALTIME of receipt) to a page shared with the
//       parent, then waits. The parent itself holds nothing on the mount.
//       Prints "ready <H> mapped <M>" once every holder is set up, then
//       reads a line from stdin (the caller injects the poison before it
//       sends one) and waits up to SECONDS (default 5) for every holder to
//       be signalled. Then it reads each holder's file, which must fail
//       with EIO, and prints
//         signalled <S> of <H> valid <V> first_us <T0> last_us <T1> eio <E> of <H>
//       S: holders that got at least one SIGBUS; V: those whose (first)
//       signal carried what docs/poison.md promises (si_code SI_QUEUE,
//       si_errno EHWPOISON, inode in the high 32 bits of the value, file
//       block 0 in the low 32); T0, T1: CLOCK_REALTIME of the first and last
//       receipt in microseconds since the epoch (0 if none); E: holders'
//       files whose read failed with EIO afterwards. Kills the holders and
//       exits 0 if S, V and E all equal H, else 1. Holders die with the
//       parent (PR_SET_PDEATHSIG), so killing it is enough to clean up.
//   daxref-bench-poison scan PATH [REPS]
//       What the daemon's holder scan reads, timed on its own: every
//       process's /proc/PID/fd (statx, AT_STATX_DONT_SYNC) and
//       /proc/PID/maps, keeping the files on PATH's device. REPS times
//       (default 5); prints
//         scan procs <P> fds <F> maps <M> held <X> min_us <A> median_us <B>
//       P processes, F descriptors and M file mappings looked at, X of them
//       on the device (last pass).
//
// Times come from clock_gettime (CLOCK_MONOTONIC unless said otherwise).
// Errors go to stderr with exit status 1; bad usage gives 2.

#include <daxref/ioctl.h>
#include <dirent.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <iostream>
#include <memory>
#include <new>
#include <string>
#include <vector>

namespace {

constexpr size_t kBlock = 4096;
constexpr int kEhwpoison = 133;  // EHWPOISON on Linux

[[noreturn]] void usage() {
  std::fprintf(stderr,
               "usage: daxref-bench-poison make DIR N\n"
               "       daxref-bench-poison hold DIR N H [--map-every K] [--wait SECONDS]\n"
               "       daxref-bench-poison scan PATH [REPS]\n");
  std::exit(2);
}

[[noreturn]] void die(const char* what, const std::string& path, int err) {
  std::fprintf(stderr, "daxref-bench-poison: %s %s: %s\n", what, path.c_str(), std::strerror(err));
  std::exit(1);
}

double now() {
  timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<double>(ts.tv_sec) + static_cast<double>(ts.tv_nsec) * 1e-9;
}

uint64_t realtime_us() {
  timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  return static_cast<uint64_t>(ts.tv_sec) * 1000000 + static_cast<uint64_t>(ts.tv_nsec) / 1000;
}

bool parse_u64(const char* s, uint64_t* out) {
  if (s[0] < '0' || s[0] > '9') return false;
  char* end = nullptr;
  errno = 0;
  unsigned long long v = std::strtoull(s, &end, 10);
  if (errno != 0 || *end != '\0') return false;
  *out = v;
  return true;
}

std::string file_name(const std::string& dir, uint64_t i) {
  return dir + "/f" + std::to_string(i);
}

// ---- make --------------------------------------------------------------------

int cmd_make(const std::string& dir, uint64_t n) {
  if (::mkdir(dir.c_str(), 0755) != 0) die("mkdir", dir, errno);
  const std::string f0 = file_name(dir, 0);
  int src = ::open(f0.c_str(), O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
  if (src < 0) die("create", f0, errno);
  std::vector<char> buf(kBlock);
  uint64_t s = 0x9E3779B97F4A7C15ULL;  // xorshift64*: data no one mistakes for zeros
  for (size_t i = 0; i + 8 <= kBlock; i += 8) {
    s ^= s >> 12;
    s ^= s << 25;
    s ^= s >> 27;
    uint64_t v = s * 0x2545F4914F6CDD1DULL;
    std::memcpy(buf.data() + i, &v, 8);
  }
  if (::pwrite(src, buf.data(), kBlock, 0) != static_cast<ssize_t>(kBlock)) die("write", f0, errno);
  if (::fsync(src) != 0) die("fsync", f0, errno);

  const double t0 = now();
  for (uint64_t i = 1; i < n; ++i) {
    const std::string path = file_name(dir, i);
    int dst = ::open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
    if (dst < 0) die("create", path, errno);
    loff_t in = 0, out = 0;
    ssize_t got = ::copy_file_range(src, &in, dst, &out, kBlock, 0);
    if (got < 0) die("copy_file_range to", path, errno);
    if (got != static_cast<ssize_t>(kBlock)) {
      std::fprintf(stderr, "daxref-bench-poison: copy_file_range to %s: %zd bytes, not %zu\n",
                   path.c_str(), got, kBlock);
      return 1;
    }
    if (::close(dst) != 0) die("close", path, errno);
  }
  const double t1 = now();

  auto q = std::make_unique<daxref_extent_query>();
  std::memset(q.get(), 0, sizeof(*q));
  if (::ioctl(src, DAXREF_IOC_EXTENTS, q.get()) != 0) die("DAXREF_IOC_EXTENTS", f0, errno);
  if (q->count != 1 || q->extents[0].length != kBlock) {
    std::fprintf(stderr, "daxref-bench-poison: %s: %u extents, first %llu bytes; want 1 of %zu\n",
                 f0.c_str(), q->count, static_cast<unsigned long long>(q->extents[0].length),
                 kBlock);
    return 1;
  }
  if (::close(src) != 0) die("close", f0, errno);
  std::printf("made %llu %.6f pblock %llu refcount %u\n", static_cast<unsigned long long>(n),
              t1 - t0, static_cast<unsigned long long>(q->extents[0].physical / kBlock),
              q->extents[0].refcount);
  return 0;
}

// ---- hold --------------------------------------------------------------------

// One holder's page of shared memory (well, one slot of it): written by the
// holder's signal handler, read by the parent.
struct Slot {
  std::atomic<uint32_t> ready;     // 1 once set up, 2 if setup failed
  std::atomic<uint32_t> received;  // SIGBUS count
  int32_t code;                    // of the first SIGBUS
  int32_t err;
  uint64_t value;
  uint64_t ino;  // the holder's file's inode (st_ino)
  uint64_t first_us;
};
static_assert(std::atomic<uint32_t>::is_always_lock_free, "handler needs lock-free atomics");

Slot* g_slot = nullptr;  // this holder's

void on_sigbus(int, siginfo_t* si, void*) {
  if (g_slot->received.load(std::memory_order_relaxed) == 0) {
    g_slot->code = si->si_code;
    g_slot->err = si->si_errno;
    g_slot->value = reinterpret_cast<uint64_t>(si->si_value.sival_ptr);
    g_slot->first_us = realtime_us();  // clock_gettime is async-signal-safe
  }
  g_slot->received.fetch_add(1, std::memory_order_release);
}

[[noreturn]] void holder_fail(Slot* slot, const char* what, const std::string& path) {
  std::fprintf(stderr, "daxref-bench-poison: holder %d: %s %s: %s\n", getpid(), what, path.c_str(),
               std::strerror(errno));
  slot->ready.store(2, std::memory_order_release);
  _exit(1);
}

[[noreturn]] void run_holder(Slot* slot, const std::string& path, bool map, pid_t parent) {
  if (prctl(PR_SET_PDEATHSIG, SIGKILL) != 0 || getppid() != parent) _exit(1);
  // Nothing of the parent's pipes: the caller reads the parent's stdout.
  int null = ::open("/dev/null", O_RDWR | O_CLOEXEC);
  if (null >= 0) {
    ::dup2(null, 0);
    ::dup2(null, 1);
    ::close(null);
  }
  g_slot = slot;
  struct sigaction sa {};
  sa.sa_sigaction = on_sigbus;
  sa.sa_flags = SA_SIGINFO | SA_RESTART;
  sigemptyset(&sa.sa_mask);
  if (sigaction(SIGBUS, &sa, nullptr) != 0) holder_fail(slot, "sigaction", "SIGBUS");
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) holder_fail(slot, "open", path);
  struct stat st {};
  if (::fstat(fd, &st) != 0) holder_fail(slot, "fstat", path);
  slot->ino = st.st_ino;
  char buf[kBlock];
  if (::pread(fd, buf, kBlock, 0) != static_cast<ssize_t>(kBlock)) holder_fail(slot, "read", path);
  if (map) {
    void* p = ::mmap(nullptr, kBlock, PROT_READ, MAP_SHARED, fd, 0);
    if (p == MAP_FAILED) holder_fail(slot, "mmap", path);
    volatile const char* c = static_cast<const char*>(p);
    if (c[0] != buf[0] || c[kBlock - 1] != buf[kBlock - 1]) {
      errno = EIO;
      holder_fail(slot, "mapped bytes differ from read ones in", path);
    }
    ::close(fd);  // held through the mapping only
  }
  slot->ready.store(1, std::memory_order_release);
  for (;;) ::pause();
}

int cmd_hold(const std::string& dir, uint64_t n, uint64_t h, uint64_t map_every, double wait_s) {
  const size_t bytes = (sizeof(Slot) * h + kBlock - 1) / kBlock * kBlock;
  void* mem = ::mmap(nullptr, bytes, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
  if (mem == MAP_FAILED) die("mmap", "shared slots", errno);
  auto* slots = static_cast<Slot*>(mem);  // zeroed by mmap
  for (uint64_t i = 0; i < h; ++i) new (&slots[i]) Slot();
  std::vector<pid_t> pids;
  std::vector<std::string> paths;
  const pid_t self = getpid();
  std::fflush(stdout);
  uint64_t mapped = 0;
  auto kill_all = [&]() {
    for (pid_t p : pids) ::kill(p, SIGKILL);
    for (pid_t p : pids) ::waitpid(p, nullptr, 0);
  };
  for (uint64_t i = 0; i < h; ++i) {
    paths.push_back(file_name(dir, i * n / h));
    const bool map = map_every > 0 && i % map_every == map_every - 1;
    mapped += map;
    pid_t pid = ::fork();
    if (pid < 0) {
      int e = errno;
      kill_all();
      die("fork", "holder", e);
    }
    if (pid == 0) run_holder(&slots[i], paths.back(), map, self);
    pids.push_back(pid);
  }
  // Every holder set up, or one failed.
  const double deadline = now() + 30;
  for (uint64_t i = 0; i < h;) {
    uint32_t r = slots[i].ready.load(std::memory_order_acquire);
    if (r == 1) {
      ++i;
      continue;
    }
    int status;
    if (r == 2 || ::waitpid(pids[i], &status, WNOHANG) == pids[i] || now() > deadline) {
      std::fprintf(stderr, "daxref-bench-poison: holder %llu (%s) %s\n",
                   static_cast<unsigned long long>(i), paths[i].c_str(),
                   r == 2 ? "failed to set up" : "did not get ready");
      kill_all();
      return 1;
    }
    ::usleep(1000);
  }
  std::printf("ready %llu mapped %llu\n", static_cast<unsigned long long>(h),
              static_cast<unsigned long long>(mapped));
  std::fflush(stdout);

  std::string line;
  std::getline(std::cin, line);  // the poison has been injected (or the caller gave up)

  const double until = now() + wait_s;
  uint64_t got = 0;
  for (;;) {
    got = 0;
    for (uint64_t i = 0; i < h; ++i) got += slots[i].received.load(std::memory_order_acquire) > 0;
    if (got == h || now() > until) break;
    ::usleep(1000);
  }
  uint64_t valid = 0, first = 0, last = 0;
  for (uint64_t i = 0; i < h; ++i) {
    const Slot& s = slots[i];
    if (s.received.load(std::memory_order_acquire) == 0) continue;
    const uint64_t want = (std::min<uint64_t>(s.ino, 0xffffffff) << 32) | 0;
    if (s.code == SI_QUEUE && s.err == kEhwpoison && s.value == want) {
      ++valid;
    } else {
      std::fprintf(stderr,
                   "daxref-bench-poison: holder %d (%s): si_code %d si_errno %d value %#llx; "
                   "expected %d %d %#llx\n",
                   pids[i], paths[i].c_str(), s.code, s.err,
                   static_cast<unsigned long long>(s.value), SI_QUEUE, kEhwpoison,
                   static_cast<unsigned long long>(want));
    }
    first = first == 0 ? s.first_us : std::min(first, s.first_us);
    last = std::max(last, s.first_us);
  }
  kill_all();
  // Every cache was invalidated: the block the holders read must now fail.
  uint64_t eio = 0;
  for (uint64_t i = 0; i < h; ++i) {
    int fd = ::open(paths[i].c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) die("open", paths[i], errno);
    char buf[kBlock];
    ssize_t r = ::pread(fd, buf, kBlock, 0);
    if (r < 0 && errno == EIO)
      ++eio;
    else
      std::fprintf(stderr, "daxref-bench-poison: read of %s after poison: %s\n", paths[i].c_str(),
                   r < 0 ? std::strerror(errno) : "succeeded");
    ::close(fd);
  }
  std::printf("signalled %llu of %llu valid %llu first_us %llu last_us %llu eio %llu of %llu\n",
              static_cast<unsigned long long>(got), static_cast<unsigned long long>(h),
              static_cast<unsigned long long>(valid), static_cast<unsigned long long>(first),
              static_cast<unsigned long long>(last), static_cast<unsigned long long>(eio),
              static_cast<unsigned long long>(h));
  return got == h && valid == h && eio == h ? 0 : 1;
}

// ---- scan --------------------------------------------------------------------

struct ScanCount {
  uint64_t procs = 0, fds = 0, maps = 0, held = 0;
};

// Device of a maps line's "MAJ:MIN" field (hex), and whether it names a file.
bool maps_line_dev(const char* line, const char* end, dev_t* dev) {
  // address perms offset dev inode path
  int field = 0;
  const char* p = line;
  while (p < end && field < 3) {
    while (p < end && *p != ' ') ++p;
    while (p < end && *p == ' ') ++p;
    ++field;
  }
  if (p >= end) return false;
  char* q = nullptr;
  unsigned long major = std::strtoul(p, &q, 16);
  if (q >= end || *q != ':') return false;
  unsigned long minor = std::strtoul(q + 1, &q, 16);
  while (q < end && *q == ' ') ++q;
  char* r = nullptr;
  unsigned long long ino = std::strtoull(q, &r, 10);
  if (r == q || ino == 0) return false;
  *dev = makedev(major, minor);
  return true;
}

ScanCount scan_once(dev_t dev, std::vector<char>* buf) {
  ScanCount c;
  DIR* proc = ::opendir("/proc");
  if (!proc) die("opendir", "/proc", errno);
  const pid_t self = getpid();
  while (const dirent* e = ::readdir(proc)) {
    if (e->d_name[0] < '0' || e->d_name[0] > '9') continue;
    if (std::atoi(e->d_name) == self) continue;
    int pid_dir = ::openat(dirfd(proc), e->d_name, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (pid_dir < 0) continue;
    ++c.procs;
    int fdd = ::openat(pid_dir, "fd", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (DIR* fds = fdd >= 0 ? ::fdopendir(fdd) : nullptr) {
      while (const dirent* f = ::readdir(fds)) {
        if (f->d_name[0] == '.') continue;
        struct statx stx;
        if (::statx(dirfd(fds), f->d_name, AT_STATX_DONT_SYNC, STATX_INO, &stx) != 0) continue;
        ++c.fds;
        c.held += makedev(stx.stx_dev_major, stx.stx_dev_minor) == dev;
      }
      ::closedir(fds);
    } else if (fdd >= 0) {
      ::close(fdd);
    }
    int maps = ::openat(pid_dir, "maps", O_RDONLY | O_CLOEXEC);
    if (maps >= 0) {
      size_t have = 0;
      for (;;) {
        ssize_t r = ::read(maps, buf->data() + have, buf->size() - have);
        if (r <= 0) break;
        const char* start = buf->data();
        const char* end = start + have + r;
        while (const char* nl = static_cast<const char*>(std::memchr(start, '\n', end - start))) {
          dev_t d;
          if (maps_line_dev(start, nl, &d)) {
            ++c.maps;
            c.held += d == dev;
          }
          start = nl + 1;
        }
        have = static_cast<size_t>(end - start);
        std::memmove(buf->data(), start, have);
        if (have == buf->size()) have = 0;  // a line longer than the buffer: drop it
      }
      ::close(maps);
    }
    ::close(pid_dir);
  }
  ::closedir(proc);
  return c;
}

int cmd_scan(const std::string& path, uint64_t reps) {
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0) die("stat", path, errno);
  std::vector<char> buf(64 << 10);
  std::vector<double> us;
  ScanCount c;
  for (uint64_t i = 0; i < reps; ++i) {
    const double t0 = now();
    c = scan_once(st.st_dev, &buf);
    us.push_back((now() - t0) * 1e6);
  }
  std::sort(us.begin(), us.end());
  const double med =
      us.size() % 2 ? us[us.size() / 2] : (us[us.size() / 2 - 1] + us[us.size() / 2]) / 2;
  std::printf("scan procs %llu fds %llu maps %llu held %llu min_us %.0f median_us %.0f\n",
              static_cast<unsigned long long>(c.procs), static_cast<unsigned long long>(c.fds),
              static_cast<unsigned long long>(c.maps), static_cast<unsigned long long>(c.held),
              us.front(), med);
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 3) usage();
  const std::string cmd = argv[1];
  uint64_t n = 0, h = 0;
  if (cmd == "make" && argc == 4) {
    if (!parse_u64(argv[3], &n) || n == 0) usage();
    return cmd_make(argv[2], n);
  }
  if (cmd == "hold" && argc >= 5) {
    if (!parse_u64(argv[3], &n) || !parse_u64(argv[4], &h) || n == 0 || h == 0 || h > n) usage();
    uint64_t map_every = 2, wait_s = 5;
    for (int i = 5; i < argc; i += 2) {
      if (i + 1 >= argc) usage();
      const std::string opt = argv[i];
      if (opt == "--map-every" && parse_u64(argv[i + 1], &map_every)) continue;
      if (opt == "--wait" && parse_u64(argv[i + 1], &wait_s) && wait_s > 0) continue;
      usage();
    }
    return cmd_hold(argv[2], n, h, map_every, static_cast<double>(wait_s));
  }
  if (cmd == "scan" && (argc == 3 || argc == 4)) {
    uint64_t reps = 5;
    if (argc == 4 && (!parse_u64(argv[3], &reps) || reps == 0)) usage();
    return cmd_scan(argv[2], reps);
  }
  usage();
}
