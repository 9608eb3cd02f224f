// meson install and ninja uninstall (issue 14 item 5, docs/packaging.md):
// an install into a DESTDIR puts every documented file in place, with the
// versioned preload library and its links, and `ninja uninstall` with the
// same DESTDIR leaves no file behind.
#include <sys/stat.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <filesystem>
#include <string>
#include <vector>

#include "test/fixture.h"

using namespace daxref::test;
namespace stdfs = std::filesystem;

namespace {

const std::string kBuild = DAXREF_TEST_BUILD_ROOT;

// Every file and link under dir (not the directories).
std::vector<std::string> FilesUnder(const std::string& dir) {
  std::vector<std::string> files;
  for (const auto& e : stdfs::recursive_directory_iterator(dir))
    if (!e.is_directory() || e.is_symlink()) files.push_back(e.path());
  return files;
}

// Keeps the build's install log (what a later `ninja uninstall` removes)
// as it was before the test installed into its DESTDIR.
struct KeepInstallLog {
  const std::string log = kBuild + "/meson-logs/install-log.txt";
  const std::string saved = log + ".install-test";
  const bool had = access(log.c_str(), F_OK) == 0;
  KeepInstallLog() {
    if (had) stdfs::copy_file(log, saved, stdfs::copy_options::overwrite_existing);
  }
  ~KeepInstallLog() {
    std::error_code ec;
    if (had)
      stdfs::rename(saved, log, ec);
    else
      stdfs::remove(log, ec);
  }
};

}  // namespace

TEST_CASE("meson install into a DESTDIR, then ninja uninstall leaves nothing", "[install]") {
  TempDir dest;
  KeepInstallLog keep;
  const std::vector<std::string> env = {"PATH=/usr/local/bin:/usr/bin:/bin",
                                        "DESTDIR=" + dest.path()};
  RunResult r =
      RunWithEnv({"/usr/bin/meson", "install", "-C", kBuild, "--no-rebuild", "--quiet"}, env);
  INFO(r.out << r.err);
  REQUIRE(r.status == 0);

  // What README "Installing" and docs/packaging.md list, under the prefix
  // the build was configured with.
  const std::vector<std::string> files = FilesUnder(dest.path());
  auto installed = [&](const std::string& tail) {
    for (const auto& f : files)
      if (f.size() >= tail.size() && f.compare(f.size() - tail.size(), tail.size(), tail) == 0)
        return true;
    return false;
  };
  for (const char* tail : {"/bin/daxref",
                           "/bin/daxref-info",
                           "/bin/daxref-map",
                           "/bin/daxref-reflink",
                           "/sbin/mkfs.daxref",
                           "/sbin/fsck.daxref",
                           "/sbin/fsck.fuse.daxref",
                           "/sbin/daxref-poison",
                           "/sbin/daxref-scrub",
                           "/include/daxref/ioctl.h",
                           "/include/daxref/dax.h",
                           "/libdaxref-reflink.so",
                           "/libdaxref-reflink.so.0",
                           "/libdaxref-reflink.so.0.1.0",
                           "/libdaxref-dax.so",
                           "/libdaxref-dax.so.0",
                           "/libdaxref-dax.so.0.1.0",
                           "/libdaxref-dax-preload.so",
                           "/libdaxref-dax-preload.so.0",
                           "/libdaxref-dax-preload.so.0.1.0",
                           "/man3/daxref_dax.3",
                           "/man8/daxref.8",
                           "/man8/fsck.fuse.daxref.8",
                           "/man1/daxref-reflink.1",
                           "/man7/libdaxref-reflink.7",
                           "/completions/daxref",
                           "/completions/mkfs.daxref",
                           "/completions/daxref-poison"}) {
    INFO(tail);
    CHECK(installed(tail));
  }
  // Each library's unversioned name is a link to the versioned file, whose
  // soname is .so.0.
  for (const std::string lib : {"libdaxref-reflink", "libdaxref-dax", "libdaxref-dax-preload"}) {
    const std::string tail = "/" + lib + ".so";
    for (const auto& f : files) {
      if (f.size() > tail.size() && f.compare(f.size() - tail.size(), tail.size(), tail) == 0) {
        INFO(f);
        CHECK(stdfs::is_symlink(f));
        CHECK(stdfs::canonical(f).filename() == lib + ".so.0.1.0");
        RunResult soname = Run({"/usr/bin/objdump", "-p", f});
        CHECK(soname.out.find("SONAME               " + lib + ".so.0\n") != std::string::npos);
      }
    }
  }

  r = RunWithEnv({"/usr/bin/ninja", "-C", kBuild, "uninstall"}, env);
  INFO(r.out << r.err);
  REQUIRE(r.status == 0);
  const std::vector<std::string> left = FilesUnder(dest.path());
  std::string listing;
  for (const auto& f : left) listing += f + "\n";
  INFO("left behind:\n" << listing);
  CHECK(left.empty());
}
