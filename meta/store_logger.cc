#include "meta/store_logger.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/time.h>
#include <unistd.h>

#include <cstdio>
#include <ctime>

namespace daxref {

std::shared_ptr<StoreLogger> StoreLogger::Open(const std::string& dir) {
  const std::string path = dir + "/LOG";
  struct stat st {};
  if (stat(path.c_str(), &st) == 0 && st.st_size > 0) {
    struct timeval tv {};
    gettimeofday(&tv, nullptr);
    uint64_t micros = static_cast<uint64_t>(tv.tv_sec) * 1000000 + tv.tv_usec;
    std::string old = dir + "/LOG.old." + std::to_string(micros);
    if (rename(path.c_str(), old.c_str()) != 0) {
      // Keep appending to the old one rather than lose it.
    }
  }
  int fd = open(path.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
  return std::shared_ptr<StoreLogger>(new StoreLogger(fd));
}

StoreLogger::~StoreLogger() {
  if (fd_ >= 0) close(fd_);
}

rocksdb::Status StoreLogger::CloseImpl() {
  if (fd_ >= 0) close(fd_);
  fd_ = -1;
  return rocksdb::Status::OK();
}

void StoreLogger::Logv(const char* format, va_list ap) {
  if (fd_ < 0) return;
  struct timeval tv {};
  gettimeofday(&tv, nullptr);
  struct tm tm {};
  time_t secs = tv.tv_sec;
  localtime_r(&secs, &tm);
  char head[64];
  int h = snprintf(head, sizeof(head), "%04d/%02d/%02d-%02d:%02d:%02d.%06ld %ld ",
                   tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
                   static_cast<long>(tv.tv_usec), static_cast<long>(syscall(SYS_gettid)));
  if (h < 0) return;
  va_list copy;
  va_copy(copy, ap);
  int n = vsnprintf(nullptr, 0, format, copy);
  va_end(copy);
  if (n < 0) return;
  std::string line(head, static_cast<size_t>(h));
  size_t at = line.size();
  line.resize(at + static_cast<size_t>(n) + 1);
  vsnprintf(line.data() + at, static_cast<size_t>(n) + 1, format, ap);
  line.resize(at + static_cast<size_t>(n));
  if (line.empty() || line.back() != '\n') line += '\n';
  // One write: lines of concurrent threads do not interleave. A failure
  // (no room) loses this line and nothing else.
  ssize_t ignored = write(fd_, line.data(), line.size());
  (void)ignored;
}

}  // namespace daxref
