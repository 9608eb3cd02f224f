#include "fs/remount.h"

#include <sys/mount.h>
#include <sys/statvfs.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <string>

#include "admin/control_client.h"
#include "base/mountinfo.h"

namespace daxref {

namespace {

// OK if the last mount at `mnt` (the one a path there reaches) is daxref's
// of `source`.
Status CheckMount(const std::string& source, const std::string& mnt) {
  std::string text;
  if (!ReadSelfMountInfo(&text))
    return Status::Error(errno, std::string("reading /proc/self/mountinfo: ") + strerror(errno));
  bool ours = false, any = false;
  ForEachMountInfoEntry(text, [&](const MountInfoEntry& e) {
    if (e.mount_point == mnt) {
      any = true;
      ours = e.fstype == kDaxrefFsType && e.source == source;
    }
    return true;
  });
  if (!any) return Status::Error(EINVAL, "nothing is mounted there");
  if (!ours) return Status::Error(EINVAL, "it is not the daxref mount of " + source);
  return Status::Ok();
}

// mount(2) MS_REMOUNT of the kernel mount, keeping its per-mount flags
// (a remount sets them all anew: without these it would drop nosuid).
Status KernelRemount(const std::string& source, const std::string& mnt, bool ro) {
  struct statvfs v {};
  if (statvfs(mnt.c_str(), &v) != 0)
    return Status::Error(errno, std::string("statfs: ") + strerror(errno));
  static const std::pair<unsigned long, unsigned long> kKeep[] = {
      {ST_NOSUID, MS_NOSUID},          {ST_NODEV, MS_NODEV},           {ST_NOEXEC, MS_NOEXEC},
      {ST_NOATIME, MS_NOATIME},        {ST_NODIRATIME, MS_NODIRATIME}, {ST_RELATIME, MS_RELATIME},
      {ST_SYNCHRONOUS, MS_SYNCHRONOUS}};
  unsigned long flags = MS_REMOUNT | (ro ? MS_RDONLY : 0);
  for (const auto& [st, ms] : kKeep)
    if (v.f_flag & st) flags |= ms;
  if (mount(source.c_str(), mnt.c_str(), std::string(kDaxrefFsType).c_str(), flags, nullptr) == 0)
    return Status::Ok();
  const int err = errno;
  if (err == EBUSY && ro) return Status::Error(err, "files are open for writing on it");
  if (err == EPERM) return Status::Error(err, "only root may remount it");
  return Status::Error(err, std::string("mount(2): ") + strerror(err));
}

// The daemon's part: SetReadOnly on its Volume.
Status AskDaemon(const std::string& source, bool ro) {
  auto conn = control::ControlConnection::Connect(source);
  if (!conn.ok()) return conn.status();
  if (!conn->connected())
    return Status::Error(ENOTCONN, "no daemon answers on " + control::ControlSocketPath(source));
  Status result = Status::Error(EPROTO, "the daemon did not answer");
  control::Record req("remount");
  req.Add("mode", ro ? "ro" : "rw");
  conn->Exchange(req, [&](const control::Record& r) {
    if (r.kind == "done") {
      result = Status::Ok();
    } else if (r.kind == "error") {
      uint64_t err = EIO;
      r.GetU64("errno", &err);
      const std::string* m = r.Get("message");
      result = Status::Error(static_cast<int>(err), m ? *m : "the daemon refused");
    }
  });
  return result;
}

}  // namespace

int Remount(const CommandLine& cl) {
  const bool ro = cl.read_only;
  Status s = CheckMount(cl.source, cl.mountpoint);
  // ro: the kernel first, which refuses while files are open for writing
  // and writes back what it holds; then the daemon stores its pending
  // times and syncs. rw: the daemon first, which refuses if its store is
  // open read-only. Each undoes the first step if the second fails.
  if (s.ok() && ro) {
    s = KernelRemount(cl.source, cl.mountpoint, true);
    if (s.ok()) {
      s = AskDaemon(cl.source, true);
      if (!s.ok()) (void)KernelRemount(cl.source, cl.mountpoint, false);
    }
  } else if (s.ok()) {
    s = AskDaemon(cl.source, false);
    if (s.ok()) {
      s = KernelRemount(cl.source, cl.mountpoint, false);
      if (!s.ok()) (void)AskDaemon(cl.source, true);
    }
  }
  if (s.ok()) return 0;
  fprintf(stderr, "daxref: cannot remount %s %s: %s\n", cl.mountpoint.c_str(),
          ro ? "read-only" : "read-write", s.message().c_str());
  return 1;
}

}  // namespace daxref
