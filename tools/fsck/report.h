// What fsck.daxref found and did, and how it says so: lines of text, or one
// JSON document (--json; the format is in docs/fsck.md and versioned by its
// "format" member). Problems and repairs are kept up to a bound (a store
// damaged everywhere can have millions); past it they are counted only.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "meta/checker.h"
#include "meta/repair.h"

namespace daxref::fsck {

enum class Mode { kCheck, kPreen, kRepair };

// fsck(8)'s exit codes.
inline constexpr int kExitClean = 0;
inline constexpr int kExitCorrected = 1;
inline constexpr int kExitUncorrected = 4;
inline constexpr int kExitOperational = 8;

// The JSON document's format; bump on any incompatible change.
inline constexpr int kJsonFormat = 1;

struct StoredProblem {
  ProblemClass cls = ProblemClass::kUndecodable;
  std::string text;
  uint64_t ino = 0;
  std::string path;
  bool repaired = false;
  bool after_repair = false;  // first seen by the check after the repair
};

class Report {
 public:
  Report(std::string source, Mode mode, bool json);

  // Whether a path is worth looking up for the next problem or repair (it
  // will be kept).
  bool WantsPath() const { return problems_.size() < kKept && repairs_.size() < kKept; }
  void AddProblem(const Problem& p, std::string path);
  void AddRepair(const RepairAction& a, std::string path = "");
  void SetCounts(const CheckReport& c) { counts_ = c; }
  const CheckReport& counts() const { return counts_; }
  // The first check is over: what it found is what was wrong.
  void EndFirstCheck() {
    found_ = total_problems_;
    leases_found_ = counts_.leases;
  }
  // The repair did not run, or stopped, for this reason.
  void Refuse(std::string why) { refused_ = std::move(why); }
  bool AllProblems(const std::function<bool(ProblemClass)>& pred) const;
  const std::vector<StoredProblem>& problems() const { return problems_; }
  uint64_t problems_found() const { return total_problems_; }
  // The check after the repair found `left` (of `left_total`): each
  // earlier problem not among them was repaired.
  void EndRepair(const std::vector<StoredProblem>& left, uint64_t left_total);
  // Prints the report; returns the exit status.
  int Finish();

 private:
  static constexpr size_t kKept = 10000;
  int ExitStatus() const;
  void PrintText() const;
  void PrintJson(int status) const;

  std::string source_;
  Mode mode_;
  bool json_;
  std::vector<StoredProblem> problems_;
  uint64_t total_problems_ = 0;
  uint64_t found_ = 0;
  std::vector<StoredProblem> repairs_;  // repaired is unused here
  uint64_t total_repairs_ = 0;
  bool repaired_ = false;  // EndRepair ran
  uint64_t left_ = 0;
  std::string refused_;
  CheckReport counts_;
  uint64_t leases_found_ = 0;  // G records the first check met
};

}  // namespace daxref::fsck
