// What daxref-poison was asked to do, parsed and checked: the command and
// the pool blocks or file bytes it acts on. main.cc turns the command line
// into a Request; the control client (online) and the offline engine both
// work from it and report through the same records (admin/control_protocol.h),
// so that one printer serves both.
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <string>

#include "admin/control_protocol.h"
#include "meta/status.h"

namespace daxref::poison {

enum class Command { kInject, kList, kClear, kResolve, kPreRemove, kRescan };

// "inject", "list", ... as typed and as sent to the daemon.
const char* CommandName(Command c);

// inject --file: bytes [offset, offset+length) of the file at `path`.
struct FileRange {
  std::string path;  // as typed
  uint64_t offset = 0;
  uint64_t length = 0;  // more than 0
};

struct Request {
  Command command = Command::kList;
  // inject, clear and resolve of a pool range: blocks [pblock, pblock+blocks),
  // the bytes the user named rounded out to whole blocks.
  uint64_t pblock = 0;
  uint64_t blocks = 0;
  // OFFSET as typed ("1G"; a block number with --blocks), for messages.
  std::string offset_text;
  bool in_blocks = false;  // --blocks
  // inject --file.
  std::optional<FileRange> file;

  bool has_pool_range() const {
    return !file && (command == Command::kInject || command == Command::kClear ||
                     command == Command::kResolve);
  }
};

// Checks the pool range of `req` against a pool of `block_count` blocks:
// OFFSET past the end is an error; a range that runs past the end is an
// error for inject and cut at the end for clear and resolve (EINVAL with a
// message naming what was typed).
Status FitToPool(Request* req, uint64_t block_count);

// Every record of a reply, in order; the last is `done` or `error`.
using RecordFn = std::function<void(const control::Record&)>;

// An `error` record, as the daemon would send it.
control::Record ErrorRecord(int err, const std::string& message);

// "64 MiB", "3 GiB", "12 KiB", or "12345 bytes".
std::string DescribeBytes(uint64_t bytes);

}  // namespace daxref::poison
