#!/usr/bin/env bash
# Installs what daxref needs (Debian 12 packages), builds it and runs every
# test, then checks the lock annotations with clang and runs every test once
# more under AddressSanitizer and UndefinedBehaviorSanitizer; between the
# two, builds, installs and removes the Debian package (scripts/package.sh,
# running the demo from it). Ends with the line "N passed, N failed" summed
# from the Catch2 summaries of both runs, the package counting as one.
# Usage: scripts/test.sh [BUILD_DIR]   (the other builds go in BUILD_DIR-clang
# and BUILD_DIR-san)
set -euo pipefail
cd "$(dirname "$0")/.."
build=${1:-build}
scripts/install-deps.sh
scripts/check-layout.sh

setup() {  # setup DIR [meson options...]
  local dir=$1; shift
  if [ -f "$dir/build.ninja" ]; then
    meson setup --reconfigure "$dir" "$@" >/dev/null
  else
    meson setup "$dir" "$@" >/dev/null
  fi
}

rc=0
setup "$build"
ninja -C "$build"
meson test -C "$build" --no-rebuild --print-errorlogs || rc=1

# The Debian package: built from the tree, lintian-clean, installed, the
# demo run from the installed binaries, removed again (docs/packaging.md).
# Counted as one test in the summary.
pkg_pass=0 pkg_fail=0
if scripts/package.sh; then pkg_pass=1; else pkg_fail=1; rc=1; fi

scripts/check-thread-safety.sh "$build-clang" || rc=1

# The sanitized run. LeakSanitizer is on: a leak is a failure. The daemon's
# SIGBUS guard must see the pool's faults, not ASan (handle_sigbus=0).
# libdaxref-reflink.so and the test's reflink_probe are built without
# sanitizers: the library is preloaded into cp, the probe and other programs
# that do not carry the ASan runtime.
setup "$build-san" -Db_sanitize=address,undefined -Db_lundef=false
ninja -C "$build-san"
ASAN_OPTIONS=handle_sigbus=0:detect_leaks=1:halt_on_error=1 \
UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
  meson test -C "$build-san" --no-rebuild --print-errorlogs || rc=1

# Catch2 v2 ends each binary's output with either
#   "All tests passed (A assertions in N test cases)" or
#   "test cases: N | P passed | F failed"
awk -v pkg_pass="$pkg_pass" -v pkg_fail="$pkg_fail" '
  BEGIN { p = pkg_pass; f = pkg_fail }
  /^All tests passed/ { match($0, /in [0-9]+ test case/); n = substr($0, RSTART + 3, RLENGTH - 13); p += n }
  /^test cases:/ {
    for (i = 1; i <= NF; i++) {
      if ($(i) == "passed" || $(i) == "passed,") p += $(i - 1)
      if ($(i) == "failed" || $(i) == "failed,") f += $(i - 1)
    }
  }
  END { printf "%d passed, %d failed\n", p, f }
' "$build/meson-logs/testlog.txt" "$build-san/meson-logs/testlog.txt" > "$build/summary.txt"
cat "$build/summary.txt"
exit $rc
