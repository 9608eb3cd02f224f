#!/usr/bin/env bash
# Builds daxref's Debian package from this tree (debian/, dpkg-buildpackage
# -us -uc -b), checks it with lintian, installs it (dpkg -i), runs the demo
# against the installed binaries (scripts/demo.sh --installed) and checks
# what else the package must hold, then removes it again (dpkg -r) unless it
# was installed before or --keep is given: the machine is left as it was,
# but for the packaging tools this script installs. docs/packaging.md.
#
# Usage: scripts/package.sh [--keep]
# Ends with "package: OK (...)" and exit 0, or "package: FAILED (...)" and
# exit 1. The build happens in a copy of the tree under
# ${DAXREF_PACKAGE_DIR:-/tmp/daxref-package} (dpkg-buildpackage writes the
# .deb next to the tree it builds), where the .deb, the build log and
# lintian's report stay. With ccache installed the build goes through it:
# the copy is always at the same path, so a second run hits the cache.
set -euo pipefail
cd "$(dirname "$0")/.."
keep=0
[ "${1:-}" = --keep ] && keep=1

fail() {
  echo "package: FAILED ($*)" >&2
  exit 1
}

scripts/install-deps.sh
# The packaging tools; idempotent, as install-deps.sh.
tools=(debhelper dpkg-dev fakeroot lintian)
missing=()
for p in "${tools[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -ne 0 ]; then
  SUDO=""
  [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  echo "installing: ${missing[*]}"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends \
    "${missing[@]}" >/dev/null
fi

version=$(dpkg-parsechangelog -S Version)
arch=$(dpkg-architecture -qDEB_HOST_ARCH)
work=${DAXREF_PACKAGE_DIR:-/tmp/daxref-package}
src=$work/daxref-$version
deb=$work/daxref_${version}_$arch.deb
rm -rf "$work"
mkdir -p "$src"

# The source tree: what git tracks and what is new but not ignored (so no
# build directory), as it is in the working tree.
if git rev-parse --is-inside-work-tree >/dev/null 2>&1; then
  git ls-files -z --cached --others --exclude-standard |
    tar --null --ignore-failed-read -T - -cf - 2>/dev/null | tar -xf - -C "$src"
else
  tar --exclude='./build*' --exclude='./obj-*' --exclude=./.git -cf - . | tar -xf - -C "$src"
fi

echo "building $deb (log: $work/build.log)"
if command -v ccache >/dev/null; then
  # debhelper gives the build a HOME of its own: name the cache explicitly.
  export CC="ccache gcc" CXX="ccache g++"
  CCACHE_DIR=${CCACHE_DIR:-$(ccache -k cache_dir)}
  export CCACHE_DIR
fi
export DEB_BUILD_OPTIONS="nocheck parallel=${DAXREF_PACKAGE_JOBS:-2}"
(cd "$src" && dpkg-buildpackage -us -uc -b) >"$work/build.log" 2>&1 || {
  tail -n 40 "$work/build.log" >&2
  fail "dpkg-buildpackage; see $work/build.log"
}
[ -f "$deb" ] || fail "no $deb after the build"

echo "lintian (report: $work/lintian.txt)"
# Clean means no error, warning or info tag; what is overridden carries its
# reason in debian/daxref.lintian-overrides.
if ! lintian --fail-on error,warning,info --display-info "$work"/daxref_"${version}"_"$arch".changes \
  >"$work/lintian.txt" 2>&1; then
  cat "$work/lintian.txt" >&2
  fail "lintian"
fi

installed_before=0
dpkg-query -W -f='${Status}' daxref 2>/dev/null | grep -q "install ok installed" && installed_before=1
remove() {
  if [ "$keep" -eq 0 ] && [ "$installed_before" -eq 0 ]; then
    echo "removing the package: dpkg -r daxref"
    dpkg -r daxref >/dev/null || echo "package: dpkg -r daxref failed" >&2
  fi
}
trap remove EXIT
echo "installing: dpkg -i $deb"
dpkg -i "$deb" >/dev/null || fail "dpkg -i"

# What the package must hold, where the documentation says.
for f in /usr/bin/daxref /usr/bin/daxref-info /usr/bin/daxref-map /usr/bin/daxref-reflink \
  /usr/sbin/mkfs.daxref /usr/sbin/fsck.daxref /usr/sbin/fsck.fuse.daxref /usr/sbin/daxref-poison \
  /usr/sbin/daxref-scrub /usr/include/daxref/ioctl.h /usr/include/daxref/dax.h \
  /usr/share/man/man8/daxref.8.gz /usr/share/man/man1/daxref-reflink.1.gz \
  /usr/share/man/man3/daxref_dax.3.gz \
  /usr/share/man/man7/libdaxref-reflink.7.gz /usr/share/bash-completion/completions/daxref \
  /usr/share/bash-completion/completions/daxref-poison; do
  [ -e "$f" ] || fail "the package has no $f"
done
libdir=/usr/lib/$(dpkg-architecture -qDEB_HOST_MULTIARCH)
for f in libdaxref-reflink.so libdaxref-reflink.so.0 libdaxref-dax.so libdaxref-dax.so.0 \
  libdaxref-dax-preload.so libdaxref-dax-preload.so.0; do
  [ -e "$libdir/$f" ] || fail "the package has no $libdir/$f"
done
/usr/bin/daxref --version | grep -q "^daxref $version " || fail "daxref --version"
bash -c '. /usr/share/bash-completion/completions/daxref-poison && complete -p daxref-poison' \
  >/dev/null || fail "the bash completion does not load"

echo "running the demo with the installed binaries"
scripts/demo.sh --installed >"$work/demo.log" 2>&1 || {
  tail -n 40 "$work/demo.log" >&2
  fail "scripts/demo.sh --installed; see $work/demo.log"
}
tail -n 1 "$work/demo.log"

echo "package: OK ($deb, lintian clean, demo run from /usr/bin and /usr/sbin)"
