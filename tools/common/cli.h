// Small helpers shared by daxref's command-line tools (daxref-reflink,
// daxref-map): sizes as typed, JSON and terminal-safe strings.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

namespace daxref::cli {

// Exit status shared by the tools: 0 success, 1 failure, 2 usage error.
constexpr int kExitFailure = 1;
constexpr int kExitUsage = 2;

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

// What getopt_long rejected, as a usage message: "invalid option -- 'x'"
// for a short option, "unrecognized option '--xyz'" for a long one.
std::string BadOption(int optopt, const char* arg);

}  // namespace daxref::cli
