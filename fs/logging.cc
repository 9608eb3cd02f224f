#include "fs/logging.h"

#include <fcntl.h>
#include <spdlog/sinks/rotating_file_sink.h>
#include <spdlog/sinks/stdout_color_sinks.h>
#include <spdlog/sinks/syslog_sink.h>
#include <spdlog/spdlog.h>
#include <sys/stat.h>
#include <syslog.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <string>
#include <vector>

#include "base/unique_fd.h"

namespace daxref {
namespace {

// %^ and %$ mark the level for colour on a terminal; files ignore them.
constexpr char kLinePattern[] = "%Y-%m-%d %H:%M:%S.%e daxref[%P]: %^%l%$: %v";
// syslog(3) adds the time, the host and "daxref[PID]:" itself.
constexpr char kSyslogPattern[] = "%l: %v";

// The checks spdlog would not make (it creates missing directories) or
// would report as an exception with its own wording.
Status CheckLogFile(const std::string& path) {
  const size_t slash = path.rfind('/');
  const std::string dir = slash == 0 ? "/" : path.substr(0, slash);
  struct stat st {};
  if (stat(dir.c_str(), &st) != 0)
    return Status::Error(errno, "log_file " + path + ": directory " + dir + ": " + strerror(errno));
  if (!S_ISDIR(st.st_mode))
    return Status::Invalid("log_file " + path + ": " + dir + " is not a directory");
  UniqueFd fd(open(path.c_str(), O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC | O_NOCTTY, 0600));
  if (!fd.valid()) return Status::Error(errno, "log_file " + path + ": " + strerror(errno));
  if (fstat(fd.get(), &st) != 0 || !S_ISREG(st.st_mode))
    return Status::Invalid("log_file " + path + " is not a regular file");
  return Status::Ok();
}

}  // namespace

Status SetUpLogging(const CommandLine& cl, std::shared_ptr<spdlog::logger>* file_only) {
  const auto level = spdlog::level::from_str(cl.log_level);
  std::vector<spdlog::sink_ptr> sinks;
  if (cl.foreground) {
    auto s = std::make_shared<spdlog::sinks::stderr_color_sink_mt>();
    s->set_pattern(kLinePattern);
    sinks.push_back(s);
  } else {
    auto s = std::make_shared<spdlog::sinks::syslog_sink_mt>("daxref", LOG_PID, LOG_DAEMON,
                                                             /*enable_formatting=*/true);
    s->set_pattern(kSyslogPattern);
    sinks.push_back(s);
  }
  Status status = Status::Ok();
  file_only->reset();
  if (!cl.log_file.empty()) {
    status = CheckLogFile(cl.log_file);
    if (status.ok()) {
      try {
        auto f = std::make_shared<spdlog::sinks::rotating_file_sink_mt>(
            cl.log_file, cl.log_file_size, static_cast<size_t>(cl.log_files));
        f->set_pattern(kLinePattern);
        sinks.push_back(f);
        *file_only = std::make_shared<spdlog::logger>("daxref-file", f);
        (*file_only)->set_level(level);
        (*file_only)->flush_on(spdlog::level::trace);
      } catch (const spdlog::spdlog_ex& e) {
        status = Status::IOError("log_file " + cl.log_file + ": " + e.what());
      }
    }
  }
  auto log = std::make_shared<spdlog::logger>("daxref", sinks.begin(), sinks.end());
  log->set_level(level);
  // A line is in the file as soon as it is logged (tail -f, a daemon that
  // is killed); the daemon logs little.
  log->flush_on(spdlog::level::trace);
  spdlog::set_default_logger(log);
  return status;
}

std::string LogDestination(const CommandLine& cl) {
  std::string where = cl.foreground ? "stderr" : "syslog";
  if (!cl.log_file.empty())
    where += "; file " + cl.log_file + " (rotated at " + std::to_string(cl.log_file_size) +
             " bytes, " + std::to_string(cl.log_files) + " kept)";
  return where;
}

}  // namespace daxref
