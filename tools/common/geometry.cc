#include "tools/common/geometry.h"

#include <cinttypes>
#include <cstdio>
#include <ctime>
#include <iterator>
#include <string>

#include "tools/common/cli.h"

namespace daxref {

namespace {

std::string UtcTime(uint64_t secs) {
  time_t t = static_cast<time_t>(secs);
  struct tm tm {};
  char buf[64];
  if (gmtime_r(&t, &tm) == nullptr || strftime(buf, sizeof(buf), "%Y-%m-%d %H:%M:%S UTC", &tm) == 0)
    return std::to_string(secs) + " (seconds since the epoch)";
  return buf;
}

}  // namespace

Geometry GeometryOf(const std::string& source, const Superblock& sb) {
  Geometry g;
  g.source = source;
  g.pool_path = PoolPath(source);
  g.meta_path = MetaPath(source);
  g.sb = sb;
  return g;
}

std::string HumanBytes(uint64_t bytes) {
  static constexpr const char* kUnits[] = {"B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB"};
  size_t u = 0;
  uint64_t unit = 1;
  while (u + 1 < std::size(kUnits) && bytes / unit >= 1024) {
    unit <<= 10;
    ++u;
  }
  char buf[48];
  if (bytes % unit == 0) {
    snprintf(buf, sizeof(buf), "%" PRIu64 " %s", bytes / unit, kUnits[u]);
  } else {  // truncated, not rounded: never overstate a capacity
    snprintf(buf, sizeof(buf), "%" PRIu64 ".%" PRIu64 " %s", bytes / unit,
             (bytes % unit) * 10 / unit, kUnits[u]);
  }
  return buf;
}

std::string FormatGeometry(const Geometry& g) {
  const Superblock& sb = g.sb;
  const uint64_t bytes = sb.block_count * sb.block_size;
  char buf[512];
  std::string out;
  out += "source   = " + g.source + "\n";
  out += "pool     = " + g.pool_path + "\n";
  out += "meta     = " + g.meta_path + "\n";
  out += "uuid     = " + UuidToString(sb.uuid) + "\n";
  if (!g.label.empty()) out += "label    = " + cli::Printable(g.label) + "\n";
  snprintf(buf, sizeof(buf), "bsize    = %" PRIu32 " bytes\n", sb.block_size);
  out += buf;
  snprintf(buf, sizeof(buf),
           "blocks   = %" PRIu64 " total, %" PRIu64 " data (blocks %" PRIu64 "-%" PRIu64
           "), 2 superblock copies (blocks 0 and %" PRIu64 ")\n",
           sb.block_count, sb.data_blocks(), sb.first_data_block(), sb.data_end() - 1,
           sb.block_count - 1);
  out += buf;
  snprintf(buf, sizeof(buf), "size     = %" PRIu64 " bytes (%s), data %" PRIu64 " bytes (%s)\n",
           bytes, HumanBytes(bytes).c_str(), sb.data_blocks() * sb.block_size,
           HumanBytes(sb.data_blocks() * sb.block_size).c_str());
  out += buf;
  snprintf(buf, sizeof(buf), "format   = pool v%" PRIu32 ", metadata v%" PRIu32 "\n", sb.version,
           g.meta_format);
  out += buf;
  out += "created  = " + UtcTime(sb.created) + "\n";
  return out;
}

std::string GeometryJsonFields(const Geometry& g) {
  const Superblock& sb = g.sb;
  char buf[1024];
  snprintf(buf, sizeof(buf),
           "  \"uuid\": \"%s\",\n"
           "  \"block_size\": %" PRIu32
           ",\n"
           "  \"blocks\": %" PRIu64
           ",\n"
           "  \"first_data_block\": %" PRIu64
           ",\n"
           "  \"data_blocks\": %" PRIu64
           ",\n"
           "  \"size\": %" PRIu64
           ",\n"
           "  \"pool_format\": %" PRIu32
           ",\n"
           "  \"meta_format\": %" PRIu32
           ",\n"
           "  \"created\": %" PRIu64,
           UuidToString(sb.uuid).c_str(), sb.block_size, sb.block_count, sb.first_data_block(),
           sb.data_blocks(), sb.block_count * sb.block_size, sb.version, g.meta_format, sb.created);
  std::string out;
  out += "  \"source\": " + cli::Json(g.source) + ",\n";
  out += "  \"pool\": " + cli::Json(g.pool_path) + ",\n";
  out += "  \"meta\": " + cli::Json(g.meta_path) + ",\n";
  out += "  \"label\": " + cli::Json(g.label) + ",\n";
  out += buf;
  return out;
}

std::string FormatGeometryJson(const Geometry& g) {
  return "{\n  \"format_version\": " + std::to_string(kGeometryJsonVersion) + ",\n" +
         GeometryJsonFields(g) + "\n}\n";
}

}  // namespace daxref
