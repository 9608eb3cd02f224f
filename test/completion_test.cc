// bash completion (issue 14 item 5, tools/completion/daxref.bash): each
// tool's commands and options are offered, and every option its --help
// lists, so that an option added without completion fails here.
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <catch2/catch.hpp>
#include <regex>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "test/cli_expect.h"
#include "test/fixture.h"

using namespace daxref::test;

namespace {

const std::string kCompletion = DAXREF_TEST_COMPLETION;

// What bash offers for `line` (split at spaces; a trailing space starts a
// new, empty word): the function `complete -p` names for the command is
// called as bash calls it, and COMPREPLY printed.
std::set<std::string> Complete(const std::string& line) {
  static const char kScript[] = R"(. "$1" || exit 3; line=$2
read -ra COMP_WORDS <<< "$line"
[[ $line == *' ' ]] && COMP_WORDS+=('')
COMP_CWORD=$((${#COMP_WORDS[@]} - 1)); COMP_LINE=$line; COMP_POINT=${#line}
spec=$(complete -p "${COMP_WORDS[0]}") || exit 4
fn=${spec#*-F }; fn=${fn%% *}
"$fn" "${COMP_WORDS[0]}" "${COMP_WORDS[COMP_CWORD]}" "${COMP_WORDS[COMP_CWORD - 1]}"
printf '%s\n' "${COMPREPLY[@]}")";
  RunResult r = Run({"/bin/bash", "-c", kScript, "bash", kCompletion, line});
  INFO("completing '" << line << "': " << r.err);
  REQUIRE(r.status == 0);
  std::set<std::string> words;
  for (const auto& w : Lines(r.out))
    if (!w.empty()) words.insert(w);
  return words;
}

// The options a --help text lists: on the lines that start (after spaces)
// with a dash, every -x and --long-name before the description.
std::set<std::string> HelpOptions(const std::string& help) {
  static const std::regex kOpt(R"((^|[ ,])(--?[A-Za-z][A-Za-z0-9-]*))");
  std::set<std::string> opts;
  for (const auto& line : Lines(help)) {
    const size_t first = line.find_first_not_of(' ');
    if (first == std::string::npos || line[first] != '-') continue;
    // The description starts after a run of two spaces past the option.
    const size_t gap = line.find("  ", first);
    const std::string head = line.substr(0, gap);
    for (std::sregex_iterator it(head.begin(), head.end(), kOpt), end; it != end; ++it)
      opts.insert((*it)[2]);
  }
  return opts;
}

struct Tool {
  std::string name;
  std::string bin;
  std::vector<std::string> commands;  // offered for `NAME `
};

std::vector<Tool> Tools() {
  return {
      {"daxref", DaemonBin(), {}},
      {"mkfs.daxref", MkfsBin(), {}},
      {"fsck.daxref", DAXREF_TEST_FSCK, {}},
      {"daxref-info", DAXREF_TEST_INFO, {}},
      {"daxref-scrub", DAXREF_TEST_SCRUB, {}},
      {"daxref-map", DAXREF_TEST_MAP, {"extents", "fsmap", "owners"}},
      {"daxref-poison",
       DAXREF_TEST_POISON,
       {"inject", "list", "clear", "resolve", "rescan", "from-device", "pre-remove"}},
      {"daxref-reflink", DAXREF_TEST_REFLINK, {"clone", "clone-range", "dedupe", "unshare"}},
  };
}

}  // namespace

TEST_CASE("completion: every option of every tool's --help is offered", "[completion]") {
  for (const Tool& t : Tools()) {
    INFO(t.name);
    RunResult help = Run({t.bin, "--help"});
    REQUIRE(help.status == 0);
    const std::set<std::string> listed = HelpOptions(help.out);
    CHECK(listed.count("--help"));  // the parsing found the options at all
    CHECK(listed.count("--version"));
    std::set<std::string> offered = Complete(t.name + " -");
    for (const auto& o : listed) {
      INFO(o);
      CHECK(offered.count(o));
    }
    // And nothing that is not an option of the tool.
    for (const auto& o : offered) {
      INFO(o);
      CHECK(listed.count(o));
    }
    // `--` offers the long options only.
    for (const auto& o : Complete(t.name + " --")) CHECK(o.rfind("--", 0) == 0);
  }
}

TEST_CASE("completion: commands, then paths", "[completion]") {
  TempDir dir;
  WriteFile(dir.path() + "/some-file", "x");
  REQUIRE(mkdir((dir.path() + "/some-dir").c_str(), 0755) == 0);
  for (const Tool& t : Tools()) {
    INFO(t.name);
    if (t.commands.empty()) {
      // A path is what comes first (a directory, at least).
      CHECK(Complete(t.name + " " + dir.path() + "/").count(dir.path() + "/some-dir"));
      continue;
    }
    const std::set<std::string> want(t.commands.begin(), t.commands.end());
    CHECK(Complete(t.name + " ") == want);
    CHECK(Complete(t.name + " --json ") == want);
    // After the command: paths.
    CHECK(Complete(t.name + " " + t.commands[0] + " " + dir.path() + "/some-f") ==
          std::set<std::string>{dir.path() + "/some-file"});
  }
  CHECK(Complete("daxref-poison l") == std::set<std::string>{"list"});
  CHECK(Complete("daxref-poison inject --file " + dir.path() + "/some-f") ==
        std::set<std::string>{dir.path() + "/some-file"});
  // An option's value is not a command.
  CHECK(Complete("daxref-map -r 0 ").empty());
  CHECK(Complete("daxref-map -r 0 4096 ") == std::set<std::string>{"extents", "fsmap", "owners"});
}

TEST_CASE("completion: daxref's -o offers its mount options, item by item", "[completion]") {
  RunResult help = Run({DaemonBin(), "--help"});
  REQUIRE(help.status == 0);
  // The daxref options of --help's "Mount options" part: NAME= or NAME at
  // the start of its lines.
  std::set<std::string> listed;
  bool in_mount = false;
  static const std::regex kName(R"(^([a-z_]+=?))");
  for (const auto& line : Lines(help.out)) {
    if (line.rfind("Mount options", 0) == 0) in_mount = true;
    if (!in_mount || line.rfind("  ", 0) != 0 || line.size() < 3 || !islower(line[2])) continue;
    std::string head = line.substr(2, line.find("  ", 2) - 2);
    std::stringstream ss(head);
    std::string item;
    while (std::getline(ss, item, ',')) {
      item.erase(0, item.find_first_not_of(' '));
      std::smatch m;
      if (std::regex_search(item, m, kName)) listed.insert(m[1]);
    }
  }
  CHECK(listed.count("log_file="));
  CHECK(listed.count("poison_signal="));
  const std::set<std::string> offered = Complete("daxref -o ");
  for (const auto& o : listed) {
    INFO(o);
    CHECK(offered.count(o));
  }
  CHECK(Complete("daxref -o ro,log_file_") == std::set<std::string>{"ro,log_file_size="});
  CHECK(Complete("daxref --log-level w") == std::set<std::string>{"warn"});
}
