// daxref-info: what a daxref filesystem is and how full it is, as xfs_info,
// `btrfs filesystem usage` and `juicefs info` tell it for theirs: the
// geometry report mkfs.daxref printed (the same code, tools/common/geometry.h),
// the identity (uuid, label, generation, format versions), where the pool
// lives, the space (used, free, shared and exclusive, bad and retired), a
// histogram of free-space extents (as xfs_db -c freesp), the inode,
// directory and extent counts, and the metadata store's size on disk.
//
// FS is a mount (or any path on it) or a SOURCE directory. When a daemon
// serves it, the daemon answers over SOURCE/control (the `info` request);
// when none does, the tool reads the SOURCE itself, read-only. Both run the
// one walk of admin/fs_report.h over one snapshot of the store.
//
// Exit status: 0 success, 1 failure, 2 usage error.

#include <cinttypes>
#include <cstdio>
#include <cstring>
#include <memory>
#include <optional>
#include <string>

#include "admin/control_client.h"
#include "admin/control_protocol.h"
#include "admin/fs_report.h"
#include "meta/superblock.h"
#include "tools/common/cli.h"
#include "tools/common/geometry.h"
#include "tools/common/offline_store.h"
#include "tools/common/progress.h"
#include "tools/poison/locate.h"

namespace daxref {
namespace {

constexpr cli::Tool kTool("daxref-info", cli::kExitUsage, cli::kExitFailure);

void PrintHelp() {
  printf(
      "Usage: %s [OPTIONS] FS\n"
      "\n"
      "Show a daxref filesystem's geometry, identity and use of space.\n"
      "FS is its mount point (or any path on the mount) or its SOURCE\n"
      "directory. A mounted filesystem is asked through its daemon (root or the\n"
      "user who mounted it only); an unmounted SOURCE is read directly,\n"
      "read-only.\n"
      "\n"
      "Options:\n"
      "      --json              print one JSON document (raw numbers; the\n"
      "                          fields are listed in daxref-info(8))\n"
      "  -h, --help              show this help and exit\n"
      "  -V, --version           print the version and exit\n"
      "\n"
      "Blocks are 4096 bytes.\n"
      "\n"
      "Exit status: 0 success, 1 failure, 2 usage error.\n",
      kTool.name());
}

std::string Num(uint64_t v) {
  return std::to_string(v);
}

// "N blocks (H)".
std::string Blocks(uint64_t blocks, uint32_t bs) {
  return Num(blocks) + (blocks == 1 ? " block (" : " blocks (") + HumanBytes(blocks * bs) + ")";
}

std::string Percent(uint64_t part, uint64_t whole) {
  if (whole == 0) return "0.00";
  char buf[32];
  snprintf(buf, sizeof(buf), "%.2f",
           100.0 * static_cast<double>(part) / static_cast<double>(whole));
  return buf;
}

// The bucket b's extent sizes: 2^b to 2^(b+1)-1 blocks.
uint64_t BucketFrom(unsigned b) {
  return uint64_t{1} << b;
}
uint64_t BucketTo(unsigned b) {
  return b >= 63 ? UINT64_MAX : (uint64_t{2} << b) - 1;
}

void PrintText(const Geometry& g, const FsInfo& i, const std::string& mount_point, bool online) {
  const uint32_t bs = g.sb.block_size;
  std::string out = FormatGeometry(g);
  out += "generation = " + Num(i.generation) + "\n";
  out += "mounted  = " +
         (mount_point.empty()
              ? std::string("no (read offline)")
              : cli::Printable(mount_point) + (online ? " (asked through the daemon)" : "")) +
         "\n";
  if (online) out += "logs     = " + cli::Printable(i.log_destination) + "\n";
  if (!i.host_fstype.empty())
    out += "host     = " + cli::Printable(i.host_fstype) + " " + cli::Printable(i.host_device) +
           " on " + cli::Printable(i.host_mount_point) + "\n";
  out += "\nSpace:\n";
  out += "  data       = " + Blocks(i.data_blocks, bs) + "\n";
  out += "  used       = " + Blocks(i.owned_blocks(), bs) + ", " +
         Percent(i.owned_blocks(), i.data_blocks) + "%\n";
  out += "  free       = " + Blocks(i.free_blocks, bs) + ", " +
         Percent(i.free_blocks, i.data_blocks) + "%\n";
  out += "  exclusive  = " + Blocks(i.exclusive_blocks(), bs) + " (referenced once)\n";
  out += "  shared     = " + Blocks(i.shared_blocks, bs) + " (referenced " +
         Num(i.shared_references) + " times)\n";
  out += "  referenced = " + Blocks(i.referenced_blocks, bs) + " (the files' extents added up)\n";
  out += "  saved      = " + Blocks(i.saved_blocks(), bs) + " (by sharing)\n";
  out += "  bad        = " + Num(i.bad_blocks) + " (" + Num(i.retired_blocks()) + " retired, " +
         Num(i.bad_owned_blocks()) + " in files, " + Num(i.bad_reserved_blocks) +
         " superblock copies)\n";
  out += "  bad origin = " + Num(i.bad_injected_blocks) + " injected, " +
         Num(i.bad_machine_check_blocks) + " machine-check, " +
         Num(i.bad_machine_check_async_blocks) + " machine-check-async, " +
         Num(i.bad_device_blocks) + " device, " + Num(i.bad_unknown_blocks()) + " unknown\n";
  if (!i.consistent())
    out += "  warning: the records do not add up: the store is damaged (run fsck.daxref)\n";
  out += "\nFree space: " + Num(i.free_extents) + (i.free_extents == 1 ? " extent" : " extents") +
         "\n";
  char buf[160];
  snprintf(buf, sizeof(buf), "  %20s %20s %12s %20s %7s\n", "from", "to", "extents", "blocks",
           "pct");
  out += buf;
  for (unsigned b = 0; b < i.freesp.size(); ++b) {
    const FsInfo::Bucket& k = i.freesp[b];
    if (k.extents == 0) continue;
    snprintf(buf, sizeof(buf), "  %20" PRIu64 " %20" PRIu64 " %12" PRIu64 " %20" PRIu64 " %7s\n",
             BucketFrom(b), BucketTo(b), k.extents, k.blocks,
             Percent(k.blocks, i.free_blocks).c_str());
    out += buf;
  }
  out += "\nInodes:\n";
  out += "  inodes     = " + Num(i.inodes) + "\n";
  out += "  directories= " + Num(i.directories) + "\n";
  out += "  files      = " + Num(i.regular_files) + "\n";
  out += "  symlinks   = " + Num(i.symlinks) + "\n";
  out += "  special    = " + Num(i.special_files) + "\n";
  out += "  orphans    = " + Num(i.orphans) + "\n";
  out += "  extents    = " + Num(i.extents) + "\n";
  out += "\nMetadata store:\n";
  out += "  on disk    = " + Num(i.store_disk_bytes) + " bytes (" + HumanBytes(i.store_disk_bytes) +
         ") in " + Num(i.store_files) + " files, " + Num(i.store_bytes) + " bytes apparent\n";
  fputs(out.c_str(), stdout);
}

void PrintJson(const Geometry& g, const FsInfo& i, const std::string& mount_point, bool online) {
  std::string out = "{\n  \"format_version\": " + Num(kGeometryJsonVersion) + ",\n";
  out += GeometryJsonFields(g) + ",\n";
  out += "  \"generation\": " + Num(i.generation) + ",\n";
  out += "  \"mounted\": " + std::string(mount_point.empty() ? "false" : "true") + ",\n";
  out += "  \"mount_point\": " + (mount_point.empty() ? "null" : cli::Json(mount_point)) + ",\n";
  out += "  \"online\": " + std::string(online ? "true" : "false") + ",\n";
  out += "  \"log\": " + (online ? cli::Json(i.log_destination) : std::string("null")) + ",\n";
  out += "  \"host\": {\"fstype\": " + cli::Json(i.host_fstype) +
         ", \"device\": " + cli::Json(i.host_device) +
         ", \"mount_point\": " + cli::Json(i.host_mount_point) + "},\n";
  out += "  \"space\": {\n";
  auto field = [&](const char* name, uint64_t v, bool last = false) {
    out += std::string("    \"") + name + "\": " + Num(v) + (last ? "\n" : ",\n");
  };
  field("data_blocks", i.data_blocks);
  field("used_blocks", i.owned_blocks());
  field("free_blocks", i.free_blocks);
  field("exclusive_blocks", i.exclusive_blocks());
  field("shared_blocks", i.shared_blocks);
  field("shared_references", i.shared_references);
  field("referenced_blocks", i.referenced_blocks);
  field("saved_blocks", i.saved_blocks());
  field("bad_blocks", i.bad_blocks);
  field("retired_blocks", i.retired_blocks());
  field("bad_owned_blocks", i.bad_owned_blocks());
  field("bad_reserved_blocks", i.bad_reserved_blocks);
  out += "    \"bad_by_origin\": {\"injected\": " + Num(i.bad_injected_blocks) +
         ", \"machine-check\": " + Num(i.bad_machine_check_blocks) +
         ", \"machine-check-async\": " + Num(i.bad_machine_check_async_blocks) +
         ", \"device\": " + Num(i.bad_device_blocks) +
         ", \"unknown\": " + Num(i.bad_unknown_blocks()) + "},\n";
  out += std::string("    \"consistent\": ") + (i.consistent() ? "true" : "false") + "\n  },\n";
  out += "  \"free_space\": {\"extents\": " + Num(i.free_extents) + ", \"histogram\": [";
  bool first = true;
  for (unsigned b = 0; b < i.freesp.size(); ++b) {
    const FsInfo::Bucket& k = i.freesp[b];
    if (k.extents == 0) continue;
    out += first ? "\n" : ",\n";
    first = false;
    out += "    {\"from\": " + Num(BucketFrom(b)) + ", \"to\": " + Num(BucketTo(b)) +
           ", \"extents\": " + Num(k.extents) + ", \"blocks\": " + Num(k.blocks) + "}";
  }
  out += first ? "]},\n" : "\n  ]},\n";
  out += "  \"inodes\": {\n";
  field("total", i.inodes);
  field("directories", i.directories);
  field("regular_files", i.regular_files);
  field("symlinks", i.symlinks);
  field("special_files", i.special_files);
  field("orphans", i.orphans, true);
  out += "  },\n";
  out += "  \"extents\": " + Num(i.extents) + ",\n";
  out += "  \"store\": {\"files\": " + Num(i.store_files) + ", \"bytes\": " + Num(i.store_bytes) +
         ", \"disk_bytes\": " + Num(i.store_disk_bytes) + "}\n}\n";
  fputs(out.c_str(), stdout);
}

int Main(int argc, char** argv) {
  bool json = false;
  if (std::optional<int> exit =
          kTool.ParseOptions(argc, argv, "", {cli::kJsonOption}, PrintHelp,
                             [&](int opt, const char*) { json |= opt == cli::kOptJson; }))
    return *exit;
  if (optind >= argc) return kTool.Usage("missing FS (a mount point or a SOURCE directory)");
  if (optind + 1 < argc)
    return kTool.Usage(std::string("unexpected argument '") + argv[optind + 1] + "'");
  const std::string fs = argv[optind];

  Result<poison::Location> loc = poison::LocateFilesystem(fs);
  if (!loc.ok()) return kTool.Fail(loc.status().message());
  Result<control::ControlConnection> conn = control::ControlConnection::Connect(loc->source);
  if (!conn.ok()) return kTool.Fail(conn.status().message());

  FsInfo info;
  Superblock sb;
  if (conn->connected()) {
    // Everything from the daemon, the superblock included: the caller need
    // not be able to read the pool file.
    Status failed = Status::Error(EPROTO, "the daemon's info reply is incomplete");
    bool got_info = false;
    // The daemon's walk reports its progress (at most once a second).
    cli::ProgressLine line(kTool.name());
    conn->Exchange(control::Record("info"), [&](const control::Record& r) {
      if (r.kind == "progress") {
        uint64_t pct = 0;
        r.GetU64("percent", &pct);
        const std::string* phase = r.Get("phase");
        line.Show(phase ? *phase : "", static_cast<double>(pct) / 100);
      } else if (r.kind == "info") {
        line.Clear();
        failed = FsInfoFromRecord(r, &info);
        got_info = failed.ok();
      } else if (r.kind == "freesp" && got_info) {
        Status s = FsInfoAddBucket(r, &info);
        if (!s.ok()) failed = s, got_info = false;
      } else if (r.kind == "done" && got_info) {
        failed = Status::Ok();
      } else if (r.kind == "error") {
        uint64_t err = 0;
        r.GetU64("errno", &err);
        const std::string* msg = r.Get("message");
        if (err == EPERM) {
          failed = Status::Error(EPERM, control::kPermissionDenied);
        } else {
          failed = Status::Error(static_cast<int>(err), msg ? *msg : "the daemon failed");
        }
        got_info = false;
      }
    });
    line.Clear();
    if (!failed.ok()) return kTool.Fail(failed.message());
    sb = info.sb;
  } else {
    Result<std::unique_ptr<OfflineStore>> store = OfflineStore::Open(loc->source);
    if (!store.ok()) return kTool.Fail(store.status().message());
    sb = (*store)->superblock();
    // The counting walk of a big store takes a while: a progress line on a
    // terminal (tools/common/progress.h).
    cli::ProgressLine line(kTool.name());
    Status s = CollectFsInfo(
        (*store)->db(), sb, loc->source,
        [&](std::string_view phase, double done) { return line.Show(phase, done); }, &info);
    line.Clear();
    if (!s.ok()) return kTool.Fail(MetaPath(loc->source) + ": " + s.message());
  }
  Geometry g = GeometryOf(loc->source, sb);
  g.meta_format = info.meta_format;
  g.label = info.label;
  if (json)
    PrintJson(g, info, loc->mount_point, conn->connected());
  else
    PrintText(g, info, loc->mount_point, conn->connected());
  if (fflush(stdout) != 0 || ferror(stdout)) return kTool.Fail("error writing to stdout", errno);
  return 0;
}

}  // namespace
}  // namespace daxref

int main(int argc, char** argv) {
  return daxref::Main(argc, argv);
}
