// Progress lines (tools/common/progress.h): mkfs.daxref reserving a pool,
// daxref-info walking an unmounted store and fsck.daxref checking one show
// a line on a terminal stderr that is rewritten in place ('\r'), and write
// not a byte of it when stderr is a pipe. The terminal is a real
// pseudo-terminal (openpty) given to the tool as its stderr.
#include <fcntl.h>
#include <poll.h>
#include <pty.h>
#include <sys/wait.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <cerrno>
#include <string>
#include <vector>

#include "test/fixture.h"
#include "test/fs_helpers.h"

namespace daxref::test {
namespace {

const std::string kInfo = DAXREF_TEST_INFO;
const std::string kMkfs = DAXREF_TEST_MKFS;
const std::string kFsck = DAXREF_TEST_FSCK;

// What a run with stderr on a pseudo-terminal wrote there (stdout goes to
// /dev/null), and its exit status.
struct TtyRun {
  int status = -1;
  std::string err;
};

TtyRun RunOnTty(const std::vector<std::string>& argv) {
  int master = -1, slave = -1;
  REQUIRE(openpty(&master, &slave, nullptr, nullptr, nullptr) == 0);
  const pid_t pid = fork();
  REQUIRE(pid >= 0);
  if (pid == 0) {
    const int null = open("/dev/null", O_RDWR);
    dup2(null, STDIN_FILENO);
    dup2(null, STDOUT_FILENO);
    dup2(slave, STDERR_FILENO);
    close(master);
    std::vector<char*> args;
    for (const std::string& a : argv) args.push_back(const_cast<char*>(a.c_str()));
    args.push_back(nullptr);
    execv(args[0], args.data());
    _exit(127);
  }
  close(slave);
  TtyRun out;
  char buf[4096];
  for (;;) {
    const ssize_t n = read(master, buf, sizeof(buf));
    if (n > 0) {
      out.err.append(buf, static_cast<size_t>(n));
      continue;
    }
    if (n < 0 && errno == EINTR) continue;
    break;  // EIO: the child closed its side (it exited)
  }
  close(master);
  int ws = 0;
  REQUIRE(waitpid(pid, &ws, 0) == pid);
  out.status = WIFEXITED(ws) ? WEXITSTATUS(ws) : 128 + WTERMSIG(ws);
  return out;
}

// A progress line of `tool`: "\rTOOL: PHASE NN%" somewhere, and the line
// erased at the end (the last '\r' comes after it).
void ExpectProgress(const TtyRun& r, const std::string& tool, const std::string& phase) {
  INFO(r.err);
  CHECK(r.status == 0);
  CHECK(r.err.find("\r" + tool + ": " + phase) != std::string::npos);
  CHECK(r.err.find("%") != std::string::npos);
  // The line is erased last, so that nothing after it starts mid-line.
  CHECK(r.err.back() == '\r');
}

TEST_CASE("Progress lines: on a terminal they update in place; into a pipe, nothing",
          "[fs][progress]") {
  TempDir parent("/dev/shm");
  const std::string src = parent.path() + "/fs";

  // mkfs.daxref: the reservation of a 192 MiB pool, in steps of 64 MiB.
  TtyRun t = RunOnTty({kMkfs, "-s", "192M", src});
  ExpectProgress(t, "mkfs.daxref", "reserving 192 MiB");
  RunResult p = Run({kMkfs, "-f", "-s", "192M", src});
  INFO(p.err);
  REQUIRE(p.status == 0);
  CHECK(p.err.find('\r') == std::string::npos);
  CHECK(p.err.find("reserving") == std::string::npos);
  // -q: no progress even on a terminal.
  t = RunOnTty({kMkfs, "-q", "-f", "-s", "192M", src});
  CHECK(t.status == 0);
  CHECK(t.err.find('\r') == std::string::npos);

  // daxref-info on the unmounted SOURCE: the counting walk.
  t = RunOnTty({kInfo, src});
  ExpectProgress(t, "daxref-info", "inodes");
  p = Run({kInfo, src});
  REQUIRE(p.status == 0);
  CHECK(p.err.empty());

  // Mounted: the daemon walks, and sends its progress to daxref-info.
  {
    MountedFs::Options o;
    o.source = src;
    MountedFs fs(o);
    t = RunOnTty({kInfo, fs.mnt()});
    ExpectProgress(t, "daxref-info", "inodes");
    p = Run({kInfo, fs.mnt()});
    REQUIRE(p.status == 0);
    CHECK(p.err.empty());
  }

  // fsck.daxref: its phases, through the same helper.
  t = RunOnTty({kFsck, "-n", src});
  ExpectProgress(t, "fsck.daxref", "");
  p = Run({kFsck, "-n", src});
  REQUIRE(p.status == 0);
  CHECK(p.err.find('\r') == std::string::npos);
}

}  // namespace
}  // namespace daxref::test
