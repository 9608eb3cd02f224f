// StoreLogger: RocksDB's diagnostic log (SOURCE/meta/LOG), written so that a
// full or failing filesystem loses log lines instead of killing the daemon.
//
// RocksDB's own info log writes through the same buffered file writer as
// its data files, and in 7.8 that writer asserts when it is used again
// after a failed write. Debian builds RocksDB with assertions, so once the
// host filesystem was full, the first log line after a failed one aborted
// the daemon ("Assertion 'sync_without_flush_called_' failed", from
// EnvLogger::Logv, seen with the host tmpfs full). This logger formats each
// line itself and appends it with one write(2); a failed write is ignored:
// the log is for people, and nothing depends on it.
//
// The file is kept as RocksDB keeps it: the LOG of the previous open is
// renamed LOG.old.<microseconds> (RocksDB prunes old ones itself), lines
// start with the time and the thread. Thread-safe (O_APPEND, one write per
// line).
#pragma once

#include <rocksdb/env.h>

#include <cstdarg>
#include <memory>
#include <string>

namespace daxref {

class StoreLogger : public rocksdb::Logger {
 public:
  // Opens `dir`/LOG for appending, after moving an old one aside. Never
  // fails: without a file it logs nothing.
  static std::shared_ptr<StoreLogger> Open(const std::string& dir);
  ~StoreLogger() override;

  using rocksdb::Logger::Logv;
  void Logv(const char* format, va_list ap) override;

 private:
  explicit StoreLogger(int fd) : rocksdb::Logger(rocksdb::InfoLogLevel::INFO_LEVEL), fd_(fd) {}
  rocksdb::Status CloseImpl() override;
  int fd_;
};

}  // namespace daxref
