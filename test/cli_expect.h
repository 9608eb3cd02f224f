// What a daxref command-line tool's run must look like, for the tests of
// mkfs.daxref, daxref, daxref-reflink, daxref-map and daxref-poison: exit
// status, where the output went, the one-line error and usage conventions,
// and JSON that parses.
#pragma once

#include <string>
#include <vector>

#include "test/fixture.h"

namespace daxref::test {

// The lines of `s`, without their '\n'.
std::vector<std::string> Lines(const std::string& s);
bool Contains(const std::string& haystack, const std::string& needle);

// A runtime failure: `status`, nothing on stdout, exactly one line
// "PROG: ...NEEDLE..." on stderr, ending in '\n'.
void ExpectOneLineFailure(const RunResult& r, const std::string& prog, const std::string& needle,
                          int status = 1);
// A usage error: exit 2, nothing on stdout, "PROG: ...NEEDLE..." then the
// pointer to --help.
void ExpectUsageError(const RunResult& r, const std::string& prog, const std::string& needle);
// A --help answer: exit 0, the usage on stdout, nothing on stderr.
void ExpectHelp(const RunResult& r, const std::string& prog);
// A --version answer: exit 0, one line "PROG ..." on stdout, nothing on stderr.
void ExpectVersion(const RunResult& r, const std::string& prog);
// `text` is one JSON document (Python's json module is the judge).
void ExpectValidJson(const std::string& text);

}  // namespace daxref::test
