// daxref-map: who shares what on a daxref mount, from the daemon's query
// ioctls (include/daxref/ioctl.h).
//
//   extents [-r OFF LEN] [-c] FILE
//                                 a file's extent map with sharing (like
//                                 xfs_io -c "fiemap -v", filefrag -v), of a
//                                 range, or only counted
//   fsmap FS [PHYSICAL [LENGTH]]  the pool, range by range: reserved, free,
//                                 bad, and each owner (like xfs_io -c fsmap)
//   owners PATH PHYSICAL [LENGTH] every file that owns pool blocks in the range,
//                                 with its paths (like xfs_io -c fsmap plus
//                                 btrfs inspect-internal logical-resolve);
//                                 the same answer, in the same form, as
//                                 daxref-poison resolve
//                                 (tools/common/owner_report.h)
//
// extents uses the daemon's query ioctls on the file. fsmap asks the daemon
// over SOURCE/control, and owners through DAXREF_IOC_OWNERS; on an
// unmounted SOURCE both read the store read-only (admin/fs_report.h).
//
// All print as the daemon's pages arrive and keep nothing but the page in
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

#include "admin/control_client.h"
#include "admin/control_protocol.h"
#include "admin/fs_report.h"
#include "base/unique_fd.h"
#include "meta/format.h"
#include "tools/common/cli.h"
#include "tools/common/offline_store.h"
#include "tools/common/owner_report.h"
#include "tools/poison/locate.h"

namespace daxref {
namespace {

constexpr cli::Tool kTool("daxref-map", cli::kExitUsage, cli::kExitFailure);

// The version of every JSON document daxref-map prints (its
// "format_version" field, daxref-map(8)): raised when a field changes
// meaning or goes away; new fields do not raise it.
constexpr int kJsonVersion = 1;

void PrintHelp() {
  printf(
      "Usage: %s [OPTIONS] extents [-r OFFSET LENGTH] FILE\n"
      "       %s [OPTIONS] fsmap FS [PHYSICAL [LENGTH]]\n"
      "       %s [OPTIONS] owners PATH PHYSICAL [LENGTH]\n"
      "\n"
      "Show how files share blocks on a daxref filesystem.\n"
      "\n"
      "Commands:\n"
      "  extents FILE            FILE's extents: file range, pool range, length,\n"
      "                          references to the blocks and flags (shared, last),\n"
      "                          and the holes between them; any user may ask\n"
      "                          about a file they can open\n"
      "  fsmap FS [PHYSICAL [LENGTH]]\n"
      "                          the pool (or the range given), in pool order:\n"
      "                          reserved blocks (the superblock copies), free\n"
      "                          ranges, bad ranges and every owner's range (inode\n"
      "                          and file offset); FS is the mount or its SOURCE.\n"
      "                          Root or the user who mounted the filesystem only\n"
      "  owners PATH PHYSICAL [LENGTH]\n"
      "                          every owner of the pool blocks behind bytes\n"
      "                          [PHYSICAL, PHYSICAL+LENGTH): inode, file bytes,\n"
      "                          pool blocks and the inode's paths, as\n"
      "                          daxref-poison resolve prints them; PATH is the\n"
      "                          mount, any file or directory on it, or an\n"
      "                          unmounted SOURCE. Root or the user who mounted\n"
      "                          the filesystem only\n"
      "\n"
      "Options:\n"
      "      --json              print one JSON document (raw numbers)\n"
      "      --blocks            PHYSICAL, LENGTH, OFFSET and what extents and\n"
      "                          fsmap print are in filesystem blocks (4096\n"
      "                          bytes), not bytes\n"
      "  -r, --range OFFSET LENGTH\n"
      "                          extents: only the extents and holes of file\n"
      "                          bytes [OFFSET, OFFSET+LENGTH), clipped to it\n"
      "  -c, --count             extents: print only the totals (extent count,\n"
      "                          bytes mapped and shared)\n"
      "  -h, --help              show this help and exit\n"
      "  -V, --version           print the version and exit\n"
      "\n"
      "Numbers are bytes (or blocks with --blocks), optionally followed by K, M,\n"
      "G or T (powers of 1024); LENGTH defaults to one block for owners and to\n"
      "the end for fsmap. owners names pool places in blocks and file places in\n"
      "bytes; fsmap names both in bytes unless --blocks. Ranges are inclusive,\n"
      "first..last.\n"
      "\n"
      "Exit status: 0 success, 1 failure, 2 usage error.\n",
      kTool.name(), kTool.name(), kTool.name());
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

struct ExtentsRequest {
  std::string path;
  bool json = false;
  bool blocks = false;              // print in blocks
  bool count = false;               // totals only
  bool ranged = false;              // -r
  uint64_t offset = 0, length = 0;  // -r, in bytes (length > 0)
};

class ExtentPrinter {
 public:
  ExtentPrinter(const ExtentsRequest& rq, uint64_t block_size) : rq_(rq), bs_(block_size) {
    if (rq_.count) return;
    if (rq_.json) {
      printf("{\"format_version\": %d, \"file\": %s, \"units\": \"%s\", \"block_size\": %" PRIu64,
             kJsonVersion, cli::Json(rq_.path).c_str(), rq_.blocks ? "blocks" : "bytes", bs_);
      PrintJsonRange();
      printf(", \"extents\": [");
    } else {
      printf("%s:\n %4s %-27s %-27s %12s %6s  %s\n", cli::Printable(rq_.path).c_str(),
             "EXT:", rq_.blocks ? "FILE-BLOCKS" : "FILE-OFFSET",
             rq_.blocks ? "POOL-BLOCKS" : "POOL-OFFSET", "LENGTH", "REFS", "FLAGS");
    }
  }

  void Hole(uint64_t logical, uint64_t length) {
    if (rq_.count) return;
    const uint64_t l = Start(logical), n = Len(logical, length);
    if (rq_.json) {
      printf("%s\n  {\"type\": \"hole\", \"logical\": %" PRIu64 ", \"length\": %" PRIu64 "}", Sep(),
             l, n);
    } else {
      printf(" %4s %-27s %-27s %12" PRIu64 "\n", (std::to_string(index_) + ":").c_str(),
             Range(l, n).c_str(), "hole", n);
    }
    ++index_;
  }

  void Extent(const daxref_extent& e) {
    ++extents_;
    bytes_ += e.length;
    if (e.flags & DAXREF_EXTENT_SHARED) shared_ += e.length;
    if (rq_.count) return;
    std::string flags;
    if (e.flags & DAXREF_EXTENT_SHARED) flags = "shared";
    if (e.flags & DAXREF_EXTENT_LAST) flags += flags.empty() ? "last" : ",last";
    const uint64_t l = Start(e.logical), p = Start(e.physical), n = Len(e.logical, e.length);
    if (rq_.json) {
      std::string list;
      if (e.flags & DAXREF_EXTENT_SHARED) list = "\"shared\"";
      if (e.flags & DAXREF_EXTENT_LAST) list += list.empty() ? "\"last\"" : ", \"last\"";
      printf("%s\n  {\"type\": \"data\", \"logical\": %" PRIu64 ", \"physical\": %" PRIu64
             ", \"length\": %" PRIu64 ", \"refcount\": %" PRIu32 ", \"flags\": [%s]}",
             Sep(), l, p, n, e.refcount, list.c_str());
    } else {
      printf(" %4s %-27s %-27s %12" PRIu64 " %6" PRIu32 "%s%s\n",
             (std::to_string(index_) + ":").c_str(), Range(l, n).c_str(), Range(p, n).c_str(), n,
             e.refcount, flags.empty() ? "" : "  ", flags.c_str());
    }
    ++index_;
  }

  void Finish(uint64_t size) {
    const uint64_t blocks = (bytes_ + bs_ - 1) / bs_, shared_blocks = (shared_ + bs_ - 1) / bs_;
    if (rq_.json) {
      if (rq_.count) {
        printf("{\"format_version\": %d, \"file\": %s, \"units\": \"%s\", \"block_size\": %" PRIu64,
               kJsonVersion, cli::Json(rq_.path).c_str(), rq_.blocks ? "blocks" : "bytes", bs_);
        PrintJsonRange();
      } else {
        printf("\n]");
      }
      printf(", \"size\": %" PRIu64 ", \"extent_count\": %" PRIu64 ", \"bytes\": %" PRIu64
             ", \"shared_bytes\": %" PRIu64 ", \"blocks\": %" PRIu64 ", \"shared_blocks\": %" PRIu64
             "}\n",
             size, extents_, bytes_, shared_, blocks, shared_blocks);
    } else if (rq_.blocks) {
      printf("%s%" PRIu64 " extent%s, %" PRIu64 " block%s, %" PRIu64 " block%s shared\n",
             rq_.count ? (cli::Printable(rq_.path) + ": ").c_str() : "", extents_,
             extents_ == 1 ? "" : "s", blocks, blocks == 1 ? "" : "s", shared_blocks,
             shared_blocks == 1 ? "" : "s");
    } else {
      printf("%s%" PRIu64 " extent%s, %" PRIu64 " bytes, %" PRIu64 " bytes shared\n",
             rq_.count ? (cli::Printable(rq_.path) + ": ").c_str() : "", extents_,
             extents_ == 1 ? "" : "s", bytes_, shared_);
    }
  }

 private:
  const char* Sep() { return index_ == 0 ? "" : ","; }
  void PrintJsonRange() {
    if (rq_.ranged)
      printf(", \"range\": {\"offset\": %" PRIu64 ", \"length\": %" PRIu64 "}", Start(rq_.offset),
             Len(rq_.offset, rq_.length));
    else
      printf(", \"range\": null");
  }
  // In the units asked for: a start rounds down, a length covers every
  // block the bytes [start, start+len) touch.
  uint64_t Start(uint64_t v) const { return rq_.blocks ? v / bs_ : v; }
  uint64_t Len(uint64_t start, uint64_t len) const {
    return rq_.blocks ? (start + len + bs_ - 1) / bs_ - start / bs_ : len;
  }

  const ExtentsRequest& rq_;
  uint64_t bs_;
  uint64_t index_ = 0, extents_ = 0, bytes_ = 0, shared_ = 0;
};

int Extents(ExtentsRequest rq) {
  UniqueFd fd;
  struct stat st;
  daxref_info info{};
  if (!OpenOnDaxref(rq.path, true, &fd, &st, &info)) return cli::kExitFailure;
  const uint64_t bs = info.block_size;
  if (rq.blocks && rq.ranged) {
    if (rq.offset > UINT64_MAX / bs || rq.length > UINT64_MAX / bs)
      return kTool.Fail("OFFSET or LENGTH is too large");
    rq.offset *= bs;
    rq.length *= bs;
  }
  const uint64_t size = static_cast<uint64_t>(st.st_size);
  // The bytes looked at: [lo, hi) (the whole file without -r).
  const uint64_t lo = rq.ranged ? rq.offset : 0;
  const uint64_t hi = !rq.ranged                           ? UINT64_MAX
                      : rq.length > UINT64_MAX - rq.offset ? UINT64_MAX
                                                           : rq.offset + rq.length;
  auto q = std::make_unique<daxref_extent_query>();
  ExtentPrinter out(rq, bs);
  uint64_t start = lo, pos = lo;
  for (;;) {
    memset(q.get(), 0, offsetof(daxref_extent_query, extents));
    q->start = start;
    q->length = hi == UINT64_MAX ? 0 : hi - start;  // 0: to the end of the file
    if (ioctl(fd.get(), DAXREF_IOC_EXTENTS, q.get()) != 0)
      return kTool.Fail(rq.path + ": extents", errno);
    if (q->count > DAXREF_EXTENTS_PER_CALL) return kTool.Fail(rq.path + ": extents", EPROTO);
    for (uint32_t i = 0; i < q->count; ++i) {
      daxref_extent e = q->extents[i];
      // Clipped to the range (the daemon returns whole extents that overlap it).
      uint64_t e0 = U(e.logical), e1 = U(e.logical) + U(e.length);
      if (e1 <= lo || e0 >= hi || e1 <= e0) continue;
      if (e0 < lo) {
        e.physical += lo - e0;
        e0 = lo;
      }
      if (e1 > hi) e1 = hi;
      e.logical = e0;
      e.length = e1 - e0;
      if (e0 > pos) out.Hole(pos, e0 - pos);
      out.Extent(e);
      pos = e1;
    }
    if (!(q->flags & DAXREF_QUERY_MORE)) break;
    if (q->count == 0 || q->next <= start) return kTool.Fail(rq.path + ": extents", EPROTO);
    start = q->next;
    if (start >= hi) break;
  }
  const uint64_t end = std::min(size, hi);
  if (end > pos) out.Hole(pos, end - pos);
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

// PHYSICAL and LENGTH as typed, and what they name in a pool of `pool_blocks`.
struct PoolRange {
  std::string physical_text, length_text;
  bool blocks = false;                // --blocks
  bool default_to_end = false;        // no LENGTH: to the end of the pool (fsmap), else one block
  uint64_t physical = 0, length = 0;  // bytes, once Fit
  uint64_t pb0 = 0, pb1 = 0;          // the pool blocks they touch

  // Usage errors: false with *error set.
  bool Parse(std::string* error) {
    if (!cli::ParseSize(physical_text, "PHYSICAL", &physical, error)) return false;
    if (length_text.empty()) return true;
    if (!cli::ParseSize(length_text, "LENGTH", &length, error)) return false;
    if (length == 0) return *error = "LENGTH must be more than 0", false;
    return true;
  }
  // Failures (the range against the pool): false with *error set.
  bool Fit(uint64_t bs, uint64_t pool_blocks, std::string* error) {
    if (length_text.empty()) length = default_to_end ? UINT64_MAX : blocks ? 1 : bs;
    if (blocks) {
      if (physical > UINT64_MAX / bs || (length != UINT64_MAX && length > UINT64_MAX / bs))
        return *error = "PHYSICAL or LENGTH is too large", false;
      physical *= bs;
      if (length != UINT64_MAX) length *= bs;
    }
    const uint64_t pool_bytes = pool_blocks * bs;
    if (physical >= pool_bytes)
      return *error = "PHYSICAL " + std::to_string(physical) + " is past the end of the pool (" +
                      std::to_string(pool_bytes) + " bytes)",
             false;
    if (length > pool_bytes - physical) length = pool_bytes - physical;
    // The pool blocks the bytes touch: what is walked, and what each owner
    // is clipped to, as daxref-poison resolve does.
    pb0 = physical / bs;
    pb1 = (physical + length + bs - 1) / bs;
    return true;
  }
};

// owners on an unmounted SOURCE: the reverse map and the parent pointers of
// the store, read-only; the same records, so the same report.
int OwnersOffline(const std::string& source, PoolRange range, bool json) {
  Result<std::unique_ptr<OfflineStore>> store = OfflineStore::Open(source);
  if (!store.ok()) return kTool.Fail(store.status().message());
  const Superblock& sb = (*store)->superblock();
  const uint64_t bs = sb.block_size;
  std::string error;
  if (!range.Fit(bs, sb.block_count, &error)) return kTool.Fail(error);
  cli::OwnersQueryPrinter out("owners", range.pb0, range.pb1 - range.pb0, json);
  uint64_t count = 0;
  Status paths_failed = Status::Ok();
  Status s = WalkFsmap((*store)->db(), sb, range.pb0, range.pb1, [&](const FsmapRow& row) {
    if (row.kind != FsmapRow::kOwner) return true;
    control::Record r("owner");
    r.Add("ino", row.ino).Add("pblock", row.pblock).Add("blocks", row.len);
    r.Add("offset", row.fblock * bs).Add("length", row.len * bs);
    Status ps = WalkStorePaths((*store)->db(), row.ino, [&](const std::string& p) {
      r.Add("path", p);
      return true;
    });
    if (!ps.ok()) {
      r.Add("paths_error", ps.message());
      paths_failed = ps;
    }
    out.Owner(r);
    ++count;
    return true;
  });
  if (!s.ok()) {
    out.Failed(static_cast<uint64_t>(s.err()), s.message());
    return kTool.Fail(MetaPath(source) + ": " + s.message());
  }
  out.Done(count);
  return paths_failed.ok() ? 0 : cli::kExitFailure;
}

int Owners(const std::string& path, PoolRange range, bool json) {
  std::string error;
  if (!range.Parse(&error)) return kTool.Usage(error);
  // An unmounted SOURCE is read directly; a mounted one is asked through
  // its mount.
  std::string on = path;
  if (poison::IsSourceDirectory(path)) {
    Result<poison::Location> loc = poison::LocateFilesystem(path);
    if (!loc.ok()) return kTool.Fail(loc.status().message());
    if (loc->mount_point.empty()) return OwnersOffline(loc->source, std::move(range), json);
    on = loc->mount_point;
  }
  UniqueFd fd;
  struct stat st;
  daxref_info info{};
  if (!OpenOnDaxref(on, false, &fd, &st, &info)) return cli::kExitFailure;
  const uint64_t bs = info.block_size;
  if (!range.Fit(bs, info.pool_blocks, &error)) return kTool.Fail(error);
  const uint64_t physical = range.physical, length = range.length;
  const uint64_t pb0 = range.pb0, pb1 = range.pb1;
  const uint64_t pool_bytes = info.pool_blocks * bs;

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

// ---- fsmap -------------------------------------------------------------------

// The rows of the pool-wide map, printed as they come (xfs_io -c fsmap's
// shape: extent number, pool range, owner, file range, length). Nothing is
// printed before the first row or the end, so that a map refused at once
// leaves standard output empty.
class FsmapPrinter {
 public:
  FsmapPrinter(bool json, bool blocks, uint64_t bs, const PoolRange& range)
      : json_(json), blocks_(blocks), bs_(bs), range_(range) {}

  void Begin() {
    if (begun_) return;
    begun_ = true;
    const PoolRange& range = range_;
    if (json_) {
      printf("{\"format_version\": %d, \"units\": \"%s\", \"block_size\": %" PRIu64
             ", \"range\": {\"physical\": %" PRIu64 ", \"length\": %" PRIu64 "}, \"rows\": [",
             kJsonVersion, blocks_ ? "blocks" : "bytes", bs_, In(range.pb0 * bs_),
             In((range.pb1 - range.pb0) * bs_));
    } else {
      printf(" %5s %-31s %-16s %-31s %12s\n", "EXT:", blocks_ ? "POOL-BLOCKS" : "POOL-OFFSET",
             "OWNER", blocks_ ? "FILE-BLOCKS" : "FILE-OFFSET", "LENGTH");
    }
  }

  void Row(const FsmapRow& row) {
    Begin();
    const uint64_t p = In(row.pblock * bs_), n = In(row.len * bs_), l = In(row.fblock * bs_);
    if (json_) {
      printf("%s\n  {\"kind\": \"%s\", \"physical\": %" PRIu64 ", \"length\": %" PRIu64,
             rows_ ? "," : "", FsmapKindName(row.kind), p, n);
      if (row.kind == FsmapRow::kOwner)
        printf(", \"ino\": %" PRIu64 ", \"logical\": %" PRIu64, row.ino, l);
      printf("}");
    } else {
      std::string owner = row.kind == FsmapRow::kOwner      ? "inode " + std::to_string(row.ino)
                          : row.kind == FsmapRow::kFree     ? "free space"
                          : row.kind == FsmapRow::kReserved ? "superblock"
                                                            : "bad blocks";
      printf(" %5s %-31s %-16s %-31s %12" PRIu64 "\n", (std::to_string(rows_) + ":").c_str(),
             Range(p, n).c_str(), owner.c_str(),
             row.kind == FsmapRow::kOwner ? Range(l, n).c_str() : "", n);
    }
    ++rows_;
    totals_[row.kind] += row.len;
  }

  void Done() {
    Begin();
    if (json_) {
      printf("%s], \"summary\": {\"rows\": %" PRIu64 ", \"reserved\": %" PRIu64
             ", \"free\": %" PRIu64 ", \"bad\": %" PRIu64 ", \"owned\": %" PRIu64 "}}\n",
             rows_ ? "\n" : "", rows_, In(totals_[FsmapRow::kReserved] * bs_),
             In(totals_[FsmapRow::kFree] * bs_), In(totals_[FsmapRow::kBad] * bs_),
             In(totals_[FsmapRow::kOwner] * bs_));
    } else {
      printf("%" PRIu64 " row%s\n", rows_, rows_ == 1 ? "" : "s");
    }
  }

  void Failed(int err, const std::string& message) {
    if (json_ && begun_)
      printf("%s], \"error\": {\"errno\": %d, \"message\": %s}}\n", rows_ ? "\n" : "", err,
             cli::Json(message).c_str());
  }

 private:
  uint64_t In(uint64_t bytes) const { return blocks_ ? bytes / bs_ : bytes; }

  bool json_, blocks_;
  uint64_t bs_;
  const PoolRange& range_;
  bool begun_ = false;
  uint64_t rows_ = 0;
  uint64_t totals_[4] = {};
};

int Fsmap(const std::string& fs, PoolRange range, bool json) {
  std::string error;
  if (!range.physical_text.empty() && !range.Parse(&error)) return kTool.Usage(error);
  if (range.physical_text.empty()) range.physical = 0;
  range.default_to_end = true;
  Result<poison::Location> loc = poison::LocateFilesystem(fs);
  if (!loc.ok()) return kTool.Fail(loc.status().message());
  Result<control::ControlConnection> conn = control::ControlConnection::Connect(loc->source);
  if (!conn.ok()) return kTool.Fail(conn.status().message());

  if (!conn->connected()) {
    Result<std::unique_ptr<OfflineStore>> store = OfflineStore::Open(loc->source);
    if (!store.ok()) return kTool.Fail(store.status().message());
    const Superblock& sb = (*store)->superblock();
    if (!range.Fit(sb.block_size, sb.block_count, &error)) return kTool.Fail(error);
    FsmapPrinter out(json, range.blocks, sb.block_size, range);
    Status s = WalkFsmap((*store)->db(), sb, range.pb0, range.pb1, [&](const FsmapRow& row) {
      out.Row(row);
      return true;
    });
    if (!s.ok()) {
      out.Failed(s.err(), s.message());
      return kTool.Fail(MetaPath(loc->source) + ": " + s.message());
    }
    out.Done();
    return 0;
  }

  // The pool's size from the mount (DAXREF_IOC_INFO, open to every user
  // of it), else from the pool file: the daemon decides who may have the
  // map, not the pool file's mode.
  uint64_t bs = 0, pool_blocks = 0;
  if (!loc->mount_point.empty()) {
    UniqueFd fd;
    struct stat st;
    daxref_info info{};
    if (!OpenOnDaxref(loc->mount_point, false, &fd, &st, &info)) return cli::kExitFailure;
    bs = info.block_size;
    pool_blocks = info.pool_blocks;
  } else {
    Superblock sb;
    bool backup = false;
    if (Status s = ReadPoolSuperblock(PoolPath(loc->source), &sb, &backup); !s.ok())
      return kTool.Fail(s.message());
    bs = sb.block_size;
    pool_blocks = sb.block_count;
  }
  if (bs == 0) return kTool.Fail("fsmap", EPROTO);
  if (!range.Fit(bs, pool_blocks, &error)) return kTool.Fail(error);
  FsmapPrinter out(json, range.blocks, bs, range);
  control::Record req("fsmap");
  req.Add("pblock", range.pb0).Add("blocks", range.pb1 - range.pb0);
  Status result = Status::Error(EPIPE, "the daemon's reply ended early");
  uint64_t last = 0;
  conn->Exchange(req, [&](const control::Record& r) {
    if (!result.ok() && result.err() != EPIPE) return;  // already failed: drain
    if (r.kind == "row") {
      FsmapRow row;
      Status s = FsmapRowFromRecord(r, &row);
      // Checked before use: inside the range asked, in pool order.
      if (s.ok() &&
          (row.pblock < range.pb0 || row.len > range.pb1 - row.pblock || row.pblock < last))
        s = Status::Error(EPROTO, "the daemon sent an fsmap row outside the range asked");
      if (!s.ok()) {
        result = s;
        return;
      }
      last = row.pblock;
      out.Row(row);
    } else if (r.kind == "done") {
      result = Status::Ok();
    } else if (r.kind == "error") {
      uint64_t err = 0;
      r.GetU64("errno", &err);
      const std::string* msg = r.Get("message");
      result = err == EPERM ? Status::Error(EPERM, control::kPermissionDenied)
                            : Status::Error(static_cast<int>(err ? err : EIO),
                                            msg ? *msg : "the daemon failed");
    }
  });
  if (!result.ok()) {
    out.Failed(result.err(), result.message());
    return kTool.Fail("fsmap: " + result.message());
  }
  out.Done();
  return 0;
}

// -r OFFSET LENGTH takes two arguments, which getopt cannot: it is taken
// out of the command line (up to "--") before getopt sees the rest.
bool TakeRange(std::vector<char*>* args, ExtentsRequest* rq, std::string* error) {
  for (size_t i = 1; i < args->size(); ++i) {
    const std::string_view a = (*args)[i];
    if (a == "--") break;
    if (a != "-r" && a != "--range") continue;
    if (rq->ranged) return *error = "-r given twice", false;
    if (i + 2 >= args->size()) return *error = "-r needs OFFSET and LENGTH", false;
    if (!cli::ParseSize((*args)[i + 1], "OFFSET", &rq->offset, error) ||
        !cli::ParseSize((*args)[i + 2], "LENGTH", &rq->length, error))
      return false;
    if (rq->length == 0) return *error = "LENGTH must be more than 0", false;
    rq->ranged = true;
    args->erase(args->begin() + static_cast<std::ptrdiff_t>(i),
                args->begin() + static_cast<std::ptrdiff_t>(i + 3));
    --i;
  }
  return true;
}

int Main(int argc, char** argv) {
  enum { kOptBlocks = cli::kOptJson + 1 };
  ExtentsRequest rq;
  std::vector<char*> args(argv, argv + argc);
  std::string error;
  if (!TakeRange(&args, &rq, &error)) return kTool.Usage(error);
  args.push_back(nullptr);
  const int n = static_cast<int>(args.size()) - 1;
  bool json = false, blocks = false, count = false;
  if (std::optional<int> exit = kTool.ParseOptions(n, args.data(), "c",
                                                   {cli::kJsonOption,
                                                    {"blocks", no_argument, nullptr, kOptBlocks},
                                                    {"count", no_argument, nullptr, 'c'}},
                                                   PrintHelp, [&](int opt, const char*) {
                                                     json |= opt == cli::kOptJson;
                                                     blocks |= opt == kOptBlocks;
                                                     count |= opt == 'c';
                                                   }))
    return *exit;
  if (optind >= n) return kTool.Usage("missing COMMAND (extents, fsmap or owners)");
  const std::string command = args[optind];
  const std::vector<std::string> rest(args.begin() + optind + 1, args.begin() + n);
  if (command != "extents" && (rq.ranged || count))
    return kTool.Usage(std::string(rq.ranged ? "-r" : "--count") + " applies to extents only");
  if (command == "extents") {
    if (rest.size() != 1) return kTool.Usage("usage: extents [-r OFFSET LENGTH] [-c] FILE");
    rq.path = rest[0];
    rq.json = json;
    rq.blocks = blocks;
    rq.count = count;
    return Extents(std::move(rq));
  }
  PoolRange range;
  range.blocks = blocks;
  if (command == "fsmap") {
    if (rest.empty() || rest.size() > 3) return kTool.Usage("usage: fsmap FS [PHYSICAL [LENGTH]]");
    if (rest.size() > 1) range.physical_text = rest[1];
    if (rest.size() > 2) range.length_text = rest[2];
    return Fsmap(rest[0], std::move(range), json);
  }
  if (command == "owners") {
    if (rest.size() < 2 || rest.size() > 3)
      return kTool.Usage("usage: owners PATH PHYSICAL [LENGTH]");
    range.physical_text = rest[1];
    if (rest.size() > 2) range.length_text = rest[2];
    return Owners(rest[0], std::move(range), json);
  }
  return kTool.Usage("unknown command '" + command + "' (extents, fsmap or owners)");
}

}  // namespace
}  // namespace daxref

int main(int argc, char** argv) {
  return daxref::Main(argc, argv);
}
