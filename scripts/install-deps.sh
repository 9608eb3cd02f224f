#!/usr/bin/env bash
# Installs the Debian 12 packages daxref builds, tests and benchmarks with.
# Idempotent: does nothing when every package is already there.
set -euo pipefail
pkgs=(build-essential pkg-config meson ninja-build python3
      libfuse3-dev fuse3 libpmem2-dev librocksdb-dev libspdlog-dev catch2
      fio xfsprogs util-linux coreutils procps duperemove clang
      systemd man-db)  # systemd-analyze and man(1): test/fs_mount_test.cc verifies the unit
missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -eq 0 ]; then
  exit 0
fi
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"
echo "installing: ${missing[*]}"
$SUDO apt-get update -qq
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
