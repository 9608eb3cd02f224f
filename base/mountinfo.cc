#include "base/mountinfo.h"

#include <fcntl.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include <cerrno>

#include "base/unique_fd.h"

namespace daxref {
namespace {

// Splits off the text before the next space (or the rest of the line).
std::string_view NextField(std::string_view* line) {
  const size_t at = line->find(' ');
  const std::string_view field = line->substr(0, at);
  line->remove_prefix(at == std::string_view::npos ? line->size() : at + 1);
  return field;
}

// Undoes the kernel's \ooo escapes.
std::string Unescape(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  for (size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '\\' && i + 3 < s.size() && s[i + 1] >= '0' && s[i + 1] <= '3' && s[i + 2] >= '0' &&
        s[i + 2] <= '7' && s[i + 3] >= '0' && s[i + 3] <= '7') {
      out.push_back(
          static_cast<char>((s[i + 1] - '0') << 6 | (s[i + 2] - '0') << 3 | (s[i + 3] - '0')));
      i += 3;
    } else {
      out.push_back(s[i]);
    }
  }
  return out;
}

// A decimal number making up all of s, below 2^32.
bool ParseDecimal(std::string_view s, unsigned* out) {
  if (s.empty() || s.size() > 10) return false;
  uint64_t v = 0;
  for (char c : s) {
    if (c < '0' || c > '9') return false;
    v = v * 10 + static_cast<uint64_t>(c - '0');
  }
  if (v > UINT32_MAX) return false;
  *out = static_cast<unsigned>(v);
  return true;
}

}  // namespace

bool ParseMountInfoLine(std::string_view line, MountInfoEntry* out) {
  NextField(&line);  // mount id
  NextField(&line);  // parent id
  const std::string_view device = NextField(&line);
  NextField(&line);  // root
  const std::string_view point = NextField(&line);
  NextField(&line);  // mount options
  std::string_view field;
  do {
    field = NextField(&line);
  } while (field != "-" && !line.empty());
  if (field != "-" || line.empty()) return false;
  const std::string_view fstype = NextField(&line);
  const std::string_view source = NextField(&line);
  const size_t colon = device.find(':');
  unsigned maj, min;
  if (colon == std::string_view::npos || !ParseDecimal(device.substr(0, colon), &maj) ||
      !ParseDecimal(device.substr(colon + 1), &min))
    return false;
  out->device = makedev(maj, min);
  out->mount_point = Unescape(point);
  out->fstype = Unescape(fstype);
  out->source = Unescape(source);
  return true;
}

bool ReadSelfMountInfo(std::string* text) {
  UniqueFd fd(open("/proc/self/mountinfo", O_RDONLY | O_CLOEXEC));
  if (!fd.valid()) return false;
  text->clear();
  char chunk[16 << 10];
  for (;;) {
    const ssize_t n = read(fd.get(), chunk, sizeof(chunk));
    if (n < 0) {
      if (errno == EINTR) continue;
      return false;
    }
    if (n == 0) return true;
    text->append(chunk, static_cast<size_t>(n));
  }
}

}  // namespace daxref
