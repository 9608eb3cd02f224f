#include "tools/poison/request.h"

#include <cerrno>

#include "admin/poison_records.h"
#include "base/block_range_text.h"
#include "meta/format.h"

namespace daxref::poison {

const char* CommandName(Command c) {
  switch (c) {
    case Command::kInject:
      return "inject";
    case Command::kList:
      return "list";
    case Command::kClear:
      return "clear";
    case Command::kResolve:
      return "resolve";
    case Command::kPreRemove:
      return "pre-remove";
    case Command::kRescan:
      return "rescan";
  }
  return "?";
}

Status FitToPool(Request* req, uint64_t block_count) {
  if (!req->has_pool_range()) return Status::Ok();
  const std::string pool = "the pool (" + DescribeBytes(block_count << kBlockShift) + ", " +
                           std::to_string(block_count) + " blocks)";
  const std::string offset = (req->in_blocks ? "block " : "offset ") + req->offset_text;
  if (req->pblock >= block_count) return Status::Invalid(offset + " is past the end of " + pool);
  if (req->blocks > block_count - req->pblock) {
    if (req->command == Command::kInject)
      return Status::Invalid(BlockRangeText(req->pblock, req->pblock + req->blocks) + " (from " +
                             offset + ") run past the end of " + pool);
    req->blocks = block_count - req->pblock;
  }
  return Status::Ok();
}

control::Record ErrorRecord(int err, const std::string& message) {
  control::Record r("error");
  r.Add("errno", static_cast<uint64_t>(err));
  r.Add("message", message);
  return r;
}

std::string DescribeBytes(uint64_t bytes) {
  static const char* const kUnits[] = {"TiB", "GiB", "MiB", "KiB"};
  for (int i = 0; i < 4; ++i) {
    const int shift = 10 * (4 - i);
    const uint64_t unit = uint64_t{1} << shift;
    if (bytes >= unit && bytes % unit == 0) return std::to_string(bytes >> shift) + " " + kUnits[i];
  }
  return std::to_string(bytes) + (bytes == 1 ? " byte" : " bytes");
}

}  // namespace daxref::poison
