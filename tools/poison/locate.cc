#include "tools/poison/locate.h"

#include <unistd.h>

#include <cerrno>
#include <climits>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <string_view>

#include "base/mountinfo.h"
#include "meta/superblock.h"

namespace daxref::poison {

namespace {

// Calls fn(entry) for each daxref mount, in mount order; fn returns false to
// stop. Nothing is found when mountinfo cannot be read.
template <typename Fn>
void ForEachDaxrefMount(Fn&& fn) {
  std::string text;
  if (!ReadSelfMountInfo(&text)) return;
  ForEachMountInfoEntry(
      text, [&](const MountInfoEntry& e) { return e.fstype != kDaxrefFsType || fn(e); });
}

// The daxref mount whose device is dev (the last one, should a dead mount
// linger under a live one).
bool FindMountByDevice(dev_t dev, MountInfoEntry* out) {
  bool found = false;
  ForEachDaxrefMount([&](const MountInfoEntry& e) {
    if (e.device == dev) {
      *out = e;
      found = true;
    }
    return true;
  });
  return found;
}

// The daxref mount whose mount point is `path` or holds it, compared as
// strings (for a mount whose daemon is gone, where stat fails).
bool FindMountByPath(const std::string& path, MountInfoEntry* out) {
  size_t best = 0;
  bool found = false;
  ForEachDaxrefMount([&](const MountInfoEntry& e) {
    const std::string& mp = e.mount_point;
    const bool under =
        path == mp || (path.size() > mp.size() && path.compare(0, mp.size(), mp) == 0 &&
                       (mp == "/" || path[mp.size()] == '/'));
    if (under && mp.size() >= best) {
      best = mp.size();
      *out = e;
      found = true;
    }
    return true;
  });
  return found;
}

std::string MountPointOfSource(const std::string& source) {
  std::string mount_point;
  ForEachDaxrefMount([&](const MountInfoEntry& e) {
    if (e.source == source) mount_point = e.mount_point;
    return true;
  });
  return mount_point;
}

// `path` made absolute against the working directory, without resolving
// anything in it (the filesystem may not answer), trailing slashes dropped.
std::string Absolute(const std::string& path) {
  std::string abs = path;
  if (abs.empty() || abs[0] != '/') {
    char cwd[PATH_MAX];
    if (!getcwd(cwd, sizeof(cwd))) return path;
    abs = std::string(cwd) + "/" + abs;
  }
  while (abs.size() > 1 && abs.back() == '/') abs.pop_back();
  return abs;
}

Result<Location> FromMount(const std::string& what, const MountInfoEntry& e) {
  // A caller who may not look inside SOURCE learns so from the control
  // socket, with the message that says who may.
  struct stat st;
  const bool hidden = stat(PoolPath(e.source).c_str(), &st) != 0 && errno == EACCES;
  if (e.source.empty() || e.source[0] != '/' || !(hidden || IsSourceDirectory(e.source)))
    return Status::Error(ENOENT, what + ": a daxref mount of '" + e.source +
                                     "', which is not a daxref SOURCE directory here");
  return Location{e.source, e.mount_point};
}

}  // namespace

bool IsSourceDirectory(const std::string& dir) {
  struct stat pool, meta;
  return stat(PoolPath(dir).c_str(), &pool) == 0 && S_ISREG(pool.st_mode) &&
         stat(MetaPath(dir).c_str(), &meta) == 0 && S_ISDIR(meta.st_mode);
}

Result<Location> LocateFilesystem(const std::string& fs) {
  struct stat st;
  MountInfoEntry e;
  if (stat(fs.c_str(), &st) != 0) {
    const int err = errno;
    // A mount whose daemon died: still in mountinfo, but nothing answers.
    if (err == ENOTCONN && FindMountByPath(Absolute(fs), &e)) return FromMount(fs, e);
    return Status::Error(err, fs + ": " + strerror(err));
  }
  if (FindMountByDevice(st.st_dev, &e)) return FromMount(fs, e);
  if (S_ISDIR(st.st_mode) && IsSourceDirectory(fs)) {
    std::unique_ptr<char, void (*)(void*)> real(realpath(fs.c_str(), nullptr), free);
    if (!real) return Status::Error(errno, fs + ": " + strerror(errno));
    Location loc;
    loc.source = real.get();
    loc.mount_point = MountPointOfSource(loc.source);
    return loc;
  }
  return Status::Error(
      ENODEV, fs + ": not a daxref filesystem (neither a daxref mount nor a SOURCE directory)");
}

Result<Location> LocateMountOf(const std::string& path, struct stat* st) {
  if (stat(path.c_str(), st) != 0) {
    const int err = errno;
    if (err == ENOENT) return Status::Error(err, "no such file: " + path);
    if (err == ENOTCONN)
      return Status::Error(err, path + ": " + strerror(err) + " (is its daxref daemon running?)");
    return Status::Error(err, path + ": " + strerror(err));
  }
  MountInfoEntry e;
  if (!FindMountByDevice(st->st_dev, &e))
    return Status::Error(EXDEV, path + ": not on a daxref filesystem");
  return FromMount(path, e);
}

}  // namespace daxref::poison
