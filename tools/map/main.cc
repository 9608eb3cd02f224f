// daxref-map: who shares what on a daxref mount, from the daemon's query
// ioctls (include/daxref/ioctl.h).
//
//   extents FILE                  a file's extent map with sharing (like
//                                 xfs_io -c "fiemap -v", filefrag -v)
//   owners PATH PHYSICAL [LENGTH] every file that owns pool blocks in the range,
//                                 with its paths (like xfs_io -c fsmap plus
//                                 btrfs inspect-internal logical-resolve);
//                                 the same answer, in the same form, as
//                                 daxref-poison resolve
//                                 (tools/common/owner_report.h)
//
// Both print as the daemon's pages arrive and keep nothing but the page in
// hand and the owner being printed, paths included: a pool block can have
// millions of owners. The paths of the last inode printed are kept too,
// when they came in a single page, since consecutive owners are often the
// same file.
//
// Exit status: 0 success, 1 failure, 2 usage error.

#include <daxref/ioctl.h>
#include <fcntl.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cinttypes>
#include <cstdio>
#include <cstring>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "admin/control_protocol.h"
#include "base/unique_fd.h"
#include "tools/common/cli.h"
#include "tools/common/owner_report.h"

namespace daxref {
namespace {

constexpr cli::Tool kTool("daxref-map", cli::kExitUsage, cli::kExitFailure);

void PrintHelp() {
  printf(
      "Usage: %s [OPTIONS] extents FILE\n"
      "       %s [OPTIONS] owners PATH PHYSICAL [LENGTH]\n"
      "\n"
      "Show how files share blocks on a daxref mount.\n"
      "\n"
      "Commands:\n"
      "  extents FILE            FILE's extents: file range, pool range, length,\n"
      "                          references to the blocks and flags (shared, last),\n"
      "                          and the holes between them\n"
      "  owners PATH PHYSICAL [LENGTH]\n"
      "                          every owner of the pool blocks behind bytes\n"
      "                          [PHYSICAL, PHYSICAL+LENGTH): inode, file bytes,\n"
      "                          pool blocks and the inode's paths, as\n"
      "                          daxref-poison resolve prints them; PATH is the\n"
      "                          mount or any file or directory on it. Root or\n"
      "                          the user who mounted the filesystem only\n"
      "\n"
      "Options:\n"
      "      --json              print one JSON document (raw numbers)\n"
      "      --blocks            owners: PHYSICAL and LENGTH are in filesystem\n"
      "                          blocks (4096 bytes), not bytes\n"
      "  -h, --help              show this help and exit\n"
      "  -V, --version           print the version and exit\n"
      "\n"
      "PHYSICAL and LENGTH are bytes (or blocks with --blocks), optionally\n"
      "followed by K, M, G or T (powers of 1024); LENGTH defaults to one block.\n"
      "owners names pool places in blocks and file places in bytes; extents\n"
      "gives both in bytes. Ranges are inclusive, first..last.\n"
      "\n"
      "Exit status: 0 success, 1 failure, 2 usage error.\n",
      kTool.name(), kTool.name());
}

// The ABI's __u64 is unsigned long long; PRIu64 wants uint64_t.
uint64_t U(__u64 v) {
  return v;
}

const char* kAdminHint = " (root or the mount's owner only)";

std::string Range(uint64_t first, uint64_t length) {
  return "[" + std::to_string(first) + ".." + std::to_string(first + length - 1) + "]";
}

// Opens a file or directory on a daxref mount without side effects (no
// device, FIFO or terminal is opened) and reads the daemon's info.
bool OpenOnDaxref(const std::string& path, bool regular_only, UniqueFd* fd, struct stat* st,
                  daxref_info* info) {
  if (stat(path.c_str(), st) != 0) return kTool.Fail(path, errno), false;
  if (regular_only && S_ISDIR(st->st_mode)) return kTool.Fail(path, EISDIR), false;
  if (!S_ISREG(st->st_mode) && !S_ISDIR(st->st_mode))
    return kTool.Fail(path + (regular_only ? ": not a regular file"
                                           : ": not a regular file or directory")),
           false;
  *fd = UniqueFd(open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK));
  // The queries need a descriptor, not read access: a write-only file will do.
  if (!fd->valid() && errno == EACCES && S_ISREG(st->st_mode))
    *fd = UniqueFd(open(path.c_str(), O_WRONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK));
  if (!fd->valid()) return kTool.Fail(path, errno), false;
  if (fstat(fd->get(), st) != 0) return kTool.Fail(path, errno), false;
  if (ioctl(fd->get(), DAXREF_IOC_INFO, info) != 0 || info->magic != DAXREF_INFO_MAGIC)
    return kTool.Fail(path + ": not on a daxref filesystem"), false;
  return true;
}

// ---- extents ---------------------------------------------------------------

class ExtentPrinter {
 public:
  ExtentPrinter(const std::string& path, bool json) : json_(json) {
    if (json_)
      printf("{\"file\": %s, \"extents\": [", cli::Json(path).c_str());
    else
      printf("%s:\n %4s %-27s %-27s %12s %6s  %s\n", cli::Printable(path).c_str(),
             "EXT:", "FILE-OFFSET", "POOL-OFFSET", "LENGTH", "REFS", "FLAGS");
  }

  void Hole(uint64_t logical, uint64_t length) {
    if (json_) {
      printf("%s\n  {\"type\": \"hole\", \"logical\": %" PRIu64 ", \"length\": %" PRIu64 "}", Sep(),
             logical, length);
    } else {
      printf(" %4s %-27s %-27s %12" PRIu64 "\n", (std::to_string(index_) + ":").c_str(),
             Range(logical, length).c_str(), "hole", length);
    }
    ++index_;
  }

  void Extent(const daxref_extent& e) {
    std::string flags;
    if (e.flags & DAXREF_EXTENT_SHARED) flags = "shared";
    if (e.flags & DAXREF_EXTENT_LAST) flags += flags.empty() ? "last" : ",last";
    if (json_) {
      std::string list;
      if (e.flags & DAXREF_EXTENT_SHARED) list = "\"shared\"";
      if (e.flags & DAXREF_EXTENT_LAST) list += list.empty() ? "\"last\"" : ", \"last\"";
      printf("%s\n  {\"type\": \"data\", \"logical\": %" PRIu64 ", \"physical\": %" PRIu64
             ", \"length\": %" PRIu64 ", \"refcount\": %" PRIu32 ", \"flags\": [%s]}",
             Sep(), U(e.logical), U(e.physical), U(e.length), e.refcount, list.c_str());
    } else {
      printf(" %4s %-27s %-27s %12" PRIu64 " %6" PRIu32 "%s%s\n",
             (std::to_string(index_) + ":").c_str(), Range(e.logical, e.length).c_str(),
             Range(e.physical, e.length).c_str(), U(e.length), e.refcount,
             flags.empty() ? "" : "  ", flags.c_str());
    }
    ++index_;
    ++extents_;
    bytes_ += e.length;
    if (e.flags & DAXREF_EXTENT_SHARED) shared_ += e.length;
  }

  void Finish(uint64_t size) {
    if (json_)
      printf("\n], \"size\": %" PRIu64 ", \"extent_count\": %" PRIu64 ", \"bytes\": %" PRIu64
             ", \"shared_bytes\": %" PRIu64 "}\n",
             size, extents_, bytes_, shared_);
    else
      printf("%" PRIu64 " extent%s, %" PRIu64 " bytes, %" PRIu64 " bytes shared\n", extents_,
             extents_ == 1 ? "" : "s", bytes_, shared_);
  }

 private:
  const char* Sep() { return index_ == 0 ? "" : ","; }

  bool json_;
  uint64_t index_ = 0, extents_ = 0, bytes_ = 0, shared_ = 0;
};

int Extents(const std::string& path, bool json) {
  UniqueFd fd;
  struct stat st;
  daxref_info info{};
  if (!OpenOnDaxref(path, true, &fd, &st, &info)) return cli::kExitFailure;
  const uint64_t size = static_cast<uint64_t>(st.st_size);
  auto q = std::make_unique<daxref_extent_query>();
  ExtentPrinter out(path, json);
  uint64_t start = 0, pos = 0;
  for (;;) {
    memset(q.get(), 0, offsetof(daxref_extent_query, extents));
    q->start = start;
    q->length = 0;  // to the end of the file
    if (ioctl(fd.get(), DAXREF_IOC_EXTENTS, q.get()) != 0)
      return kTool.Fail(path + ": extents", errno);
    if (q->count > DAXREF_EXTENTS_PER_CALL) return kTool.Fail(path + ": extents", EPROTO);
    for (uint32_t i = 0; i < q->count; ++i) {
      const daxref_extent& e = q->extents[i];
      if (e.logical > pos) out.Hole(pos, e.logical - pos);
      out.Extent(e);
      pos = e.logical + e.length;
    }
    if (!(q->flags & DAXREF_QUERY_MORE)) break;
    if (q->count == 0 || q->next <= start) return kTool.Fail(path + ": extents", EPROTO);
    start = q->next;
  }
  if (size > pos) out.Hole(pos, size - pos);
  out.Finish(size);
  return 0;
}

// ---- owners ----------------------------------------------------------------

// The paths of inodes, one page (DAXREF_IOC_PATHS) at a time.
class PathFinder {
 public:
  explicit PathFinder(int fd) : fd_(fd), q_(std::make_unique<daxref_paths_query>()) {}

  // Calls fn(path) for every path of ino. Returns 0, or the errno of the
  // query (ENOENT: the inode is gone). A path too long for a page is given as
  // nullptr.
  template <typename Fn>
  int ForEach(uint64_t ino, Fn fn) {
    if (cached_ && cached_ino_ == ino) {
      for (const std::string& p : cache_) fn(&p);
      return 0;
    }
    cached_ = false;
    cache_.clear();
    uint32_t skip = 0;
    for (bool first = true;; first = false) {
      memset(q_.get(), 0, offsetof(daxref_paths_query, buf));
      q_->ino = ino;
      q_->skip = skip;
      if (ioctl(fd_, DAXREF_IOC_PATHS, q_.get()) != 0) {
        if (errno != ENAMETOOLONG) return errno;
        fn(nullptr);
        ++skip;
        continue;
      }
      if (q_->bytes > DAXREF_PATHS_BYTES) return EPROTO;
      std::string_view buf(q_->buf, q_->bytes);
      for (uint32_t i = 0; i < q_->count && !buf.empty(); ++i) {
        size_t nul = buf.find('\0');
        if (nul == std::string_view::npos) return EPROTO;
        std::string path(buf.substr(0, nul));
        fn(&path);
        if (first && !(q_->flags & DAXREF_QUERY_MORE)) cache_.push_back(std::move(path));
        buf.remove_prefix(nul + 1);
      }
      if (!(q_->flags & DAXREF_QUERY_MORE)) {
        cached_ = first;
        cached_ino_ = ino;
        return 0;
      }
      if (q_->count == 0) return EPROTO;
      skip += q_->count;
    }
  }

 private:
  int fd_;
  std::unique_ptr<daxref_paths_query> q_;
  bool cached_ = false;
  uint64_t cached_ino_ = 0;
  std::vector<std::string> cache_;
};

int Owners(const std::string& path, const std::string& physical_text,
           const std::string& length_text, bool json, bool blocks) {
  uint64_t physical = 0, length = 0;
  std::string error;
  if (!cli::ParseSize(physical_text, "PHYSICAL", &physical, &error)) return kTool.Usage(error);
  // LENGTH defaults to one block, as for daxref-poison resolve.
  const bool one_block = length_text.empty();
  if (!one_block && !cli::ParseSize(length_text, "LENGTH", &length, &error))
    return kTool.Usage(error);
  if (!one_block && length == 0) return kTool.Usage("LENGTH must be more than 0");
  UniqueFd fd;
  struct stat st;
  daxref_info info{};
  if (!OpenOnDaxref(path, false, &fd, &st, &info)) return cli::kExitFailure;
  const uint64_t bs = info.block_size;
  if (one_block) length = blocks ? 1 : bs;
  if (blocks) {
    if (physical > UINT64_MAX / bs || length > UINT64_MAX / bs)
      return kTool.Fail("PHYSICAL or LENGTH is too large");
    physical *= bs;
    length *= bs;
  }
  const uint64_t pool_bytes = info.pool_blocks * bs;
  if (physical >= pool_bytes)
    return kTool.Fail("PHYSICAL " + std::to_string(physical) + " is past the end of the pool (" +
                      std::to_string(pool_bytes) + " bytes)");
  if (length > pool_bytes - physical) length = pool_bytes - physical;
  // The pool blocks the bytes touch: what the daemon walks, and what each
  // owner is clipped to, as daxref-poison resolve does.
  const uint64_t pb0 = physical / bs, pb1 = (physical + length + bs - 1) / bs;

  auto q = std::make_unique<daxref_owner_query>();
  PathFinder paths(fd.get());
  cli::OwnersQueryPrinter out("owners", pb0, pb1 - pb0, json);
  uint64_t count = 0;
  bool failed = false;
  uint32_t flags = 0;
  daxref_owner cursor{};
  for (;;) {
    memset(q.get(), 0, offsetof(daxref_owner_query, owners));
    q->physical = physical;
    q->length = length;
    q->cursor = cursor;
    q->flags = flags;
    if (ioctl(fd.get(), DAXREF_IOC_OWNERS, q.get()) != 0) {
      const int err = errno;
      out.Failed(err, strerror(err));
      return kTool.Fail("owners", err, err == EPERM ? kAdminHint : "");
    }
    if (q->count > DAXREF_OWNERS_PER_CALL) return kTool.Fail("owners", EPROTO);
    for (uint32_t i = 0; i < q->count; ++i) {
      const daxref_owner& o = q->owners[i];
      // The reverse-map record, clipped to the blocks asked about. The reply
      // is checked before it is used: whole blocks, inside the pool, and
      // overlapping what was asked (else the clipping below would wrap).
      if (o.length == 0 || o.physical % bs != 0 || o.length % bs != 0 || o.length > pool_bytes ||
          o.physical > pool_bytes - o.length)
        return kTool.Fail("owners", EPROTO);
      const uint64_t r0 = o.physical / bs, r1 = (o.physical + o.length) / bs;
      const uint64_t c0 = std::max(r0, pb0), c1 = std::min(r1, pb1);
      if (c1 <= c0) return kTool.Fail("owners", EPROTO);
      const uint64_t offset = o.logical + (c0 - r0) * bs;
      control::Record r("owner");
      r.Add("ino", U(o.ino)).Add("pblock", c0).Add("blocks", c1 - c0);
      r.Add("offset", offset).Add("length", (c1 - c0) * bs);
      bool too_long = false;
      int err = paths.ForEach(o.ino, [&](const std::string* p) {
        if (p)
          r.Add("path", *p);
        else
          too_long = true;
      });
      if (err == ENOENT)
        r.Add("paths_error", "the inode was deleted meanwhile");
      else if (err != 0)
        r.Add("paths_error", strerror(err));
      else if (too_long)
        r.Add("paths_error", "a path too long to show");
      if (err == EPERM) {
        out.Failed(err, strerror(err));
        return kTool.Fail("owners: paths", err, kAdminHint);
      }
      out.Owner(r);
      failed |= err != 0 && err != ENOENT;
      ++count;
    }
    if (!(q->flags & DAXREF_QUERY_MORE)) break;
    if (q->count == 0) return kTool.Fail("owners", EPROTO);
    cursor = q->cursor;
    flags = DAXREF_QUERY_MORE;
  }
  out.Done(count);
  return failed ? cli::kExitFailure : 0;
}

int Main(int argc, char** argv) {
  enum { kOptBlocks = cli::kOptJson + 1 };
  bool json = false, blocks = false;
  if (std::optional<int> exit = kTool.ParseOptions(
          argc, argv, "", {cli::kJsonOption, {"blocks", no_argument, nullptr, kOptBlocks}},
          PrintHelp, [&](int opt, const char*) {
            json |= opt == cli::kOptJson;
            blocks |= opt == kOptBlocks;
          }))
    return *exit;
  if (optind >= argc) return kTool.Usage("missing COMMAND (extents or owners)");
  const std::string command = argv[optind];
  const std::vector<std::string> args(argv + optind + 1, argv + argc);
  if (command == "extents") {
    if (blocks) return kTool.Usage("--blocks applies to owners only");
    if (args.size() != 1) return kTool.Usage("usage: extents FILE");
    return Extents(args[0], json);
  }
  if (command == "owners") {
    if (args.size() < 2 || args.size() > 3)
      return kTool.Usage("usage: owners PATH PHYSICAL [LENGTH]");
    return Owners(args[0], args[1], args.size() == 3 ? args[2] : "", json, blocks);
  }
  return kTool.Usage("unknown command '" + command + "' (extents or owners)");
}

}  // namespace
}  // namespace daxref

int main(int argc, char** argv) {
  return daxref::Main(argc, argv);
}
