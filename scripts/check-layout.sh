#!/usr/bin/env bash
# The layout rules the compiler cannot see (docs/design.md "The parts"):
# base/ includes nothing from the rest of the tree and no FUSE, libpmem2 or
# RocksDB; meta/ includes neither FUSE nor libpmem2; pool/ and admin/ include no FUSE
# and nothing from fs/; tools/ include nothing from fs/; dax/ (shared with
# the client library) includes no FUSE, RocksDB, meta/, pool/ or fs/ (libpmem2 it may:
# the library persists with it, dax/persist.h). Prints each
# offending line and exits 1 if there is one.
set -uo pipefail
cd "$(dirname "$0")/.."
bad=0
check() {  # check WHAT DIRS... -- PATTERN
  local what=$1; shift
  local dirs=()
  while [ "$1" != "--" ]; do dirs+=("$1"); shift; done
  shift
  local hits
  hits=$(grep -rnE --include='*.h' --include='*.cc' "$1" "${dirs[@]}" || true)
  if [ -n "$hits" ]; then
    echo "layout: $what:"
    echo "$hits"
    bad=1
  fi
}
check "base/ includes meta/, pool/, admin/, fs/, tools/, FUSE, libpmem2 or RocksDB" base -- \
  '#include [<"](meta/|pool/|admin/|fs/|tools/|fuse|libpmem2|rocksdb/)'
check "meta/ includes FUSE or libpmem2" meta -- '#include [<"](fuse|libpmem2)'
check "pool/ or admin/ includes FUSE or fs/" pool admin -- '#include [<"](fuse|fs/)'
check "tools/ include fs/" tools -- '#include "fs/'
check "dax/ includes FUSE, RocksDB, meta/, pool/ or fs/ (the client library links none of them)" dax -- \
  '#include [<"](fuse|rocksdb/|meta/|pool/|fs/)'
exit $bad
