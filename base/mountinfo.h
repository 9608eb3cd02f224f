// /proc/self/mountinfo, parsed once for everyone: the daemon's holder scan
// (which mount is this daemon's) and the tools' finding of a filesystem from
// a path (which daxref mount holds it).
#pragma once

#include <sys/types.h>

#include <string>
#include <string_view>

namespace daxref {

// The fstype of every daxref mount.
inline constexpr std::string_view kDaxrefFsType = "fuse.daxref";

// The fields of one mountinfo line that daxref reads, unescaped.
struct MountInfoEntry {
  dev_t device = 0;         // st_dev of files on the mount (field 3, major:minor)
  std::string mount_point;  // field 5
  std::string fstype;       // the first field after "-"
  std::string source;       // the second
};

// One line of mountinfo (proc(5)), without its '\n':
//   36 35 98:0 /mnt1 /mnt2 rw,noatime master:1 - ext3 /dev/root rw
//   (1)(2)(3)   (4)   (5)      (6)       (7)  (8) (9)   (10)    (11)
// (7) is any number of optional fields, ended by the "-" of (8). Fields are
// separated by single spaces; the kernel writes space, tab, newline and
// backslash inside a field as \ooo (octal), which is undone here. False for
// a line without the fields up to (10) or with a malformed (3).
bool ParseMountInfoLine(std::string_view line, MountInfoEntry* out);

// Calls fn(const MountInfoEntry&) for each well-formed line of `text` (the
// whole file; the last line may lack its '\n'), in order, until fn returns
// false.
template <typename Fn>
void ForEachMountInfoEntry(std::string_view text, Fn&& fn) {
  while (!text.empty()) {
    const size_t nl = text.find('\n');
    const std::string_view line = text.substr(0, nl);
    text.remove_prefix(nl == std::string_view::npos ? text.size() : nl + 1);
    MountInfoEntry e;
    if (ParseMountInfoLine(line, &e) && !fn(e)) return;
  }
}

// Reads all of /proc/self/mountinfo into *text with read(2) (no stdio, no
// stat of any mount point, which could wait on a daemon); false with errno
// set if it cannot be read.
bool ReadSelfMountInfo(std::string* text);

}  // namespace daxref
