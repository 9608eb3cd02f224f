// daxref-bench-fileops: metadata micro-benchmark.
//
//   daxref-bench-fileops DIR N
//
// In DIR (which must exist and should be empty) creates N empty files
// (open(O_CREAT|O_EXCL|O_WRONLY) + close), then stat()s each of them, then
// unlink()s each of them. Every phase is timed with CLOCK_MONOTONIC (via
// std::chrono::steady_clock) and reported on stdout as one line:
//
//   <phase> <ops> <seconds>
//
// e.g. "create 20000 1.234567". Errors go to stderr and give exit status 1
// (2 for bad usage). Files left behind by a failed phase are removed on a
// best-effort basis.

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

namespace {

using Clock = std::chrono::steady_clock;

void usage(const char* argv0) {
  std::fprintf(stderr, "usage: %s DIR N\n", argv0);
  std::exit(2);
}

void report(const char* phase, size_t ops, Clock::time_point start, Clock::time_point end) {
  const double secs = std::chrono::duration<double>(end - start).count();
  std::printf("%s %zu %.6f\n", phase, ops, secs);
  std::fflush(stdout);
}

void cleanup(const std::vector<std::string>& paths) {
  for (const auto& p : paths) ::unlink(p.c_str());
}

[[noreturn]] void fail(const char* what, const std::string& path, int err,
                       const std::vector<std::string>& paths) {
  std::fprintf(stderr, "daxref-bench-fileops: %s %s: %s\n", what, path.c_str(), std::strerror(err));
  cleanup(paths);
  std::exit(1);
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 3) usage(argv[0]);
  const std::string dir = argv[1];
  char* end = nullptr;
  errno = 0;
  const unsigned long long n = std::strtoull(argv[2], &end, 10);
  if (errno != 0 || end == argv[2] || *end != '\0' || n == 0 || argv[2][0] == '-') usage(argv[0]);

  struct stat st {};
  if (::stat(dir.c_str(), &st) != 0) {
    std::fprintf(stderr, "daxref-bench-fileops: %s: %s\n", dir.c_str(), std::strerror(errno));
    return 1;
  }
  if (!S_ISDIR(st.st_mode)) {
    std::fprintf(stderr, "daxref-bench-fileops: %s: not a directory\n", dir.c_str());
    return 1;
  }

  // Build all names up front so the timed loops only do the system calls.
  std::vector<std::string> paths;
  paths.reserve(n);
  char name[32];
  for (unsigned long long i = 0; i < n; ++i) {
    std::snprintf(name, sizeof name, "/f%08llu", i);
    paths.push_back(dir + name);
  }

  std::vector<std::string> created;  // for cleanup if create fails half-way
  created.reserve(n);

  auto t0 = Clock::now();
  for (const auto& p : paths) {
    const int fd = ::open(p.c_str(), O_CREAT | O_EXCL | O_WRONLY | O_CLOEXEC, 0644);
    if (fd < 0) fail("create", p, errno, created);
    created.push_back(p);
    if (::close(fd) != 0) fail("close", p, errno, created);
  }
  auto t1 = Clock::now();
  report("create", paths.size(), t0, t1);

  t0 = Clock::now();
  for (const auto& p : paths) {
    if (::stat(p.c_str(), &st) != 0) fail("stat", p, errno, paths);
    if (!S_ISREG(st.st_mode) || st.st_size != 0) fail("stat (unexpected type/size)", p, EIO, paths);
  }
  t1 = Clock::now();
  report("stat", paths.size(), t0, t1);

  t0 = Clock::now();
  for (size_t i = 0; i < paths.size(); ++i) {
    if (::unlink(paths[i].c_str()) != 0) {
      const int err = errno;
      fail("unlink", paths[i], err, std::vector<std::string>(paths.begin() + i + 1, paths.end()));
    }
  }
  t1 = Clock::now();
  report("unlink", paths.size(), t0, t1);
  return 0;
}
