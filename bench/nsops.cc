// daxref-bench-nsops: one namespace phase at a time, so that a script can
// remount between phases (bench/run.sh's "stat, cold cache").
//
//   daxref-bench-nsops create DIR N   open(O_CREAT|O_EXCL|O_WRONLY)+close of
//                                     DIR/f00000000 .. DIR/f<N-1>
//   daxref-bench-nsops stat DIR N     stat() of each of them
//   daxref-bench-nsops unlink DIR N   unlink() of each of them
//
// The names are the ones bench/fileops.cc uses. Each run prints one line,
//   <phase> <ops> <seconds>
// timed with CLOCK_MONOTONIC over the system calls only (the names are built
// beforehand). Errors: one line on stderr naming the file, exit status 1;
// bad usage: exit status 2.

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

[[noreturn]] void Usage() {
  std::fprintf(stderr, "usage: daxref-bench-nsops create|stat|unlink DIR N\n");
  std::exit(2);
}

}  // namespace

int main(int argc, char** argv) {
  if (argc == 2 && (std::strcmp(argv[1], "--help") == 0 || std::strcmp(argv[1], "-h") == 0)) {
    std::printf("usage: daxref-bench-nsops create|stat|unlink DIR N\n");
    return 0;
  }
  if (argc != 4) Usage();
  const std::string phase = argv[1];
  if (phase != "create" && phase != "stat" && phase != "unlink") Usage();
  const std::string dir = argv[2];
  char* end = nullptr;
  errno = 0;
  const unsigned long long n = std::strtoull(argv[3], &end, 10);
  if (errno != 0 || end == argv[3] || *end != '\0' || n == 0 || argv[3][0] == '-') Usage();

  std::vector<std::string> paths;
  paths.reserve(n);
  char name[32];
  for (unsigned long long i = 0; i < n; ++i) {
    std::snprintf(name, sizeof name, "/f%08llu", i);
    paths.push_back(dir + name);
  }

  const auto t0 = std::chrono::steady_clock::now();
  for (const auto& p : paths) {
    int rc = 0;
    if (phase == "create") {
      const int fd = ::open(p.c_str(), O_CREAT | O_EXCL | O_WRONLY, 0644);
      rc = fd < 0 ? -1 : ::close(fd);
    } else if (phase == "stat") {
      struct stat st {};
      rc = ::stat(p.c_str(), &st);
    } else {
      rc = ::unlink(p.c_str());
    }
    if (rc != 0) {
      std::fprintf(stderr, "daxref-bench-nsops: %s %s: %s\n", phase.c_str(), p.c_str(),
                   std::strerror(errno));
      return 1;
    }
  }
  const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  std::printf("%s %llu %.6f\n", phase.c_str(), n, secs);
  return 0;
}
