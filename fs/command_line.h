// The daxref daemon's command line, as typed by a user or by mount.fuse3
// (`daxref SOURCE MOUNTPOINT -o OPTS`). Parsing is separate from acting so
// that every mistake is reported before anything is opened or mounted.
#pragma once

#include <csignal>
#include <string>
#include <vector>

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
  int lock_wait_ms = 30000;
  int poison_signal = SIGBUS;  // 0: none (docs/poison.md)
  // Options handed to libfuse as one -o list (default_permissions included).
  std::vector<std::string> fuse_options;
};

Result<CommandLine> ParseCommandLine(int argc, char** argv);
std::string Usage(const char* prog);

}  // namespace daxref
