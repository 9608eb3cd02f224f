// The daxref daemon's command line, as typed by a user or by mount.fuse3
// (`daxref SOURCE MOUNTPOINT -o OPTS`). Parsing is separate from acting so
// that every mistake is reported before anything is opened or mounted.
#pragma once

#include <csignal>
#include <cstdint>
#include <string>
#include <vector>

#include "meta/atime_policy.h"
#include "meta/status.h"

namespace daxref {

struct CommandLine {
  std::string source;
  std::string mountpoint;
  bool foreground = false;
  bool debug = false;
  int threads = 4;  // request threads (docs/design.md)
  double attr_timeout = 60.0;
  double entry_timeout = 60.0;
  bool help = false;
  bool version = false;
  std::string log_level = "info";
  // -o log_file=PATH: the log also goes to PATH (absolute once main has
  // resolved it), rotated at log_file_size bytes, keeping log_files old
  // files (daxref.1.log ... daxref.N.log for daxref.log); see fs/logging.h.
  std::string log_file;
  uint64_t log_file_size = 10ull << 20;
  int log_files = 5;
  bool log_file_size_given = false;
  bool log_files_given = false;
  int lock_wait_ms = 30000;
  int poison_signal = SIGBUS;  // 0: none (docs/poison.md)
  // How long a lease holder has to acknowledge a revocation before it is
  // killed (docs/dax.md, "Revocation").
  int dax_revoke_ms = 1000;
  // Set-id bits and device files are honoured only when asked for by name
  // (allow_suid, allow_dev): mount.fuse3 adds `suid,dev` to every mount it
  // starts, so a plain `suid` or `dev` cannot mean that the user asked.
  bool allow_suid = false;
  bool allow_dev = false;
  bool nosuid = false;  // given: wins over allow_suid
  bool nodev = false;
  // `-o ro`: the kernel mount is read-only, and the daemon opens the store
  // and the pool read-only, changing nothing on disk (docs/design.md,
  // "Read-only mounts").
  bool read_only = false;
  // atime, noatime, relatime, strictatime, [no]diratime, [no]lazytime
  // (docs/design.md, "Access times").
  AtimePolicy atime;
  // `-o remount` (with ro or rw): no new daemon; the running one serving
  // SOURCE at MOUNTPOINT switches (fs/remount.h). The other options
  // mount(8) repeats from /proc/mounts are accepted and ignored, and
  // kernel_words (user_id=, group_id=) are accepted only here.
  bool remount = false;
  std::vector<std::string> kernel_words;
  // Options handed to libfuse as one -o list (default_permissions, and
  // nosuid/nodev or suid/dev, included).
  std::vector<std::string> fuse_options;
};

Result<CommandLine> ParseCommandLine(int argc, char** argv);
std::string Usage(const char* prog);

}  // namespace daxref
