// daxref-bench-populate-files SOURCE FILES EXTENTS: fills an unmounted
// daxref filesystem with FILES files of EXTENTS/FILES separate extents each
// (one 4 KiB block written at every other file block), 1,000 files to a
// directory, through the metadata library, so that bench/fsck.sh has a
// store of the size issue 9 asks about (a million extents, a hundred
// thousand files) without a million FUSE round trips.
//
// fsck reads metadata only, so the file bytes are not stored: the data
// plane drops them, and the pool stays a sparse file of the right size.
#include <sys/stat.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>

#include "meta/superblock.h"
#include "meta/volume.h"

namespace {

// Takes bytes and keeps none (reads give zeros).
class DropBytes : public daxref::DataPlane {
 public:
  daxref::Status Write(uint64_t, const void*, size_t) override { return daxref::Status::Ok(); }
  daxref::Status Zero(uint64_t, size_t) override { return daxref::Status::Ok(); }
  daxref::Status Load(uint64_t, void* dst, size_t len) override {
    memset(dst, 0, len);
    return daxref::Status::Ok();
  }
  daxref::Status Copy(uint64_t, uint64_t, size_t) override { return daxref::Status::Ok(); }
  daxref::Status Persist(uint64_t, size_t) override { return daxref::Status::Ok(); }
};

int Fail(const std::string& what, const daxref::Status& s) {
  fprintf(stderr, "daxref-bench-populate-files: %s: %s\n", what.c_str(), s.message().c_str());
  return 1;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 4) {
    fprintf(stderr, "usage: %s SOURCE FILES EXTENTS\n", argv[0]);
    return 2;
  }
  const std::string source = argv[1];
  const uint64_t files = strtoull(argv[2], nullptr, 10);
  const uint64_t extents = strtoull(argv[3], nullptr, 10);
  if (files == 0 || extents < files) {
    fprintf(stderr, "%s: need FILES > 0 and EXTENTS >= FILES\n", argv[0]);
    return 2;
  }
  daxref::Superblock sb;
  bool backup = false;
  daxref::Status s = daxref::ReadPoolSuperblock(daxref::PoolPath(source), &sb, &backup);
  if (!s.ok()) return Fail("pool", s);
  DropBytes data;
  daxref::Volume::Options opts;
  opts.pool_path = daxref::PoolPath(source);
  auto vol = daxref::Volume::Open(daxref::MetaPath(source), sb, &data, opts);
  if (!vol.ok()) return Fail("open", vol.status());
  const daxref::Caller root{0, 0};
  char block[4096];
  memset(block, 0xab, sizeof(block));
  const auto t0 = std::chrono::steady_clock::now();
  uint64_t dir = 0, made = 0;
  for (uint64_t i = 0; i < files; ++i) {
    if (i % 1000 == 0) {
      daxref::InodeRecord d;
      s = (*vol)->MakeNode(daxref::kRootIno, "d" + std::to_string(i / 1000), S_IFDIR | 0755, 0,
                           root, "", &d);
      if (!s.ok()) return Fail("mkdir", s);
      dir = d.ino;
    }
    daxref::InodeRecord f;
    s = (*vol)->MakeNode(dir, "f" + std::to_string(i), S_IFREG | 0644, 0, root, "", &f);
    if (!s.ok()) return Fail("create", s);
    // This file's share of the extents, the remainder spread over the first.
    const uint64_t n = extents / files + (i < extents % files ? 1 : 0);
    for (uint64_t k = 0; k < n; ++k) {
      daxref::InodeRecord out;
      s = (*vol)->Write(f.ino, k * 2 * 4096, block, sizeof(block), root, &out);
      if (!s.ok()) return Fail("write", s);
      ++made;
    }
  }
  const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  printf("populated %llu files with %llu extents in %.1f s\n",
         static_cast<unsigned long long>(files), static_cast<unsigned long long>(made), secs);
  return 0;
}
