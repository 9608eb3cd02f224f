// reflink_probe: makes one FICLONE, FICLONERANGE, FIDEDUPERANGE or fallocate
// call on the files named on its command line and prints what came back, for
// fs_reflink_tools_test.cc. libdaxref-reflink.so only acts in a process it was
// preloaded into, so the tests run this program with and without LD_PRELOAD
// and compare its answers with what the man pages promise.
//
//   reflink_probe [OPTIONS] clone DEST SRC
//   reflink_probe [OPTIONS] clone-range DEST SRC SRC_OFFSET LENGTH DEST_OFFSET
//   reflink_probe [OPTIONS] dedupe SRC SRC_OFFSET LENGTH DEST DEST_OFFSET...
//   reflink_probe [OPTIONS] fallocate DEST MODE OFFSET LENGTH
//
// --dest-mode=MODE: how each DEST is opened: r, w, rw or a (O_WRONLY |
// O_APPEND); the default is w, or r for dedupe (as duperemove opens its
// destinations). SRC is opened read-only.
// --dirty=PATH,OFFSET,LENGTH: first store LENGTH bytes 'M' at OFFSET of PATH
// through a shared mapping, with no msync, so that the call finds them as
// dirty pages in the page cache.
// Numbers are decimal; fallocate's MODE is its flags.
//
// Output, one line: "rc=R errno=NAME" ("-" when the call succeeded), then
// " errno_kept=1" or "=0" when it succeeded (errno must be left as it was),
// then for dedupe " [STATUS BYTES]" per destination (SAME, DIFFERS or an
// errno name). Exit status: 0 if the call succeeded, 1 if it failed, 2 for a
// bad command line or a file that cannot be opened.
#include <fcntl.h>
#include <linux/fs.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <unistd.h>

#include <cerrno>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

namespace {

constexpr int kUntouched = 4242;  // errno before the call

int Usage() {
  fprintf(stderr,
          "usage: reflink_probe [--dest-mode=r|w|rw|a] [--dirty=PATH,OFF,LEN] clone DEST SRC | "
          "clone-range DEST SRC "
          "SOFF LEN DOFF | dedupe SRC SOFF LEN DEST DOFF... | fallocate DEST MODE OFF LEN\n");
  return 2;
}

bool Number(const char* text, uint64_t* out) {
  char* end = nullptr;
  errno = 0;
  unsigned long long v = strtoull(text, &end, 10);
  if (errno != 0 || end == text || *end != '\0') return false;
  *out = v;
  return true;
}

const char* ErrnoName(int err) {
  const char* name = strerrorname_np(err);
  return name != nullptr ? name : "UNKNOWN";
}

int OpenOrDie(const std::string& path, int flags);

// --dirty: PATH,OFFSET,LENGTH. The mapping stays until the process exits.
bool Dirty(const std::string& spec) {
  const size_t a = spec.rfind(',', spec.size());
  const size_t b = a == std::string::npos || a == 0 ? std::string::npos : spec.rfind(',', a - 1);
  uint64_t off, len;
  if (b == std::string::npos || !Number(spec.substr(b + 1, a - b - 1).c_str(), &off) ||
      !Number(spec.substr(a + 1).c_str(), &len) || len == 0)
    return false;
  int fd = OpenOrDie(spec.substr(0, b), O_RDWR);
  const uint64_t page = static_cast<uint64_t>(sysconf(_SC_PAGESIZE));
  const uint64_t start = off / page * page;
  void* p = mmap(nullptr, off + len - start, PROT_READ | PROT_WRITE, MAP_SHARED, fd,
                 static_cast<off_t>(start));
  if (p == MAP_FAILED) {
    fprintf(stderr, "reflink_probe: mmap: %s\n", strerror(errno));
    exit(2);
  }
  memset(static_cast<char*>(p) + (off - start), 'M', len);
  return true;
}

int OpenOrDie(const std::string& path, int flags) {
  int fd = open(path.c_str(), flags | O_CLOEXEC);
  if (fd < 0) {
    fprintf(stderr, "reflink_probe: %s: %s\n", path.c_str(), strerror(errno));
    exit(2);
  }
  return fd;
}

// Prints the common part of the line; returns the exit status.
int Report(int rc, int err, const std::string& rest = "") {
  if (rc == 0)
    printf("rc=0 errno=- errno_kept=%d%s\n", err == kUntouched ? 1 : 0, rest.c_str());
  else
    printf("rc=%d errno=%s%s\n", rc, ErrnoName(err), rest.c_str());
  return rc == 0 ? 0 : 1;
}

}  // namespace

int main(int argc, char** argv) {
  std::vector<std::string> args(argv + 1, argv + argc);
  std::string mode_name;
  while (!args.empty() && args[0].rfind("--", 0) == 0) {
    if (args[0].rfind("--dest-mode=", 0) == 0)
      mode_name = args[0].substr(strlen("--dest-mode="));
    else if (args[0].rfind("--dirty=", 0) != 0 || !Dirty(args[0].substr(strlen("--dirty="))))
      return Usage();
    args.erase(args.begin());
  }
  if (args.empty()) return Usage();
  const std::string op = args[0];
  if (mode_name.empty()) mode_name = op == "dedupe" ? "r" : "w";
  int dest_flags;
  if (mode_name == "r")
    dest_flags = O_RDONLY;
  else if (mode_name == "w")
    dest_flags = O_WRONLY;
  else if (mode_name == "rw")
    dest_flags = O_RDWR;
  else if (mode_name == "a")
    dest_flags = O_WRONLY | O_APPEND;
  else
    return Usage();

  if (op == "clone" && args.size() == 3) {
    int dest = OpenOrDie(args[1], dest_flags);
    int src = OpenOrDie(args[2], O_RDONLY);
    errno = kUntouched;
    int rc = ioctl(dest, FICLONE, src);
    return Report(rc, errno);
  }
  if (op == "clone-range" && args.size() == 6) {
    file_clone_range a{};
    uint64_t so, len, doff;
    if (!Number(args[3].c_str(), &so) || !Number(args[4].c_str(), &len) ||
        !Number(args[5].c_str(), &doff))
      return Usage();
    int dest = OpenOrDie(args[1], dest_flags);
    a.src_fd = OpenOrDie(args[2], O_RDONLY);
    a.src_offset = so;
    a.src_length = len;
    a.dest_offset = doff;
    errno = kUntouched;
    int rc = ioctl(dest, FICLONERANGE, &a);
    return Report(rc, errno);
  }
  if (op == "dedupe" && args.size() >= 6 && (args.size() - 4) % 2 == 0) {
    uint64_t so, len;
    if (!Number(args[2].c_str(), &so) || !Number(args[3].c_str(), &len)) return Usage();
    const size_t n = (args.size() - 4) / 2;
    std::vector<char> mem(sizeof(file_dedupe_range) + n * sizeof(file_dedupe_range_info));
    auto* r = reinterpret_cast<file_dedupe_range*>(mem.data());
    r->src_offset = so;
    r->src_length = len;
    r->dest_count = static_cast<uint16_t>(n);
    for (size_t i = 0; i < n; ++i) {
      uint64_t doff;
      if (!Number(args[5 + 2 * i].c_str(), &doff)) return Usage();
      r->info[i].dest_fd = OpenOrDie(args[4 + 2 * i], dest_flags);
      r->info[i].dest_offset = doff;
      r->info[i].status = 77;  // must be overwritten
      r->info[i].bytes_deduped = 77;
    }
    int src = OpenOrDie(args[1], O_RDONLY);
    errno = kUntouched;
    int rc = ioctl(src, FIDEDUPERANGE, r);
    int err = errno;
    std::string rest;
    for (size_t i = 0; rc == 0 && i < n; ++i) {
      const int s = r->info[i].status;
      std::string status = std::to_string(s);
      if (s < 0) status = ErrnoName(-s);
      if (s == FILE_DEDUPE_RANGE_SAME) status = "SAME";
      if (s == FILE_DEDUPE_RANGE_DIFFERS) status = "DIFFERS";
      rest += " [" + status + " " + std::to_string(r->info[i].bytes_deduped) + "]";
    }
    return Report(rc, err, rest);
  }
  if (op == "fallocate" && args.size() == 5) {
    uint64_t mode, off, len;
    if (!Number(args[2].c_str(), &mode) || !Number(args[3].c_str(), &off) ||
        !Number(args[4].c_str(), &len))
      return Usage();
    int fd = OpenOrDie(args[1], dest_flags);
    errno = kUntouched;
    int rc =
        fallocate(fd, static_cast<int>(mode), static_cast<off_t>(off), static_cast<off_t>(len));
    return Report(rc, errno);
  }
  return Usage();
}
