// daxref-bench-namespace SOURCE N: the metadata cost of the namespace path,
// without FUSE. On an unmounted daxref filesystem (made by mkfs.daxref),
// through the metadata library: creates N empty files in a new directory,
// looks each up, looks up N names that do not exist, unlinks each file.
// Prints one line per phase: "<phase> <ops> <cpu-seconds> <us-per-op>",
// where the time is this thread's CPU time (CLOCK_THREAD_CPUTIME_ID), so
// that other load on the machine changes the figure little. The FUSE side
// of the same operations is measured by daxref-bench-fileops.
#include <sys/stat.h>
#include <time.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "meta/superblock.h"
#include "meta/volume.h"

namespace {

class NoBytes : public daxref::DataPlane {
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

double CpuNow() {
  struct timespec ts;
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return ts.tv_sec + ts.tv_nsec * 1e-9;
}

void Report(const char* phase, uint64_t n, double secs) {
  printf("%s %llu %.6f %.2f\n", phase, static_cast<unsigned long long>(n), secs, secs * 1e6 / n);
  fflush(stdout);
}

int Fail(const std::string& what, const daxref::Status& s) {
  fprintf(stderr, "daxref-bench-namespace: %s: %s\n", what.c_str(), s.message().c_str());
  return 1;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 3) {
    fprintf(stderr, "usage: %s SOURCE N\n", argv[0]);
    return 2;
  }
  const std::string source = argv[1];
  const uint64_t n = strtoull(argv[2], nullptr, 10);
  if (n == 0) {
    fprintf(stderr, "%s: N must be a positive number\n", argv[0]);
    return 2;
  }
  daxref::Superblock sb;
  bool backup = false;
  daxref::Status s = daxref::ReadPoolSuperblock(daxref::PoolPath(source), &sb, &backup);
  if (!s.ok()) return Fail("pool", s);
  NoBytes data;
  daxref::Volume::Options opts;
  opts.pool_path = daxref::PoolPath(source);
  auto vol = daxref::Volume::Open(daxref::MetaPath(source), sb, &data, opts);
  if (!vol.ok()) return Fail("open", vol.status());
  const daxref::Caller root{0, 0};
  daxref::InodeRecord d;
  s = (*vol)->MakeNode(daxref::kRootIno, "bench", S_IFDIR | 0755, 0, root, "", &d);
  if (!s.ok()) return Fail("mkdir", s);
  std::vector<std::string> names, missing;
  char buf[32];
  for (uint64_t i = 0; i < n; ++i) {
    snprintf(buf, sizeof buf, "f%08llu", static_cast<unsigned long long>(i));
    names.emplace_back(buf);
    snprintf(buf, sizeof buf, "m%08llu", static_cast<unsigned long long>(i));
    missing.emplace_back(buf);
  }
  double t = CpuNow();
  for (const auto& name : names) {
    daxref::InodeRecord f;
    s = (*vol)->MakeNode(d.ino, name, S_IFREG | 0644, 0, root, "", &f);
    if (!s.ok()) return Fail("create " + name, s);
  }
  Report("create", n, CpuNow() - t);
  t = CpuNow();
  for (const auto& name : names) {
    daxref::InodeRecord f;
    s = (*vol)->Lookup(d.ino, name, &f);
    if (!s.ok()) return Fail("lookup " + name, s);
  }
  Report("lookup", n, CpuNow() - t);
  t = CpuNow();
  for (const auto& name : missing) {
    daxref::InodeRecord f;
    s = (*vol)->Lookup(d.ino, name, &f);
    if (s.err() != ENOENT) return Fail("lookup of missing " + name, s);
  }
  Report("miss", n, CpuNow() - t);
  t = CpuNow();
  for (const auto& name : names) {
    daxref::InodeRecord victim;
    // As the daemon does for a file nobody has open: deleted at once.
    s = (*vol)->Unlink(
        d.ino, name, [](uint64_t) { return true; }, &victim);
    if (!s.ok()) return Fail("unlink " + name, s);
  }
  Report("unlink", n, CpuNow() - t);
  return 0;
}
