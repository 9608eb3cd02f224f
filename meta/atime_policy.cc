#include "meta/atime_policy.h"

namespace daxref {

namespace {

int Compare(const Timespec& a, const Timespec& b) {
  if (a.sec != b.sec) return a.sec < b.sec ? -1 : 1;
  if (a.nsec != b.nsec) return a.nsec < b.nsec ? -1 : 1;
  return 0;
}

}  // namespace

bool AtimeNeedsUpdate(const AtimePolicy& p, const InodeRecord& r, bool dir, Timespec now) {
  if (p.read_only || p.mode == AtimePolicy::Mode::kNoatime) return false;
  if (dir && p.nodiratime) return false;
  // The kernel's touch_atime: nothing to do when the time would not change.
  if (Compare(r.atime, now) == 0) return false;
  if (p.mode == AtimePolicy::Mode::kStrictatime) return true;
  // relatime: the first read after a change, or once a day.
  if (Compare(r.mtime, r.atime) >= 0 || Compare(r.ctime, r.atime) >= 0) return true;
  return now.sec - r.atime.sec >= kRelatimeInterval;
}

}  // namespace daxref
