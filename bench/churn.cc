// daxref-bench-churn: an fsx-like churn of ONE file, timed, verified against
// an in-memory byte model. Issue 10, item 7.
//
//   daxref-bench-churn [options] DIR
//
// In DIR it works on two files: the churned file (--file, default
// churn.dat) and a source file for copy_file_range (churn-src.dat, 1 MiB of
// pseudo-random bytes, written once and never changed). Each operation is
// drawn from a deterministic generator (--seed) and is one of:
//
//   write     pwrite() of 1..64 KiB of random bytes at a random offset
//   read      pread() of 1..64 KiB at a random offset below EOF; the bytes
//             and the count are compared with the model
//   punch     fallocate(PUNCH_HOLE | KEEP_SIZE) of a range below EOF
//   zero      fallocate(ZERO_RANGE), with KEEP_SIZE half of the time (so it
//             may extend the file)
//   truncate  ftruncate() to a random size in [0, --max-size]
//   mapwrite  mmap(MAP_SHARED) of a range below EOF, memcpy, msync(MS_SYNC),
//             munmap (a write when the file is empty)
//   copy      copy_file_range() of 1..64 KiB of the source file to a random
//             offset of the churned file
//
// Offsets and lengths are arbitrary bytes (--align N rounds them down to
// multiples of N). No write goes past --max-size (default 4 MiB). The model
// keeps every byte of the file and its size; bytes past EOF are zero in the
// model, so a later extension reads zeros, as POSIX requires.
//
// Any difference between what the file returns and the model is a hard
// failure: one line on stderr naming the operation number, the kind, the
// offset of the first differing byte, the expected and the found byte, and
// exit status 1. A failing system call is reported the same way (exit 1).
// At every checkpoint, and at the end, the whole file is read back and
// compared (untimed), and its size checked with fstat().
//
// Timing: the clock (CLOCK_MONOTONIC) runs over the operations only; the
// checkpoint verification is outside it. At each checkpoint (--checkpoints,
// default 1000,10000,100000; --ops defaults to the last) one line:
//
//   checkpoint OPS seconds S interval_us_per_op I cumulative_us_per_op C
//
// where I is the mean time of the operations since the previous checkpoint
// (what an operation costs now) and C the mean since the start. --json
// prints one JSON object at the end instead.
//
// --reuse opens an existing churned file (e.g. after a long churn and a
// remount) and continues: the model is first rebuilt by reading the file,
// and the source file is read back if present (created otherwise). Without
// --reuse the churned file is created and must not exist.
//
// --time-limit S stops after the first operation that ends S seconds after
// the start; the output then says "complete": false (and "stopped early" in
// the text form), and checkpoints not reached are absent. The exit status is
// still 0 if everything read back matched.
//
// Exit status: 0 done and verified, 1 mismatch or failed system call, 2 bad
// usage.

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cinttypes>
#include <cstdarg>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <string_view>
#include <vector>

namespace {

using Clock = std::chrono::steady_clock;

constexpr const char* kProg = "daxref-bench-churn";
constexpr uint64_t kMaxOpLen = 64 * 1024;
constexpr uint64_t kSrcSize = 1024 * 1024;

enum Kind { kWrite, kRead, kPunch, kZero, kTruncate, kMapWrite, kCopy, kKinds };
constexpr const char* kKindName[kKinds] = {"write",    "read",     "punch", "zero",
                                           "truncate", "mapwrite", "copy"};

// splitmix64: small, fast, and the same sequence everywhere for a seed.
struct Rng {
  uint64_t s;
  uint64_t Next() {
    uint64_t z = (s += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
  }
  // Uniform in [0, n); n > 0. The modulo bias is irrelevant here.
  uint64_t Below(uint64_t n) { return Next() % n; }
  void Fill(uint8_t* p, size_t n) {
    while (n >= 8) {
      const uint64_t v = Next();
      std::memcpy(p, &v, 8);
      p += 8;
      n -= 8;
    }
    if (n > 0) {
      const uint64_t v = Next();
      std::memcpy(p, &v, n);
    }
  }
};

[[noreturn]] void Usage(int code) {
  std::fprintf(code == 0 ? stdout : stderr,
               "usage: %s [options] DIR\n"
               "  --seed N            generator seed (default 1)\n"
               "  --ops N             operations to run (default: the last checkpoint)\n"
               "  --checkpoints LIST  comma-separated op counts to report at\n"
               "                      (default 1000,10000,100000)\n"
               "  --max-size SIZE     largest file size, suffix K/M/G (default 4M)\n"
               "  --align N           round offsets and lengths down to multiples of N\n"
               "  --file NAME         churned file in DIR (default churn.dat)\n"
               "  --mix LIST          weights, e.g. write=24,read=24,punch=10,zero=10,\n"
               "                      truncate=6,mapwrite=12,copy=14 (the default)\n"
               "  --reuse             continue on an existing file (model read from it)\n"
               "  --time-limit S      stop after S seconds of operations\n"
               "  --label TEXT        name printed with the results (e.g. the target)\n"
               "  --json              one JSON object on stdout at the end\n"
               "  -h, --help          this text\n",
               kProg);
  std::exit(code);
}

[[noreturn]] void BadUsage(const std::string& msg) {
  std::fprintf(stderr, "%s: %s (see --help)\n", kProg, msg.c_str());
  std::exit(2);
}

bool ParseU64(std::string_view s, uint64_t* out) {
  if (s.empty() || s[0] == '-') return false;
  std::string str(s);
  char* end = nullptr;
  errno = 0;
  const unsigned long long v = std::strtoull(str.c_str(), &end, 10);
  if (errno != 0 || end == str.c_str() || *end != '\0') return false;
  *out = v;
  return true;
}

bool ParseSize(std::string_view s, uint64_t* out) {
  uint64_t mult = 1;
  if (!s.empty()) {
    switch (s.back()) {
      case 'k':
      case 'K':
        mult = 1ULL << 10;
        break;
      case 'm':
      case 'M':
        mult = 1ULL << 20;
        break;
      case 'g':
      case 'G':
        mult = 1ULL << 30;
        break;
      default:
        break;
    }
    if (mult != 1) s.remove_suffix(1);
  }
  uint64_t v = 0;
  if (!ParseU64(s, &v) || v > UINT64_MAX / mult) return false;
  *out = v * mult;
  return true;
}

struct Options {
  std::string dir;
  std::string file = "churn.dat";
  uint64_t seed = 1;
  uint64_t ops = 0;  // 0: the last checkpoint
  std::vector<uint64_t> checkpoints = {1000, 10000, 100000};
  uint64_t max_size = 4 << 20;
  uint64_t align = 1;
  unsigned weight[kKinds] = {24, 24, 10, 10, 6, 12, 14};
  bool reuse = false;
  bool json = false;
  double time_limit = 0;
  std::string label;
};

Options ParseArgs(int argc, char** argv) {
  Options o;
  bool have_dir = false;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    std::string val;
    bool has_val = false;
    if (a.rfind("--", 0) == 0 && a.find('=') != std::string::npos) {
      val = a.substr(a.find('=') + 1);
      a = a.substr(0, a.find('='));
      has_val = true;
    }
    auto need = [&]() -> std::string {
      if (has_val) return val;
      if (i + 1 >= argc) BadUsage(a + " needs a value");
      return argv[++i];
    };
    if (a == "-h" || a == "--help") {
      Usage(0);
    } else if (a == "--seed") {
      if (!ParseU64(need(), &o.seed)) BadUsage("bad --seed");
    } else if (a == "--ops") {
      if (!ParseU64(need(), &o.ops) || o.ops == 0) BadUsage("bad --ops");
    } else if (a == "--checkpoints") {
      o.checkpoints.clear();
      std::string list = need();
      size_t pos = 0;
      while (pos <= list.size()) {
        const size_t comma = std::min(list.find(',', pos), list.size());
        uint64_t v = 0;
        if (!ParseSize(std::string_view(list).substr(pos, comma - pos), &v) || v == 0)
          BadUsage("bad --checkpoints entry in '" + list + "'");
        o.checkpoints.push_back(v);
        pos = comma + 1;
      }
      std::sort(o.checkpoints.begin(), o.checkpoints.end());
      o.checkpoints.erase(std::unique(o.checkpoints.begin(), o.checkpoints.end()),
                          o.checkpoints.end());
    } else if (a == "--max-size") {
      if (!ParseSize(need(), &o.max_size) || o.max_size < 4096)
        BadUsage("bad --max-size (at least 4096)");
    } else if (a == "--align") {
      if (!ParseSize(need(), &o.align) || o.align == 0 || o.align > kMaxOpLen)
        BadUsage("bad --align (1..65536)");
    } else if (a == "--file") {
      o.file = need();
      if (o.file.empty() || o.file.find('/') != std::string::npos)
        BadUsage("--file takes a plain name");
    } else if (a == "--mix") {
      std::string list = need();
      std::fill(std::begin(o.weight), std::end(o.weight), 0u);
      size_t pos = 0;
      while (pos <= list.size()) {
        const size_t comma = std::min(list.find(',', pos), list.size());
        const std::string item = list.substr(pos, comma - pos);
        const size_t eq = item.find('=');
        uint64_t w = 0;
        int k = kKinds;
        if (eq != std::string::npos) {
          for (k = 0; k < kKinds; ++k)
            if (item.compare(0, eq, kKindName[k]) == 0 && eq == std::strlen(kKindName[k])) break;
        }
        if (k == kKinds || !ParseU64(item.substr(eq + 1), &w) || w > 1000000)
          BadUsage("bad --mix entry '" + item + "'");
        o.weight[k] = static_cast<unsigned>(w);
        pos = comma + 1;
      }
      unsigned total = 0;
      for (unsigned w : o.weight) total += w;
      if (total == 0) BadUsage("--mix gives every operation weight 0");
    } else if (a == "--reuse") {
      o.reuse = true;
    } else if (a == "--json") {
      o.json = true;
    } else if (a == "--time-limit") {
      const std::string v = need();
      char* end = nullptr;
      o.time_limit = std::strtod(v.c_str(), &end);
      if (end == v.c_str() || *end != '\0' || !(o.time_limit > 0)) BadUsage("bad --time-limit");
    } else if (a == "--label") {
      o.label = need();
    } else if (!a.empty() && a[0] == '-') {
      BadUsage("unknown option " + a);
    } else if (!have_dir) {
      o.dir = a;
      have_dir = true;
    } else {
      BadUsage("more than one directory given");
    }
  }
  if (!have_dir) BadUsage("no directory given");
  if (o.ops == 0) o.ops = o.checkpoints.back();
  // Checkpoints past --ops are dropped; --ops itself is always reported.
  std::erase_if(o.checkpoints, [&](uint64_t c) { return c > o.ops; });
  if (o.checkpoints.empty() || o.checkpoints.back() != o.ops) o.checkpoints.push_back(o.ops);
  return o;
}

// Fatal errors: one line, exit 1. `op` is the 1-based op number (0: setup).
[[noreturn]] void Fail(uint64_t op, const char* kind, const char* fmt, ...)
    __attribute__((format(printf, 3, 4)));
[[noreturn]] void Fail(uint64_t op, const char* kind, const char* fmt, ...) {
  char msg[512];
  va_list ap;
  va_start(ap, fmt);
  std::vsnprintf(msg, sizeof msg, fmt, ap);
  va_end(ap);
  if (op == 0)
    std::fprintf(stderr, "%s: %s: %s\n", kProg, kind, msg);
  else
    std::fprintf(stderr, "%s: op %" PRIu64 " (%s): %s\n", kProg, op, kind, msg);
  std::exit(1);
}

// Reads [off, off+len) fully (short reads are retried; EOF ends early).
// Returns the count read, or -1 with errno set.
ssize_t PreadFull(int fd, uint8_t* buf, size_t len, uint64_t off) {
  size_t done = 0;
  while (done < len) {
    const ssize_t n = ::pread(fd, buf + done, len - done, static_cast<off_t>(off + done));
    if (n < 0) {
      if (errno == EINTR) continue;
      return -1;
    }
    if (n == 0) break;
    done += static_cast<size_t>(n);
  }
  return static_cast<ssize_t>(done);
}

struct Model {
  std::vector<uint8_t> bytes;  // capacity max_size; zero past `size`
  uint64_t size = 0;

  void Extend(uint64_t end) { size = std::max(size, end); }
  void Truncate(uint64_t n) {
    if (n < size) std::memset(bytes.data() + n, 0, size - n);
    size = n;
  }
};

class Churn {
 public:
  explicit Churn(const Options& o) : o_(o), rng_{o.seed} {
    for (unsigned w : o_.weight) total_weight_ += w;
    page_ = static_cast<uint64_t>(::sysconf(_SC_PAGESIZE));
    buf_.resize(kMaxOpLen);
    rbuf_.resize(kMaxOpLen);
  }

  void Open() {
    const std::string path = o_.dir + "/" + o_.file;
    const std::string src_path = o_.dir + "/churn-src.dat";
    if (o_.reuse) {
      fd_ = ::open(path.c_str(), O_RDWR);
      if (fd_ < 0) Fail(0, "setup", "open %s (--reuse): %s", path.c_str(), std::strerror(errno));
      struct stat st {};
      if (::fstat(fd_, &st) != 0)
        Fail(0, "setup", "fstat %s: %s", path.c_str(), std::strerror(errno));
      const uint64_t sz = static_cast<uint64_t>(st.st_size);
      if (sz > o_.max_size)
        Fail(0, "setup", "%s is %" PRIu64 " bytes, more than --max-size %" PRIu64, path.c_str(), sz,
             o_.max_size);
      model_.bytes.assign(o_.max_size, 0);
      const ssize_t n = PreadFull(fd_, model_.bytes.data(), sz, 0);
      if (n < 0) Fail(0, "setup", "read %s: %s", path.c_str(), std::strerror(errno));
      if (static_cast<uint64_t>(n) != sz)
        Fail(0, "setup", "read %s: %zd bytes of %" PRIu64, path.c_str(), n, sz);
      model_.size = sz;
    } else {
      fd_ = ::open(path.c_str(), O_RDWR | O_CREAT | O_EXCL, 0644);
      if (fd_ < 0) Fail(0, "setup", "create %s: %s", path.c_str(), std::strerror(errno));
      model_.bytes.assign(o_.max_size, 0);
    }
    // The source of copy_file_range: read back when reusing, else written.
    src_.assign(kSrcSize, 0);
    src_fd_ = ::open(src_path.c_str(), O_RDWR);
    if (src_fd_ >= 0 && o_.reuse) {
      const ssize_t n = PreadFull(src_fd_, src_.data(), kSrcSize, 0);
      if (n != static_cast<ssize_t>(kSrcSize))
        Fail(0, "setup", "read %s: %s", src_path.c_str(),
             n < 0 ? std::strerror(errno) : "short file");
    } else {
      if (src_fd_ >= 0) {
        ::close(src_fd_);
        Fail(0, "setup", "%s exists (remove it, or use --reuse)", src_path.c_str());
      }
      src_fd_ = ::open(src_path.c_str(), O_RDWR | O_CREAT | O_EXCL, 0644);
      if (src_fd_ < 0) Fail(0, "setup", "create %s: %s", src_path.c_str(), std::strerror(errno));
      Rng r{o_.seed ^ 0x5eed5eed5eedULL};
      r.Fill(src_.data(), kSrcSize);
      size_t done = 0;
      while (done < kSrcSize) {
        const ssize_t n = ::pwrite(src_fd_, src_.data() + done, kSrcSize - done, done);
        if (n <= 0) Fail(0, "setup", "write %s: %s", src_path.c_str(), std::strerror(errno));
        done += static_cast<size_t>(n);
      }
    }
  }

  // Runs op number `n` (1-based).
  void Step(uint64_t n) {
    uint64_t pick = rng_.Below(total_weight_);
    int k = 0;
    while (pick >= o_.weight[k]) pick -= o_.weight[k++];
    if (k == kMapWrite && model_.size == 0) k = kWrite;  // nothing to map
    ++counts_[k];
    switch (k) {
      case kWrite:
        DoWrite(n);
        break;
      case kRead:
        DoRead(n);
        break;
      case kPunch:
        DoPunch(n);
        break;
      case kZero:
        DoZero(n);
        break;
      case kTruncate:
        DoTruncate(n);
        break;
      case kMapWrite:
        DoMapWrite(n);
        break;
      case kCopy:
        DoCopy(n);
        break;
      default:
        break;
    }
  }

  // Reads the whole file and compares it and its size with the model.
  void VerifyAll(uint64_t n) {
    struct stat st {};
    if (::fstat(fd_, &st) != 0) Fail(n, "verify", "fstat: %s", std::strerror(errno));
    if (static_cast<uint64_t>(st.st_size) != model_.size)
      Fail(n, "verify", "size is %" PRIu64 ", expected %" PRIu64, static_cast<uint64_t>(st.st_size),
           model_.size);
    for (uint64_t off = 0; off < model_.size; off += kMaxOpLen) {
      const uint64_t len = std::min(kMaxOpLen, model_.size - off);
      Compare(n, "verify", off, len);
    }
    // Nothing past EOF.
    uint8_t b;
    const ssize_t r = ::pread(fd_, &b, 1, static_cast<off_t>(model_.size));
    if (r != 0)
      Fail(n, "verify", "read at EOF %" PRIu64 " returned %zd, expected 0", model_.size, r);
  }

  const uint64_t* counts() const { return counts_; }
  bool zero_emulated() const { return zero_emulated_; }
  uint64_t size() const { return model_.size; }

 private:
  uint64_t Align(uint64_t v) const { return v / o_.align * o_.align; }
  // A length in [align, 64 KiB], a multiple of --align.
  uint64_t RandLen() { return std::max(o_.align, Align(1 + rng_.Below(kMaxOpLen))); }
  // A range starting below `limit` (> 0), clipped to end at or before `limit`.
  void RandRange(uint64_t limit, uint64_t* off, uint64_t* len) {
    *off = Align(rng_.Below(limit));
    *len = std::min(RandLen(), limit - *off);
  }

  void Compare(uint64_t n, const char* kind, uint64_t off, uint64_t len) {
    const ssize_t got = PreadFull(fd_, rbuf_.data(), len, off);
    if (got < 0)
      Fail(n, kind, "pread off %" PRIu64 " len %" PRIu64 ": %s", off, len, std::strerror(errno));
    const uint64_t want = off >= model_.size ? 0 : std::min(len, model_.size - off);
    const uint64_t cmp = std::min<uint64_t>(want, static_cast<uint64_t>(got));
    const uint8_t* m = model_.bytes.data() + off;
    if (std::memcmp(rbuf_.data(), m, cmp) != 0) {
      uint64_t i = 0;
      while (rbuf_[i] == m[i]) ++i;
      Fail(n, kind,
           "MISMATCH at offset %" PRIu64 " (read off %" PRIu64 " len %" PRIu64
           "): expected 0x%02x, got 0x%02x; file size %" PRIu64,
           off + i, off, len, m[i], rbuf_[i], model_.size);
    }
    if (static_cast<uint64_t>(got) != want)
      Fail(n, kind,
           "MISMATCH: read off %" PRIu64 " len %" PRIu64 " returned %zd bytes, expected %" PRIu64
           "; file size %" PRIu64,
           off, len, got, want, model_.size);
  }

  void DoWrite(uint64_t n) {
    uint64_t off, len;
    RandRange(o_.max_size, &off, &len);
    rng_.Fill(buf_.data(), len);
    uint64_t done = 0;
    while (done < len) {
      const ssize_t w = ::pwrite(fd_, buf_.data() + done, len - done, off + done);
      if (w < 0 && errno == EINTR) continue;
      if (w <= 0)
        Fail(n, "write", "pwrite off %" PRIu64 " len %" PRIu64 ": %s", off, len,
             w < 0 ? std::strerror(errno) : "wrote nothing");
      done += static_cast<uint64_t>(w);
    }
    std::memcpy(model_.bytes.data() + off, buf_.data(), len);
    model_.Extend(off + len);
  }

  void DoRead(uint64_t n) {
    if (model_.size == 0) {
      Compare(n, "read", 0, 1);  // must return 0 bytes
      return;
    }
    uint64_t off, len;
    off = Align(rng_.Below(model_.size));
    len = RandLen();  // may run past EOF: the short count is checked too
    len = std::min(len, o_.max_size - off);
    Compare(n, "read", off, len);
  }

  void DoPunch(uint64_t n) {
    if (model_.size == 0) return;
    uint64_t off, len;
    RandRange(model_.size, &off, &len);
    if (::fallocate(fd_, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, static_cast<off_t>(off),
                    static_cast<off_t>(len)) != 0)
      Fail(n, "punch", "fallocate(PUNCH_HOLE) off %" PRIu64 " len %" PRIu64 ": %s", off, len,
           std::strerror(errno));
    std::memset(model_.bytes.data() + off, 0, len);
  }

  void DoZero(uint64_t n) {
    const bool keep = rng_.Below(2) == 0;
    uint64_t off, len;
    RandRange(o_.max_size, &off, &len);
    if (!zero_emulated_ && ::fallocate(fd_, FALLOC_FL_ZERO_RANGE | (keep ? FALLOC_FL_KEEP_SIZE : 0),
                                       static_cast<off_t>(off), static_cast<off_t>(len)) != 0) {
      if (errno != EOPNOTSUPP)
        Fail(n, "zero", "fallocate(ZERO_RANGE%s) off %" PRIu64 " len %" PRIu64 ": %s",
             keep ? "|KEEP_SIZE" : "", off, len, std::strerror(errno));
      // tmpfs has no ZERO_RANGE. The same effect on the bytes and the size:
      // punch the part below EOF, extend with ftruncate. Said in the output.
      zero_emulated_ = true;
      std::fprintf(stderr,
                   "%s: fallocate(ZERO_RANGE) not supported here; emulated with "
                   "PUNCH_HOLE + ftruncate\n",
                   kProg);
    }
    if (zero_emulated_) {
      if (off < model_.size &&
          ::fallocate(fd_, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, static_cast<off_t>(off),
                      static_cast<off_t>(std::min(len, model_.size - off))) != 0)
        Fail(n, "zero", "fallocate(PUNCH_HOLE, for ZERO_RANGE) off %" PRIu64 ": %s", off,
             std::strerror(errno));
      if (!keep && off + len > model_.size && ::ftruncate(fd_, static_cast<off_t>(off + len)) != 0)
        Fail(n, "zero", "ftruncate to %" PRIu64 " (for ZERO_RANGE): %s", off + len,
             std::strerror(errno));
    }
    // Bytes past EOF are already zero in the model.
    if (off < model_.size)
      std::memset(model_.bytes.data() + off, 0, std::min(len, model_.size - off));
    if (!keep) model_.Extend(off + len);
  }

  void DoTruncate(uint64_t n) {
    const uint64_t sz = Align(rng_.Below(o_.max_size + 1));
    if (::ftruncate(fd_, static_cast<off_t>(sz)) != 0)
      Fail(n, "truncate", "ftruncate to %" PRIu64 ": %s", sz, std::strerror(errno));
    model_.Truncate(sz);
  }

  void DoMapWrite(uint64_t n) {
    uint64_t off, len;
    RandRange(model_.size, &off, &len);
    const uint64_t start = off / page_ * page_;
    const uint64_t maplen = off + len - start;
    void* p =
        ::mmap(nullptr, maplen, PROT_READ | PROT_WRITE, MAP_SHARED, fd_, static_cast<off_t>(start));
    if (p == MAP_FAILED)
      Fail(n, "mapwrite", "mmap off %" PRIu64 " len %" PRIu64 ": %s", start, maplen,
           std::strerror(errno));
    rng_.Fill(buf_.data(), len);
    std::memcpy(static_cast<uint8_t*>(p) + (off - start), buf_.data(), len);
    if (::msync(p, maplen, MS_SYNC) != 0)
      Fail(n, "mapwrite", "msync off %" PRIu64 " len %" PRIu64 ": %s", start, maplen,
           std::strerror(errno));
    if (::munmap(p, maplen) != 0) Fail(n, "mapwrite", "munmap: %s", std::strerror(errno));
    std::memcpy(model_.bytes.data() + off, buf_.data(), len);
  }

  void DoCopy(uint64_t n) {
    uint64_t src_off, len, off;
    RandRange(kSrcSize, &src_off, &len);
    off = Align(rng_.Below(o_.max_size));
    len = std::min(len, o_.max_size - off);
    uint64_t done = 0;
    while (done < len) {
      loff_t in = static_cast<loff_t>(src_off + done), out = static_cast<loff_t>(off + done);
      const ssize_t c = ::copy_file_range(src_fd_, &in, fd_, &out, len - done, 0);
      if (c < 0 && errno == EINTR) continue;
      if (c <= 0)
        Fail(n, "copy",
             "copy_file_range src off %" PRIu64 " to off %" PRIu64 " len %" PRIu64 ": %s",
             src_off + done, off + done, len - done, c < 0 ? std::strerror(errno) : "copied 0");
      done += static_cast<uint64_t>(c);
    }
    std::memcpy(model_.bytes.data() + off, src_.data() + src_off, len);
    model_.Extend(off + len);
  }

  const Options& o_;
  Rng rng_;
  unsigned total_weight_ = 0;
  uint64_t page_ = 4096;
  int fd_ = -1;
  int src_fd_ = -1;
  Model model_;
  std::vector<uint8_t> src_;
  std::vector<uint8_t> buf_, rbuf_;
  uint64_t counts_[kKinds] = {};
  bool zero_emulated_ = false;
};

struct Checkpoint {
  uint64_t ops;
  double seconds;        // operations only, since the start
  double interval_us;    // per op since the previous checkpoint
  double cumulative_us;  // per op since the start
};

std::string JsonString(const std::string& s) {
  std::string out = "\"";
  for (const char c : s) {
    if (c == '"' || c == '\\') {
      out += '\\';
      out += c;
    } else if (static_cast<unsigned char>(c) < 0x20) {
      char b[8];
      std::snprintf(b, sizeof b, "\\u%04x", c);
      out += b;
    } else {
      out += c;
    }
  }
  return out + "\"";
}

}  // namespace

int main(int argc, char** argv) {
  const Options o = ParseArgs(argc, argv);
  struct stat st {};
  if (::stat(o.dir.c_str(), &st) != 0 || !S_ISDIR(st.st_mode))
    Fail(0, "setup", "%s: %s", o.dir.c_str(),
         errno != 0 ? std::strerror(errno) : "not a directory");

  Churn churn(o);
  churn.Open();
  if (o.reuse) churn.VerifyAll(0);  // the model is what was read; checks the size too

  std::vector<Checkpoint> cps;
  double elapsed = 0;  // seconds of operations so far
  uint64_t done = 0;
  bool complete = true;
  size_t next_cp = 0;
  uint64_t prev_ops = 0;
  double prev_secs = 0;
  auto t0 = Clock::now();
  while (done < o.ops) {
    churn.Step(++done);
    if (done == o.checkpoints[next_cp]) {
      elapsed += std::chrono::duration<double>(Clock::now() - t0).count();
      const Checkpoint cp{done, elapsed, (elapsed - prev_secs) * 1e6 / double(done - prev_ops),
                          elapsed * 1e6 / double(done)};
      cps.push_back(cp);
      prev_ops = done;
      prev_secs = elapsed;
      ++next_cp;
      if (!o.json) {
        std::printf("checkpoint %" PRIu64
                    " seconds %.6f interval_us_per_op %.2f "
                    "cumulative_us_per_op %.2f\n",
                    cp.ops, cp.seconds, cp.interval_us, cp.cumulative_us);
        std::fflush(stdout);
      }
      churn.VerifyAll(done);  // untimed
      t0 = Clock::now();
    } else if (o.time_limit > 0 && (done & 15) == 0 &&
               elapsed + std::chrono::duration<double>(Clock::now() - t0).count() >= o.time_limit) {
      elapsed += std::chrono::duration<double>(Clock::now() - t0).count();
      complete = false;
      churn.VerifyAll(done);
      break;
    }
  }

  if (o.json) {
    std::printf(
        "{\"label\": %s, \"dir\": %s, \"file\": %s, \"seed\": %" PRIu64 ", \"max_size\": %" PRIu64
        ", \"align\": %" PRIu64 ", \"reuse\": %s, \"ops_requested\": %" PRIu64
        ", \"ops_done\": %" PRIu64
        ", \"seconds\": %.6f, \"complete\": %s, \"verified\": true, \"final_size\": %" PRIu64
        ", \"zero_range_emulated\": %s, \"checkpoints\": [",
        JsonString(o.label).c_str(), JsonString(o.dir).c_str(), JsonString(o.file).c_str(), o.seed,
        o.max_size, o.align, o.reuse ? "true" : "false", o.ops, done, elapsed,
        complete ? "true" : "false", churn.size(), churn.zero_emulated() ? "true" : "false");
    for (size_t i = 0; i < cps.size(); ++i)
      std::printf("%s{\"ops\": %" PRIu64
                  ", \"seconds\": %.6f, \"interval_us_per_op\": %.3f, "
                  "\"cumulative_us_per_op\": %.3f}",
                  i ? ", " : "", cps[i].ops, cps[i].seconds, cps[i].interval_us,
                  cps[i].cumulative_us);
    std::printf("], \"op_counts\": {");
    for (int k = 0; k < kKinds; ++k)
      std::printf("%s\"%s\": %" PRIu64, k ? ", " : "", kKindName[k], churn.counts()[k]);
    std::printf("}}\n");
  } else {
    if (!complete)
      std::printf("stopped early after %" PRIu64 " ops, %.3f s (--time-limit %.1f)\n", done,
                  elapsed, o.time_limit);
    std::printf("done ops %" PRIu64 " seconds %.6f us_per_op %.2f final_size %" PRIu64
                " verified\n",
                done, elapsed, done ? elapsed * 1e6 / double(done) : 0.0, churn.size());
    std::printf("op_counts");
    for (int k = 0; k < kKinds; ++k) std::printf(" %s %" PRIu64, kKindName[k], churn.counts()[k]);
    std::printf("\n");
  }
  return 0;
}
