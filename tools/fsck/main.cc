// fsck.daxref: checks, and on request repairs, an unmounted daxref
// filesystem (docs/fsck.md, man/fsck.daxref.8).
//
//   fsck.daxref [-n | -p | -y] [--json] SOURCE
//
// The conventions are fsck(8)'s and e2fsck's: -n reads only, -p repairs what
// is safe without asking (and stops, changing nothing, when it meets
// anything else), -y repairs everything it can; the exit status is 0 (no
// errors), 1 (errors corrected, all of them), 4 (errors left uncorrected,
// whether or not others were corrected) or 8 (operational error: bad usage,
// SOURCE cannot be opened or is in use).
//
// Order: the pool's lock (shared for -n, exclusive to repair; the daemon
// holds it exclusive for its whole life, so a mounted SOURCE is refused),
// both superblock copies, the metadata store opened read-only (so that a
// check changes no byte of SOURCE), the check; then, when repairing and
// there is something to repair, the store opened read-write, the superblock
// copies, the store (meta/repair.h), and the check again: what it still
// finds is what is left.

#include <fcntl.h>
#include <rocksdb/db.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <memory>
#include <optional>
#include <string>
#include <unordered_set>
#include <vector>

#include "admin/lease_holders.h"
#include "meta/checker.h"
#include "meta/lease_record.h"
#include "meta/pool_check.h"
#include "meta/repair.h"
#include "meta/store.h"
#include "meta/store_scan.h"
#include "meta/superblock.h"
#include "tools/common/cli.h"
#include "tools/common/progress.h"
#include "tools/fsck/pool_file.h"
#include "tools/fsck/report.h"

namespace daxref::fsck {
namespace {

constexpr cli::Tool kTool("fsck.daxref", kExitOperational, kExitOperational);

void PrintHelp() {
  printf(
      "Usage: %s [-n | -p | -y] [-f] [--json] SOURCE\n"
      "\n"
      "Check a daxref filesystem (the SOURCE directory made by mkfs.daxref, not\n"
      "mounted) and, with -p or -y, repair it.\n"
      "\n"
      "Options:\n"
      "  -n, --no                check only: open everything read-only, change\n"
      "                          nothing (the default)\n"
      "  -p, -a, --preen         repair what is safe to repair without asking;\n"
      "                          change nothing if anything else is wrong\n"
      "  -y, --yes               repair everything that can be repaired\n"
      "  -f, --force             accepted for fsck(8); every run is a full check\n"
      "      --json              print one JSON document on stdout (raw numbers)\n"
      "  -h, --help              show this help and exit\n"
      "  -V, --version           print the version and exit\n"
      "\n"
      "A progress line (phase and percent) is shown when stderr is a terminal.\n"
      "\n"
      "Exit status: 0 no errors, 1 errors corrected (all of them), 4 errors left\n"
      "uncorrected, 8 operational error (bad usage, SOURCE cannot be opened, or is\n"
      "mounted or in use).\n",
      kTool.name());
}

// Which problems -p may repair: those whose repair loses nothing and needs
// no decision (derived indexes, counts, one damaged superblock copy). The
// rest need -y.
bool PreenSafe(ProblemClass c) {
  switch (c) {
    case ProblemClass::kSuperblock:
    case ProblemClass::kCounters:
    case ProblemClass::kRmap:
    case ProblemClass::kFreeSpace:
    case ProblemClass::kLeaked:
    case ProblemClass::kBadBlocks:
    case ProblemClass::kRefcount:
    case ProblemClass::kReflinkFlag:
    case ProblemClass::kCookie:
    case ProblemClass::kParentPointer:
    case ProblemClass::kNlink:
    case ProblemClass::kBlocks:
    case ProblemClass::kDirParent:
    case ProblemClass::kOrphan:
    case ProblemClass::kXattr:
    case ProblemClass::kLease:
      return true;
    default:
      return false;
  }
}

// Problems no repair may touch: the store is not this pool's.
bool Foreign(ProblemClass c) {
  return c == ProblemClass::kUuid || c == ProblemClass::kGeneration;
}

struct CommandLine {
  Mode mode = Mode::kCheck;
  bool json = false;
  std::string source;
};

// The pool's superblock problems, as the check reports them.
void PoolProblems(const PoolInspection& pi, const ProblemFn& bad) {
  if (!pi.primary.ok())
    bad(Problem{ProblemClass::kSuperblock,
                "primary superblock (block 0) is damaged: " + pi.primary.message(), 0});
  if (!pi.backup.ok())
    bad(Problem{ProblemClass::kSuperblock,
                "backup superblock (last block) is damaged: " + pi.backup.message(), 0});
  if (pi.copies_differ)
    bad(Problem{ProblemClass::kSuperblock, "the backup superblock does not match the primary", 0});
  if (pi.truncated)
    bad(Problem{ProblemClass::kSuperblock,
                "the pool file is truncated: " + std::to_string(pi.file_bytes) +
                    " bytes, the superblock says " + std::to_string(pi.sb.block_count * kBlockSize),
                0});
}

// The first G record (docs/dax.md) whose holder is still alive and still
// maps the pool file `pool_fd`, described in one line; "" when there is
// none. Such a holder could store into blocks a repair reassigns, so while
// it lives nothing is repaired. Records that do not decode name no holder.
std::string LiveLeaseHolder(rocksdb::DB* db, int pool_fd, const PoolGeometry& geo) {
  struct stat st {};
  if (fstat(pool_fd, &st) != 0) return "";
  std::string found;
  Status s = WalkPrefix(db, prefix::kLease, [&](std::string_view k, std::string_view v) {
    LeaseRecord r;
    if (!DecodeLease(k, v, geo, &r).ok() || !RecordedHolderAlive(r) ||
        !ProcessMapsFile(static_cast<pid_t>(r.pid), st.st_dev, st.st_ino))
      return Status::Ok();
    found = "process " + std::to_string(r.pid) + " (holder of " + LeaseModeName(r.mode) +
            " lease " + std::to_string(r.id) + " of inode " + std::to_string(r.ino) +
            ") is alive and maps the pool";
    return Status::Error(EEXIST, "");  // stops the walk
  });
  (void)s;  // a store that cannot be read was reported by the check
  return found;
}

// Runs the whole check of an open pool and store into `report`.
Status CheckAll(int pool_fd, rocksdb::DB* db, cli::ProgressLine* line, Report* report,
                PoolInspection* pi) {
  DAXREF_RETURN_IF_ERROR(InspectPool(pool_fd, pi));
  PoolProblems(*pi, [&](const Problem& p) { report->AddProblem(p, ""); });
  CheckOptions opts;
  opts.block_count = pi->sb.block_count;
  opts.pool = &pi->sb;
  opts.progress = [&](std::string_view phase, double done) { return line->Show(phase, done); };
  CheckReport counts;
  Status s = CheckStore(
      db, opts,
      [&](const Problem& p) {
        report->AddProblem(p,
                           p.ino != 0 && report->WantsPath() ? InodePath(db, nullptr, p.ino) : "");
      },
      &counts);
  line->Clear();
  report->SetCounts(counts);
  return s;
}

int Main(int argc, char** argv) {
  CommandLine cl;
  int modes = 0;
  auto on_option = [&](int opt, const char*) {
    switch (opt) {
      case 'n':
        cl.mode = Mode::kCheck, modes |= 1;
        break;
      case 'p':
      case 'a':
        cl.mode = Mode::kPreen, modes |= 2;
        break;
      case 'y':
        cl.mode = Mode::kRepair, modes |= 4;
        break;
      case 'f':
      case 'C':  // fsck(8)'s progress descriptor: progress goes to a terminal stderr only
        break;
      case cli::kOptJson:
        cl.json = true;
        break;
    }
  };
  if (std::optional<int> exit = kTool.ParseOptions(argc, argv, "npayfC:",
                                                   {{"no", no_argument, nullptr, 'n'},
                                                    {"preen", no_argument, nullptr, 'p'},
                                                    {"yes", no_argument, nullptr, 'y'},
                                                    {"force", no_argument, nullptr, 'f'},
                                                    cli::kJsonOption},
                                                   PrintHelp, on_option))
    return *exit;
  if (__builtin_popcount(modes) > 1) return kTool.Usage("-n, -p and -y exclude each other");
  if (optind >= argc) return kTool.Usage("missing SOURCE");
  if (optind + 1 < argc) return kTool.Usage("too many arguments (one SOURCE)");
  cl.source = argv[optind];

  struct stat st {};
  if (stat(cl.source.c_str(), &st) != 0) return kTool.Fail(cl.source + ": " + strerror(errno));
  if (!S_ISDIR(st.st_mode) || stat(PoolPath(cl.source).c_str(), &st) != 0 ||
      stat(MetaPath(cl.source).c_str(), &st) != 0)
    return kTool.Fail(cl.source +
                      " is not a daxref filesystem (expected the SOURCE directory made by "
                      "mkfs.daxref, holding pool and meta)");

  const bool repair = cl.mode != Mode::kCheck;
  Result<PoolFile> pool = PoolFile::Open(PoolPath(cl.source), repair);
  if (!pool.ok()) {
    if (pool.status().err() == EBUSY)
      return kTool.Fail(cl.source +
                        " is mounted or in use (a daxref daemon or another tool holds it): unmount "
                        "it first");
    return kTool.Fail(pool.status().message());
  }
  if (StoreLocked(MetaPath(cl.source)))
    return kTool.Fail(cl.source + " is in use (its metadata store is locked by another process)");

  Report report(cl.source, cl.mode, cl.json);
  cli::ProgressLine line(kTool.name());
  // Nothing can be checked without knowing the pool's geometry.
  PoolInspection pi;
  Status s = InspectPool(pool->fd(), &pi);
  if (!s.ok()) return kTool.Fail(s.message());
  if (!pi.have_sb)
    return kTool.Fail(PoolPath(cl.source) + ": no valid superblock copy (" + pi.primary.message() +
                      ")");

  // The first check always reads only: a run that ends up changing nothing
  // (a clean store, or -p refusing) leaves every byte of SOURCE as it was.
  {
    Result<std::unique_ptr<rocksdb::DB>> ro = OpenStoreReadOnly(MetaPath(cl.source));
    if (!ro.ok()) return kTool.Fail(ro.status().message());
    s = CheckAll(pool->fd(), ro->get(), &line, &report, &pi);
    if (!s.ok()) return kTool.Fail("checking " + cl.source + ": " + s.message());
    // A lease holder of a daemon that died may still map the pool and
    // store into it: no repair while one does (docs/dax.md).
    if (repair && report.counts().leases > 0) {
      const std::string holder = LiveLeaseHolder(ro->get(), pool->fd(), pi.sb.geometry());
      if (!holder.empty())
        return kTool.Fail(cl.source + " is in use: " + holder +
                          "; end it (or mount the filesystem, which revokes it) first");
    }
  }
  report.EndFirstCheck();
  // Orphans and leases are no error, but repairing reclaims the orphans,
  // as a mount would, and deletes the leases' records.
  if (!repair ||
      (report.problems_found() == 0 && report.counts().orphans == 0 && report.counts().leases == 0))
    return report.Finish();

  // -p stops at the first problem it may not repair; nobody repairs a store
  // that is not this pool's.
  for (const StoredProblem& p : report.problems()) {
    if (Foreign(p.cls)) {
      report.Refuse("the metadata store does not belong to this pool: nothing was repaired");
      return report.Finish();
    }
  }
  if (cl.mode == Mode::kPreen && !report.AllProblems(PreenSafe)) {
    report.Refuse(
        "UNEXPECTED INCONSISTENCY: some problems need fsck.daxref -y; nothing was repaired");
    return report.Finish();
  }
  Result<std::unique_ptr<rocksdb::DB>> db = OpenStoreForRepair(MetaPath(cl.source));
  if (!db.ok()) return kTool.Fail(db.status().message());

  // The pool first: a file cut short is given its length back (what its
  // end held is gone; extents there read zeros), and a damaged superblock
  // copy is rewritten from the trusted one.
  if (pi.truncated) {
    if (ftruncate(pool->fd(), static_cast<off_t>(pi.sb.block_count * kBlockSize)) != 0)
      return kTool.Fail(PoolPath(cl.source) + ": cannot restore its length: " + strerror(errno));
    report.AddRepair(RepairAction{ProblemClass::kSuperblock,
                                  "the pool file was truncated: its length is restored (the "
                                  "blocks it had lost read as zeros)",
                                  0});
  }
  if (!pi.primary.ok() || pi.copies_differ || !pi.backup.ok()) {
    const bool backup = pi.primary.ok();
    s = WriteSuperblockCopy(pool->fd(), pi.sb, backup);
    if (!s.ok()) return kTool.Fail(s.message());
    report.AddRepair(RepairAction{ProblemClass::kSuperblock,
                                  std::string(backup ? "backup" : "primary") +
                                      " superblock rewritten from the " +
                                      (backup ? "primary" : "backup"),
                                  0});
  }
  Superblock sb = pi.sb;
  RepairOptions ro;
  ro.pool = sb;
  ro.data = &*pool;
  ro.progress = [&](std::string_view phase, double done) { return line.Show(phase, done); };
  s = RepairStore(db->get(), ro, [&](const RepairAction& a) {
    report.AddRepair(a,
                     a.ino != 0 && report.WantsPath() ? InodePath(db->get(), nullptr, a.ino) : "");
  });
  line.Clear();
  if (!s.ok()) {
    if (s.err() != EINVAL) return kTool.Fail("repairing " + cl.source + ": " + s.message());
    report.Refuse(s.message());
  } else {
    // A repair is a read-write open like any other: pool and store move to
    // a new generation (meta/store.h), so that a copy of either half from
    // before the repair is never again taken for the other's partner. It
    // needs the identity records whole, which the repair has just made so.
    s = AdvanceGeneration(db->get(), PoolPath(cl.source), &sb);
    if (!s.ok()) return kTool.Fail("repairing " + cl.source + ": " + s.message());
  }
  s = pool->Sync();
  if (!s.ok()) return kTool.Fail(s.message());
  rocksdb::Status rs = (*db)->Flush(rocksdb::FlushOptions());
  if (rs.ok()) rs = (*db)->FlushWAL(true);
  if (!rs.ok()) return kTool.Fail("syncing the metadata store: " + rs.ToString());
  s = RecordStoreSequence(db->get(), PoolPath(cl.source), &sb);
  if (!s.ok()) return kTool.Fail(s.message());

  // What a second look still finds is what is left.
  Report again(cl.source, Mode::kCheck, false);
  s = CheckAll(pool->fd(), db->get(), &line, &again, &pi);
  if (!s.ok()) return kTool.Fail("checking " + cl.source + " after repair: " + s.message());
  report.SetCounts(again.counts());
  report.EndRepair(again.problems(), again.problems_found());
  rs = (*db)->Close();
  if (!rs.ok()) return kTool.Fail("closing the metadata store: " + rs.ToString());
  return report.Finish();
}

}  // namespace
}  // namespace daxref::fsck

int main(int argc, char** argv) {
  return daxref::fsck::Main(argc, argv);
}
