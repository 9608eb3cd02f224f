// mkfs.daxref: creates a daxref filesystem in a SOURCE directory.
//
//   SOURCE/pool   the pool file: superblock in block 0, a copy in the last
//                 block, file data in between. Sized with ftruncate, then
//                 its space reserved on the host filesystem with fallocate
//                 (unless --sparse).
//   SOURCE/meta   the RocksDB metadata store, holding the root directory.
//
// Why reserve. The daemon stores file data with plain stores into its
// mapping of the pool. On a sparse pool the host filesystem provides each
// page at its first store, and when it cannot (tmpfs or a disk is full) the
// store faults: the daemon turns that into ENOSPC for the request, but a
// filesystem that says it has free blocks and cannot write them is a poor
// one, and the metadata store, on the same host filesystem, fills too. So
// the space is taken at mkfs, when running out is a clear error, and a pool
// larger than the host filesystem can hold, or than an address space can
// map, is refused before anything is created. --sparse is for those who
// want the overcommit anyway (tests, a pool on a filesystem that cannot
// reserve), and says what it costs.
//
// How this file is laid out (after mkfs.xfs): every option is declared once,
// in kOptions, and both getopt_long and --help are generated from that table.
// The command line as typed goes into RawArgs; Validate() turns it into a
// Config or a specific message. Make() does the work; its Undo guard removes
// whatever this run created if any step fails, so a failed mkfs leaves
// nothing half-made behind.
//
// Overwriting (-f) is refused while a daemon has the filesystem: the daemon
// holds flock(LOCK_EX) on the pool file, and RocksDB holds a write lock on
// meta/LOCK. mkfs holds flock(LOCK_EX) on the new pool until it is complete,
// so a daemon started meanwhile finds it in use instead of half-made.
//
// Exit status: 0 success, 1 runtime failure, 2 usage error.

#include <fcntl.h>
#include <getopt.h>
#include <rocksdb/db.h>
#include <sys/file.h>
#include <sys/mman.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <ctime>
#include <exception>
#include <filesystem>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <system_error>
#include <utility>
#include <vector>

#include "base/unique_fd.h"
#include "meta/format.h"
#include "meta/status.h"
#include "meta/store.h"
#include "meta/superblock.h"
#include "meta/volume.h"
#include "tools/common/cli.h"
#include "tools/common/geometry.h"
#include "tools/common/progress.h"

namespace daxref {
namespace {

namespace fs = std::filesystem;

constexpr cli::Tool kTool("mkfs.daxref", cli::kExitUsage, cli::kExitFailure);

// ---- limits ----------------------------------------------------------------
constexpr uint64_t kMinPoolBytes = uint64_t{1} << 20;
// The largest size ftruncate(2) accepts (off_t), in whole blocks.
constexpr uint64_t kMaxPoolBytes = static_cast<uint64_t>(INT64_MAX) & ~uint64_t{kBlockSize - 1};
static_assert(kMinPoolBytes / kBlockSize >= kMinPoolBlocks);
// The daemon maps the whole pool, in one piece. A process on x86-64 has 2^47
// bytes (128 TiB) of user address space, unless it asks mmap for more by
// hint, which libpmem2 does not; but the kernel loads a PIE program at about
// two thirds of it and stacks shared libraries down from the top, so the
// largest free piece is the ~85 TiB below the program (measured here: an
// 80 TiB PROT_NONE reservation works, 90 TiB does not). 64 TiB leaves room
// for the randomized layout and for whatever else maps there. The probe
// below (reserving that much address space and giving it back) catches a
// smaller address space still (an rlimit, another architecture).
constexpr uint64_t kMaxMappableBytes = uint64_t{1} << 46;
// Reserving the pool's space goes in steps this large, so a slow reservation
// can show progress (on a terminal) and the first failure stops it early.
constexpr uint64_t kReserveStep = uint64_t{64} << 20;

// ---- the option table ------------------------------------------------------
enum class Group { kSize, kLabel, kOverwrite, kOutput, kGeneral };

struct GroupSpec {
  Group group;
  const char* title;
};
constexpr GroupSpec kGroups[] = {
    {Group::kSize, "Size"},     {Group::kLabel, "Label"},     {Group::kOverwrite, "Overwriting"},
    {Group::kOutput, "Output"}, {Group::kGeneral, "General"},
};

// Values of long-only options: past every character.
constexpr int kOptJson = 256;
constexpr int kOptSparse = 257;

struct OptionSpec {
  const char* name;  // long name
  int val;           // short option letter, or kOpt* for a long-only option
  const char* arg;   // the argument's name; nullptr if it takes none
  Group group;
  const char* help;  // lines separated by '\n'
};

constexpr OptionSpec kOptions[] = {
    {"size", 's', "SIZE", Group::kSize,
     "size of the pool file (required); rounded down\n"
     "to whole blocks; at least 1 MiB; its space is\n"
     "reserved on the host filesystem, which must\n"
     "have room for it"},
    {"sparse", kOptSparse, nullptr, Group::kSize,
     "do not reserve the pool's space: the pool takes\n"
     "host space as files are written, and writes\n"
     "fail with ENOSPC once the host filesystem is\n"
     "full (a warning says so)"},
    {"label", 'L', "LABEL", Group::kLabel,
     "name the filesystem LABEL (at most 255 bytes,\n"
     "no control characters); daxref-info shows it"},
    {"force", 'f', nullptr, Group::kOverwrite,
     "overwrite the daxref filesystem in SOURCE (its\n"
     "pool and meta are removed), or use a non-empty\n"
     "SOURCE; refused while the filesystem is mounted\n"
     "or in use"},
    {"json", kOptJson, nullptr, Group::kOutput,
     "print the geometry as JSON on stdout (raw\n"
     "integers)"},
    {"quiet", 'q', nullptr, Group::kOutput, "print nothing on success"},
    {"help", 'h', nullptr, Group::kGeneral, "show this help and exit"},
    {"version", 'V', nullptr, Group::kGeneral, "print the version and exit"},
};

const OptionSpec* FindOption(int val) {
  for (const OptionSpec& o : kOptions)
    if (o.val == val) return &o;
  return nullptr;
}

void PrintHelp(FILE* out) {
  fprintf(out,
          "Usage: %s [OPTIONS] -s SIZE SOURCE\n"
          "\n"
          "Create a daxref filesystem in the directory SOURCE, which is created if\n"
          "missing: the pool file SOURCE/pool, holding the superblock and file data,\n"
          "and the metadata store SOURCE/meta. The pool's space is reserved on the\n"
          "host filesystem (fallocate) unless --sparse is given; a pool larger than\n"
          "the host filesystem has room for, or than the daemon can map, is refused.\n",
          kTool.name());
  constexpr size_t kHelpColumn = 26;
  for (const GroupSpec& g : kGroups) {
    fprintf(out, "\n%s:\n", g.title);
    for (const OptionSpec& o : kOptions) {
      if (o.group != g.group) continue;
      std::string left = o.val < 256 ? std::string("  -") + static_cast<char>(o.val) + ", --"
                                     : std::string("      --");
      left += o.name;
      if (o.arg != nullptr) left += std::string(" ") + o.arg;
      left.resize(std::max(left.size() + 2, kHelpColumn), ' ');
      std::string_view help = o.help;
      size_t nl;
      while ((nl = help.find('\n')) != std::string_view::npos) {
        fprintf(out, "%s%.*s\n", left.c_str(), static_cast<int>(nl), help.data());
        help.remove_prefix(nl + 1);
        left.assign(kHelpColumn, ' ');
      }
      fprintf(out, "%s%.*s\n", left.c_str(), static_cast<int>(help.size()), help.data());
    }
  }
  fprintf(out,
          "\n"
          "Units:\n"
          "  SIZE    a number of bytes, optionally followed by a binary suffix\n"
          "          (case-insensitive, optionally followed by B or iB):\n"
          "          K = 2^10, M = 2^20, G = 2^30, T = 2^40.\n"
          "          Examples: 1048576, 64M, 64MiB, 2g, 1T.\n"
          "  block   4096 bytes; the first and the last block of the pool hold\n"
          "          the superblock and its copy, the rest hold file data.\n"
          "\n"
          "Exit status: 0 success, 1 failure, 2 usage error.\n");
}

// ---- the command line, as typed --------------------------------------------
struct RawArgs {
  std::optional<std::string> size;
  std::optional<std::string> label;
  bool force = false;
  bool sparse = false;
  bool json = false;
  bool quiet = false;
  bool help = false;
  bool version = false;
  std::vector<std::string> operands;
};

// Structural errors (unknown option, missing argument or operand). The caller
// adds the "try --help" hint.
Status ParseArgs(int argc, char** argv, RawArgs* raw) {
  std::string shorts = ":";  // leading ':' reports a missing argument as ':'
  std::vector<option> longs;
  for (const OptionSpec& o : kOptions) {
    longs.push_back({o.name, o.arg != nullptr ? required_argument : no_argument, nullptr, o.val});
    if (o.val < 256) {
      shorts += static_cast<char>(o.val);
      if (o.arg != nullptr) shorts += ':';
    }
  }
  longs.push_back({nullptr, 0, nullptr, 0});

  opterr = 0;
  int c;
  while ((c = getopt_long(argc, argv, shorts.c_str(), longs.data(), nullptr)) != -1) {
    switch (c) {
      case 's':
        raw->size = optarg;
        break;
      case 'L':
        raw->label = optarg;
        break;
      case 'f':
        raw->force = true;
        break;
      case kOptJson:
        raw->json = true;
        break;
      case kOptSparse:
        raw->sparse = true;
        break;
      case 'q':
        raw->quiet = true;
        break;
      case 'h':
        raw->help = true;
        break;
      case 'V':
        raw->version = true;
        break;
      case ':': {
        const OptionSpec* o = FindOption(optopt);
        return Status::Invalid(std::string("option --") + (o ? o->name : "?") +
                               " requires an argument");
      }
      default: {            // '?'
        if (optopt == 0) {  // an unknown long option; getopt has moved past it
          std::string_view a = argv[optind - 1];
          return Status::Invalid("unrecognized option '" + std::string(a.substr(0, a.find('='))) +
                                 "'");
        }
        if (const OptionSpec* o = FindOption(optopt); o != nullptr)
          return Status::Invalid(std::string("option --") + o->name + " takes no argument");
        if (std::string_view a = argv[optind - 1];
            optopt >= '0' && optopt <= '9' && a.size() > 1 && a[0] == '-' && a[1] == optopt)
          return Status::Invalid("negative number '" + std::string(a) +
                                 "': sizes are not negative");
        if (optopt > ' ' && optopt < 127)
          return Status::Invalid(std::string("invalid option -- '") + static_cast<char>(optopt) +
                                 "'");
        return Status::Invalid("invalid option");
      }
    }
  }
  for (int i = optind; i < argc; ++i) raw->operands.emplace_back(argv[i]);
  if (raw->help || raw->version) return Status::Ok();
  if (!raw->size) return Status::Invalid("missing --size (the size of the pool file)");
  if (raw->operands.empty()) return Status::Invalid("missing SOURCE (the filesystem directory)");
  if (raw->operands.size() > 1)
    return Status::Invalid("unexpected argument '" + raw->operands[1] + "'");
  return Status::Ok();
}

// ---- the validated request -------------------------------------------------
struct Config {
  std::string source;       // absolute, without a trailing '/'
  uint64_t pool_bytes = 0;  // a multiple of kBlockSize, in [kMinPoolBytes, kMaxMappableBytes]
  bool force = false;
  bool sparse = false;  // skip the reservation of the pool's space
  bool json = false;
  bool quiet = false;
  std::string label;  // empty: none
};

// Can a daemon map a pool this large? Against the bound above, then by
// reserving that much address space (PROT_NONE, MAP_NORESERVE: no memory,
// no page tables) and giving it back.
Status CheckMappable(const std::string& typed, uint64_t bytes) {
  auto refuse = [&](const std::string& limit) {
    return Status::Invalid("size " + typed + " (" + std::to_string(bytes) + " bytes, " +
                           HumanBytes(bytes) + ") is more than the daemon can map: " + limit);
  };
  if (bytes > kMaxMappableBytes)
    return refuse("the address space holds at most " + HumanBytes(kMaxMappableBytes) + " of pool");
  void* p = mmap(nullptr, bytes, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
  if (p == MAP_FAILED)
    return refuse(std::string("no room for it in this address space (mmap: ") + strerror(errno) +
                  ")");
  munmap(p, bytes);
  return Status::Ok();
}

Result<Config> Validate(const RawArgs& raw) {
  Config c;
  c.force = raw.force;
  c.sparse = raw.sparse;
  c.json = raw.json;
  c.quiet = raw.quiet;
  if (raw.label) {
    if (raw.label->empty()) return Status::Invalid("the label must not be empty");
    if (raw.label->size() > kMaxLabelLen)
      return Status::Invalid("the label is " + std::to_string(raw.label->size()) +
                             " bytes long; at most " + std::to_string(kMaxLabelLen) +
                             " are allowed");
    for (unsigned char ch : *raw.label)
      if (ch < 0x20 || ch == 0x7f)
        return Status::Invalid("the label must not contain control characters");
    c.label = *raw.label;
  }
  if (c.json && c.quiet)
    return Status::Invalid("--json and --quiet conflict: --json prints the geometry, -q nothing");

  uint64_t bytes = 0;
  std::string error;
  if (!cli::ParseSize(*raw.size, "size", &bytes, &error)) return Status::Invalid(error);
  if (bytes > kMaxPoolBytes)
    return Status::Invalid("size '" + *raw.size + "' is too large (at most " +
                           std::to_string(kMaxPoolBytes) + " bytes)");
  c.pool_bytes = bytes & ~uint64_t{kBlockSize - 1};
  if (c.pool_bytes < kMinPoolBytes) {
    const std::string is = bytes == c.pool_bytes ? " is " : " rounds down to ";
    return Status::Invalid("size too small: " + *raw.size + is + std::to_string(c.pool_bytes) +
                           " bytes; the minimum is 1 MiB (" + std::to_string(kMinPoolBytes) +
                           " bytes)");
  }
  DAXREF_RETURN_IF_ERROR(CheckMappable(*raw.size, c.pool_bytes));

  const std::string& typed = raw.operands[0];
  if (typed.empty()) return Status::Invalid("SOURCE must not be empty");
  std::error_code ec;
  fs::path abs = fs::absolute(typed, ec);
  if (ec) return Status::Error(ec.value(), typed + ": " + ec.message());
  c.source = abs.string();
  while (c.source.size() > 1 && c.source.back() == '/') c.source.pop_back();
  return c;
}

// ---- plumbing ----------------------------------------------------------------
// errno as a Status: "<what>: <strerror>".
Status Errno(const std::string& what) {
  const int err = errno;
  return Status::Error(err, what + ": " + strerror(err));
}

Status FsError(const std::error_code& ec, const std::string& what) {
  return Status::Error(ec.value(), what + ": " + ec.message());
}

Status PwriteAll(int fd, const char* buf, size_t len, uint64_t off, const std::string& path) {
  while (len > 0) {
    const ssize_t n = pwrite(fd, buf, len, static_cast<off_t>(off));
    if (n < 0) {
      if (errno == EINTR) continue;
      return Errno(path + ": write at offset " + std::to_string(off));
    }
    buf += n;
    len -= static_cast<size_t>(n);
    off += static_cast<uint64_t>(n);
  }
  return Status::Ok();
}

Status SyncDir(const std::string& dir) {
  UniqueFd fd(open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (!fd.valid()) return Errno(dir);
  if (fsync(fd.get()) != 0) return Errno(dir + ": fsync");
  return Status::Ok();
}

// A random (version 4, RFC 4122) UUID.
Status RandomUuid(Uuid* u) {
  size_t got = 0;
  while (got < u->size()) {
    const ssize_t n = getrandom(u->data() + got, u->size() - got, 0);
    if (n < 0) {
      if (errno == EINTR) continue;
      return Errno("getrandom");
    }
    got += static_cast<size_t>(n);
  }
  (*u)[6] = static_cast<uint8_t>(((*u)[6] & 0x0f) | 0x40);  // version 4
  (*u)[8] = static_cast<uint8_t>(((*u)[8] & 0x3f) | 0x80);  // variant 10xx
  return Status::Ok();
}

bool IsRegularFile(const std::string& path) {
  struct stat st {};
  return stat(path.c_str(), &st) == 0 && S_ISREG(st.st_mode);
}

// Fails if a daemon has the filesystem in `source`. On success `*pool_lock`
// holds the old pool's lock (if there is a pool) until the caller drops it.
Status CheckNotInUse(const std::string& source, UniqueFd* pool_lock) {
  const Status in_use = Status::Error(EBUSY, source + " is mounted or in use");
  const std::string pool = PoolPath(source);
  if (IsRegularFile(pool)) {
    UniqueFd fd(open(pool.c_str(), O_RDONLY | O_CLOEXEC));
    if (!fd.valid()) return Errno(pool);
    if (flock(fd.get(), LOCK_EX | LOCK_NB) != 0) {
      if (errno == EWOULDBLOCK) return in_use;
      return Errno(pool + ": flock");
    }
    *pool_lock = std::move(fd);
  }
  // RocksDB's own lock (fcntl, F_WRLCK) on meta/LOCK: only tested, never taken.
  const std::string lock = MetaPath(source) + "/LOCK";
  if (IsRegularFile(lock)) {
    UniqueFd fd(open(lock.c_str(), O_RDONLY | O_CLOEXEC));
    if (!fd.valid()) return Errno(lock);
    struct flock fl {};
    fl.l_type = F_WRLCK;
    fl.l_whence = SEEK_SET;
    if (fcntl(fd.get(), F_GETLK, &fl) != 0) return Errno(lock + ": fcntl(F_GETLK)");
    if (fl.l_type != F_UNLCK) return in_use;
  }
  return Status::Ok();
}

// Does the host filesystem that will hold SOURCE have room for the pool?
// Checked before anything is created, so a refusal changes nothing. With -f
// the old pool's space comes back once it is removed, so it counts as
// available. With --sparse nothing is refused; the caller warns instead.
// `*available` gets the room there is (bytes).
Status CheckHostRoom(const Config& c, uint64_t* available) {
  std::error_code ec;
  std::string where = c.source;
  if (!fs::exists(where, ec)) where = fs::path(c.source).parent_path().string();
  if (where.empty()) where = ".";
  struct statvfs v {};
  if (statvfs(where.c_str(), &v) != 0) return Errno(where + ": statvfs");
  // Root may use the blocks a filesystem keeps back for it.
  uint64_t blocks = geteuid() == 0 ? v.f_bfree : v.f_bavail;
  uint64_t room = blocks * static_cast<uint64_t>(v.f_frsize);
  struct stat st {};
  if (c.force && stat(PoolPath(c.source).c_str(), &st) == 0 && S_ISREG(st.st_mode))
    room += static_cast<uint64_t>(st.st_blocks) * 512;
  *available = room;
  if (c.sparse || c.pool_bytes <= room) return Status::Ok();
  const uint64_t total = static_cast<uint64_t>(v.f_blocks) * v.f_frsize;
  return Status::NoSpace(
      "a " + HumanBytes(c.pool_bytes) + " pool (" + std::to_string(c.pool_bytes) +
      " bytes) does not fit on the filesystem of " + where + ": " + HumanBytes(room) + " (" +
      std::to_string(room) + " bytes) available of " + HumanBytes(total) +
      " (use --sparse to make it anyway, without reserving its space)");
}

// Takes the pool's space on the host filesystem (fallocate), in steps, with
// a progress line on a terminal (tools/common/progress.h; a disk filesystem
// allocates quickly; tmpfs and filesystems without unwritten extents zero
// every page: 4 GiB took 2.4 s on /dev/shm of the development VM, against
// 0.2 s sparse).
Status ReservePool(const Config& c, int fd, const std::string& path) {
  cli::ProgressLine line(kTool.name(), !c.quiet);
  const std::string phase = "reserving " + HumanBytes(c.pool_bytes);
  line.Show(phase, 0);
  for (uint64_t off = 0; off < c.pool_bytes;) {
    const uint64_t n = std::min(kReserveStep, c.pool_bytes - off);
    if (fallocate(fd, 0, static_cast<off_t>(off), static_cast<off_t>(n)) != 0) {
      const int err = errno;
      line.Clear();
      if (err == EOPNOTSUPP)
        return Status::Error(err, path +
                                      ": the host filesystem cannot reserve the pool's space "
                                      "(fallocate: " +
                                      strerror(err) + "); use --sparse to make a sparse pool");
      return Status::Error(err, path + ": cannot reserve " + HumanBytes(c.pool_bytes) +
                                    " for the pool (fallocate at byte " + std::to_string(off) +
                                    ": " + strerror(err) + ")");
    }
    off += n;
    line.Show(phase, static_cast<double>(off) / static_cast<double>(c.pool_bytes));
  }
  return Status::Ok();
}

// Removes, unless dismissed, everything this run created: the pool and the
// metadata store, and SOURCE itself if this run made it.
class Undo {
 public:
  Undo() = default;
  Undo(const Undo&) = delete;
  Undo& operator=(const Undo&) = delete;
  ~Undo() {
    if (!armed_) return;
    for (auto it = paths_.rbegin(); it != paths_.rend(); ++it) Remove(*it, /*all=*/true);
    if (!created_dir_.empty()) Remove(created_dir_, /*all=*/false);
  }

  void AddPath(std::string path) { paths_.push_back(std::move(path)); }
  void SetCreatedDir(std::string dir) { created_dir_ = std::move(dir); }
  void Dismiss() { armed_ = false; }

 private:
  static void Remove(const std::string& path, bool all) {
    std::error_code ec;
    if (all) {
      fs::remove_all(path, ec);
    } else {
      fs::remove(path, ec);
    }
    if (ec)
      fprintf(stderr, "%s: warning: could not remove %s: %s\n", kTool.name(), path.c_str(),
              ec.message().c_str());
  }

  bool armed_ = true;
  std::vector<std::string> paths_;
  std::string created_dir_;
};

// Makes SOURCE an empty-enough directory: creates it, or checks that it is
// empty, or (with -f) clears out the old filesystem's parts.
Status PrepareSource(const Config& c, Undo* undo) {
  std::error_code ec;
  const fs::file_status st = fs::status(c.source, ec);
  if (st.type() == fs::file_type::not_found) {
    if (mkdir(c.source.c_str(), 0700) != 0) return Errno("cannot create " + c.source);
    undo->SetCreatedDir(c.source);
    return Status::Ok();
  }
  if (ec) return FsError(ec, c.source);
  if (!fs::is_directory(st)) return Status::Invalid(c.source + " exists and is not a directory");

  const bool empty = fs::is_empty(c.source, ec);
  if (ec) return FsError(ec, c.source);
  if (empty) return Status::Ok();

  if (!c.force) {
    Superblock old;
    bool used_backup = false;
    const std::string pool = PoolPath(c.source);
    if (IsRegularFile(pool) && ReadPoolSuperblock(pool, &old, &used_backup).ok())
      return Status::Error(EEXIST, c.source + " already contains a daxref filesystem (uuid " +
                                       UuidToString(old.uuid) + "); use -f to overwrite");
    return Status::Error(EEXIST, c.source + " is not empty; use -f to overwrite");
  }

  UniqueFd old_pool_lock;
  DAXREF_RETURN_IF_ERROR(CheckNotInUse(c.source, &old_pool_lock));
  for (const std::string& path : {PoolPath(c.source), MetaPath(c.source)}) {
    fs::remove_all(path, ec);
    if (ec) return FsError(ec, "cannot remove " + path);
  }
  return Status::Ok();
}

// SOURCE and SOURCE/meta 0700, the pool 0600, all owned by the
// filesystem's owner (who ran mkfs.daxref, the owner of its root directory),
// whatever SOURCE was before: the store holds every name, xattr and link
// target in the clear, and the pool every file's bytes. RocksDB makes its
// directory and files by the umask; with meta 0700 its files are out of
// reach whatever their modes.
Status LockDown(const std::string& source) {
  const uid_t uid = getuid();
  const gid_t gid = getgid();
  for (const auto& [path, mode] : {std::pair<std::string, mode_t>{source, 0700},
                                   {MetaPath(source), 0700},
                                   {PoolPath(source), 0600}}) {
    if (chown(path.c_str(), uid, gid) != 0)
      return Errno("cannot make " + path + " owned by uid " + std::to_string(uid));
    if (chmod(path.c_str(), mode) != 0) return Errno("cannot chmod " + path);
  }
  return Status::Ok();
}

// Creates the pool file, sized and with both superblock copies written and
// persisted. `*pool` keeps it open and flock()ed.
Status CreatePool(const Config& c, Undo* undo, UniqueFd* pool, Superblock* sb) {
  const std::string path = PoolPath(c.source);
  *pool = UniqueFd(open(path.c_str(), O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600));
  if (!pool->valid()) return Errno("cannot create " + path);
  undo->AddPath(path);
  if (flock(pool->get(), LOCK_EX | LOCK_NB) != 0) {
    if (errno == EWOULDBLOCK) return Status::Error(EBUSY, c.source + " is mounted or in use");
    return Errno(path + ": flock");
  }
  if (ftruncate(pool->get(), static_cast<off_t>(c.pool_bytes)) != 0)
    return Errno(path + ": cannot size to " + std::to_string(c.pool_bytes) + " bytes");
  if (!c.sparse) DAXREF_RETURN_IF_ERROR(ReservePool(c, pool->get(), path));

  Superblock s;
  s.block_count = c.pool_bytes / kBlockSize;
  DAXREF_RETURN_IF_ERROR(RandomUuid(&s.uuid));
  s.created = static_cast<uint64_t>(time(nullptr));

  std::vector<char> block(kBlockSize);
  EncodeSuperblock(s, block.data());
  DAXREF_RETURN_IF_ERROR(PwriteAll(pool->get(), block.data(), block.size(), 0, path));
  DAXREF_RETURN_IF_ERROR(
      PwriteAll(pool->get(), block.data(), block.size(), (s.block_count - 1) * kBlockSize, path));
  if (fsync(pool->get()) != 0) return Errno(path + ": fsync");
  *sb = s;
  return Status::Ok();
}

// Records the label in the new store's M records (docs/format.md, `Mlabel`),
// synced.
Status StoreLabel(const std::string& meta, const std::string& label) {
  rocksdb::DB* raw = nullptr;
  rocksdb::Status s = rocksdb::DB::Open(StoreOptions(8 << 20), meta, &raw);
  if (!s.ok()) return Status::IOError(meta + ": cannot record the label: " + s.ToString());
  std::unique_ptr<rocksdb::DB> db(raw);
  rocksdb::WriteOptions wo;
  wo.sync = true;
  s = db->Put(wo, keys::Misc(kMiscLabel), label);
  if (s.ok()) s = db->Close();
  if (!s.ok()) return Status::IOError(meta + ": cannot record the label: " + s.ToString());
  return Status::Ok();
}

Status Make(const Config& c, Superblock* sb) {
  uint64_t room = 0;
  DAXREF_RETURN_IF_ERROR(CheckHostRoom(c, &room));
  if (c.sparse)
    fprintf(stderr,
            "%s: warning: the pool is sparse: it takes space on the host filesystem as files "
            "are written, and writes fail with ENOSPC once that is full (%s available now, "
            "pool %s)\n",
            kTool.name(), HumanBytes(room).c_str(), HumanBytes(c.pool_bytes).c_str());
  UniqueFd pool;  // declared first: its lock is held until Undo has run
  Undo undo;
  DAXREF_RETURN_IF_ERROR(PrepareSource(c, &undo));
  DAXREF_RETURN_IF_ERROR(CreatePool(c, &undo, &pool, sb));

  const std::string meta = MetaPath(c.source);
  undo.AddPath(meta);
  // Its messages name the store already.
  DAXREF_RETURN_IF_ERROR(Volume::Create(meta, *sb, Caller{getuid(), getgid()}, 0755));
  if (!c.label.empty()) DAXREF_RETURN_IF_ERROR(StoreLabel(meta, c.label));

  DAXREF_RETURN_IF_ERROR(LockDown(c.source));

  DAXREF_RETURN_IF_ERROR(SyncDir(c.source));
  const std::string parent = fs::path(c.source).parent_path().string();
  if (!parent.empty()) DAXREF_RETURN_IF_ERROR(SyncDir(parent));
  undo.Dismiss();
  return Status::Ok();
}

int Main(int argc, char** argv) {
  RawArgs raw;
  if (Status s = ParseArgs(argc, argv, &raw); !s.ok()) return kTool.Usage(s.message());
  if (raw.help) {
    PrintHelp(stdout);
    return 0;
  }
  if (raw.version) return kTool.PrintVersion();
  // A value that parses but is wrong: one line, no hint.
  Result<Config> config = Validate(raw);
  if (!config.ok()) return kTool.FailWith(cli::kExitUsage, config.status().message());

  Superblock sb;
  if (Status s = Make(*config, &sb); !s.ok()) return kTool.Fail(s.message());
  Geometry g = GeometryOf(config->source, sb);
  g.label = config->label;
  if (config->json) {
    fputs(FormatGeometryJson(g).c_str(), stdout);
  } else if (!config->quiet) {
    fputs(FormatGeometry(g).c_str(), stdout);
  }
  if (fflush(stdout) != 0 || ferror(stdout)) {
    return kTool.Fail("error writing to stdout", errno);
  }
  return 0;
}

}  // namespace
}  // namespace daxref

int main(int argc, char** argv) {
  // Nothing below throws on purpose (std::filesystem is used through its
  // error_code overloads); this catches what is left, such as bad_alloc.
  try {
    return daxref::Main(argc, argv);
  } catch (const std::exception& e) {
    fprintf(stderr, "mkfs.daxref: %s\n", e.what());
    return 1;
  }
}
