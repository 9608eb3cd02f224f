// How every message names a run of pool blocks, so that the daemon, the
// metadata library and the tools word it alike.
#pragma once

#include <cstdint>
#include <string>

namespace daxref {

// Blocks [first, end) as "block 7" or "blocks 7..9" (inclusive, as a reader
// counts them). end must be more than first.
inline std::string BlockRangeText(uint64_t first, uint64_t end) {
  return end - first == 1 ? "block " + std::to_string(first)
                          : "blocks " + std::to_string(first) + ".." + std::to_string(end - 1);
}

}  // namespace daxref
