// O_DIRECT through a real mount: a descriptor opened with O_DIRECT can be
// mapped, and direct and buffered I/O on the same file through different
// descriptors see each other's data at once, as on a local filesystem
// (issue 11 item 5; docs/design.md, "O_DIRECT").
//
// Direct I/O goes through the kernel's own O_DIRECT path for FUSE
// (fuse_direct_IO), which writes dirty pages back before and drops cached
// pages after each direct request. The daemon used to answer O_DIRECT opens
// with FOPEN_DIRECT_IO, under which mmap fails with ENODEV.
#include <fcntl.h>
#include <sys/mman.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <string>

#include "test/fs_helpers.h"

namespace daxref::test {
namespace {

// A buffer aligned for O_DIRECT, holding `data`.
struct Aligned {
  explicit Aligned(const std::string& data) : size(data.size()) {
    void* p = nullptr;
    REQUIRE(posix_memalign(&p, kBlock, size) == 0);
    mem.reset(static_cast<char*>(p));
    memcpy(mem.get(), data.data(), size);
  }
  std::string str() const { return std::string(mem.get(), size); }
  struct Free {
    void operator()(char* p) const { free(p); }
  };
  std::unique_ptr<char, Free> mem;
  size_t size;
};

// A shared read-only mapping of [0, len) of fd, unmapped on destruction.
struct Mapping {
  Mapping(int fd, size_t len) : len(len) {
    addr = mmap(nullptr, len, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    INFO(strerror(errno));
    REQUIRE(addr != MAP_FAILED);
  }
  ~Mapping() { munmap(addr, len); }
  std::string str(size_t off, size_t n) const {
    return std::string(static_cast<char*>(addr) + off, n);
  }
  void* addr;
  size_t len;
};

TEST_CASE("an O_DIRECT descriptor can be mapped and the mapping shows its writes",
          "[fs][direct_io]") {
  MountedFs fs;
  Fd d(fs.path("f"), O_RDWR | O_CREAT | O_DIRECT);
  std::string a = NonZeroBytes(1, 4 * kBlock);
  Aligned buf(a);
  REQUIRE(pwrite(d.get(), buf.mem.get(), buf.size, 0) == static_cast<ssize_t>(buf.size));
  Mapping m(d.get(), 4 * kBlock);
  REQUIRE_SAME(m.str(0, 4 * kBlock), a);
  // A direct write after the mapping is made shows in it at once.
  std::string b = NonZeroBytes(2, kBlock);
  Aligned bb(b);
  REQUIRE(pwrite(d.get(), bb.mem.get(), kBlock, kBlock) == static_cast<ssize_t>(kBlock));
  REQUIRE_SAME(m.str(kBlock, kBlock), b);
  // And a store through the mapping reaches a direct read (written back first).
  memset(static_cast<char*>(m.addr) + 2 * kBlock, 'm', kBlock);
  Aligned back(std::string(kBlock, '\0'));
  REQUIRE(pread(d.get(), back.mem.get(), kBlock, 2 * kBlock) == static_cast<ssize_t>(kBlock));
  REQUIRE_SAME(back.str(), std::string(kBlock, 'm'));
  // The same for an existing file opened with O_DIRECT (open, not create).
  d.Close();
  Fd again(fs.path("f"), O_RDWR | O_DIRECT);
  Mapping m2(again.get(), 4 * kBlock);
  REQUIRE_SAME(m2.str(0, kBlock), a.substr(0, kBlock));
  REQUIRE_SAME(m2.str(2 * kBlock, kBlock), std::string(kBlock, 'm'));
}

TEST_CASE("a direct write reaches buffered readers and mappings of other descriptors at once",
          "[fs][direct_io]") {
  MountedFs fs;
  const size_t len = 64 * kBlock;
  std::string old_bytes = NonZeroBytes(3, len);
  WriteFile(fs.path("f"), old_bytes);
  Fd buffered(fs.path("f"), O_RDWR);
  Fd direct(fs.path("f"), O_RDWR | O_DIRECT);
  // The buffered side caches every page of the file, by read and by mapping.
  REQUIRE_SAME(PreadAll(buffered.get(), 0, len), old_bytes);
  Mapping m(buffered.get(), len);
  REQUIRE_SAME(m.str(0, len), old_bytes);
  for (int round = 0; round < 20; ++round) {
    const uint64_t off = (round * 7 % 60) * kBlock, n = (1 + round % 4) * kBlock;
    std::string fresh = NonZeroBytes(100 + round, n);
    Aligned buf(fresh);
    REQUIRE(pwrite(direct.get(), buf.mem.get(), n, off) == static_cast<ssize_t>(n));
    INFO("round " << round);
    REQUIRE_SAME(PreadExact(buffered.get(), off, n), fresh);
    REQUIRE_SAME(m.str(off, n), fresh);
    old_bytes.replace(off, n, fresh);
  }
  REQUIRE_SAME(PreadAll(buffered.get(), 0, len), old_bytes);
}

TEST_CASE("an aligned direct read sees buffered and mapped writes of other descriptors",
          "[fs][direct_io]") {
  MountedFs fs;
  const size_t len = 16 * kBlock;
  WriteFile(fs.path("f"), std::string(len, 'a'));
  Fd direct(fs.path("f"), O_RDWR | O_DIRECT);
  Fd buffered(fs.path("f"), O_RDWR);
  Aligned back(std::string(len, '\0'));
  REQUIRE(pread(direct.get(), back.mem.get(), len, 0) == static_cast<ssize_t>(len));
  REQUIRE_SAME(back.str(), std::string(len, 'a'));
  PwriteExact(buffered.get(), std::string(kBlock, 'b'), 3 * kBlock);
  {
    // Dirty pages of a shared mapping, not synced: written back before the read.
    Mapping m(buffered.get(), len);
    memset(static_cast<char*>(m.addr) + 5 * kBlock, 'c', kBlock);
    REQUIRE(pread(direct.get(), back.mem.get(), len, 0) == static_cast<ssize_t>(len));
  }
  std::string want(len, 'a');
  want.replace(3 * kBlock, kBlock, std::string(kBlock, 'b'));
  want.replace(5 * kBlock, kBlock, std::string(kBlock, 'c'));
  REQUIRE_SAME(back.str(), want);
}

// Linux's FUSE client takes direct I/O at any offset, length and buffer
// address (fuse_direct_IO has no alignment rule, unlike XFS's EINVAL), and
// so does daxref; the bytes land where they were asked to.
TEST_CASE("unaligned O_DIRECT I/O works as Linux's FUSE client does it", "[fs][direct_io]") {
  MountedFs fs;
  WriteFile(fs.path("f"), std::string(3 * kBlock, 'a'));
  Fd buffered(fs.path("f"), O_RDWR);
  REQUIRE(PreadAll(buffered.get(), 0, 3 * kBlock) == std::string(3 * kBlock, 'a'));
  Fd direct(fs.path("f"), O_RDWR | O_DIRECT);
  std::string odd = NonZeroBytes(7, 5000);
  REQUIRE(pwrite(direct.get(), odd.data() + 0, odd.size(), 1001) ==
          static_cast<ssize_t>(odd.size()));
  std::string want(3 * kBlock, 'a');
  want.replace(1001, odd.size(), odd);
  REQUIRE_SAME(PreadAll(buffered.get(), 0, 3 * kBlock), want);
  std::string back(777, '\0');
  REQUIRE(pread(direct.get(), back.data(), back.size(), 999) == 777);
  REQUIRE_SAME(back, want.substr(999, 777));
}

}  // namespace
}  // namespace daxref::test
