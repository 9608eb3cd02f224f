# shellcheck shell=bash
# Shell functions the benchmarks share; sourced by run.sh, reflink.sh, churn.sh and
# poison.sh.
# The caller defines note() (a message to stderr) and POOL (the pool path
# of its daxref mount).

# Waits (never kills) for the daemon serving $POOL to exit after unmount.
wait_for_daemon() {
  local i p cmd busy
  for ((i = 0; i < 100; i++)); do
    busy=""
    for p in /proc/[0-9]*; do
      cmd=$(tr '\0' ' ' 2>/dev/null <"$p/cmdline") || continue
      [[ $cmd == *"$POOL"* && ${p#/proc/} != "$$" ]] && busy="${p#/proc/}" && break
    done
    [[ -z $busy ]] && return 0
    sleep 0.1
  done
  note "warning: daxref daemon (pid $busy) still running 10 s after unmount"
  return 1
}

# Unmounts $1 (a FUSE mount if $2 is fuse), retrying while busy, lazily
# as a last resort.
unmount_dir() {  # $1 = mount point, $2 = fuse|other
  local m=$1 i
  mountpoint -q "$m" || return 0
  for ((i = 0; i < 20; i++)); do
    if [[ $2 == fuse ]]; then
      fusermount3 -u "$m" 2>/dev/null || umount "$m" 2>/dev/null || true
    else
      umount "$m" 2>/dev/null || true
    fi
    mountpoint -q "$m" || return 0
    sleep 0.5
  done
  note "warning: $m still busy, lazy unmount"
  umount -l "$m" || true
  ! mountpoint -q "$m"
}

# Unmounts the daxref mount $DAX_MNT, if any, and waits for its daemon.
teardown_daxref() {
  [[ -n $DAX_MNT ]] || return 0
  unmount_dir "$DAX_MNT" fuse && rmdir "$DAX_MNT"
  [[ -n $POOL ]] && wait_for_daemon
  return 0
}

# Runs the caller's cleanup() at exit, and turns INT, TERM and HUP into
# exits with the shell's usual codes (so cleanup runs for them too).
trap_cleanup() {
  trap cleanup EXIT
  trap 'exit 130' INT
  trap 'exit 143' TERM
  trap 'exit 129' HUP
}

# Configures $BUILD if it is not yet (without the test suite, which a
# benchmark does not need) and builds only the given ninja targets, so that
# work in progress elsewhere in the tree does not stop a benchmark. Logs go
# to $WORK. The caller defines die(), and REPO and WORK.
build_targets() {  # $@ = ninja targets, e.g. fs/daxref
  if [[ ! -f $BUILD/build.ninja ]]; then
    note "configuring $BUILD (-Dtests=false: the benchmark needs no test suite)"
    meson setup -Dtests=false "$BUILD" "$REPO" >"$WORK/meson-setup.log" 2>&1 ||
      { cat "$WORK/meson-setup.log" >&2; die "meson setup $BUILD failed"; }
  fi
  note "building $* in $BUILD"
  ninja -C "$BUILD" "$@" >>"$WORK/ninja.log" 2>&1 ||
    { tail -n 60 "$WORK/ninja.log" >&2; die "ninja -C $BUILD failed"; }
  local t
  for t in "$@"; do [[ -x $BUILD/$t ]] || die "$BUILD/$t missing after build"; done
}

# Prints the path of the bench helper built from bench/$2: the tree's own
# ($BUILD/bench/$1) when it builds and is newer than its source, else one
# compiled privately into $WORK (a build directory from before the helper
# existed in bench/meson.build).
bench_helper() {  # $1 = program name, $2 = source file in bench/
  local bin=$BUILD/bench/$1 src=$SCRIPT_DIR/$2
  ninja -C "$BUILD" "bench/$1" >>"$WORK/ninja.log" 2>&1 || true
  if [[ ! -x $bin || $bin -ot $src ]]; then
    note "$bin missing or out of date (is it in bench/meson.build?); compiling it privately"
    bin=$WORK/$1
    "${CXX:-c++}" -std=c++20 -O2 -g -Wall -Wextra -D_FILE_OFFSET_BITS=64 -I"$REPO/include" \
      -o "$bin" "$src" >&2 || die "cannot compile bench/$2"
  fi
  echo "$bin"
}
