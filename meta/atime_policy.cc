#include "meta/atime_policy.h"

namespace daxref {

bool UpdatesAtime(const AtimePolicy& p, bool dir) {
  return !p.read_only && p.mode != AtimePolicy::Mode::kNoatime && !(dir && p.nodiratime);
}

bool AtimeNeedsUpdate(const AtimePolicy& p, const InodeRecord& r, bool dir, Timespec now) {
  if (!UpdatesAtime(p, dir)) return false;
  // The kernel's touch_atime: nothing to do when the time would not change.
  if (r.atime == now) return false;
  if (p.mode == AtimePolicy::Mode::kStrictatime) return true;
  // relatime: the first read after a change, or once a day.
  if (r.mtime >= r.atime || r.ctime >= r.atime) return true;
  return now.sec - r.atime.sec >= kRelatimeInterval;
}

}  // namespace daxref
