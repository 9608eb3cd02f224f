// The geometry report of a daxref filesystem: where its parts live and how
// its pool is laid out. mkfs.daxref prints it after creating a filesystem; an
// info tool reading an existing one prints the same report, so scripts that
// read one can read the other.
//
// Two forms: a human one (aligned "name = value" lines, sizes also in binary
// units) and JSON (one object, raw integers only, the stable contract).
#pragma once

#include <cstdint>
#include <string>

#include "meta/format.h"
#include "meta/superblock.h"

namespace daxref {

struct Geometry {
  std::string source;     // the SOURCE directory
  std::string pool_path;  // PoolPath(source)
  std::string meta_path;  // MetaPath(source)
  Superblock sb;
  uint32_t meta_format = kMetaFormatVersion;  // as recorded in the store
};

// A report for the filesystem in `source` whose pool superblock is `sb`.
Geometry GeometryOf(const std::string& source, const Superblock& sb);

// Both end with a newline.
std::string FormatGeometry(const Geometry& g);
std::string FormatGeometryJson(const Geometry& g);

// "64 MiB", "1.5 GiB", "4095 B": binary units, one decimal (truncated) unless exact.
std::string HumanBytes(uint64_t bytes);

}  // namespace daxref
