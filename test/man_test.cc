// The manual pages (issue 14 item 7): every SEE ALSO reference is a page
// in man/ or a known page of another package, every daxref page names all
// the others, daxref(8) names every page in man/, and man/meson.build
// installs every one.
#include <catch2/catch.hpp>
#include <filesystem>
#include <fstream>
#include <regex>
#include <set>
#include <sstream>
#include <string>
#include <utility>
#include <vector>

#include "test/cli_expect.h"

using namespace daxref::test;

namespace {

const std::string kMan = DAXREF_TEST_MAN;

using Page = std::pair<std::string, std::string>;  // name, section

// Pages of other packages the SEE ALSO sections may name (Debian 12:
// util-linux, mount, fuse3, manpages, manpages-dev, systemd, xfsprogs,
// e2fsprogs, coreutils, ndctl).
const std::set<Page> kExternal = {
    {"cp", "1"},          {"fusermount3", "1"},   {"ndctl-inject-error", "1"},
    {"fallocate", "2"},   {"ioctl_ficlone", "2"}, {"ioctl_fideduperange", "2"},
    {"mmap", "2"},        {"msync", "2"},         {"syslog", "3"},
    {"fuse", "4"},        {"fstab", "5"},         {"systemd.mount", "5"},
    {"e2fsck", "8"},      {"filefrag", "8"},      {"fsck", "8"},
    {"ld.so", "8"},       {"mkfs", "8"},          {"mount", "8"},
    {"mount.fuse3", "8"}, {"umount", "8"},        {"xfs_db", "8"},
    {"xfs_info", "8"},    {"xfs_io", "8"},
};

std::string Slurp(const std::string& path) {
  std::ifstream in(path);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// The pages in man/: NAME.1, NAME.3, NAME.7, NAME.8.
std::set<Page> OurPages() {
  std::set<Page> pages;
  for (const auto& e : std::filesystem::directory_iterator(kMan)) {
    const std::string f = e.path().filename();
    const size_t dot = f.rfind('.');
    const std::string sec = f.substr(dot + 1);
    if (sec == "1" || sec == "3" || sec == "7" || sec == "8") pages.insert({f.substr(0, dot), sec});
  }
  return pages;
}

// The raw .BR lines of a page's SEE ALSO section.
std::vector<std::string> SeeAlsoLines(const Page& p) {
  const std::string text = Slurp(kMan + "/" + p.first + "." + p.second);
  const size_t start = text.find("\n.SH SEE ALSO\n");
  REQUIRE(start != std::string::npos);
  std::vector<std::string> lines;
  for (const auto& l : Lines(text.substr(start + 14))) {
    if (l.rfind(".SH", 0) == 0) break;
    lines.push_back(l);
  }
  return lines;
}

}  // namespace

TEST_CASE("man: every SEE ALSO names real pages, and all of daxref's", "[man]") {
  const std::set<Page> ours = OurPages();
  REQUIRE(ours.size() >= 9);
  static const std::regex kRef(R"(^\.BR ([A-Za-z0-9_.\\-]+) \((\d)\),?$)");
  for (const Page& page : ours) {
    INFO(page.first << "(" << page.second << ")");
    std::set<Page> refs;
    const std::vector<std::string> lines = SeeAlsoLines(page);
    for (size_t i = 0; i < lines.size(); ++i) {
      const std::string& l = lines[i];
      INFO(l);
      std::smatch m;
      REQUIRE(std::regex_match(l, m, kRef));
      // A comma after every reference but the last.
      CHECK((l.back() == ',') == (i + 1 < lines.size()));
      // Hyphens in names are written \- (a hyphen, not a minus).
      const std::string written = m[1];
      CHECK(std::regex_search(written, std::regex(R"((^|[^\\])-)")) == false);
      const Page ref{std::regex_replace(written, std::regex(R"(\\-)"), "-"), m[2]};
      CHECK(refs.insert(ref).second);  // named once
      CHECK(ref != page);
      CHECK((ours.count(ref) || kExternal.count(ref)));
    }
    for (const Page& other : ours) {
      if (other == page) continue;
      INFO("does not name " << other.first << "(" << other.second << ")");
      CHECK(refs.count(other));
    }
  }
}

TEST_CASE("man: meson installs every page in man/", "[man]") {
  const std::string build = Slurp(kMan + "/meson.build");
  for (const Page& page : OurPages()) {
    const std::string file = "'" + page.first + "." + page.second + "'";
    INFO(file);
    CHECK(build.find(file) != std::string::npos);
  }
}
