// Big-endian fixed-width encoding. Every integer that appears in a RocksDB key
// is big-endian so that bytewise key order is numeric order; values use the
// same encoding so that one set of helpers serves both.
#pragma once

#include <cstdint>
#include <cstring>
#include <string>
#include <string_view>

namespace daxref::codec {

inline void PutU64(std::string* dst, uint64_t v) {
  char b[8];
  for (int i = 7; i >= 0; --i) {
    b[i] = static_cast<char>(v & 0xff);
    v >>= 8;
  }
  dst->append(b, 8);
}
inline void PutU32(std::string* dst, uint32_t v) {
  char b[4];
  for (int i = 3; i >= 0; --i) {
    b[i] = static_cast<char>(v & 0xff);
    v >>= 8;
  }
  dst->append(b, 4);
}
inline void PutU8(std::string* dst, uint8_t v) {
  dst->push_back(static_cast<char>(v));
}
inline void PutI64(std::string* dst, int64_t v) {
  PutU64(dst, static_cast<uint64_t>(v));
}

inline uint64_t LoadU64(const char* p) {
  uint64_t v = 0;
  for (int i = 0; i < 8; ++i) v = (v << 8) | static_cast<uint8_t>(p[i]);
  return v;
}
inline uint32_t LoadU32(const char* p) {
  uint32_t v = 0;
  for (int i = 0; i < 4; ++i) v = (v << 8) | static_cast<uint8_t>(p[i]);
  return v;
}

// Reads fields front to back; any read past the end marks the reader failed
// instead of touching memory, so a truncated record decodes as corruption.
class Reader {
 public:
  explicit Reader(std::string_view s) : s_(s) {}
  uint64_t U64() { return Take(8) ? LoadU64(s_.data() + pos_ - 8) : 0; }
  uint32_t U32() { return Take(4) ? LoadU32(s_.data() + pos_ - 4) : 0; }
  uint8_t U8() { return Take(1) ? static_cast<uint8_t>(s_[pos_ - 1]) : 0; }
  int64_t I64() { return static_cast<int64_t>(U64()); }
  std::string_view Rest() {
    std::string_view r = s_.substr(pos_);
    pos_ = s_.size();
    return r;
  }
  bool ok() const { return ok_; }
  bool done() const { return pos_ == s_.size(); }

 private:
  bool Take(size_t n) {
    if (!ok_ || s_.size() - pos_ < n) {
      ok_ = false;
      return false;
    }
    pos_ += n;
    return true;
  }
  std::string_view s_;
  size_t pos_ = 0;
  bool ok_ = true;
};

}  // namespace daxref::codec
