// The filesystem of the previous format checked in under test/data/
// (pool-format-1.tar.gz, made by make-pool-format-1.sh: see README.md
// there), and what its files hold. Shared by meta_upgrade_test.cc (a Volume
// on it) and fs_upgrade_test.cc (a real mount and fsck.daxref). The
// contents here must match what the script wrote.
#pragma once

#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>

namespace daxref::upgrade {

// Unpacks the archive into `into`, making `into`/fs (SOURCE). The error
// text, or "" on success.
inline std::string Unpack(const std::string& data_dir, const std::string& into) {
  std::string cmd = "tar -xzf '" + data_dir + "/pool-format-1.tar.gz' -C '" + into + "'";
  int rc = std::system(cmd.c_str());
  return rc == 0 ? "" : cmd + ": exit status " + std::to_string(rc);
}

inline constexpr std::string_view kHello = "hello from pool format 1\n";
inline constexpr std::string_view kNote = "made by 3188243";
inline constexpr std::string_view kLinkTarget = "dir/pattern.bin";
inline constexpr uint64_t kPatternBytes = 5 * 4096 + 100;

// dir/pattern.bin: byte i is the low byte of i * 7 + (i >> 12).
inline std::string Pattern() {
  std::string s(kPatternBytes, '\0');
  for (uint64_t i = 0; i < s.size(); ++i) s[i] = static_cast<char>((i * 7 + (i >> 12)) & 0xff);
  return s;
}
// dir/pattern-clone.bin: a shared copy of it, then "CLONE" written at 0.
inline std::string Clone() {
  std::string s = Pattern();
  s.replace(0, 5, "CLONE");
  return s;
}
// sparse.bin: a hole, then '!' at byte 40000.
inline std::string Sparse() {
  std::string s(40001, '\0');
  s[40000] = '!';
  return s;
}

}  // namespace daxref::upgrade
