// The daemon's log (issue 14 item 4, daxref(8) LOGGING): -o log_file=PATH
// gets the lines the foreground log (standard error) shows, in the same
// form, rotated at log_file_size keeping log_files old files; an unusable
// log_file is a one-line error before anything is mounted.
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <fstream>
#include <regex>
#include <string>
#include <vector>

#include "test/cli_expect.h"
#include "test/fixture.h"
#include "test/fs_helpers.h"

using namespace daxref;
using namespace daxref::test;

namespace {

constexpr uid_t kAlice = 1001;
constexpr gid_t kAliceGroup = 1001;

// The lines of a file (empty if it does not exist).
std::vector<std::string> FileLines(const std::string& path) {
  std::ifstream in(path);
  std::vector<std::string> lines;
  std::string l;
  while (std::getline(in, l)) lines.push_back(l);
  return lines;
}

bool Exists(const std::string& path) {
  return access(path.c_str(), F_OK) == 0;
}

// A log line as fs/logging.h describes it.
const std::regex kLogLine(
    R"(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{3} daxref\[\d+\]: (trace|debug|info|warning|error|critical): .+)");

int CountContaining(const std::vector<std::string>& lines, const std::string& needle) {
  int n = 0;
  for (const auto& l : lines) n += l.find(needle) != std::string::npos;
  return n;
}

}  // namespace

TEST_CASE("log_file: the daemon's lines go there, the same as on standard error", "[log]") {
  TempDir logs;
  const std::string log = logs.path() + "/daxref.log";
  const std::string err = logs.path() + "/stderr";
  MountedFs::Options o;
  o.mount_options = {"log_level=info", "log_file=" + log};
  o.log_path = err;
  MountedFs fs(o);
  std::vector<std::string> lines = FileLines(log);
  INFO(ReadFile(log));
  CHECK(CountContaining(lines, "mounted " + fs.source() + " on " + fs.mnt()) == 1);
  // The daemon's own files are its owner's alone (umask 077).
  CHECK((StatOf(log).st_mode & 0777) == 0600);
  fs.Unmount();

  lines = FileLines(log);
  CHECK(CountContaining(lines, "unmounted " + fs.mnt()) == 1);
  CHECK(CountContaining(lines, "daemon for " + fs.source() + " exiting") == 1);
  for (const auto& l : lines) {
    INFO(l);
    CHECK(std::regex_match(l, kLogLine));
  }
  // The foreground log is the same lines, byte for byte.
  const std::vector<std::string> foreground = FileLines(err);
  CHECK(foreground == lines);

  // A second mount appends.
  fs.Mount();
  fs.Unmount();
  CHECK(CountContaining(FileLines(log), "mounted " + fs.source() + " on ") == 2);

  // A foreground start-up failure is the command's one line on standard
  // error, and an error line in the file.
  const std::string missing = logs.path() + "/no-such-source";
  ExpectOneLineFailure(Run({DaemonBin(), "-f", "-o", "log_file=" + log, missing, fs.mnt()}),
                       "daxref", "SOURCE " + missing + ": No such file or directory");
  lines = FileLines(log);
  REQUIRE_FALSE(lines.empty());
  CHECK(std::regex_match(lines.back(), kLogLine));
  CHECK(lines.back().find(": error: SOURCE " + missing + ": No such file or directory") !=
        std::string::npos);
}

TEST_CASE("log_file: a daemon in the background logs there too", "[log]") {
  TempDir logs;
  const std::string log = logs.path() + "/bg.log";
  MountedFs fs;
  fs.Unmount();
  RunResult r = Run({DaemonBin(), "-o", "log_level=info,log_file=" + log, fs.source(), fs.mnt()});
  INFO(r.err);
  REQUIRE(r.status == 0);
  REQUIRE(IsMounted(fs.mnt()));
  CHECK(CountContaining(FileLines(log), "mounted " + fs.source() + " on " + fs.mnt()) == 1);
  // daxref-info says where the logs are (issue 14: "where are the logs").
  const std::string where = "syslog; file " + log + " (rotated at 10485760 bytes, 5 kept)";
  RunResult info = Run({DAXREF_TEST_INFO, "--json", fs.mnt()});
  INFO(info.out << info.err);
  CHECK(info.status == 0);
  CHECK(info.out.find("\"log\": \"" + where + "\",") != std::string::npos);
  info = Run({DAXREF_TEST_INFO, fs.mnt()});
  CHECK(info.out.find("\nlogs     = " + where + "\n") != std::string::npos);
  r = UnmountMountPoint(fs.mnt());
  REQUIRE(r.status == 0);
  // The daemon logs its exit after the unmount; wait for it.
  for (int i = 0; i < 600 && CountContaining(FileLines(log), "exiting") == 0; ++i) usleep(50000);
  const auto current = FileLines(log);
  REQUIRE_FALSE(current.empty());
  CHECK(current.back().find("daemon for " + fs.source() + " exiting") != std::string::npos);
}

TEST_CASE("log_file: rotated at log_file_size, log_files old files kept", "[log]") {
  TempDir logs;
  const std::string log = logs.path() + "/daxref.log";
  MountedFs::Options o;
  o.mount_options = {"log_level=info", "log_file=" + log, "log_file_size=1K", "log_files=2"};
  o.log_path = logs.path() + "/stderr";
  MountedFs fs(o);
  // Each mount and unmount logs three lines of some 150 bytes.
  // The old files are numbered before the extension (spdlog's naming).
  const std::string log1 = logs.path() + "/daxref.1.log", log2 = logs.path() + "/daxref.2.log";
  int mounts = 1;
  for (; mounts < 20 && !Exists(log2); ++mounts) fs.Remount();
  // Some 2.5 KiB more: more than a file holds, so the oldest lines go.
  for (int i = 0; i < 5; ++i, ++mounts) fs.Remount();
  fs.Unmount();
  REQUIRE(Exists(log1));
  REQUIRE(Exists(log2));
  CHECK_FALSE(Exists(logs.path() + "/daxref.3.log"));
  int mounted_lines = 0;
  for (const std::string& f : {log, log1, log2}) {
    INFO(f);
    CHECK(StatOf(f).st_size <= 1024);
    const auto lines = FileLines(f);
    CHECK_FALSE(lines.empty());
    for (const auto& l : lines) CHECK(std::regex_match(l, kLogLine));
    mounted_lines += CountContaining(lines, "mounted " + fs.source() + " on ");
  }
  // The oldest lines went; the newest are in PATH.
  CHECK(mounted_lines < mounts);
  const auto current = FileLines(log);
  REQUIRE_FALSE(current.empty());
  CHECK(current.back().find("daemon for " + fs.source() + " exiting") != std::string::npos);
}

TEST_CASE("log_file: an unusable path is one line and no mount", "[log]") {
  MountedFs fs;
  fs.Unmount();
  TempDir logs;
  const std::string src = fs.source(), mnt = fs.mnt();
  SECTION("its directory does not exist") {
    const std::string missing = logs.path() + "/nodir/daxref.log";
    ExpectOneLineFailure(
        Run({DaemonBin(), "-o", "log_file=" + missing, src, mnt}), "daxref",
        "log_file " + missing + ": directory " + logs.path() + "/nodir: No such file or directory");
    // spdlog would have made the directory: daxref does not.
    CHECK_FALSE(Exists(logs.path() + "/nodir"));
    // The same in the foreground.
    ExpectOneLineFailure(Run({DaemonBin(), "-f", "-o", "log_file=" + missing, src, mnt}), "daxref",
                         "No such file or directory");
  }
  SECTION("it is a directory") {
    ExpectOneLineFailure(Run({DaemonBin(), "-o", "log_file=" + logs.path(), src, mnt}), "daxref",
                         "log_file " + logs.path() + ": Is a directory");
  }
  SECTION("the daemon's user may not write there") {
    REQUIRE(chmod(logs.path().c_str(), 0755) == 0);
    const std::string log = logs.path() + "/daxref.log";
    RunResult r =
        RunAsWithEnv(kAlice, kAliceGroup, {DaemonBin(), "-o", "log_file=" + log, src, mnt},
                     {"PATH=/usr/bin:/bin"});
    ExpectOneLineFailure(r, "daxref", "log_file " + log + ": Permission denied");
    CHECK_FALSE(Exists(log));
  }
  SECTION("bad sizes and counts are usage errors") {
    const std::string log = "log_file=" + logs.path() + "/daxref.log";
    ExpectUsageError(Run({DaemonBin(), "-o", log + ",log_file_size=12X", src, mnt}), "daxref",
                     "bad log_file_size '12X'");
    ExpectUsageError(Run({DaemonBin(), "-o", log + ",log_file_size=100", src, mnt}), "daxref",
                     "bad log_file_size '100'");
    ExpectUsageError(Run({DaemonBin(), "-o", log + ",log_files=0", src, mnt}), "daxref",
                     "bad log_files '0'");
    ExpectUsageError(Run({DaemonBin(), "-o", "log_files=3", src, mnt}), "daxref", "need log_file=");
    ExpectUsageError(Run({DaemonBin(), "-o", "log_file=", src, mnt}), "daxref",
                     "log_file= needs a path");
  }
  CHECK_FALSE(IsMounted(mnt));
  // SOURCE was not touched: it still mounts.
  fs.Mount();
}
