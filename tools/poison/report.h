// How daxref-poison shows the records of a reply (admin/control_protocol.h),
// the daemon's or the offline engine's alike: each printed as it arrives,
// as a line for people or as part of one JSON document, with nothing but
// small things (range and note records) held back for the end.
//
// Owners are shown as tools/common/owner_report.h shows them, and resolve
// as the owners query (OwnersQueryPrinter), exactly as daxref-map owners.
//
// Human output, one line per record:
//   poisoned blocks 2345..2345 (1 block): 1 owned by files
//     inode 12 at bytes 0..4095 (block 2345): /a (signalled pids 301, 302)
//     inode 13 at bytes 0..4095 (block 2345): /b
//   3 owners, 2 processes signalled in 4.1 ms
//
// JSON: {"command": ..., the request, then "owners": [...] (streamed) or, for
// list, "bad": [{..., "owners": [...]}] (streamed), then "ranges", "notes",
// "shutdown" when there are any, and "summary": {...}}. An `error` record is
// one line on stderr, "daxref-poison: MESSAGE"; when the document had begun,
// it is closed with "error": {"errno": N, "message": ...} instead of a
// summary, and when it had not, nothing is printed on stdout at all.
#pragma once

#include <cstdint>
#include <memory>
#include <string>

#include "admin/control_protocol.h"
#include "tools/common/owner_report.h"
#include "tools/poison/request.h"

namespace daxref::poison {

class ReportPrinter {
 public:
  ReportPrinter(const Request& req, bool json);
  ReportPrinter(const ReportPrinter&) = delete;
  ReportPrinter& operator=(const ReportPrinter&) = delete;

  // Shows one record. Records after `done` or `error` are ignored.
  void Print(const control::Record& r);
  // The exit status: 0 after `done`, 1 after `error` or when neither came.
  int ExitStatus() const;

 private:
  enum class Section { kNone, kOwners, kBad };

  void PrintHuman(const control::Record& r);
  void PrintJson(const control::Record& r);
  void BeginJson();
  void EndJson(const control::Record& last);
  void PrintError(const control::Record& r);
  // A record as a JSON object: numbers as numbers, `path` and `pid` (which
  // repeat) as arrays "paths" and "pids".
  static std::string JsonObject(const control::Record& r, const char* extra = nullptr);

  const Request& req_;
  const bool json_;
  bool ended_ = false;
  bool succeeded_ = false;
  // JSON state.
  bool begun_ = false;
  Section section_ = Section::kNone;
  bool first_in_section_ = true;
  bool bad_has_owners_ = false;  // the open bad element's owners array has elements
  std::string ranges_, notes_, shutdown_;
  // resolve: the owners query, printed as daxref-map owners prints it.
  std::unique_ptr<cli::OwnersQueryPrinter> owners_;
};

}  // namespace daxref::poison
