// SetDigest: an order-independent fingerprint of a set of records, so that
// two indexes of one relation stored in different key orders (the extent
// map by inode, the reverse map by pool block; directory entries by name,
// their cookie index by cookie) can be compared in one streaming pass each,
// without holding either in memory or looking every record up in the other.
//
// Each member is hashed to 128 bits (two independent 64-bit hashes) and the
// hashes are summed mod 2^64, with a count: adding the same members in any
// order gives the same digest, and a set that differs in one member (or any
// few) differs in its digest except with probability about 2^-64 per half.
// Equal digests are the fast path of a check; unequal ones only say that
// something differs, and the checker then looks records up to name it.
#pragma once

#include <cstdint>
#include <cstring>
#include <string>
#include <string_view>

#include "meta/codec.h"

namespace daxref {

class SetDigest {
 public:
  void Add(std::string_view member) {
    a_ += Hash(member, 0x243f6a8885a308d3ull);
    b_ += Hash(member, 0x13198a2e03707344ull);
    n_++;
  }
  uint64_t count() const { return n_; }
  bool operator==(const SetDigest& o) const { return a_ == o.a_ && b_ == o.b_ && n_ == o.n_; }
  bool operator!=(const SetDigest& o) const { return !(*this == o); }

  // A member made of fixed-width fields and one trailing name (for
  // callers that build members from numbers).
  static std::string Member(std::initializer_list<uint64_t> fields, std::string_view name = {}) {
    std::string m;
    for (uint64_t f : fields) codec::PutU64(&m, f);
    m.append(name);
    return m;
  }

 private:
  // splitmix64's finalizer: every input bit affects every output bit.
  static uint64_t Mix(uint64_t x) {
    x ^= x >> 30;
    x *= 0xbf58476d1ce4e5b9ull;
    x ^= x >> 27;
    x *= 0x94d049bb133111ebull;
    x ^= x >> 31;
    return x;
  }
  static uint64_t Hash(std::string_view s, uint64_t seed) {
    uint64_t h = Mix(seed ^ s.size());
    size_t i = 0;
    for (; i + 8 <= s.size(); i += 8) {
      uint64_t w;
      memcpy(&w, s.data() + i, 8);
      h = Mix(h ^ w) + 0x9e3779b97f4a7c15ull;
    }
    if (i < s.size()) {
      uint64_t w = 0;
      memcpy(&w, s.data() + i, s.size() - i);
      h = Mix(h ^ w ^ (uint64_t{0xff} << 56)) + 0x9e3779b97f4a7c15ull;
    }
    return Mix(h);
  }

  uint64_t a_ = 0, b_ = 0, n_ = 0;
};

}  // namespace daxref
