#include "tools/poison/locate.h"

#include <sys/sysmacros.h>
#include <unistd.h>

#include <cerrno>
#include <climits>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <string_view>
#include <vector>

#include "meta/superblock.h"

namespace daxref::poison {

namespace {

constexpr std::string_view kFsType = "fuse.daxref";

// One line of /proc/self/mountinfo (proc(5)):
//   id parent major:minor root mount-point options [optional...] - fstype source super-options
struct MountEntry {
  unsigned major = 0;
  unsigned minor = 0;
  std::string mount_point;
  std::string fstype;
  std::string source;
};

// The kernel writes space, tab, newline and backslash in these fields as
// \ooo (three octal digits).
std::string UnescapeMountField(std::string_view s) {
  std::string out;
  for (size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '\\' && i + 3 < s.size()) {
      const char a = s[i + 1], b = s[i + 2], c = s[i + 3];
      if (a >= '0' && a <= '3' && b >= '0' && b <= '7' && c >= '0' && c <= '7') {
        out.push_back(static_cast<char>((a - '0') * 64 + (b - '0') * 8 + (c - '0')));
        i += 3;
        continue;
      }
    }
    out.push_back(s[i]);
  }
  return out;
}

bool ParseMountLine(std::string_view line, MountEntry* out) {
  std::vector<std::string_view> tok;
  size_t pos = 0;
  while (pos <= line.size()) {
    size_t sp = line.find(' ', pos);
    if (sp == std::string_view::npos) sp = line.size();
    tok.push_back(line.substr(pos, sp - pos));
    pos = sp + 1;
  }
  if (tok.size() < 10) return false;
  size_t dash = 6;
  while (dash < tok.size() && tok[dash] != "-") ++dash;
  if (dash + 2 >= tok.size()) return false;
  if (sscanf(std::string(tok[2]).c_str(), "%u:%u", &out->major, &out->minor) != 2) return false;
  out->mount_point = UnescapeMountField(tok[4]);
  out->fstype = UnescapeMountField(tok[dash + 1]);
  out->source = UnescapeMountField(tok[dash + 2]);
  return true;
}

// Calls fn(entry) for each daxref mount, in mount order; fn returns false to
// stop. Nothing is found when mountinfo cannot be read.
template <typename Fn>
void ForEachDaxrefMount(Fn&& fn) {
  std::unique_ptr<FILE, int (*)(FILE*)> f(fopen("/proc/self/mountinfo", "re"), fclose);
  if (!f) return;
  char* line = nullptr;
  size_t cap = 0;
  ssize_t n;
  while ((n = getline(&line, &cap, f.get())) > 0) {
    std::string_view l(line, static_cast<size_t>(n));
    if (l.back() == '\n') l.remove_suffix(1);
    MountEntry e;
    if (!ParseMountLine(l, &e) || e.fstype != kFsType) continue;
    if (!fn(e)) break;
  }
  free(line);
}

// The daxref mount whose device is dev (the last one, should a dead mount
// linger under a live one).
bool FindMountByDevice(dev_t dev, MountEntry* out) {
  bool found = false;
  ForEachDaxrefMount([&](const MountEntry& e) {
    if (e.major == major(dev) && e.minor == minor(dev)) {
      *out = e;
      found = true;
    }
    return true;
  });
  return found;
}

// The daxref mount whose mount point is `path` or holds it, compared as
// strings (for a mount whose daemon is gone, where stat fails).
bool FindMountByPath(const std::string& path, MountEntry* out) {
  size_t best = 0;
  bool found = false;
  ForEachDaxrefMount([&](const MountEntry& e) {
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
  ForEachDaxrefMount([&](const MountEntry& e) {
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

Result<Location> FromMount(const std::string& what, const MountEntry& e) {
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
  MountEntry e;
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
  MountEntry e;
  if (!FindMountByDevice(st->st_dev, &e))
    return Status::Error(EXDEV, path + ": not on a daxref filesystem");
  return FromMount(path, e);
}

}  // namespace daxref::poison
