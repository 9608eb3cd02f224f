#!/usr/bin/env bash
# Installs what daxref needs (Debian 12 packages), builds it and runs every
# test. Ends with the line "N passed, N failed" summed from the Catch2
# summaries of the test binaries. Usage: scripts/test.sh [BUILD_DIR]
set -euo pipefail
cd "$(dirname "$0")/.."
build=${1:-build}
scripts/install-deps.sh
scripts/check-layout.sh
if [ -f "$build/build.ninja" ]; then
  meson setup --reconfigure "$build" >/dev/null
else
  meson setup "$build" >/dev/null
fi
ninja -C "$build"
set +e
meson test -C "$build" --no-rebuild --print-errorlogs
rc=$?
set -e
# Catch2 v2 ends each binary's output with either
#   "All tests passed (A assertions in N test cases)" or
#   "test cases: N | P passed | F failed"
awk '
  /^All tests passed/ { match($0, /in [0-9]+ test case/); n = substr($0, RSTART + 3, RLENGTH - 13); p += n }
  /^test cases:/ {
    for (i = 1; i <= NF; i++) {
      if ($(i) == "passed" || $(i) == "passed,") p += $(i - 1)
      if ($(i) == "failed" || $(i) == "failed,") f += $(i - 1)
    }
  }
  END { printf "%d passed, %d failed\n", p, f }
' "$build/meson-logs/testlog.txt" > "$build/summary.txt"
cat "$build/summary.txt"
exit $rc
