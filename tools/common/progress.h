// ProgressLine: how the tools show progress on something long (fsck's
// phases, scrub's, mkfs's reservation of the pool's space, daxref-info's
// walk of the store): one line on stderr, "TOOL: PHASE  NN%", rewritten in
// place with '\r' at most ten times a second and erased when done. When
// stderr is not a terminal nothing at all is written, so logs and pipes
// never see it (fsck(8)'s -C progress descriptor works the same way).
#pragma once

#include <chrono>
#include <string>
#include <string_view>

namespace daxref::cli {

class ProgressLine {
 public:
  // `tool` starts the line; shown only when `enabled` and stderr is a terminal.
  explicit ProgressLine(const char* tool, bool enabled = true);
  ~ProgressLine() { Clear(); }
  ProgressLine(const ProgressLine&) = delete;
  ProgressLine& operator=(const ProgressLine&) = delete;

  // `done` of `phase` is finished (0 to 1). Always true, so that it can be
  // a progress callback that never asks to stop.
  bool Show(std::string_view phase, double done);
  // Erases the line (if one is shown), so that what follows starts clean.
  void Clear();

 private:
  const char* tool_;
  bool on_;
  bool shown_ = false;
  std::string phase_;
  std::chrono::steady_clock::time_point last_;
};

}  // namespace daxref::cli
