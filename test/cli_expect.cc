#include "test/cli_expect.h"

#include <catch2/catch.hpp>
#include <sstream>

namespace daxref::test {

std::vector<std::string> Lines(const std::string& s) {
  std::vector<std::string> out;
  std::istringstream in(s);
  for (std::string line; std::getline(in, line);) out.push_back(line);
  return out;
}

bool Contains(const std::string& haystack, const std::string& needle) {
  return haystack.find(needle) != std::string::npos;
}

void ExpectOneLineFailure(const RunResult& r, const std::string& prog, const std::string& needle,
                          int status) {
  INFO("status " << r.status << "\nstdout: " << r.out << "\nstderr: " << r.err);
  CHECK(r.status == status);
  CHECK(r.out.empty());
  const std::vector<std::string> lines = Lines(r.err);
  REQUIRE(lines.size() == 1);
  CHECK(lines[0].rfind(prog + ": ", 0) == 0);
  CHECK(Contains(lines[0], needle));
  CHECK(r.err.back() == '\n');
}

void ExpectUsageError(const RunResult& r, const std::string& prog, const std::string& needle) {
  INFO("status " << r.status << "\nstdout: " << r.out << "\nstderr: " << r.err);
  CHECK(r.status == 2);
  CHECK(r.out.empty());
  const std::vector<std::string> lines = Lines(r.err);
  REQUIRE(lines.size() == 2);
  CHECK(lines[0].rfind(prog + ": ", 0) == 0);
  CHECK(Contains(lines[0], needle));
  CHECK(lines[1] == "Try '" + prog + " --help' for more information.");
}

void ExpectHelp(const RunResult& r, const std::string& prog) {
  CHECK(r.status == 0);
  CHECK(r.err.empty());
  CHECK(r.out.rfind("Usage: " + prog, 0) == 0);
}

void ExpectVersion(const RunResult& r, const std::string& prog) {
  CHECK(r.status == 0);
  CHECK(r.err.empty());
  CHECK(r.out.rfind(prog + " ", 0) == 0);
  CHECK(Lines(r.out).size() == 1);
}

void ExpectValidJson(const std::string& text) {
  TempDir t;
  const std::string file = t.path() + "/doc.json";
  WriteFile(file, text);
  RunResult r =
      Run({"/usr/bin/python3", "-c", "import json, sys; json.load(open(sys.argv[1], 'rb'))", file});
  INFO(text << "\n" << r.err);
  CHECK(r.status == 0);
}

}  // namespace daxref::test
