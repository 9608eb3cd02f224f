// The geometry report of a daxref filesystem: where its parts live and how
// its pool is laid out. mkfs.daxref prints it after creating a filesystem;
// daxref-info, reading an existing one, prints the same report first (the
// one implementation is here), so that scripts that read one can read the
// other.
//
// Two forms: a human one (aligned "name = value" lines, sizes also in binary
// units) and JSON (raw integers only, the stable contract; the fields are
// listed in mkfs.daxref(8) and daxref-info(8)).
#pragma once

#include <cstdint>
#include <string>

#include "meta/format.h"
#include "meta/superblock.h"

namespace daxref {

// The version of the JSON documents mkfs.daxref and daxref-info print (their
// "format_version" field): raised when a field changes meaning or goes away;
// new fields do not raise it.
inline constexpr uint32_t kGeometryJsonVersion = 1;

struct Geometry {
  std::string source;     // the SOURCE directory
  std::string pool_path;  // PoolPath(source)
  std::string meta_path;  // MetaPath(source)
  Superblock sb;
  uint32_t meta_format = kMetaFormatVersion;  // as recorded in the store
  std::string label;                          // empty: none (mkfs.daxref -L)
};

// A report for the filesystem in `source` whose pool superblock is `sb`.
Geometry GeometryOf(const std::string& source, const Superblock& sb);

// Both end with a newline.
std::string FormatGeometry(const Geometry& g);
// One JSON object: "format_version" and the geometry fields.
std::string FormatGeometryJson(const Geometry& g);
// The geometry fields alone, each on a line of its own, indented by two
// spaces and separated by ",\n", with no trailing comma or newline: for a
// document that carries them among its own (daxref-info --json).
std::string GeometryJsonFields(const Geometry& g);

// "64 MiB", "1.5 GiB", "4095 B": binary units, one decimal (truncated) unless exact.
std::string HumanBytes(uint64_t bytes);

}  // namespace daxref
