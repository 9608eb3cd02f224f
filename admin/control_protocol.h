// The control channel between the admin tools (daxref-poison) and a running
// daemon: a Unix stream socket at SOURCE/control (ControlSocketPath).
//
// One request per connection. Request and replies are Records, one per line:
// a kind, then `key=value` fields separated by single spaces, with every byte
// of a key or value outside '!'..'~', and '%', '=' and ' ', written as %XX.
// A key may repeat (a file's paths, the pids signalled). The daemon answers
// with any number of records as it works, so that a reply never has to be
// held whole in memory, and ends with one `done` or one `error` record
// (`errno=N message=...`); a connection that closes before either means the
// daemon went away. docs/poison.md lists the verbs and the fields.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace daxref::control {

struct Record {
  std::string kind;
  std::vector<std::pair<std::string, std::string>> fields;

  Record() = default;
  explicit Record(std::string k) : kind(std::move(k)) {}

  Record& Add(std::string_view key, std::string_view value);
  Record& Add(std::string_view key, uint64_t value);
  // The first value of key, or null.
  const std::string* Get(std::string_view key) const;
  // The first value of key as a number; false if absent or not a number.
  bool GetU64(std::string_view key, uint64_t* out) const;
  // Walks every value of key in order.
  template <typename Fn>
  void ForEach(std::string_view key, Fn&& fn) const {
    for (const auto& [k, v] : fields)
      if (k == key) fn(v);
  }

  // One line, '\n' included.
  std::string Encode() const;
  // Parses one line (without its '\n'); false if it is not a record.
  static bool Decode(std::string_view line, Record* out);
};

// Where the daemon serving SOURCE listens.
std::string ControlSocketPath(const std::string& source);

// Reads records from a connected socket, a line at a time.
class RecordReader {
 public:
  explicit RecordReader(int fd) : fd_(fd) {}
  // False at the end of the stream (or on an error: *err gets errno, else 0)
  // or on a line that does not decode (*err = EPROTO).
  bool Next(Record* out, int* err);

 private:
  int fd_;
  std::string buf_;
  size_t pos_ = 0;
};

// Writes a record whole; false (errno set) if the peer went away.
bool WriteRecord(int fd, const Record& r);
// Writes encoded records whole; false (errno set) if the peer went away.
bool WriteBytes(int fd, const std::string& bytes);

}  // namespace daxref::control
