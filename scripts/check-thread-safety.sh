#!/usr/bin/env bash
# Builds every target with clang and its thread-safety analysis as errors:
# each GUARDED_BY, REQUIRES, EXCLUDES and ACQUIRED_AFTER in the code
# (base/thread_annotations.h, base/mutex.h) is checked at compile time.
# Compiling is the check; nothing is run.
#
#   scripts/check-thread-safety.sh [BUILD_DIR]    (default: build-clang)
#
# -Wthread-safety-beta adds the lock-order check (ACQUIRED_AFTER/BEFORE),
# which clang keeps out of -Wthread-safety. Prints one line saying whether
# the check passed; exits non-zero on any error, with the errors above it.
set -uo pipefail
cd "$(dirname "$0")/.."
dir=${1:-build-clang}
flags="-Wthread-safety -Wthread-safety-beta -Werror=thread-safety -Werror=thread-safety-beta"
log=$(mktemp)
trap 'rm -f "$log"' EXIT

fail() {
  echo "thread-safety check: FAILED ($1)"
  exit 1
}

command -v clang++ >/dev/null || fail "clang++ not found; scripts/install-deps.sh installs it"
if [ -f "$dir/build.ninja" ]; then
  # The compiler of a build dir is fixed at setup: refuse one that is not clang.
  grep -qE '^ command = .*clang\+\+ ' "$dir/build.ninja" ||
    fail "$dir was set up with another compiler; remove it or name another dir"
  if ! grep -qF -- "$flags" "$dir/build.ninja"; then
    meson configure "$dir" -Dcpp_args="$flags" >"$log" 2>&1 || {
      cat "$log"
      fail "meson configure $dir"
    }
  fi
else
  cxx=clang++
  command -v ccache >/dev/null && cxx="ccache clang++"
  CXX=$cxx meson setup "$dir" --buildtype=debug -Dcpp_args="$flags" >"$log" 2>&1 || {
    cat "$log"
    fail "meson setup $dir"
  }
fi
if ! nice ninja -C "$dir" >"$log" 2>&1; then
  # The diagnostics (and what led to them), not ninja's progress lines.
  grep -v '^\[[0-9]*/[0-9]*\] ' "$log"
  n=$(grep -c 'error: .*\[-Werror,-Wthread-safety' "$log")
  if [ "$n" -gt 0 ]; then
    fail "$n thread-safety error(s), built in $dir"
  fi
  fail "the clang build in $dir failed"
fi
echo "thread-safety check: passed (every target built with clang $flags, in $dir)"
