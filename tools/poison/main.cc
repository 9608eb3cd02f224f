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

#include <cerrno>
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
      "  list FS                 every bad range and the files that own it\n"
      "  clear FS OFFSET [LENGTH]\n"
      "                          forget bad blocks in the range (the memory was\n"
      "                          repaired): free ones are usable again\n"
      "  resolve FS OFFSET [LENGTH]\n"
      "                          the files that own pool bytes in the range, with\n"
      "                          their paths; nothing changes (the same answer,\n"
      "                          in the same form, as daxref-map owners)\n"
      "  pre-remove FS           the device is about to go away: the daemon stops\n"
      "                          changes, flushes, signals every process using a\n"
      "                          file and shuts the filesystem down (mounted only)\n"
      "\n"
      "FS is a daxref mount (or any path on one) or a SOURCE directory. When a\n"
      "daemon serves it, it does the work (root or the mount's owner only);\n"
      "otherwise inject, list, clear and resolve work on SOURCE directly.\n"
      "\n"
      "Options:\n"
      "      --json              print one JSON document (raw numbers)\n"
      "      --blocks            OFFSET, LENGTH, --offset and --length count\n"
      "                          4096-byte blocks instead of bytes\n"
      "      --file PATH         inject: the file whose blocks to poison\n"
      "      --offset N          inject --file: where in the file (default 0)\n"
      "      --length L          inject --file: how much (default one block)\n"
      "  -h, --help              show this help and exit\n"
      "  -V, --version           print the version and exit\n"
      "\n"
      "Numbers may end in K, M, G or T (powers of 1024). LENGTH defaults to one\n"
      "block. Block ranges are inclusive, first..last.\n"
      "\n"
      "Exit status: 0 success, 1 failure, 2 usage error.\n",
      kTool.name(), kTool.name(), kTool.name(), kTool.name(), kTool.name(), kTool.name());
}

std::optional<Command> ParseCommand(const std::string& name) {
  for (Command c :
       {Command::kInject, Command::kList, Command::kClear, Command::kResolve, Command::kPreRemove})
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

int Main(int argc, char** argv) {
  enum { kOptBlocks = cli::kOptJson + 1, kOptFile, kOptOffset, kOptLength };
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
    }
  };
  if (std::optional<int> exit =
          kTool.ParseOptions(argc, argv, "",
                             {cli::kJsonOption,
                              {"blocks", no_argument, nullptr, kOptBlocks},
                              {"file", required_argument, nullptr, kOptFile},
                              {"offset", required_argument, nullptr, kOptOffset},
                              {"length", required_argument, nullptr, kOptLength}},
                             PrintHelp, on_option))
    return *exit;
  if (optind >= argc)
    return kTool.Usage("missing COMMAND (inject, list, clear, resolve or pre-remove)");
  const std::string name = argv[optind];
  cl.command = ParseCommand(name);
  if (!cl.command)
    return kTool.Usage("unknown command '" + name +
                       "' (inject, list, clear, resolve or pre-remove)");
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
