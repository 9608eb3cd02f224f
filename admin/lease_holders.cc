#include "admin/lease_holders.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <charconv>
#include <string>

#include "admin/holder_scan.h"
#include "base/unique_fd.h"

namespace daxref {

namespace {

// The whole of a small /proc file (at most `cap` bytes); "" if it cannot be read.
std::string ReadSmallFile(const char* path, size_t cap) {
  UniqueFd fd(open(path, O_RDONLY | O_CLOEXEC));
  if (!fd.valid()) return "";
  std::string out(cap, '\0');
  size_t have = 0;
  while (have < cap) {
    const ssize_t n = read(fd.get(), out.data() + have, cap - have);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    have += static_cast<size_t>(n);
  }
  out.resize(have);
  return out;
}

int HexDigit(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

}  // namespace

bool ParseBootId(std::string_view text, std::array<uint8_t, 16>* out) {
  if (!text.empty() && text.back() == '\n') text.remove_suffix(1);
  if (text.size() != 36) return false;
  std::array<uint8_t, 16> id{};
  size_t nibble = 0;
  for (size_t i = 0; i < text.size(); ++i) {
    const bool dash_here = i == 8 || i == 13 || i == 18 || i == 23;
    if (dash_here) {
      if (text[i] != '-') return false;
      continue;
    }
    const int d = HexDigit(text[i]);
    if (d < 0) return false;
    id[nibble / 2] = static_cast<uint8_t>(id[nibble / 2] << 4 | d);
    ++nibble;
  }
  *out = id;
  return true;
}

std::array<uint8_t, 16> BootId() {
  std::array<uint8_t, 16> id{};
  if (!ParseBootId(ReadSmallFile("/proc/sys/kernel/random/boot_id", 64), &id)) id = {};
  return id;
}

bool ParseStatStartTime(std::string_view line, char* state, uint64_t* start_time) {
  // "pid (comm) S ppid ...": comm may hold spaces and parentheses, so the
  // fields start after the last ')'.
  const size_t close = line.rfind(')');
  if (close == std::string_view::npos) return false;
  std::string_view rest = line.substr(close + 1);
  // Fields 3 to 22, separated by single spaces.
  for (int field = 3; field <= 22; ++field) {
    if (rest.empty() || rest.front() != ' ') return false;
    rest.remove_prefix(1);
    const size_t end = std::min(rest.find(' '), rest.find('\n'));
    const std::string_view value = rest.substr(0, end);
    rest.remove_prefix(value.size());
    if (value.empty()) return false;
    if (field == 3) {
      if (value.size() != 1) return false;
      *state = value[0];
    } else if (field == 22) {
      uint64_t v = 0;
      auto [p, ec] = std::from_chars(value.data(), value.data() + value.size(), v);
      if (ec != std::errc() || p != value.data() + value.size()) return false;
      *start_time = v;
    }
  }
  return true;
}

uint64_t ProcessStartTime(pid_t pid) {
  if (pid <= 0) return 0;
  const std::string path = "/proc/" + std::to_string(pid) + "/stat";
  // A stat line is a few hundred bytes; comm is at most 64.
  const std::string line = ReadSmallFile(path.c_str(), 4096);
  char state = 0;
  uint64_t start = 0;
  if (!ParseStatStartTime(line, &state, &start)) return 0;
  if (state == 'Z' || state == 'X' || state == 'x') return 0;  // exited
  return start;
}

bool RecordedHolderAlive(const LeaseRecord& r) {
  const std::array<uint8_t, 16> boot = BootId();
  if (boot != std::array<uint8_t, 16>{} && boot != r.boot_id) return false;
  if (r.pid == 0 || r.pid > static_cast<uint32_t>(INT32_MAX) || r.start_time == 0) return false;
  return ProcessStartTime(static_cast<pid_t>(r.pid)) == r.start_time;
}

bool ProcessMapsFile(pid_t pid, dev_t dev, ino_t ino) {
  return ProcessMapsFileNow(pid, dev, static_cast<uint64_t>(ino)) != 0;
}

}  // namespace daxref
