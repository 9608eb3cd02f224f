// What daxref's command-line tools (mkfs.daxref, fsck.daxref, daxref-scrub,
// daxref-poison, daxref-map, daxref-reflink) share: the frame of their main()
// (options, --help, --version, usage errors, failures, exit statuses), sizes
// as typed, and JSON and terminal-safe strings.
#pragma once

#include <getopt.h>

#include <cstdint>
#include <functional>
#include <initializer_list>
#include <optional>
#include <string>
#include <string_view>

namespace daxref::cli {

// Exit status of most tools: 0 success, 1 failure, 2 usage error. fsck.daxref
// and daxref-scrub follow fsck(8) instead: 8 for both.
constexpr int kExitFailure = 1;
constexpr int kExitUsage = 2;

// --json, which every tool but mkfs.daxref takes. A tool's other long-only
// options have values past kOptJson.
inline constexpr int kOptJson = 256;
inline constexpr option kJsonOption = {"json", no_argument, nullptr, kOptJson};

// The frame of a tool's main(): its name and exit statuses, and the lines it
// prints. Messages go to stderr, one line each, prefixed with the name.
class Tool {
 public:
  constexpr Tool(const char* name, int usage_status, int failure_status)
      : name_(name), usage_status_(usage_status), failure_status_(failure_status) {}

  constexpr const char* name() const { return name_; }

  // Runs getopt_long over the command line. `shorts` and `longs` are the
  // tool's own options, without -h/--help and -V/--version (added here) and
  // without the terminating entry; each option found goes to
  // on_option(val, optarg). Returns the status main() is to exit with at once
  // after --help (print_help() has printed it), --version, or an unknown
  // option or missing argument (a usage error, as Usage() reports it:
  // "invalid option -- 'x'", "unrecognized option '--xyz'", "option '--file'
  // needs an argument"). Otherwise nothing, and the operands start at
  // argv[optind].
  std::optional<int> ParseOptions(
      int argc, char** argv, std::string_view shorts, std::initializer_list<option> longs,
      void (*print_help)(), const std::function<void(int val, const char* arg)>& on_option) const;

  // "NAME: MESSAGE" and "Try 'NAME --help' for more information."; returns
  // the usage status.
  int Usage(const std::string& message) const;
  // stdout flushed (what was printed comes first), then "NAME: MESSAGE" with
  // the message made Printable (one error, one line); returns the failure
  // status.
  int Fail(const std::string& message) const;
  // "NAME: WHAT: strerror(err)HINT", as Fail(message).
  int Fail(const std::string& what, int err, const std::string& hint = "") const;
  // Fail(message), returning `status`.
  int FailWith(int status, const std::string& message) const;
  // "NAME VERSION" on stdout; returns 0.
  int PrintVersion() const;

 private:
  const char* name_;
  int usage_status_;
  int failure_status_;
};

// A number of bytes (or blocks) as typed: decimal digits, then an optional
// binary suffix K, M, G or T (any case, powers of 1024), optionally followed
// by B or iB: "4096", "64K", "1MiB", "2g". On failure returns false and sets
// *error to a message naming `what`.
bool ParseSize(std::string_view text, std::string_view what, uint64_t* out, std::string* error);

// Appends `text` to *out as a JSON string, quotes included: '"', '\' and
// control characters are escaped; every other byte, 0x80 and up included, is
// copied as it is (file names are bytes, not necessarily UTF-8).
void AppendJson(std::string* out, std::string_view text);
std::string Json(std::string_view text);

// `text` safe to print on one line of a terminal: control characters as
// \n, \t or \xNN, and '\' as "\\"; other bytes as they are.
std::string Printable(std::string_view text);

}  // namespace daxref::cli
