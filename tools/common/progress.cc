#include "tools/common/progress.h"

#include <unistd.h>

#include <algorithm>
#include <cstdio>

namespace daxref::cli {

ProgressLine::ProgressLine(const char* tool, bool enabled)
    : tool_(tool), on_(enabled && isatty(STDERR_FILENO) == 1) {}

bool ProgressLine::Show(std::string_view phase, double done) {
  if (!on_) return true;
  const auto now = std::chrono::steady_clock::now();
  if (shown_ && now - last_ < std::chrono::milliseconds(100) && phase == phase_) return true;
  last_ = now;
  phase_ = phase;
  shown_ = true;
  const int pct = static_cast<int>(std::clamp(done, 0.0, 1.0) * 100);
  fprintf(stderr, "\r%s: %-32.32s %3d%%", tool_, phase_.c_str(), pct);
  fflush(stderr);
  return true;
}

void ProgressLine::Clear() {
  if (!shown_) return;
  fprintf(stderr, "\r%-60s\r", "");
  fflush(stderr);
  shown_ = false;
}

}  // namespace daxref::cli
