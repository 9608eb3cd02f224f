// The owners of pool blocks as the tools show them: one rendering for
// `daxref-map owners` (which asks the daemon through DAXREF_IOC_OWNERS) and
// `daxref-poison resolve` (through SOURCE/control, or offline), which
// answer the same question, and for the owners daxref-poison lists under
// `inject` and `list` (docs/poison.md, "Owners").
//
// An owner is an `owner` record of the control protocol
// (admin/control_protocol.h): `ino`, `pblock` and `blocks` (the pool blocks
// it owns, clipped to the range asked about), `offset` and `length` (the
// file's bytes there), a `path` per name, a `pid` per process signalled and,
// when its names could not be found, `paths_error`. Pool places are counted
// in blocks, file places in bytes, in text and in JSON alike.
//
// Text, one owner:
//   inode 12 at bytes 0..4095 (block 2345): /a (signalled pids 301, 302)
//       also /b
// JSON, one owner:
//   {"ino": 12, "pblock": 2345, "blocks": 1, "offset": 0, "length": 4096,
//    "paths": ["/a", "/b"], "pids": [301, 302]}
// plus "paths_error": "..." when there is one.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <utility>

#include "admin/control_protocol.h"

namespace daxref::cli {

// The number in field `key` of a record; 0 when it has none.
uint64_t U64(const control::Record& r, std::string_view key);
// "1 owner", "3 owners".
std::string Count(uint64_t n, const char* one, const char* many);
// "blocks 7..9 (3 blocks)", as every report names a range of pool blocks.
std::string BlockSpan(uint64_t pblock, uint64_t blocks);

// The owner's line and one "      also PATH" line per further path, each
// ending in '\n'; the first line is indented by two spaces.
// Whether an owner record carries every number the report prints (ino,
// pblock, blocks, offset, length; blocks and length not 0). A reply that
// lacks one is a protocol error, never printed as zeros.
bool OwnerComplete(const control::Record& owner);
std::string OwnerText(const control::Record& owner);
// The owner as one JSON object.
std::string OwnerJson(const control::Record& owner);

// The answer to "who owns pool blocks [pblock, pblock+blocks)?", printed as
// it arrives:
//   owners of blocks 100..101 (2 blocks):
//     inode 12 at bytes 0..8191 (blocks 100..101): /a
//   1 owner
// or, in JSON,
//   {"format_version": 1, "command": COMMAND, "pblock": 100, "blocks": 2, "owners": [
//     {...}
//   ], "summary": {"owners": 1}}
// Nothing is printed before the first owner or the end, so that a query
// refused at once leaves standard output empty.
class OwnersQueryPrinter {
 public:
  OwnersQueryPrinter(std::string command, uint64_t pblock, uint64_t blocks, bool json)
      : command_(std::move(command)), pblock_(pblock), blocks_(blocks), json_(json) {}
  OwnersQueryPrinter(const OwnersQueryPrinter&) = delete;
  OwnersQueryPrinter& operator=(const OwnersQueryPrinter&) = delete;

  void Owner(const control::Record& owner);
  // The end: `owners` counted.
  void Done(uint64_t owners);
  // The end, by an error (printed on standard error by the caller): a JSON
  // document already begun is closed with "error": {"errno", "message"}.
  void Failed(uint64_t err, const std::string& message);

 private:
  void Begin();

  const std::string command_;
  const uint64_t pblock_, blocks_;
  const bool json_;
  bool begun_ = false;
  uint64_t printed_ = 0;
};

}  // namespace daxref::cli
