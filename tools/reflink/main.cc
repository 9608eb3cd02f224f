// daxref-reflink: clone, dedupe and unshare files on a daxref mount through
// the daemon's ioctls, for programs that cannot be run under
// libdaxref-reflink.so, and for scripts.
//
//   clone SRC DEST                      DEST becomes a copy of SRC sharing its blocks
//   clone-range SRC SOFF LEN DEST DOFF  FICLONERANGE
//   dedupe SRC SOFF LEN DEST DOFF...    FIDEDUPERANGE, any number of destinations
//   unshare FILE [OFF LEN]              FALLOC_FL_UNSHARE_RANGE (size unchanged)
//
// The work itself is in remap.cc, shared with the preload library, so both
// make the same checks and flush the same dirty pages.
//
// Exit status: 0 success, 1 failure, 2 usage error, 3 (dedupe) some
// destination differs from the source and none failed.

#include <fcntl.h>
#include <linux/fs.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cinttypes>
#include <cstdio>
#include <cstring>
#include <optional>
#include <string>
#include <vector>

#include "base/unique_fd.h"
#include "tools/common/cli.h"
#include "tools/reflink/remap.h"

namespace daxref {
namespace {

constexpr cli::Tool kTool("daxref-reflink", cli::kExitUsage, cli::kExitFailure);
constexpr int kExitDiffers = 3;
constexpr reflink::IoctlFn kIoctl = &::ioctl;

void PrintHelp() {
  printf(
      "Usage: %s [OPTIONS] COMMAND ARGS...\n"
      "\n"
      "Share file blocks on a daxref mount (what FICLONE, FICLONERANGE,\n"
      "FIDEDUPERANGE and fallocate's FALLOC_FL_UNSHARE_RANGE do on XFS).\n"
      "\n"
      "Commands:\n"
      "  clone SRC DEST          make DEST a copy of SRC that shares its blocks;\n"
      "                          DEST is created (SRC's permission bits, less the\n"
      "                          umask) or its contents replaced\n"
      "  clone-range SRC SRC_OFFSET LENGTH DEST DEST_OFFSET\n"
      "                          DEST (which must exist) gets SRC's bytes\n"
      "                          [SRC_OFFSET, SRC_OFFSET+LENGTH) at DEST_OFFSET;\n"
      "                          LENGTH 0 means to SRC's end of file\n"
      "  dedupe SRC SRC_OFFSET LENGTH DEST DEST_OFFSET [DEST DEST_OFFSET]...\n"
      "                          share the range with each DEST whose bytes at\n"
      "                          DEST_OFFSET are the same; LENGTH 0 means to SRC's\n"
      "                          end of file\n"
      "  unshare FILE [OFFSET LENGTH]\n"
      "                          give FILE its own copy of its shared blocks (all\n"
      "                          of them, or those in the range; LENGTH 0 means to\n"
      "                          the end of the file)\n"
      "\n"
      "Options:\n"
      "      --json              dedupe: print the result as one JSON document\n"
      "  -h, --help              show this help and exit\n"
      "  -V, --version           print the version and exit\n"
      "\n"
      "Offsets and lengths are bytes, optionally followed by K, M, G or T\n"
      "(powers of 1024, any case, optionally followed by B or iB). Offsets must\n"
      "be multiples of 4096, and so must lengths that stop before SRC's end of\n"
      "file.\n"
      "\n"
      "Exit status: 0 success, 1 failure, 2 usage error, 3 dedupe: some\n"
      "destination's bytes differ (and none failed).\n",
      kTool.name());
}

// What the daemon's EINVAL usually means for a remap.
const char* kAlignHint =
    " (offsets must be multiples of 4096 and inside the files, and so must the length unless it "
    "reaches SRC's end of file; ranges in one file must not overlap)";

bool Size(const std::string& text, const char* what, uint64_t* out, int* rc) {
  std::string error;
  if (cli::ParseSize(text, what, out, &error)) return true;
  *rc = kTool.Usage(error);
  return false;
}

// Opens `path` with `flags` and checks that it is on a daxref mount.
// Prints the error and returns false on failure.
bool OpenDaxref(const std::string& path, int flags, UniqueFd* fd, struct stat* st) {
  *fd = UniqueFd(open(path.c_str(), flags | O_CLOEXEC | O_NOCTTY));
  if (!fd->valid()) return kTool.Fail(path, errno), false;
  if (fstat(fd->get(), st) != 0) return kTool.Fail(path, errno), false;
  if (S_ISDIR(st->st_mode)) return kTool.Fail(path, EISDIR), false;
  if (!S_ISREG(st->st_mode)) return kTool.Fail(path + ": not a regular file"), false;
  if (!reflink::IsDaxref(kIoctl, fd->get()))
    return kTool.Fail(path + ": not on a daxref filesystem"), false;
  return true;
}

bool SameDevice(const std::string& src, const struct stat& s, const std::string& dest,
                const struct stat& d) {
  if (s.st_dev == d.st_dev) return true;
  kTool.Fail(dest, EXDEV, " (" + src + " and " + dest + " must be on the same daxref mount)");
  return false;
}

int Clone(const std::string& src_path, const std::string& dest_path) {
  UniqueFd src;
  struct stat ss;
  if (!OpenDaxref(src_path, O_RDONLY, &src, &ss)) return cli::kExitFailure;

  // Check DEST before truncating it: never empty SRC itself, or a file on
  // another filesystem the clone cannot reach.
  struct stat ds;
  bool created = false;
  UniqueFd dest;
  if (stat(dest_path.c_str(), &ds) == 0) {
    if (ds.st_dev == ss.st_dev && ds.st_ino == ss.st_ino)
      return kTool.Fail("'" + src_path + "' and '" + dest_path + "' are the same file");
    dest = UniqueFd(open(dest_path.c_str(), O_WRONLY | O_CLOEXEC | O_NOCTTY));
  } else if (errno == ENOENT) {
    dest = UniqueFd(
        open(dest_path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, ss.st_mode & 0777));
    created = dest.valid();
  } else {
    return kTool.Fail(dest_path, errno);
  }
  if (!dest.valid()) return kTool.Fail(dest_path, errno);
  auto fail = [&](int rc) {
    if (created) unlink(dest_path.c_str());
    return rc;
  };
  if (fstat(dest.get(), &ds) != 0) return fail(kTool.Fail(dest_path, errno));
  if (ds.st_dev == ss.st_dev && ds.st_ino == ss.st_ino)
    return fail(kTool.Fail("'" + src_path + "' and '" + dest_path + "' are the same file"));
  if (!S_ISREG(ds.st_mode)) return fail(kTool.Fail(dest_path + ": not a regular file"));
  if (!SameDevice(src_path, ss, dest_path, ds)) return fail(cli::kExitFailure);
  if (!created && ftruncate(dest.get(), 0) != 0) return kTool.Fail(dest_path + ": truncate", errno);
  if (int e = reflink::CloneRange(kIoctl, src.get(), 0, 0, dest.get(), 0); e < 0)
    return fail(kTool.Fail("clone " + src_path + " to " + dest_path, -e));
  return 0;
}

int CloneRange(const std::vector<std::string>& args) {
  int rc = 0;
  uint64_t src_offset, length, dest_offset;
  if (!Size(args[1], "SRC_OFFSET", &src_offset, &rc) || !Size(args[2], "LENGTH", &length, &rc) ||
      !Size(args[4], "DEST_OFFSET", &dest_offset, &rc))
    return rc;
  const std::string& src_path = args[0];
  const std::string& dest_path = args[3];
  UniqueFd src, dest;
  struct stat ss, ds;
  if (!OpenDaxref(src_path, O_RDONLY, &src, &ss)) return cli::kExitFailure;
  dest = UniqueFd(open(dest_path.c_str(), O_WRONLY | O_CLOEXEC | O_NOCTTY));
  if (!dest.valid()) return kTool.Fail(dest_path, errno);
  if (fstat(dest.get(), &ds) != 0) return kTool.Fail(dest_path, errno);
  if (!S_ISREG(ds.st_mode)) return kTool.Fail(dest_path + ": not a regular file");
  if (!SameDevice(src_path, ss, dest_path, ds)) return cli::kExitFailure;
  if (src_offset > INT64_MAX || length > INT64_MAX || dest_offset > INT64_MAX ||
      src_offset > static_cast<uint64_t>(INT64_MAX) - length ||
      dest_offset > static_cast<uint64_t>(INT64_MAX) - length)
    return kTool.Fail("clone-range", EINVAL, " (the range passes the largest file offset)");
  int e = reflink::CloneRange(kIoctl, src.get(), src_offset, length, dest.get(), dest_offset);
  if (e < 0)
    return kTool.Fail("clone " + src_path + " to " + dest_path, -e, e == -EINVAL ? kAlignHint : "");
  return 0;
}

// One destination of a dedupe: 0 all bytes shared, 1 differs, or -errno;
// *deduped is what the daemon shared.
int DedupeInto(int src, uint64_t src_offset, uint64_t length, const std::string& path,
               uint64_t dest_offset, uint64_t* deduped) {
  *deduped = 0;
  // Read-only is enough for the kernel to let the owner, a user with write
  // permission or an administrator dedupe; the daemon checks the same.
  UniqueFd dest(open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK));
  if (!dest.valid()) return -errno;
  int r = reflink::CheckDedupeDest(src, dest.get(), dest_offset, length);
  // In pieces of the kernel's size, so that no one call holds both files
  // for long; the first piece that differs or fails ends it.
  for (uint64_t done = 0; r == 0 && done < length;) {
    uint64_t piece = std::min(length - done, reflink::kMaxDedupePerCall), got = 0;
    r = reflink::DedupeOne(kIoctl, src, src_offset + done, piece, dest.get(), dest_offset + done,
                           &got);
    if (r != FILE_DEDUPE_RANGE_SAME) break;
    *deduped += got;
    done += piece;
    if (got < piece) break;  // shortened at the destination's end of file
  }
  return r;
}

int Dedupe(const std::vector<std::string>& args, bool json) {
  int rc = 0;
  uint64_t src_offset, length;
  if (!Size(args[1], "SRC_OFFSET", &src_offset, &rc) || !Size(args[2], "LENGTH", &length, &rc))
    return rc;
  struct Dest {
    std::string path;
    uint64_t offset;
  };
  std::vector<Dest> dests;
  for (size_t i = 3; i + 1 < args.size(); i += 2) {
    Dest d{args[i], 0};
    if (!Size(args[i + 1], "DEST_OFFSET", &d.offset, &rc)) return rc;
    dests.push_back(d);
  }
  const std::string& src_path = args[0];
  UniqueFd src;
  struct stat ss;
  if (!OpenDaxref(src_path, O_RDONLY, &src, &ss)) return cli::kExitFailure;
  const uint64_t size = static_cast<uint64_t>(ss.st_size);
  if (src_offset > size)
    return kTool.Fail(src_path, EINVAL,
                      " (SRC_OFFSET " + std::to_string(src_offset) +
                          " is past the end of the file, " + std::to_string(size) + " bytes)");
  if (length == 0) length = size - src_offset;
  if (length > size - src_offset)
    return kTool.Fail(
        src_path, EINVAL,
        " (the range ends past the end of the file, " + std::to_string(size) + " bytes)");

  bool failed = false, differs = false;
  if (json)
    printf("{\"src\": %s, \"src_offset\": %" PRIu64 ", \"length\": %" PRIu64
           ", \"destinations\": [",
           cli::Json(src_path).c_str(), src_offset, length);
  for (size_t i = 0; i < dests.size(); ++i) {
    const Dest& d = dests[i];
    uint64_t deduped = 0;
    int r = DedupeInto(src.get(), src_offset, length, d.path, d.offset, &deduped);
    failed |= r < 0;
    differs |= r == FILE_DEDUPE_RANGE_DIFFERS;
    if (json) {
      std::string out = i == 0 ? "\n  " : ",\n  ";
      out += "{\"dest\": " + cli::Json(d.path) + ", \"dest_offset\": " + std::to_string(d.offset);
      out += ", \"status\": ";
      out += r < 0 ? "\"error\"" : r == FILE_DEDUPE_RANGE_DIFFERS ? "\"differs\"" : "\"deduped\"";
      out += ", \"bytes_deduped\": " + std::to_string(deduped);
      if (r < 0)
        out += ", \"errno\": " + std::to_string(-r) + ", \"error\": " + cli::Json(strerror(-r));
      out += "}";
      fputs(out.c_str(), stdout);
    } else if (r < 0) {
      fflush(stdout);
      kTool.Fail(d.path, -r,
                 r == -EINVAL  ? kAlignHint
                 : r == -EXDEV ? " (not on the same daxref mount as " + src_path + ")"
                               : std::string());
    } else if (r == FILE_DEDUPE_RANGE_DIFFERS) {
      if (deduped > 0)
        printf("%s: contents differ (after %" PRIu64 " bytes deduped)\n",
               cli::Printable(d.path).c_str(), deduped);
      else
        printf("%s: contents differ\n", cli::Printable(d.path).c_str());
    } else {
      printf("%s: %" PRIu64 " bytes deduped\n", cli::Printable(d.path).c_str(), deduped);
    }
  }
  if (json) printf("\n]}\n");
  if (failed) return cli::kExitFailure;
  return differs ? kExitDiffers : 0;
}

int Unshare(const std::vector<std::string>& args) {
  int rc = 0;
  uint64_t offset = 0, length = 0;
  if (args.size() == 3 &&
      (!Size(args[1], "OFFSET", &offset, &rc) || !Size(args[2], "LENGTH", &length, &rc)))
    return rc;
  const std::string& path = args[0];
  UniqueFd fd;
  struct stat st;
  // The daemon unshares through a descriptor open for writing, as
  // fallocate(2) requires.
  if (!OpenDaxref(path, O_WRONLY, &fd, &st)) return cli::kExitFailure;
  const uint64_t size = static_cast<uint64_t>(st.st_size);
  // Unsharing is about the file's data: the range stops at EOF, as XFS's
  // funshare does (fallocate's unshare mode would also allocate every block
  // of a range past it). Nothing there to unshare past EOF.
  if (offset >= size) return 0;
  if (length == 0 || length > size - offset) length = size - offset;
  if (offset > INT64_MAX || length > static_cast<uint64_t>(INT64_MAX) - offset)
    return kTool.Fail(path, EINVAL, " (the range passes the largest file offset)");
  if (int e = reflink::Unshare(kIoctl, fd.get(), offset, length); e < 0)
    return kTool.Fail(path + ": unshare", -e);
  return 0;
}

int Main(int argc, char** argv) {
  bool json = false;  // --json, the only option
  if (std::optional<int> exit = kTool.ParseOptions(argc, argv, "", {cli::kJsonOption}, PrintHelp,
                                                   [&](int, const char*) { json = true; }))
    return *exit;
  if (optind >= argc) return kTool.Usage("missing COMMAND (clone, clone-range, dedupe or unshare)");
  const std::string command = argv[optind];
  const std::vector<std::string> args(argv + optind + 1, argv + argc);
  if (json && command != "dedupe") return kTool.Usage("--json applies to dedupe only");
  if (command == "clone") {
    if (args.size() != 2) return kTool.Usage("usage: clone SRC DEST");
    return Clone(args[0], args[1]);
  }
  if (command == "clone-range") {
    if (args.size() != 5)
      return kTool.Usage("usage: clone-range SRC SRC_OFFSET LENGTH DEST DEST_OFFSET");
    return CloneRange(args);
  }
  if (command == "dedupe") {
    if (args.size() < 5 || (args.size() - 3) % 2 != 0)
      return kTool.Usage(
          "usage: dedupe SRC SRC_OFFSET LENGTH DEST DEST_OFFSET [DEST DEST_OFFSET]...");
    return Dedupe(args, json);
  }
  if (command == "unshare") {
    if (args.size() != 1 && args.size() != 3)
      return kTool.Usage("usage: unshare FILE [OFFSET LENGTH]");
    return Unshare(args);
  }
  return kTool.Usage("unknown command '" + command + "' (clone, clone-range, dedupe or unshare)");
}

}  // namespace
}  // namespace daxref

int main(int argc, char** argv) {
  return daxref::Main(argc, argv);
}
