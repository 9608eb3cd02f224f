#include "tools/poison/report.h"

#include <cerrno>
#include <cinttypes>
#include <cstdio>
#include <cstring>
#include <ctime>
#include <memory>
#include <string_view>

#include "tools/common/cli.h"

namespace daxref::poison {

namespace {

constexpr const char* kProg = "daxref-poison";

using cli::BlockSpan;
using cli::Count;
using cli::U64;

std::string BlockSpan(const control::Record& r) {
  return BlockSpan(U64(r, "pblock"), U64(r, "blocks"));
}

std::string Elapsed(uint64_t us) {
  char buf[32];
  if (us < 1000000)
    snprintf(buf, sizeof(buf), "%.1f ms", static_cast<double>(us) / 1e3);
  else
    snprintf(buf, sizeof(buf), "%.2f s", static_cast<double>(us) / 1e6);
  return buf;
}

// "injected (uid 0)", "device", "unknown".
std::string OriginText(const control::Record& r) {
  const std::string* origin = r.Get("origin");
  std::string text = origin ? cli::Printable(*origin) : "unknown";
  uint64_t uid = 0;
  if (r.GetU64("uid", &uid)) text += " (uid " + std::to_string(uid) + ")";
  return text;
}

// The time as UTC, "2026-12-07 22:40:01 UTC"; "unknown" without one.
std::string TimeText(const control::Record& r) {
  uint64_t t = 0;
  if (!r.GetU64("time", &t)) return "unknown";
  const time_t tt = static_cast<time_t>(t);
  struct tm tm;
  char buf[64];
  if (gmtime_r(&tt, &tm) == nullptr ||
      strftime(buf, sizeof(buf), "%Y-%m-%d %H:%M:%S UTC", &tm) == 0)
    return std::to_string(t);
  return buf;
}

bool IsNumber(const std::string& v) {
  if (v.empty() || v.size() > 20) return false;
  for (char c : v)
    if (c < '0' || c > '9') return false;
  return v.size() == 1 || v[0] != '0';
}

std::string JsonValue(const std::string& v) {
  return IsNumber(v) ? v : cli::Json(v);
}

}  // namespace

ReportPrinter::ReportPrinter(const Request& req, bool json) : req_(req), json_(json) {
  if (req.command == Command::kResolve)
    owners_ = std::make_unique<cli::OwnersQueryPrinter>(CommandName(req.command), req.pblock,
                                                        req.blocks, json);
}

int ReportPrinter::ExitStatus() const {
  return succeeded_ ? 0 : cli::kExitFailure;
}

void ReportPrinter::Print(const control::Record& r) {
  if (ended_) return;
  if (r.kind == "owner" && !cli::OwnerComplete(r)) {
    ended_ = true;
    PrintError(control::Record("error")
                   .Add("errno", uint64_t{EPROTO})
                   .Add("message", "the reply has an owner record with a field missing"));
    return;
  }
  if (r.kind == "error") {
    ended_ = true;
    PrintError(r);
    return;
  }
  if (owners_) {  // resolve: the owners query, as daxref-map owners prints it
    if (r.kind == "owner") owners_->Owner(r);
    if (r.kind == "done") owners_->Done(U64(r, "owners"));
  } else if (json_)
    PrintJson(r);
  else
    PrintHuman(r);
  if (r.kind == "done") {
    ended_ = true;
    succeeded_ = true;
  }
}

void ReportPrinter::PrintError(const control::Record& r) {
  uint64_t err = 0;
  r.GetU64("errno", &err);
  const std::string* text = r.Get("message");
  std::string message = text && !text->empty() ? *text : strerror(static_cast<int>(err));
  if (err == EPERM && message.find("root") == std::string::npos)
    message += ": only root or the owner of the mount may do this";
  if (owners_) owners_->Failed(err, message);
  if (json_ && begun_) EndJson(r);
  fflush(stdout);
  fprintf(stderr, "%s: %s\n", kProg, cli::Printable(message).c_str());
}

// ---- human ----------------------------------------------------------------

void ReportPrinter::PrintHuman(const control::Record& r) {
  begun_ = true;
  if (r.kind == "range") {
    const uint64_t blocks = U64(r, "blocks"), added = U64(r, "added");
    std::string parts;
    auto part = [&](uint64_t n, const std::string& what) {
      if (n == 0) return;
      parts += (parts.empty() ? ": " : ", ") + std::to_string(n) + " " + what;
    };
    part(U64(r, "owned"), "owned by files");
    part(U64(r, "retired"), "free (retired)");
    part(U64(r, "reserved"), "reserved (superblock)");
    if (added < blocks) part(blocks - added, "already poisoned");
    printf("poisoned %s%s\n", BlockSpan(r).c_str(), parts.c_str());
  } else if (r.kind == "bad") {
    printf("bad %s  origin: %s  time: %s\n", BlockSpan(r).c_str(), OriginText(r).c_str(),
           TimeText(r).c_str());
  } else if (r.kind == "owner") {
    fputs(cli::OwnerText(r).c_str(), stdout);
  } else if (r.kind == "note") {
    const std::string* m = r.Get("message");
    printf("note: %s\n", m ? cli::Printable(*m).c_str() : "");
  } else if (r.kind == "shutdown") {
    const std::string* reason = r.Get("reason");
    printf("the filesystem has shut down%s%s; every operation on it now fails with EIO\n",
           reason ? ": " : "", reason ? cli::Printable(*reason).c_str() : "");
  } else if (r.kind == "done") {
    switch (req_.command) {
      case Command::kInject:
        printf("%s, %s signalled in %s\n", Count(U64(r, "owners"), "owner", "owners").c_str(),
               Count(U64(r, "signalled"), "process", "processes").c_str(),
               Elapsed(U64(r, "elapsed_us")).c_str());
        break;
      case Command::kList:
        if (U64(r, "ranges") == 0)
          printf("no bad blocks\n");
        else
          printf(
              "%s, %s%s\n", Count(U64(r, "ranges"), "bad range", "bad ranges").c_str(),
              Count(U64(r, "blocks"), "block", "blocks").c_str(),
              r.Get("owners") ? (", " + Count(U64(r, "owners"), "owner", "owners")).c_str() : "");
        break;
      case Command::kClear:
        printf("cleared %s, %" PRIu64 " returned to free space\n",
               Count(U64(r, "cleared"), "block", "blocks").c_str(), U64(r, "returned"));
        break;
      case Command::kResolve:  // printed by owners_
        break;
      case Command::kRescan:
        printf("the device lists %s under the pool; %s newly recorded\n",
               Count(U64(r, "ranges"), "bad range", "bad ranges").c_str(),
               Count(U64(r, "added"), "block", "blocks").c_str());
        break;
      case Command::kPreRemove:
        printf("%s, %s signalled\n", Count(U64(r, "inodes"), "inode", "inodes").c_str(),
               Count(U64(r, "signalled"), "process", "processes").c_str());
        break;
    }
  }
  // Other kinds are from a newer daemon: nothing to show.
}

// ---- JSON -----------------------------------------------------------------

std::string ReportPrinter::JsonObject(const control::Record& r, const char* extra) {
  std::string out = "{";
  std::string paths, pids;
  bool first = true;
  for (const auto& [k, v] : r.fields) {
    if (k == "path") {
      paths += (paths.empty() ? "" : ", ") + cli::Json(v);
    } else if (k == "pid") {
      pids += (pids.empty() ? "" : ", ") + JsonValue(v);
    } else {
      out += (first ? "" : ", ") + cli::Json(k) + ": " + JsonValue(v);
      first = false;
    }
  }
  if (r.kind == "owner") {
    out += std::string(first ? "" : ", ") + "\"paths\": [" + paths + "], \"pids\": [" + pids + "]";
    first = false;
  }
  if (extra) out += std::string(first ? "" : ", ") + extra;
  return out + "}";
}

void ReportPrinter::BeginJson() {
  begun_ = true;
  // format_version: the version of this document (daxref-poison(8)), as
  // in the owners report daxref-map shares (tools/common/owner_report.h).
  // Version 2: list's `bad` elements are pieces of one origin, with
  // `origin`, `uid` and `time`; the rescan command.
  std::string head = "{\"format_version\": 2, \"command\": " + cli::Json(CommandName(req_.command));
  if (req_.file) {
    head += ", \"file\": " + cli::Json(req_.file->path) +
            ", \"offset\": " + std::to_string(req_.file->offset) +
            ", \"length\": " + std::to_string(req_.file->length);
  } else if (req_.has_pool_range()) {
    head += ", \"pblock\": " + std::to_string(req_.pblock) +
            ", \"blocks\": " + std::to_string(req_.blocks);
  }
  fputs(head.c_str(), stdout);
}

void ReportPrinter::PrintJson(const control::Record& r) {
  if (!begun_) BeginJson();
  if (r.kind == "owner") {
    const std::string obj = cli::OwnerJson(r);
    if (section_ == Section::kBad) {
      printf("%s\n    %s", bad_has_owners_ ? "," : "", obj.c_str());
      bad_has_owners_ = true;
    } else {
      printf("%s\n  %s", section_ == Section::kOwners ? "," : ", \"owners\": [", obj.c_str());
      section_ = Section::kOwners;
    }
  } else if (r.kind == "bad") {
    if (section_ == Section::kBad)
      printf("%s]},", bad_has_owners_ ? "\n  " : "");
    else
      printf("%s, \"bad\": [", section_ == Section::kOwners ? "\n]" : "");
    std::string obj = JsonObject(r, "\"owners\": [");
    obj.pop_back();  // left open for the owners that follow
    printf("\n  %s", obj.c_str());
    section_ = Section::kBad;
    bad_has_owners_ = false;
  } else if (r.kind == "range") {
    ranges_ += (ranges_.empty() ? "\n  " : ",\n  ") + JsonObject(r);
  } else if (r.kind == "note") {
    const std::string* m = r.Get("message");
    notes_ += (notes_.empty() ? "\n  " : ",\n  ") + cli::Json(m ? *m : "");
  } else if (r.kind == "shutdown") {
    shutdown_ = JsonObject(r);
  } else if (r.kind == "done") {
    EndJson(r);
  }
}

void ReportPrinter::EndJson(const control::Record& last) {
  std::string tail;
  const bool owners_opened = section_ != Section::kNone;  // owners come before any bad
  const bool bad_opened = section_ == Section::kBad;
  if (section_ == Section::kBad) tail += std::string(bad_has_owners_ ? "\n  " : "") + "]}\n]";
  if (section_ == Section::kOwners) tail += "\n]";
  section_ = Section::kNone;
  const Command c = req_.command;
  if ((c == Command::kInject || c == Command::kResolve) && !owners_opened)
    tail += ", \"owners\": []";
  if (c == Command::kList && !bad_opened) tail += ", \"bad\": []";
  if (c == Command::kInject || !ranges_.empty())
    tail += ", \"ranges\": [" + ranges_ + (ranges_.empty() ? "]" : "\n]");
  if (!notes_.empty()) tail += ", \"notes\": [" + notes_ + "\n]";
  if (!shutdown_.empty()) tail += ", \"shutdown\": " + shutdown_;
  if (last.kind == "error") {
    uint64_t err = 0;
    last.GetU64("errno", &err);
    const std::string* m = last.Get("message");
    tail += ", \"error\": {\"errno\": " + std::to_string(err) +
            ", \"message\": " + cli::Json(m ? *m : "") + "}";
  } else {
    tail += ", \"summary\": " + JsonObject(last);
  }
  tail += "}\n";
  fputs(tail.c_str(), stdout);
}

}  // namespace daxref::poison
