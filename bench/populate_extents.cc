// daxref-bench-populate SOURCE COUNT: fills an unmounted daxref filesystem
// with one file of COUNT separate extents (a 4 KiB block written at every
// other block), through the metadata library, so that the mount-time
// benchmark has a store the size the foundation issue asks about without
// a million FUSE round trips. File bytes go to the real pool mapping.
#include <fcntl.h>
#include <sys/mman.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>

#include "meta/superblock.h"
#include "meta/volume.h"

namespace {

// Stores into a plain shared mapping of the pool file.
class MappedPool : public daxref::DataPlane {
 public:
  explicit MappedPool(const std::string& path) {
    fd_ = open(path.c_str(), O_RDWR);
    size_ = lseek(fd_, 0, SEEK_END);
    base_ = static_cast<char*>(mmap(nullptr, size_, PROT_READ | PROT_WRITE, MAP_SHARED, fd_, 0));
  }
  ~MappedPool() override {
    if (base_ != MAP_FAILED) munmap(base_, size_);
    if (fd_ >= 0) close(fd_);
  }
  bool ok() const { return fd_ >= 0 && base_ != MAP_FAILED; }
  daxref::Status Write(uint64_t off, const void* src, size_t len) override {
    memcpy(base_ + off, src, len);
    return daxref::Status::Ok();
  }
  daxref::Status Zero(uint64_t off, size_t len) override {
    memset(base_ + off, 0, len);
    return daxref::Status::Ok();
  }
  daxref::Status Load(uint64_t off, void* dst, size_t len) override {
    memcpy(dst, base_ + off, len);
    return daxref::Status::Ok();
  }
  daxref::Status Copy(uint64_t dst, uint64_t src, size_t len) override {
    memcpy(base_ + dst, base_ + src, len);
    return daxref::Status::Ok();
  }
  daxref::Status Persist(uint64_t, size_t) override { return daxref::Status::Ok(); }

 private:
  int fd_ = -1;
  size_t size_ = 0;
  char* base_ = static_cast<char*>(MAP_FAILED);
};

}  // namespace

int main(int argc, char** argv) {
  if (argc != 3) {
    fprintf(stderr, "usage: %s SOURCE COUNT\n", argv[0]);
    return 2;
  }
  std::string source = argv[1];
  uint64_t count = strtoull(argv[2], nullptr, 10);
  daxref::Superblock sb;
  bool backup = false;
  daxref::Status s = daxref::ReadPoolSuperblock(daxref::PoolPath(source), &sb, &backup);
  if (!s.ok()) {
    fprintf(stderr, "%s\n", s.message().c_str());
    return 1;
  }
  MappedPool pool(daxref::PoolPath(source));
  if (!pool.ok()) {
    perror("map pool");
    return 1;
  }
  auto vol = daxref::Volume::Open(daxref::MetaPath(source), sb, &pool,
                                  {.pool_path = daxref::PoolPath(source)});
  if (!vol.ok()) {
    fprintf(stderr, "%s\n", vol.status().message().c_str());
    return 1;
  }
  daxref::InodeRecord file;
  s = (*vol)->MakeNode(daxref::kRootIno, "extents", S_IFREG | 0644, 0, {0, 0}, "", &file);
  if (!s.ok()) {
    fprintf(stderr, "create: %s\n", s.message().c_str());
    return 1;
  }
  char block[4096];
  memset(block, 0xab, sizeof(block));
  auto t0 = std::chrono::steady_clock::now();
  for (uint64_t i = 0; i < count; ++i) {
    daxref::InodeRecord out;
    s = (*vol)->Write(file.ino, i * 2 * 4096, block, sizeof(block), {0, 0}, &out);
    if (!s.ok()) {
      fprintf(stderr, "write %llu: %s\n", static_cast<unsigned long long>(i), s.message().c_str());
      return 1;
    }
  }
  double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  printf("populated %llu extents in %.1f s\n", static_cast<unsigned long long>(count), secs);
  return 0;
}
