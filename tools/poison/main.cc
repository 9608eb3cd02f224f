// daxref-poison: memory poison (bad blocks of persistent memory) on a daxref
// filesystem, for administrators and for tests of the poison path.
//
//   inject FS OFFSET [LENGTH]       record pool bytes as bad, as a machine
//                                   check would, and report who owned them
//   inject [FS] --file PATH ...     the same for the pool blocks behind a
//                                   file's bytes
//   list FS                         the bad ranges and their owners
//   clear FS OFFSET [LENGTH]        forget bad blocks (the memory was repaired)
//   resolve FS OFFSET [LENGTH]      who owns pool bytes, changing nothing
//   rescan FS                       re-read the device's bad-block list
//   from-device FS --sector N ...   device sectors to pool bytes (FIEMAP)
//   pre-remove FS                   the device is going away: stop, flush,
//                                   signal every holder, shut down
//
// When a daemon serves the filesystem, the request goes to it over
// SOURCE/control (control_client.h) and it does the work: it alone can drop
// the kernel's cached pages and signal the processes that hold the files.
// When none does, inject, list, clear and resolve work on SOURCE directly
// (offline.h). Either way one poison service does the work
// (admin/poison_service.h), the replies are the same records, and report.h
// prints them as they come.
//
// Exit status: 0 success, 1 failure, 2 usage error.

#include <sys/stat.h>

#include <algorithm>
#include <cerrno>
#include <cinttypes>
#include <cstdio>
#include <cstring>
#include <optional>
#include <string>
#include <vector>

#include "admin/control_client.h"
#include "admin/control_protocol.h"
#include "meta/format.h"
#include "meta/superblock.h"
#include "tools/common/cli.h"
#include "tools/poison/device_map.h"
#include "tools/poison/locate.h"
#include "tools/poison/offline.h"
#include "tools/poison/report.h"
#include "tools/poison/request.h"

namespace daxref::poison {
namespace {

constexpr cli::Tool kTool("daxref-poison", cli::kExitUsage, cli::kExitFailure);

void PrintHelp() {
  printf(
      "Usage: %s [OPTIONS] inject FS OFFSET [LENGTH]\n"
      "       %s [OPTIONS] inject [FS] --file PATH [--offset N] [--length L]\n"
      "       %s [OPTIONS] list FS\n"
      "       %s [OPTIONS] clear FS OFFSET [LENGTH]\n"
      "       %s [OPTIONS] resolve FS OFFSET [LENGTH]\n"
      "       %s [OPTIONS] rescan FS\n"
      "       %s [OPTIONS] from-device FS (--sector N [--count C] |\n"
      "                    --device-offset B [--device-length L]) [--inject]\n"
      "       %s [OPTIONS] pre-remove FS\n"
      "\n"
      "Inject, list and clear memory poison (bad blocks) on a daxref filesystem.\n"
      "\n"
      "Commands:\n"
      "  inject FS OFFSET [LENGTH]\n"
      "                          record pool bytes [OFFSET, OFFSET+LENGTH), rounded\n"
      "                          out to whole blocks, as bad: files lose those\n"
      "                          blocks (reads fail with EIO) and, when mounted,\n"
      "                          the processes using them are signalled\n"
      "  inject [FS] --file PATH [--offset N] [--length L]\n"
      "                          the same for the pool blocks behind bytes\n"
      "                          [N, N+L) of a file (N defaults to 0, L to one\n"
      "                          block). Without FS, PATH is a file on a mounted\n"
      "                          daxref; with FS, PATH is a path inside FS from its\n"
      "                          root (the way to name a file offline)\n"
      "  list FS                 every bad range, where it came from and when, and\n"
      "                          the files that own it\n"
      "  clear FS OFFSET [LENGTH]\n"
      "                          forget bad blocks in the range (the memory was\n"
      "                          repaired): free ones are usable again\n"
      "  resolve FS OFFSET [LENGTH]\n"
      "                          the files that own pool bytes in the range, with\n"
      "                          their paths; nothing changes (the same answer,\n"
      "                          in the same form, as daxref-map owners)\n"
      "  rescan FS               re-read the device's list of bad blocks (as a mount\n"
      "                          does) and record what is new, without remounting\n"
      "  from-device FS --sector N [--count C]\n"
      "                          the pool bytes behind 512-byte sectors of the\n"
      "                          device under the pool file's host filesystem (as\n"
      "                          ndctl list --media-errors reports them), through\n"
      "                          the file's extents (FIEMAP); --device-offset B\n"
      "                          [--device-length L] in bytes; --inject then\n"
      "                          injects them\n"
      "  pre-remove FS           the device is about to go away: the daemon stops\n"
      "                          changes, flushes, signals every process using a\n"
      "                          file and shuts the filesystem down (mounted only)\n"
      "\n"
      "FS is a daxref mount (or any path on one) or a SOURCE directory. When a\n"
      "daemon serves it, it does the work (root or the mount's owner only);\n"
      "otherwise inject, list, clear, resolve and rescan work on SOURCE directly.\n"
      "\n"
      "Options:\n"
      "      --json              print one JSON document (raw numbers)\n"
      "      --blocks            OFFSET, LENGTH, --offset and --length count\n"
      "                          4096-byte blocks instead of bytes\n"
      "      --file PATH         inject: the file whose blocks to poison\n"
      "      --offset N          inject --file: where in the file (default 0)\n"
      "      --length L          inject --file: how much (default one block)\n"
      "      --sector N, --count C, --device-offset B, --device-length L, --inject\n"
      "                          from-device: the device range, and whether to\n"
      "                          inject what it maps to\n"
      "  -h, --help              show this help and exit\n"
      "  -V, --version           print the version and exit\n"
      "\n"
      "Numbers may end in K, M, G or T (powers of 1024). LENGTH defaults to one\n"
      "block. Block ranges are inclusive, first..last.\n"
      "\n"
      "Exit status: 0 success, 1 failure, 2 usage error.\n",
      kTool.name(), kTool.name(), kTool.name(), kTool.name(), kTool.name(), kTool.name(),
      kTool.name(), kTool.name());
}

std::optional<Command> ParseCommand(const std::string& name) {
  for (Command c : {Command::kInject, Command::kList, Command::kClear, Command::kResolve,
                    Command::kPreRemove, Command::kRescan})
    if (name == CommandName(c)) return c;
  return std::nullopt;
}

// A byte count as typed, or a block count with --blocks, in bytes.
bool ParseAmount(const std::string& text, const char* what, bool in_blocks, uint64_t* bytes,
                 std::string* error) {
  if (!cli::ParseSize(text, what, bytes, error)) return false;
  if (in_blocks) {
    if (*bytes > (UINT64_MAX >> kBlockShift)) {
      *error = std::string(what) + " '" + text + "' is too large";
      return false;
    }
    *bytes <<= kBlockShift;
  }
  return true;
}

// What the command line asked for, as typed.
struct CommandLine {
  bool json = false;
  bool blocks = false;
  // from-device.
  std::optional<std::string> sector, count, device_offset, device_length;
  bool inject = false;
  std::optional<std::string> file, offset, length;
  std::optional<Command> command;
  std::vector<std::string> args;  // after the command
};

// Turns the command line into a Request; on a usage error returns false
// with the message in *error.
bool BuildRequest(const CommandLine& cl, Request* req, std::string* error) {
  auto fail = [&](std::string m) {
    *error = std::move(m);
    return false;
  };
  const Command c = *cl.command;
  req->command = c;
  req->in_blocks = cl.blocks;
  const bool ranged = c == Command::kInject || c == Command::kClear || c == Command::kResolve;
  if (cl.file && c != Command::kInject) return fail("--file applies to inject only");
  if ((cl.offset || cl.length) && !cl.file)
    return fail("--offset and --length go with --file (give OFFSET and LENGTH after FS)");
  if (cl.blocks && !ranged) return fail("--blocks applies to inject, clear and resolve only");

  if (cl.file) {  // inject [FS] --file PATH
    if (cl.args.size() > 1) return fail("usage: inject [FS] --file PATH [--offset N] [--length L]");
    if (cl.file->empty()) return fail("--file needs a PATH");
    FileRange f;
    f.path = *cl.file;
    f.length = kBlockSize;
    if (cl.offset && !ParseAmount(*cl.offset, "--offset", cl.blocks, &f.offset, error))
      return false;
    if (cl.length && !ParseAmount(*cl.length, "--length", cl.blocks, &f.length, error))
      return false;
    if (f.length == 0) return fail("--length must be more than 0");
    if (f.length > UINT64_MAX - f.offset) return fail("--offset plus --length is too large");
    req->file = f;
    return true;
  }
  const char* usage = c == Command::kInject    ? "usage: inject FS OFFSET [LENGTH]"
                      : c == Command::kClear   ? "usage: clear FS OFFSET [LENGTH]"
                      : c == Command::kResolve ? "usage: resolve FS OFFSET [LENGTH]"
                      : c == Command::kList    ? "usage: list FS"
                      : c == Command::kRescan  ? "usage: rescan FS"
                                               : "usage: pre-remove FS";
  if (cl.args.empty()) return fail(std::string("missing FS (") + usage + ")");
  if (!ranged) {
    if (cl.args.size() != 1) return fail(usage);
    return true;
  }
  if (cl.args.size() < 2) return fail(std::string("missing OFFSET (") + usage + ")");
  if (cl.args.size() > 3) return fail(usage);
  uint64_t offset = 0, length = kBlockSize;
  if (!ParseAmount(cl.args[1], "OFFSET", cl.blocks, &offset, error)) return false;
  if (cl.args.size() == 3 && !ParseAmount(cl.args[2], "LENGTH", cl.blocks, &length, error))
    return false;
  if (length == 0) return fail("LENGTH must be more than 0");
  if (length > UINT64_MAX - offset) return fail("OFFSET plus LENGTH is too large");
  const uint64_t end = offset + length;
  req->pblock = offset >> kBlockShift;
  req->blocks = (end >> kBlockShift) + ((end & (kBlockSize - 1)) != 0) - req->pblock;
  req->offset_text = cl.args[1];
  return true;
}

// The request as the daemon takes it. For inject --file, the file is found
// on the mount (`mount_point` when FS was given) and named by inode.
Result<control::Record> RequestRecord(const Request& req, const CommandLine& cl,
                                      const Location& loc) {
  control::Record r(CommandName(req.command));
  if (req.file) {
    std::string path = req.file->path;
    struct stat st;
    if (!cl.args.empty()) {  // a path inside FS, from its root
      if (loc.mount_point.empty())
        return Status::Error(ENOENT, loc.source +
                                         " is served by a daemon but not mounted where this "
                                         "process can see it: give PATH on the mount instead");
      struct stat root;
      if (stat(loc.mount_point.c_str(), &root) != 0)
        return Status::Error(errno, loc.mount_point + ": " + strerror(errno));
      path = loc.mount_point + (path.empty() || path[0] != '/' ? "/" : "") + path;
      if (stat(path.c_str(), &st) != 0) {
        const int err = errno;
        if (err == ENOENT) return Status::Error(err, "no such file: " + req.file->path);
        return Status::Error(err, req.file->path + ": " + strerror(err));
      }
      if (st.st_dev != root.st_dev)
        return Status::Error(EXDEV, req.file->path + ": not on " + cl.args[0]);
    } else if (stat(path.c_str(), &st) != 0) {
      return Status::Error(errno, path + ": " + strerror(errno));
    }
    if (!S_ISREG(st.st_mode)) return Status::Invalid(req.file->path + ": not a regular file");
    if (req.file->offset >= static_cast<uint64_t>(st.st_size))
      return Status::Invalid("offset " + std::to_string(req.file->offset) + " is past the end of " +
                             req.file->path + " (size " + std::to_string(st.st_size) + ")");
    r.Add("ino", static_cast<uint64_t>(st.st_ino));
    r.Add("offset", req.file->offset).Add("length", req.file->length);
    // The path as typed, so that the daemon's messages name the file as the
    // offline ones do.
    r.Add("name", req.file->path);
  } else if (req.has_pool_range()) {
    r.Add("pblock", req.pblock).Add("blocks", req.blocks);
  }
  return r;
}

// Carries out `req` (already checked) on the filesystem at `loc`: through
// the daemon serving it, or on SOURCE directly. Returns the exit status.
int Execute(Request req, const CommandLine& cl, const Location& loc) {
  Result<control::ControlConnection> conn = control::ControlConnection::Connect(loc.source);
  if (!conn.ok()) return kTool.Fail(conn.status().message());
  ReportPrinter printer(req, cl.json);
  const RecordFn print = [&](const control::Record& r) { printer.Print(r); };
  if (conn->connected()) {
    Result<control::Record> request = RequestRecord(req, cl, loc);
    if (!request.ok()) return kTool.Fail(request.status().message());
    conn->Exchange(*request, print);
    return printer.ExitStatus();
  }
  Result<std::unique_ptr<OfflineVolume>> offline = OfflineVolume::Open(loc.source);
  if (!offline.ok()) return kTool.Fail(offline.status().message());
  (*offline)->Run(req, print);
  return printer.ExitStatus();
}

// "A..B" of bytes [off, off+len).
std::string Bytes(uint64_t off, uint64_t len) {
  return std::to_string(off) + ".." + std::to_string(off + len - 1);
}

// from-device FS (--sector N [--count C] | --device-offset B [--device-length L]) [--inject]:
// the pool bytes behind device bytes (device_map.h); with --inject, each
// whole block of them is injected as `inject` would.
int FromDevice(const CommandLine& cl) {
  const char* usage =
      "usage: from-device FS (--sector N [--count C] | --device-offset B [--device-length L]) "
      "[--inject]";
  if (cl.args.size() != 1)
    return kTool.Usage(cl.args.empty() ? "missing FS (" + std::string(usage) + ")" : usage);
  if (cl.file || cl.offset || cl.length || cl.blocks)
    return kTool.Usage("--file, --offset, --length and --blocks do not go with from-device");
  if (cl.sector.has_value() == cl.device_offset.has_value())
    return kTool.Usage("from-device needs one of --sector and --device-offset");
  if ((cl.count && !cl.sector) || (cl.device_length && !cl.device_offset))
    return kTool.Usage("--count goes with --sector, --device-length with --device-offset");
  if (cl.inject && cl.json)
    return kTool.Usage(
        "--inject prints inject's reports: leave out --json (or run without "
        "--inject for the JSON mapping)");
  uint64_t dev_off = 0, len = 0;
  std::string error;
  if (cl.sector) {
    uint64_t sector = 0, count = 1;
    if (!cli::ParseSize(*cl.sector, "--sector", &sector, &error)) return kTool.Usage(error);
    if (cl.count && !cli::ParseSize(*cl.count, "--count", &count, &error))
      return kTool.Usage(error);
    if (count == 0) return kTool.Usage("--count must be more than 0");
    if (sector > UINT64_MAX / kSectorSize || count > UINT64_MAX / kSectorSize ||
        sector * kSectorSize > UINT64_MAX - count * kSectorSize)
      return kTool.Usage("--sector plus --count is too large");
    dev_off = sector * kSectorSize;
    len = count * kSectorSize;
  } else {
    len = kSectorSize;
    if (!cli::ParseSize(*cl.device_offset, "--device-offset", &dev_off, &error))
      return kTool.Usage(error);
    if (cl.device_length && !cli::ParseSize(*cl.device_length, "--device-length", &len, &error))
      return kTool.Usage(error);
    if (len == 0) return kTool.Usage("--device-length must be more than 0");
    if (len > UINT64_MAX - dev_off)
      return kTool.Usage("--device-offset plus --device-length is too large");
  }
  Result<Location> loc = LocateFilesystem(cl.args[0]);
  if (!loc.ok()) return kTool.Fail(loc.status().message());
  std::vector<DevicePiece> pieces;
  if (Status s = MapDeviceRange(PoolPath(loc->source), dev_off, len, &pieces); !s.ok())
    return kTool.Fail(s.message());
  uint64_t mapped = 0;
  if (cl.json) {
    std::string doc = "{\"format_version\": 2, \"command\": \"from-device\", \"device_offset\": " +
                      std::to_string(dev_off) + ", \"length\": " + std::to_string(len) +
                      ", \"pieces\": [";
    for (size_t i = 0; i < pieces.size(); ++i) {
      const DevicePiece& p = pieces[i];
      mapped += p.length;
      const uint64_t pb0 = p.pool_offset >> kBlockShift;
      const uint64_t pb1 = (p.pool_offset + p.length + kBlockSize - 1) >> kBlockShift;
      doc += std::string(i ? "," : "") +
             "\n  {\"device_offset\": " + std::to_string(p.device_offset) +
             ", \"pool_offset\": " + std::to_string(p.pool_offset) +
             ", \"length\": " + std::to_string(p.length) + ", \"pblock\": " + std::to_string(pb0) +
             ", \"blocks\": " + std::to_string(pb1 - pb0) + "}";
    }
    doc += std::string(pieces.empty() ? "" : "\n") +
           "], \"summary\": {\"mapped\": " + std::to_string(mapped) +
           ", \"unmapped\": " + std::to_string(len - mapped) + "}}\n";
    fputs(doc.c_str(), stdout);
    return 0;
  }
  for (const DevicePiece& p : pieces) {
    mapped += p.length;
    const uint64_t pb0 = p.pool_offset >> kBlockShift;
    const uint64_t pb1 = (p.pool_offset + p.length + kBlockSize - 1) >> kBlockShift;
    printf("device bytes %s: pool bytes %s, %s\n", Bytes(p.device_offset, p.length).c_str(),
           Bytes(p.pool_offset, p.length).c_str(), cli::BlockSpan(pb0, pb1 - pb0).c_str());
  }
  printf("%" PRIu64 " of %" PRIu64 " device bytes lie in the pool file\n", mapped, len);
  if (!cl.inject || pieces.empty()) return 0;
  int status = 0;
  for (const DevicePiece& p : pieces) {
    Request req;
    req.command = Command::kInject;
    req.pblock = p.pool_offset >> kBlockShift;
    req.blocks = ((p.pool_offset + p.length + kBlockSize - 1) >> kBlockShift) - req.pblock;
    req.offset_text = std::to_string(p.pool_offset);
    status = std::max(status, Execute(req, cl, *loc));
  }
  return status;
}

int Main(int argc, char** argv) {
  enum {
    kOptBlocks = cli::kOptJson + 1,
    kOptFile,
    kOptOffset,
    kOptLength,
    kOptSector,
    kOptCount,
    kOptDeviceOffset,
    kOptDeviceLength,
    kOptInject
  };
  CommandLine cl;
  auto on_option = [&](int opt, const char* arg) {
    switch (opt) {
      case cli::kOptJson:
        cl.json = true;
        break;
      case kOptBlocks:
        cl.blocks = true;
        break;
      case kOptFile:
        cl.file = arg;
        break;
      case kOptOffset:
        cl.offset = arg;
        break;
      case kOptLength:
        cl.length = arg;
        break;
      case kOptSector:
        cl.sector = arg;
        break;
      case kOptCount:
        cl.count = arg;
        break;
      case kOptDeviceOffset:
        cl.device_offset = arg;
        break;
      case kOptDeviceLength:
        cl.device_length = arg;
        break;
      case kOptInject:
        cl.inject = true;
        break;
    }
  };
  if (std::optional<int> exit =
          kTool.ParseOptions(argc, argv, "",
                             {cli::kJsonOption,
                              {"blocks", no_argument, nullptr, kOptBlocks},
                              {"file", required_argument, nullptr, kOptFile},
                              {"offset", required_argument, nullptr, kOptOffset},
                              {"length", required_argument, nullptr, kOptLength},
                              {"sector", required_argument, nullptr, kOptSector},
                              {"count", required_argument, nullptr, kOptCount},
                              {"device-offset", required_argument, nullptr, kOptDeviceOffset},
                              {"device-length", required_argument, nullptr, kOptDeviceLength},
                              {"inject", no_argument, nullptr, kOptInject}},
                             PrintHelp, on_option))
    return *exit;
  if (optind >= argc)
    return kTool.Usage(
        "missing COMMAND (inject, list, clear, resolve, rescan, from-device or pre-remove)");
  const std::string name = argv[optind];
  if (name == "from-device") {
    cl.args.assign(argv + optind + 1, argv + argc);
    return FromDevice(cl);
  }
  if (cl.sector || cl.count || cl.device_offset || cl.device_length || cl.inject)
    return kTool.Usage(
        "--sector, --count, --device-offset, --device-length and --inject go with from-device");
  cl.command = ParseCommand(name);
  if (!cl.command)
    return kTool.Usage("unknown command '" + name +
                       "' (inject, list, clear, resolve, rescan, from-device or pre-remove)");
  cl.args.assign(argv + optind + 1, argv + argc);
  Request req;
  std::string error;
  if (!BuildRequest(cl, &req, &error)) return kTool.Usage(error);

  // Which filesystem, and whether a daemon serves it.
  struct stat file_st;
  Result<Location> loc =
      cl.args.empty() ? LocateMountOf(req.file->path, &file_st) : LocateFilesystem(cl.args[0]);
  if (!loc.ok()) return kTool.Fail(loc.status().message());
  // Refuse a range outside the pool before anyone is asked, when the pool's
  // superblock can be read here (else the daemon or the offline open will).
  Superblock sb;
  bool backup = false;
  if (req.has_pool_range() && ReadPoolSuperblock(PoolPath(loc->source), &sb, &backup).ok()) {
    Status s = FitToPool(&req, sb.block_count);
    if (!s.ok()) return kTool.Fail(s.message());
  }
  Result<control::ControlConnection> conn = control::ControlConnection::Connect(loc->source);
  if (!conn.ok()) return kTool.Fail(conn.status().message());

  ReportPrinter printer(req, cl.json);
  const RecordFn print = [&](const control::Record& r) { printer.Print(r); };
  if (conn->connected()) {
    Result<control::Record> request = RequestRecord(req, cl, *loc);
    if (!request.ok()) return kTool.Fail(request.status().message());
    conn->Exchange(*request, print);
    return printer.ExitStatus();
  }

  // Nobody serves SOURCE: work on it directly.
  if (req.command == Command::kPreRemove)
    return kTool.Fail(cl.args[0] + " is not mounted: nothing to pre-remove");
  if (cl.args.empty())
    return kTool.Fail(req.file->path + ": the daemon serving " + loc->source +
                      " does not answer on " + control::ControlSocketPath(loc->source) +
                      " (to work offline, unmount it and give FS and the path inside it)");
  Result<std::unique_ptr<OfflineVolume>> offline = OfflineVolume::Open(loc->source);
  if (!offline.ok()) return kTool.Fail(offline.status().message());
  (*offline)->Run(req, print);
  return printer.ExitStatus();
}

}  // namespace
}  // namespace daxref::poison

int main(int argc, char** argv) {
  return daxref::poison::Main(argc, argv);
}
