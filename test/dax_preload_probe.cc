// dax_preload_probe: an ordinary program (it knows nothing of daxref) that
// maps a file the way unmodified programs do, for fs_dax_client_test.cc to
// run with and without LD_PRELOAD=libdaxref-dax-preload.so.0.
//
//   dax_preload_probe FILE LENGTH POOL [partial]
//
// Opens FILE O_RDWR, mmaps LENGTH bytes at offset 0 (PROT_READ|PROT_WRITE,
// MAP_SHARED), and prints one line per step on stdout:
//
//   direct=D      D is 1 when /proc/self/maps shows the mapping's first
//                 page backed by POOL (the pool file: a direct mapping),
//                 0 when by FILE (the ordinary mapping)
//   stored        after filling the mapping with 'P' and msync
// then waits for a line on stdin (the test revokes meanwhile), and prints
//   direct=D      again
//   first=C mid=C the bytes at 0 and LENGTH/2 seen through the mapping
//   stored        after writing 'Q' at LENGTH/2 through it and msync
// then munmaps, closes and exits 0 (1 on any failure, with a message on
// stderr). With `partial`, after the first "stored" it munmaps the second
// half, prints direct=D for the first half, stores 'R' at 0 through it,
// msyncs, prints "stored", and munmaps the rest; no stdin.
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <iostream>
#include <sstream>
#include <string>

namespace {

// 1 if the mapping holding addr is of the file (dev, ino) of `pool`, 0 if
// of the file `file`, -1 otherwise.
int BackedByPool(const void* addr, const struct stat& pool, const struct stat& file) {
  std::ifstream maps("/proc/self/maps");
  std::string line;
  const auto a = reinterpret_cast<uintptr_t>(addr);
  while (std::getline(maps, line)) {
    std::istringstream in(line);
    std::string range, perms, off, dev;
    unsigned long ino = 0;
    in >> range >> perms >> off >> dev >> ino;
    const uintptr_t lo = std::stoull(range.substr(0, range.find('-')), nullptr, 16);
    const uintptr_t hi = std::stoull(range.substr(range.find('-') + 1), nullptr, 16);
    if (a < lo || a >= hi) continue;
    const unsigned maj = std::stoul(dev.substr(0, dev.find(':')), nullptr, 16);
    const unsigned min = std::stoul(dev.substr(dev.find(':') + 1), nullptr, 16);
    const dev_t d = makedev(maj, min);
    if (d == pool.st_dev && ino == pool.st_ino) return 1;
    if (d == file.st_dev && ino == file.st_ino) return 0;
    return -1;
  }
  return -1;
}

int Fail(const char* what) {
  std::fprintf(stderr, "dax_preload_probe: %s: %s\n", what, std::strerror(errno));
  return 1;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 4 && !(argc == 5 && std::strcmp(argv[4], "partial") == 0)) {
    std::fprintf(stderr, "usage: dax_preload_probe FILE LENGTH POOL [partial]\n");
    return 2;
  }
  const size_t len = std::strtoull(argv[2], nullptr, 10);
  struct stat pool, file;
  if (stat(argv[3], &pool) != 0) return Fail("stat POOL");
  int fd = open(argv[1], O_RDWR);
  if (fd < 0 || fstat(fd, &file) != 0) return Fail("open FILE");
  auto* p = static_cast<char*>(mmap(nullptr, len, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0));
  if (p == MAP_FAILED) return Fail("mmap");
  std::printf("direct=%d\n", BackedByPool(p, pool, file));
  std::memset(p, 'P', len);
  if (msync(p, len, MS_SYNC) != 0) return Fail("msync");
  std::printf("stored\n");
  std::fflush(stdout);

  if (argc == 5) {
    if (munmap(p + len / 2, len / 2) != 0) return Fail("munmap");
    std::printf("direct=%d\n", BackedByPool(p, pool, file));
    p[0] = 'R';
    if (msync(p, len / 2, MS_SYNC) != 0) return Fail("msync");
    std::printf("stored\n");
    if (munmap(p, len / 2) != 0) return Fail("munmap");
    return 0;
  }

  std::string go;
  std::getline(std::cin, go);
  std::printf("direct=%d\n", BackedByPool(p, pool, file));
  std::printf("first=%c mid=%c\n", p[0] != 0 ? p[0] : '0', p[len / 2] != 0 ? p[len / 2] : '0');
  p[len / 2] = 'Q';
  if (msync(p, len, MS_SYNC) != 0) return Fail("msync");
  std::printf("stored\n");
  std::fflush(stdout);
  if (munmap(p, len) != 0) return Fail("munmap");
  close(fd);
  return 0;
}
