#include "fs/command_line.h"

#include <sys/stat.h>

#include <cctype>
#include <cerrno>
#include <csignal>
#include <cstdlib>
#include <cstring>
#include <set>
#include <sstream>

namespace daxref {

namespace {

// Options libfuse 3.14's mount code understands (passed through as they are).
// suid, dev, nosuid and nodev are not among them: ParseCommandLine decides
// those (CommandLine::allow_suid). atime and noatime also set the daemon's
// atime policy (AddAtimeOption).
const std::set<std::string> kFuseFlags = {"allow_other",  "allow_root", "default_permissions",
                                          "ro",           "rw",         "exec",
                                          "noexec",       "async",      "sync",
                                          "dirsync",      "atime",      "noatime",
                                          "auto_unmount", "debug"};
const std::vector<std::string> kFuseValued = {"fsname=", "subtype="};
// mount(8) / fstab words that mean nothing to a FUSE daemon: accepted so
// that ordinary fstab lines work, and ignored.
const std::set<std::string> kIgnored = {"defaults", "auto",  "noauto", "user",   "users",
                                        "nouser",   "owner", "group",  "nofail", "_netdev"};

// The atime words (docs/design.md, "Access times"). The daemon applies the
// policy itself: FUSE inodes are S_NOATIME, so the kernel never updates an
// atime whatever its mount flags say, and libfuse 3.14 knows only atime and
// noatime (passed on, so that /proc/mounts shows noatime). The last word of
// each kind wins, as for the kernel's flags. False if `o` is no atime word.
bool AddAtimeOption(const std::string& o, AtimePolicy* p) {
  using M = AtimePolicy::Mode;
  if (o == "noatime") {
    p->mode = M::kNoatime;
  } else if (o == "atime") {
    if (p->mode == M::kNoatime) p->mode = M::kRelatime;  // the kernel's: noatime off
  } else if (o == "relatime" || o == "nostrictatime") {
    p->mode = M::kRelatime;
  } else if (o == "strictatime" || o == "norelatime") {
    p->mode = M::kStrictatime;
  } else if (o == "nodiratime" || o == "diratime") {
    p->nodiratime = o == "nodiratime";
  } else if (o == "lazytime" || o == "nolazytime") {
    p->lazytime = o == "lazytime";
  } else {
    return false;
  }
  return true;
}

bool StartsWith(const std::string& s, const std::string& p) {
  return s.rfind(p, 0) == 0;
}

// log_file_size=: bytes, or a number with K, M or G (KiB, MiB, GiB).
bool ParseSize(const std::string& v, uint64_t* out) {
  if (v.empty() || !isdigit(static_cast<unsigned char>(v[0]))) return false;
  char* end = nullptr;
  errno = 0;
  unsigned long long n = strtoull(v.c_str(), &end, 10);
  if (errno) return false;
  int shift = 0;
  if (*end) {
    switch (toupper(static_cast<unsigned char>(*end))) {
      case 'K':
        shift = 10;
        break;
      case 'M':
        shift = 20;
        break;
      case 'G':
        shift = 30;
        break;
      default:
        return false;
    }
    if (end[1]) return false;
  }
  if (n > (1ull << (40 - shift))) return false;
  *out = n << shift;
  return true;
}

// poison_signal=: a signal name with or without SIG (BUS, SIGUSR1,
// RTMIN+2), a number, or "none".
bool ParseSignal(std::string v, int* out) {
  if (v == "none" || v == "0") {
    *out = 0;
    return true;
  }
  for (char& c : v) c = static_cast<char>(toupper(static_cast<unsigned char>(c)));
  if (StartsWith(v, "SIG")) v = v.substr(3);
  static const std::pair<const char*, int> kNames[] = {
      {"BUS", SIGBUS},   {"USR1", SIGUSR1}, {"USR2", SIGUSR2}, {"TERM", SIGTERM},
      {"KILL", SIGKILL}, {"HUP", SIGHUP},   {"INT", SIGINT},   {"SEGV", SIGSEGV}};
  for (const auto& [name, sig] : kNames) {
    if (v == name) {
      *out = sig;
      return true;
    }
  }
  char* end = nullptr;
  long n;
  if (StartsWith(v, "RTMIN")) {
    n = v.size() == 5 ? 0 : strtol(v.c_str() + 5, &end, 10);
    if (v.size() > 5 && (*end || v[5] != '+')) return false;
    n += SIGRTMIN;
  } else {
    n = strtol(v.c_str(), &end, 10);
    if (v.empty() || *end) return false;
  }
  if (n < 1 || n > SIGRTMAX) return false;
  *out = static_cast<int>(n);
  return true;
}

Status AddMountOptions(const std::string& list, CommandLine* cl) {
  std::stringstream ss(list);
  std::string o;
  while (std::getline(ss, o, ',')) {
    if (o.empty() || kIgnored.count(o) || StartsWith(o, "x-") || StartsWith(o, "comment="))
      continue;
    if (o == "remount") {
      cl->remount = true;
    } else if (StartsWith(o, "user_id=") || StartsWith(o, "group_id=")) {
      // What /proc/mounts shows of a FUSE mount, which mount(8) hands back
      // to the helper at remount; nothing a user gives (checked below).
      cl->kernel_words.push_back(o);
    } else if (StartsWith(o, "source=")) {
      cl->source = o.substr(7);
    } else if (StartsWith(o, "log_level=")) {
      cl->log_level = o.substr(10);
    } else if (StartsWith(o, "log_file=")) {
      cl->log_file = o.substr(9);
      if (cl->log_file.empty()) return Status::Invalid("log_file= needs a path");
    } else if (StartsWith(o, "log_file_size=")) {
      uint64_t v = 0;
      if (!ParseSize(o.substr(14), &v) || v < 1024 || v > (1ull << 40))
        return Status::Invalid("bad log_file_size '" + o.substr(14) +
                               "' (bytes or a number with K, M or G; 1K to 1024G)");
      cl->log_file_size = v;
      cl->log_file_size_given = true;
    } else if (StartsWith(o, "log_files=")) {
      char* end = nullptr;
      long v = strtol(o.c_str() + 10, &end, 10);
      if (o.size() == 10 || *end || v < 1 || v > 100)
        return Status::Invalid("bad log_files '" + o.substr(10) + "' (1 to 100)");
      cl->log_files = static_cast<int>(v);
      cl->log_files_given = true;
    } else if (StartsWith(o, "lock_wait=")) {
      char* end = nullptr;
      long v = strtol(o.c_str() + 10, &end, 10);
      if (*end || v < 0 || v > 3600) return Status::Invalid("bad lock_wait '" + o.substr(10) + "'");
      cl->lock_wait_ms = static_cast<int>(v * 1000);
    } else if (StartsWith(o, "attr_timeout=") || StartsWith(o, "entry_timeout=")) {
      size_t eq = o.find('=');
      char* end = nullptr;
      double v = strtod(o.c_str() + eq + 1, &end);
      if (*end || eq + 1 == o.size() || v < 0 || v > 86400)
        return Status::Invalid("bad " + o.substr(0, eq) + " '" + o.substr(eq + 1) +
                               "' (0 to 86400 seconds)");
      (o[0] == 'a' ? cl->attr_timeout : cl->entry_timeout) = v;
    } else if (StartsWith(o, "dax_revoke_ms=")) {
      char* end = nullptr;
      long v = strtol(o.c_str() + 14, &end, 10);
      if (o.size() == 14 || *end || v < 1 || v > 600000)
        return Status::Invalid("bad dax_revoke_ms '" + o.substr(14) + "' (1 to 600000)");
      cl->dax_revoke_ms = static_cast<int>(v);
    } else if (StartsWith(o, "poison_signal=")) {
      if (!ParseSignal(o.substr(14), &cl->poison_signal))
        return Status::Invalid("bad poison_signal '" + o.substr(14) +
                               "' (a signal name such as BUS, USR1 or RTMIN+1, a number, or none)");
    } else if (StartsWith(o, "max_read=")) {
      // Checked here: libfuse would refuse a bad value with a message of its
      // own, after the daemon has opened the store.
      char* end = nullptr;
      errno = 0;
      unsigned long long v = strtoull(o.c_str() + 9, &end, 10);
      if (o.size() == 9 || *end || errno || !isdigit(static_cast<unsigned char>(o[9])) || v == 0 ||
          v > (1ull << 30))
        return Status::Invalid("bad max_read '" + o.substr(9) + "' (bytes, 1 to 1073741824)");
      cl->fuse_options.push_back(o);
    } else if (StartsWith(o, "threads=")) {
      char* end = nullptr;
      long v = strtol(o.c_str() + 8, &end, 10);
      if (*end || v < 1 || v > 64)
        return Status::Invalid("bad threads '" + o.substr(8) + "' (1 to 64)");
      cl->threads = static_cast<int>(v);
    } else if (o == "suid" || o == "dev") {
      // mount.fuse3 passes these on every mount it starts (unless nosuid,
      // nodev): not a request. allow_suid / allow_dev are.
    } else if (o == "nosuid" || o == "nodev") {
      (o == "nosuid" ? cl->nosuid : cl->nodev) = true;
    } else if (o == "allow_suid" || o == "allow_dev") {
      (o == "allow_suid" ? cl->allow_suid : cl->allow_dev) = true;
    } else if (AddAtimeOption(o, &cl->atime) && !kFuseFlags.count(o)) {
      // the daemon's alone
    } else if (kFuseFlags.count(o)) {
      // ro also opens store and pool read-only (the last of ro and rw wins,
      // as for the kernel's flag).
      if (o == "ro" || o == "rw") cl->read_only = o == "ro";
      cl->fuse_options.push_back(o);
    } else {
      bool known = false;
      for (const auto& p : kFuseValued) known |= StartsWith(o, p);
      if (!known) return Status::Invalid("unknown mount option '" + o + "'");
      cl->fuse_options.push_back(o);
    }
  }
  return Status::Ok();
}

}  // namespace

std::string Usage(const char* prog) {
  std::ostringstream u;
  u << "Usage: " << prog << " [OPTIONS] SOURCE MOUNTPOINT\n"
    << "Mount the daxref filesystem in SOURCE (made by mkfs.daxref) at MOUNTPOINT.\n"
    << "Also reachable as: mount -t fuse.daxref SOURCE MOUNTPOINT\n\n"
    << "Daemon:\n"
    << "  -f, --foreground        stay in the foreground (log to stderr)\n"
    << "  -d, --debug             foreground, FUSE request tracing, log level debug\n"
    << "  -s                      serve requests on one thread (-o threads=1)\n"
    << "      --log-level LEVEL   trace, debug, info, warn, error (default info)\n"
    << "  -o OPT[,OPT...]         mount options (below)\n\n"
    << "Mount options (-o OPT[,OPT...]):\n"
    << "  allow_other, ro, rw, noexec, fsname=NAME, ...\n"
    << "                          standard FUSE/mount options, passed to the kernel\n"
    << "  allow_suid, allow_dev   honour set-user/group-ID bits, device files; the\n"
    << "                          mount is nosuid,nodev without them (a plain suid\n"
    << "                          or dev, which mount.fuse3 always adds, is ignored)\n"
    << "  relatime (default), strictatime, noatime, nodiratime, lazytime\n"
    << "                          when reads update access times (daxref(8))\n"
    << "  remount                 switch the running mount of SOURCE at MOUNTPOINT\n"
    << "                          to ro or rw (what mount -o remount,ro runs);\n"
    << "                          nothing else changes\n"
    << "  source=PATH             SOURCE, for fstab entries that put it here\n"
    << "  log_level=LEVEL         as --log-level\n"
    << "  log_file=PATH           also log to PATH (its directory must exist)\n"
    << "  log_file_size=SIZE      rotate PATH at SIZE bytes (K, M, G; default 10M)\n"
    << "  log_files=N             old files kept (NAME.1.EXT to NAME.N.EXT for\n"
    << "                          PATH NAME.EXT; default 5)\n"
    << "  threads=N               request threads, 1 to 64 (default 4)\n"
    << "  attr_timeout=S, entry_timeout=S\n"
    << "                          how long the kernel caches attributes and names\n"
    << "                          (seconds, default 60)\n"
    << "  lock_wait=SECONDS       how long to wait for a previous daemon of this\n"
    << "                          SOURCE to finish exiting (default 30)\n"
    << "  poison_signal=SIG       what holders of a poisoned file get: BUS (default),\n"
    << "                          another signal (USR1, RTMIN+1, a number) or none\n"
    << "  dax_revoke_ms=N         how long a lease holder has to give a revoked\n"
    << "                          lease back before it is killed (default 1000)\n"
    << "  default_permissions is always on: the kernel checks permissions.\n\n"
    << "  -h, --help              this text\n"
    << "  -V, --version           print the version\n";
  return u.str();
}

Result<CommandLine> ParseCommandLine(int argc, char** argv) {
  CommandLine cl;
  std::vector<std::string> positional;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    auto need_value = [&](const std::string& name) -> Result<std::string> {
      if (i + 1 >= argc) return Status::Invalid("option " + name + " needs a value");
      return std::string(argv[++i]);
    };
    if (a == "-h" || a == "--help") {
      cl.help = true;
    } else if (a == "-V" || a == "--version") {
      cl.version = true;
    } else if (a == "-f" || a == "--foreground") {
      cl.foreground = true;
    } else if (a == "-d" || a == "--debug") {
      cl.debug = cl.foreground = true;
      cl.log_level = "debug";
    } else if (a == "-s") {
      cl.threads = 1;
    } else if (a == "--log-level" || StartsWith(a, "--log-level=")) {
      if (a.size() > 11) {
        cl.log_level = a.substr(12);
      } else {
        auto v = need_value(a);
        if (!v.ok()) return v.status();
        cl.log_level = *v;
      }
    } else if (a == "-o" || (StartsWith(a, "-o") && a.size() > 2)) {
      std::string list;
      if (a.size() > 2) {
        list = a.substr(2);
      } else {
        auto v = need_value(a);
        if (!v.ok()) return v.status();
        list = *v;
      }
      DAXREF_RETURN_IF_ERROR(AddMountOptions(list, &cl));
    } else if (a == "--") {
      for (++i; i < argc; ++i) positional.push_back(argv[i]);
    } else if (a.size() > 1 && a[0] == '-') {
      return Status::Invalid("unknown option '" + a + "'");
    } else {
      positional.push_back(a);
    }
  }
  if (cl.help || cl.version) return cl;
  if (!cl.remount && !cl.kernel_words.empty())
    return Status::Invalid("unknown mount option '" + cl.kernel_words[0] + "'");
  static const std::set<std::string> kLevels = {"trace", "debug", "info", "warn", "error", "off"};
  if (!kLevels.count(cl.log_level))
    return Status::Invalid("unknown log level '" + cl.log_level + "'");
  if (cl.log_file.empty() && (cl.log_file_size_given || cl.log_files_given))
    return Status::Invalid("log_file_size= and log_files= need log_file=");
  // With source= in the options, mount(8)'s first argument is a placeholder.
  if (positional.size() == 2) {
    // Both a SOURCE and source=: the first may be a placeholder (fstab's
    // first field, which mount(8) passes on), but not another filesystem.
    if (!cl.source.empty() && positional[0] != cl.source) {
      struct stat a {
      }, b{};
      if (stat(positional[0].c_str(), &a) == 0 &&
          (stat(cl.source.c_str(), &b) != 0 || a.st_dev != b.st_dev || a.st_ino != b.st_ino))
        return Status::Invalid("SOURCE given twice: '" + positional[0] + "' and source='" +
                               cl.source + "'");
    }
    if (cl.source.empty()) cl.source = positional[0];
    cl.mountpoint = positional[1];
  } else if (positional.size() == 1 && !cl.source.empty()) {
    cl.mountpoint = positional[0];
  } else {
    return Status::Invalid("expected SOURCE and MOUNTPOINT");
  }
  cl.fuse_options.push_back("default_permissions");
  // The same safe default however the daemon was started (docs in daxref(8)).
  cl.fuse_options.push_back(cl.allow_suid && !cl.nosuid ? "suid" : "nosuid");
  cl.fuse_options.push_back(cl.allow_dev && !cl.nodev ? "dev" : "nodev");
  return cl;
}

}  // namespace daxref
