#include "admin/control_protocol.h"

#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <charconv>

namespace daxref::control {

namespace {

bool Plain(unsigned char c) {
  return c > ' ' && c <= '~' && c != '%' && c != '=';
}

void Escape(std::string* out, std::string_view s) {
  static const char kHex[] = "0123456789ABCDEF";
  for (unsigned char c : s) {
    if (Plain(c)) {
      out->push_back(static_cast<char>(c));
    } else {
      out->push_back('%');
      out->push_back(kHex[c >> 4]);
      out->push_back(kHex[c & 15]);
    }
  }
}

int HexDigit(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  return -1;
}

bool Unescape(std::string_view s, std::string* out) {
  out->clear();
  for (size_t i = 0; i < s.size(); ++i) {
    if (s[i] != '%') {
      out->push_back(s[i]);
      continue;
    }
    if (i + 2 >= s.size()) return false;
    int hi = HexDigit(s[i + 1]), lo = HexDigit(s[i + 2]);
    if (hi < 0 || lo < 0) return false;
    out->push_back(static_cast<char>(hi * 16 + lo));
    i += 2;
  }
  return true;
}

}  // namespace

Record& Record::Add(std::string_view key, std::string_view value) {
  fields.emplace_back(std::string(key), std::string(value));
  return *this;
}

Record& Record::Add(std::string_view key, uint64_t value) {
  return Add(key, std::string_view(std::to_string(value)));
}

const std::string* Record::Get(std::string_view key) const {
  for (const auto& [k, v] : fields)
    if (k == key) return &v;
  return nullptr;
}

bool Record::GetU64(std::string_view key, uint64_t* out) const {
  const std::string* v = Get(key);
  if (!v || v->empty()) return false;
  auto [end, ec] = std::from_chars(v->data(), v->data() + v->size(), *out);
  return ec == std::errc() && end == v->data() + v->size();
}

std::string Record::Encode() const {
  std::string line;
  Escape(&line, kind);
  for (const auto& [k, v] : fields) {
    line.push_back(' ');
    Escape(&line, k);
    line.push_back('=');
    Escape(&line, v);
  }
  line.push_back('\n');
  return line;
}

bool Record::Decode(std::string_view line, Record* out) {
  *out = Record();
  size_t pos = 0;
  bool first = true;
  while (pos <= line.size()) {
    size_t sp = line.find(' ', pos);
    if (sp == std::string_view::npos) sp = line.size();
    std::string_view tok = line.substr(pos, sp - pos);
    if (tok.empty()) return false;
    if (first) {
      if (!Unescape(tok, &out->kind)) return false;
      first = false;
    } else {
      size_t eq = tok.find('=');
      if (eq == std::string_view::npos || eq == 0) return false;
      std::string k, v;
      if (!Unescape(tok.substr(0, eq), &k) || !Unescape(tok.substr(eq + 1), &v)) return false;
      out->fields.emplace_back(std::move(k), std::move(v));
    }
    pos = sp + 1;
  }
  return !first;
}

std::string ControlSocketPath(const std::string& source) {
  return source + "/control";
}

bool RecordReader::Next(Record* out, int* err) {
  *err = 0;
  for (;;) {
    size_t nl = buf_.find('\n', pos_);
    if (nl != std::string::npos) {
      std::string_view line(buf_.data() + pos_, nl - pos_);
      pos_ = nl + 1;
      if (!Record::Decode(line, out)) {
        *err = EPROTO;
        return false;
      }
      return true;
    }
    buf_.erase(0, pos_);
    pos_ = 0;
    char chunk[4096];
    ssize_t n = read(fd_, chunk, sizeof(chunk));
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) *err = errno;
    if (n <= 0) return false;
    buf_.append(chunk, static_cast<size_t>(n));
  }
}

bool WriteRecord(int fd, const Record& r) {
  return WriteBytes(fd, r.Encode());
}

bool WriteBytes(int fd, const std::string& line) {
  size_t done = 0;
  while (done < line.size()) {
    ssize_t n = send(fd, line.data() + done, line.size() - done, MSG_NOSIGNAL);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return false;
    done += static_cast<size_t>(n);
  }
  return true;
}

}  // namespace daxref::control
