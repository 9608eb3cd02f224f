#include "tools/fsck/report.h"

#include <cstdio>
#include <unordered_set>

#include "tools/common/cli.h"

#ifndef DAXREF_VERSION
#define DAXREF_VERSION "unknown"
#endif

namespace daxref::fsck {

namespace {

const char* ModeName(Mode m) {
  switch (m) {
    case Mode::kCheck:
      return "check";
    case Mode::kPreen:
      return "preen";
    case Mode::kRepair:
      return "repair";
  }
  return "check";
}

std::string Key(ProblemClass c, const std::string& text) {
  return std::string(ProblemClassName(c)) + '\0' + text;
}

std::string WithPath(const StoredProblem& p) {
  std::string s = cli::Printable(p.text);
  if (!p.path.empty()) s += " (" + cli::Printable(p.path) + ")";
  return s;
}

void AppendItem(std::string* out, const StoredProblem& p, bool with_repaired) {
  *out += "{\"class\":";
  cli::AppendJson(out, ProblemClassName(p.cls));
  *out += ",\"text\":";
  cli::AppendJson(out, p.text);
  if (p.ino != 0) *out += ",\"ino\":" + std::to_string(p.ino);
  if (!p.path.empty()) {
    *out += ",\"path\":";
    cli::AppendJson(out, p.path);
  }
  if (with_repaired) {
    *out += std::string(",\"repaired\":") + (p.repaired ? "true" : "false");
    if (p.after_repair) *out += ",\"after_repair\":true";
  }
  *out += "}";
}

}  // namespace

Report::Report(std::string source, Mode mode, bool json)
    : source_(std::move(source)), mode_(mode), json_(json) {}

void Report::AddProblem(const Problem& p, std::string path) {
  total_problems_++;
  if (problems_.size() >= kKept) return;
  StoredProblem s;
  s.cls = p.cls;
  s.text = p.text;
  s.ino = p.ino;
  s.path = std::move(path);
  problems_.push_back(std::move(s));
}

void Report::AddRepair(const RepairAction& a, std::string path) {
  total_repairs_++;
  if (repairs_.size() >= kKept) return;
  StoredProblem s;
  s.cls = a.cls;
  s.text = a.text;
  s.ino = a.ino;
  s.path = std::move(path);
  repairs_.push_back(std::move(s));
}

bool Report::AllProblems(const std::function<bool(ProblemClass)>& pred) const {
  if (total_problems_ > problems_.size()) {
    // Some were only counted: -p must not guess about them.
    return false;
  }
  for (const StoredProblem& p : problems_)
    if (!pred(p.cls)) return false;
  return true;
}

void Report::EndRepair(const std::vector<StoredProblem>& left, uint64_t left_total) {
  repaired_ = true;
  left_ = left_total;
  std::unordered_set<std::string> still;
  for (const StoredProblem& p : left) still.insert(Key(p.cls, p.text));
  // A problem the second check did not report again was repaired; when the
  // second check found more than it kept, only the kept ones are known.
  const bool complete = left.size() == left_total;
  std::unordered_set<std::string> before;
  for (StoredProblem& p : problems_) {
    const std::string k = Key(p.cls, p.text);
    before.insert(k);
    p.repaired = refused_.empty() && complete && still.count(k) == 0;
  }
  for (const StoredProblem& p : left) {
    if (before.count(Key(p.cls, p.text)) || problems_.size() >= kKept) continue;
    StoredProblem n = p;
    n.after_repair = true;
    problems_.push_back(std::move(n));
  }
}

int Report::ExitStatus() const {
  if (mode_ == Mode::kCheck || !repaired_) return found_ > 0 ? kExitUncorrected : kExitClean;
  if (!refused_.empty() || left_ > 0) return kExitUncorrected;
  return found_ > 0 || total_repairs_ > 0 ? kExitCorrected : kExitClean;
}

int Report::Finish() {
  const int status = ExitStatus();
  if (json_)
    PrintJson(status);
  else
    PrintText();
  fflush(stdout);
  return status;
}

void Report::PrintText() const {
  for (const StoredProblem& p : problems_) {
    const char* tag = !repaired_       ? "problem"
                      : p.after_repair ? "left"
                      : p.repaired     ? "fixed"
                                       : "left";
    printf("%s [%s]: %s\n", tag, ProblemClassName(p.cls), WithPath(p).c_str());
  }
  if (total_problems_ > problems_.size())
    printf("... and %llu more problems\n",
           static_cast<unsigned long long>(total_problems_ - problems_.size()));
  for (const StoredProblem& r : repairs_)
    printf("repair [%s]: %s\n", ProblemClassName(r.cls), WithPath(r).c_str());
  if (total_repairs_ > repairs_.size())
    printf("... and %llu more repairs\n",
           static_cast<unsigned long long>(total_repairs_ - repairs_.size()));
  if (!refused_.empty()) printf("%s\n", cli::Printable(refused_).c_str());
  if (leases_found_ > 0)
    printf("%llu layout lease%s recorded by a daemon that did not unmount cleanly%s\n",
           static_cast<unsigned long long>(leases_found_), leases_found_ == 1 ? "" : "s",
           repaired_ ? "" : " (the next mount revokes them; fsck.daxref -p or -y deletes them)");
  const CheckReport& c = counts_;
  char tail[256];
  snprintf(tail, sizeof(tail),
           "%llu inodes (%llu directories, %llu orphans), %llu extents, %llu blocks owned "
           "(%llu shared), %llu free, %llu bad",
           static_cast<unsigned long long>(c.inodes),
           static_cast<unsigned long long>(c.directories),
           static_cast<unsigned long long>(c.orphans), static_cast<unsigned long long>(c.extents),
           static_cast<unsigned long long>(c.owned_blocks),
           static_cast<unsigned long long>(c.shared_blocks),
           static_cast<unsigned long long>(c.free_blocks),
           static_cast<unsigned long long>(c.bad_blocks));
  const std::string src = cli::Printable(source_);
  if (!repaired_) {
    if (found_ == 0)
      printf("%s: clean; %s\n", src.c_str(), tail);
    else
      printf(
          "%s: %llu problems found%s; %s\n", src.c_str(), static_cast<unsigned long long>(found_),
          mode_ == Mode::kCheck ? " (run fsck.daxref -y to repair)" : ", nothing repaired", tail);
    return;
  }
  printf("%s: %llu problems found, %llu changes made, %llu problems left; %s\n", src.c_str(),
         static_cast<unsigned long long>(found_), static_cast<unsigned long long>(total_repairs_),
         static_cast<unsigned long long>(left_), tail);
}

void Report::PrintJson(int status) const {
  const CheckReport& c = counts_;
  std::string out = "{\"format\":" + std::to_string(kJsonFormat);
  out += ",\"program\":\"fsck.daxref\",\"version\":";
  cli::AppendJson(&out, DAXREF_VERSION);
  out += ",\"source\":";
  cli::AppendJson(&out, source_);
  out += std::string(",\"mode\":\"") + ModeName(mode_) + "\"";
  out += ",\"status\":" + std::to_string(status);
  out += ",\"counts\":{";
  out += "\"inodes\":" + std::to_string(c.inodes);
  out += ",\"directories\":" + std::to_string(c.directories);
  out += ",\"orphans\":" + std::to_string(c.orphans);
  out += ",\"extents\":" + std::to_string(c.extents);
  out += ",\"owned_blocks\":" + std::to_string(c.owned_blocks);
  out += ",\"shared_blocks\":" + std::to_string(c.shared_blocks);
  out += ",\"free_blocks\":" + std::to_string(c.free_blocks);
  out += ",\"bad_blocks\":" + std::to_string(c.bad_blocks);
  out += ",\"poisoned_blocks\":" + std::to_string(c.poisoned_blocks);
  out += ",\"leases\":" + std::to_string(c.leases);
  out += "}";
  out += ",\"leases_recorded\":" + std::to_string(leases_found_);
  uint64_t fixed = 0;
  for (const StoredProblem& p : problems_) fixed += p.repaired && !p.after_repair;
  if (repaired_ && left_ == 0 && refused_.empty()) fixed = found_;
  out += ",\"problems_found\":" + std::to_string(found_);
  out += ",\"problems_repaired\":" + std::to_string(repaired_ ? fixed : 0);
  out += ",\"problems_left\":" + std::to_string(repaired_ ? left_ : found_);
  out += ",\"problems_omitted\":" +
         std::to_string(total_problems_ - std::min<uint64_t>(total_problems_, problems_.size()));
  out += ",\"problems\":[";
  bool first = true;
  for (const StoredProblem& p : problems_) {
    if (!first) out += ",";
    first = false;
    AppendItem(&out, p, true);
  }
  out += "],\"repairs_made\":" + std::to_string(total_repairs_);
  out += ",\"repairs\":[";
  first = true;
  for (const StoredProblem& r : repairs_) {
    if (!first) out += ",";
    first = false;
    AppendItem(&out, r, false);
  }
  out += "]";
  if (!refused_.empty()) {
    out += ",\"not_repaired\":";
    cli::AppendJson(&out, refused_);
  }
  out += "}\n";
  fputs(out.c_str(), stdout);
}

}  // namespace daxref::fsck
