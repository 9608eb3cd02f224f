// daxref-scrub: checks a mounted daxref filesystem while it is in use
// (docs/fsck.md, "The online check"; man/daxref-scrub.8).
//
//   daxref-scrub [--json] FS
//
// The daemon serving FS runs the checker over one snapshot of its metadata
// store (admin/scrub.h) and streams what it finds over SOURCE/control; this
// prints it. Nothing is frozen and nothing is changed: repairs need the
// filesystem unmounted (fsck.daxref -y).
//
// Exit status: 0 clean, 4 problems found, 8 error (bad usage, not a daxref
// filesystem, no daemon serving it, the check failed).

#include <unistd.h>

#include <cstdio>
#include <optional>
#include <string>
#include <vector>

#include "admin/control_client.h"
#include "admin/control_protocol.h"
#include "tools/common/cli.h"
#include "tools/common/progress.h"
#include "tools/poison/locate.h"

namespace daxref::scrub {
namespace {

constexpr int kExitClean = 0;
constexpr int kExitProblems = 4;
constexpr int kExitError = 8;
constexpr cli::Tool kTool("daxref-scrub", kExitError, kExitError);
// The JSON document's format; bump on any incompatible change.
constexpr int kJsonFormat = 1;
// The counts of the `done` record, in the order they are printed.
constexpr const char* kCounts[] = {"inodes",      "directories",  "orphans",
                                   "extents",     "owned_blocks", "shared_blocks",
                                   "free_blocks", "bad_blocks",   "poisoned_blocks"};

void PrintHelp() {
  printf(
      "Usage: %s [--json] FS\n"
      "\n"
      "Check a mounted daxref filesystem while it is in use: the daemon checks its\n"
      "metadata on one snapshot, read-only, without stopping anything, and reports\n"
      "what it finds. Repairs need the filesystem unmounted (fsck.daxref -y).\n"
      "\n"
      "FS is the mount point (or any path on the mount) or its SOURCE directory.\n"
      "Root or the user the daemon runs as only.\n"
      "\n"
      "Options:\n"
      "      --json              print one JSON document on stdout (raw numbers)\n"
      "  -h, --help              show this help and exit\n"
      "  -V, --version           print the version and exit\n"
      "\n"
      "A progress line is shown when stderr is a terminal.\n"
      "\n"
      "Exit status: 0 clean, 4 problems found, 8 error.\n",
      kTool.name());
}

struct Problem {
  std::string cls, text, path;
  uint64_t ino = 0;
};

int Main(int argc, char** argv) {
  bool json = false;  // --json, the only option
  if (std::optional<int> exit = kTool.ParseOptions(argc, argv, "", {cli::kJsonOption}, PrintHelp,
                                                   [&](int, const char*) { json = true; }))
    return *exit;
  if (optind >= argc) return kTool.Usage("missing FS");
  if (optind + 1 < argc) return kTool.Usage("too many arguments (one FS)");
  const std::string fs = argv[optind];

  Result<poison::Location> loc = poison::LocateFilesystem(fs);
  if (!loc.ok()) return kTool.Fail(loc.status().message());
  Result<control::ControlConnection> conn = control::ControlConnection::Connect(loc->source);
  if (!conn.ok()) return kTool.Fail(conn.status().message());
  if (!conn->connected())
    return kTool.Fail(fs + " is not mounted (no daxref daemon answers on " +
                      control::ControlSocketPath(loc->source) + "): check it with fsck.daxref -n " +
                      loc->source);

  cli::ProgressLine line(kTool.name());
  std::vector<Problem> problems;
  control::Record done, error;
  bool finished = false;
  conn->Exchange(control::Record("scrub"), [&](const control::Record& r) {
    if (r.kind == "progress") {
      uint64_t pct = 0;
      r.GetU64("percent", &pct);
      const std::string* phase = r.Get("phase");
      line.Show(phase ? *phase : "", static_cast<double>(pct) / 100);
    } else if (r.kind == "problem") {
      Problem p;
      if (const std::string* v = r.Get("class")) p.cls = *v;
      if (const std::string* v = r.Get("text")) p.text = *v;
      if (const std::string* v = r.Get("path")) p.path = *v;
      r.GetU64("ino", &p.ino);
      problems.push_back(std::move(p));
    } else if (r.kind == "done") {
      done = r;
      finished = true;
    } else if (r.kind == "error") {
      error = r;
    }
  });
  line.Clear();
  if (!finished) {
    const std::string* m = error.Get("message");
    return kTool.Fail(m ? *m : std::string("the daemon ended the scrub without an answer"));
  }
  uint64_t found = 0;
  done.GetU64("problems", &found);
  const int status = found > 0 ? kExitProblems : kExitClean;
  uint64_t elapsed = 0;
  done.GetU64("elapsed_us", &elapsed);

  if (json) {
    std::string out = "{\"format\":" + std::to_string(kJsonFormat);
    out += ",\"program\":\"daxref-scrub\",\"version\":";
    cli::AppendJson(&out, DAXREF_VERSION);
    out += ",\"source\":";
    cli::AppendJson(&out, loc->source);
    out += ",\"mount_point\":";
    cli::AppendJson(&out, loc->mount_point);
    out += ",\"status\":" + std::to_string(status);
    out += ",\"counts\":{";
    bool first = true;
    for (const char* k : kCounts) {
      uint64_t v = 0;
      done.GetU64(k, &v);
      out += std::string(first ? "" : ",") + "\"" + k + "\":" + std::to_string(v);
      first = false;
    }
    out += "},\"problems_found\":" + std::to_string(found);
    out += ",\"problems\":[";
    first = true;
    for (const Problem& p : problems) {
      out += first ? "{" : ",{";
      first = false;
      out += "\"class\":";
      cli::AppendJson(&out, p.cls);
      out += ",\"text\":";
      cli::AppendJson(&out, p.text);
      if (p.ino != 0) out += ",\"ino\":" + std::to_string(p.ino);
      if (!p.path.empty()) {
        out += ",\"path\":";
        cli::AppendJson(&out, p.path);
      }
      out += "}";
    }
    out += "],\"elapsed_us\":" + std::to_string(elapsed) + "}\n";
    fputs(out.c_str(), stdout);
    return status;
  }
  for (const Problem& p : problems) {
    std::string line = "problem [" + p.cls + "]: " + cli::Printable(p.text);
    if (!p.path.empty()) line += " (" + cli::Printable(p.path) + ")";
    printf("%s\n", line.c_str());
  }
  std::string counts;
  for (const char* k : kCounts) {
    uint64_t v = 0;
    done.GetU64(k, &v);
    counts += std::string(counts.empty() ? "" : ", ") + std::to_string(v) + " " + k;
  }
  const std::string where =
      cli::Printable(loc->mount_point.empty() ? loc->source : loc->mount_point);
  if (found == 0)
    printf("%s: clean (checked online in %.1f s); %s\n", where.c_str(), elapsed / 1e6,
           counts.c_str());
  else
    printf(
        "%s: %llu problems found (checked online in %.1f s; unmount and run fsck.daxref -y "
        "%s to repair); %s\n",
        where.c_str(), static_cast<unsigned long long>(found), elapsed / 1e6,
        cli::Printable(loc->source).c_str(), counts.c_str());
  return status;
}

}  // namespace
}  // namespace daxref::scrub

int main(int argc, char** argv) {
  return daxref::scrub::Main(argc, argv);
}
