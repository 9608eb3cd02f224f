// The daemon's log (daxref(8), LOGGING): standard error in the foreground,
// syslog in the background, and with `-o log_file=PATH` also a file kept
// to a bounded size by rotation. Every destination carries the same lines:
// the file and standard error print them as
//   2026-12-07 22:40:01.123 daxref[4242]: warning: MESSAGE
// and syslog, which adds its own time and "daxref[4242]:", gets
// "warning: MESSAGE".
#pragma once

#include <spdlog/logger.h>

#include <memory>
#include <string>

#include "fs/command_line.h"
#include "meta/status.h"

namespace daxref {

// Installs the default logger for the daemon. An unusable log_file (its
// directory missing, not writable, a directory itself) is an error, with
// the default logger still set (without the file). `file_only` gets a
// logger that writes to the log file alone (null without one): what a
// foreground start-up failure, printed as a one-line message rather than a
// log line on standard error, is recorded with.
Status SetUpLogging(const CommandLine& cl, std::shared_ptr<spdlog::logger>* file_only);

// Where the lines go, in words, for daxref-info: "syslog" or "stderr",
// then "; file PATH (rotated at N bytes, K kept)" with a log file.
std::string LogDestination(const CommandLine& cl);

}  // namespace daxref
