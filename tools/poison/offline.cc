#include "tools/poison/offline.h"

#include <sys/stat.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <utility>
#include <vector>

#include "admin/poison_records.h"
#include "meta/format.h"
#include "meta/superblock.h"

namespace daxref::poison {

namespace {

// List walks the bad ranges this many at a time, reporting the owners of
// each batch outside the walk.
constexpr size_t kBadBatch = 1024;

std::string ByteRange(uint64_t off, uint64_t len) {
  return "bytes " + std::to_string(off) + ".." + std::to_string(off + len - 1);
}

}  // namespace

Result<std::unique_ptr<OfflineVolume>> OfflineVolume::Open(const std::string& source) {
  auto pool = PoolMapping::Open(PoolPath(source), 0);
  if (!pool.ok()) {
    if (pool.status().err() == EBUSY)
      return Status::Error(EBUSY, source +
                                      " is in use by a daxref daemon that does not answer on " +
                                      control::ControlSocketPath(source));
    return pool.status();
  }
  auto volume = Volume::Open(MetaPath(source), (*pool)->superblock(), pool->get(),
                             {.pool_path = PoolPath(source)});
  if (!volume.ok())
    return Status::Error(volume.status().err(),
                         MetaPath(source) + ": " + volume.status().message());
  return std::unique_ptr<OfflineVolume>(
      new OfflineVolume(source, std::move(*pool), std::move(*volume)));
}

void OfflineVolume::Run(Request req, const RecordFn& fn) {
  Status s = FitToPool(&req, superblock().block_count);
  if (s.ok()) {
    switch (req.command) {
      case Command::kInject:
        s = req.file ? InjectFile(*req.file, fn) : InjectPool(req, fn);
        break;
      case Command::kList:
        s = List(fn);
        break;
      case Command::kClear:
        s = Clear(req, fn);
        break;
      case Command::kResolve:
        s = Resolve(req, fn);
        break;
      case Command::kPreRemove:
        s = Status::Error(ENOTCONN, source_ + " is not mounted: nothing to pre-remove");
        break;
    }
  }
  if (!s.ok()) fn(ErrorRecord(s.err(), s.message()));
}

Status OfflineVolume::InjectPool(const Request& req, const RecordFn& fn) {
  const auto start = std::chrono::steady_clock::now();
  const uint64_t pb0 = req.pblock, pb1 = req.pblock + req.blocks;
  DAXREF_RETURN_IF_ERROR(RefuseIfBad(pb0, pb1, ""));
  uint64_t owners = 0;
  DAXREF_RETURN_IF_ERROR(MarkAndReport(pb0, pb1, fn, &owners));
  const auto us = std::chrono::duration_cast<std::chrono::microseconds>(
      std::chrono::steady_clock::now() - start);
  control::Record done("done");
  done.Add("owners", owners).Add("signalled", uint64_t{0});
  done.Add("elapsed_us", static_cast<uint64_t>(us.count()));
  fn(done);
  return Status::Ok();
}

Status OfflineVolume::InjectFile(const FileRange& file, const RecordFn& fn) {
  const auto start = std::chrono::steady_clock::now();
  InodeRecord inode;
  DAXREF_RETURN_IF_ERROR(ResolvePath(file.path, &inode));
  if (!S_ISREG(inode.mode)) return Status::Invalid(file.path + ": not a regular file");
  if (file.offset >= inode.size)
    return Status::Invalid("offset " + std::to_string(file.offset) + " is past the end of " +
                           file.path + " (size " + std::to_string(inode.size) + ")");
  // Bytes past the end of the file are not its to lose.
  const uint64_t length = std::min(file.length, inode.size - file.offset);
  const std::string what = file.path + " " + ByteRange(file.offset, length);

  PoolPieces merged;
  DAXREF_RETURN_IF_ERROR(FilePoolPieces(volume_.get(), inode.ino, file.offset, length, &merged));
  if (merged.empty())
    return Status::Error(ENODATA, what + " have no blocks (a hole): nothing to poison");
  // All or nothing: refuse before marking any piece.
  for (const auto& [pb0, pb1] : merged) DAXREF_RETURN_IF_ERROR(RefuseIfBad(pb0, pb1, what + ": "));
  uint64_t owners = 0;
  for (const auto& [pb0, pb1] : merged)
    DAXREF_RETURN_IF_ERROR(MarkAndReport(pb0, pb1, fn, &owners));
  const auto us = std::chrono::duration_cast<std::chrono::microseconds>(
      std::chrono::steady_clock::now() - start);
  control::Record done("done");
  done.Add("owners", owners).Add("signalled", uint64_t{0});
  done.Add("elapsed_us", static_cast<uint64_t>(us.count()));
  fn(done);
  return Status::Ok();
}

Status OfflineVolume::List(const RecordFn& fn) {
  uint64_t ranges = 0, blocks = 0, owners = 0;
  uint64_t next = 0;  // the walk resumes at the first range starting here or later
  for (;;) {
    std::vector<std::pair<uint64_t, uint64_t>> batch;
    volume_->WalkBad([&](uint64_t pblock, uint64_t len) {
      if (pblock < next) return true;
      batch.emplace_back(pblock, len);
      return batch.size() < kBadBatch;
    });
    if (batch.empty()) break;
    for (const auto& [pblock, len] : batch) {
      control::Record bad("bad");
      bad.Add("pblock", pblock).Add("blocks", len);
      fn(bad);
      ++ranges;
      blocks += len;
      DAXREF_RETURN_IF_ERROR(ReportOwners(pblock, pblock + len, fn, &owners));
    }
    next = batch.back().first + batch.back().second;
  }
  control::Record done("done");
  done.Add("ranges", ranges).Add("blocks", blocks).Add("owners", owners);
  fn(done);
  return Status::Ok();
}

Status OfflineVolume::Clear(const Request& req, const RecordFn& fn) {
  ClearOutcome out;
  Status s = volume_->ClearBad(req.pblock, req.pblock + req.blocks, &out);
  if (s.err() == ENOENT)
    return Status::Error(ENOENT,
                         "nothing in " + DescribeBlocks(req.pblock, req.blocks) + " is poisoned");
  if (!s.ok())
    return Status::Error(
        s.err(), "cannot clear " + DescribeBlocks(req.pblock, req.blocks) + ": " + s.message());
  DAXREF_RETURN_IF_ERROR(volume_->Sync());
  control::Record done("done");
  done.Add("cleared", out.cleared).Add("returned", out.returned);
  fn(done);
  return Status::Ok();
}

Status OfflineVolume::Resolve(const Request& req, const RecordFn& fn) {
  uint64_t owners = 0;
  DAXREF_RETURN_IF_ERROR(ReportOwners(req.pblock, req.pblock + req.blocks, fn, &owners));
  control::Record done("done");
  done.Add("owners", owners);
  fn(done);
  return Status::Ok();
}

Status OfflineVolume::MarkAndReport(uint64_t pb0, uint64_t pb1, const RecordFn& fn,
                                    uint64_t* owners) {
  PoisonOutcome out;
  Status s = volume_->MarkBad(pb0, pb1, /*strict=*/true, &out);
  if (s.err() == EEXIST) return RefuseIfBad(pb0, pb1, "");
  if (!s.ok())
    return Status::Error(s.err(),
                         "cannot poison " + DescribeBlocks(pb0, pb1 - pb0) + ": " + s.message());
  DAXREF_RETURN_IF_ERROR(volume_->Sync());
  fn(RangeRecord(pb0, pb1, out));

  // The superblock copies: blocks 0 and N-1.
  const uint64_t last = superblock().block_count - 1;
  const bool primary = pb0 == 0, backup = pb1 > last;
  std::string note;
  if (primary && backup)
    note = "blocks 0 and " + std::to_string(last) +
           " hold both copies of the pool's superblock: no good copy is left for the next mount";
  else if (primary)
    note = "block 0 holds the pool's superblock: the next mount will use the backup copy (block " +
           std::to_string(last) + ")";
  else if (backup)
    note = "block " + std::to_string(last) +
           " holds the pool's backup superblock: the next mount will use the primary copy "
           "(block 0)";
  if (!note.empty()) fn(control::Record("note").Add("message", note));

  return ReportOwners(pb0, pb1, fn, owners);
}

Status OfflineVolume::ReportOwners(uint64_t pb0, uint64_t pb1, const RecordFn& fn,
                                   uint64_t* owners) {
  Status paths;
  DAXREF_RETURN_IF_ERROR(WalkOwnerRecords(volume_.get(), pb0, pb1, nullptr, fn, owners, &paths));
  if (!paths.ok())
    return Status::Error(paths.err(), "cannot find the paths of an owner: " + paths.message());
  return Status::Ok();
}

Status OfflineVolume::RefuseIfBad(uint64_t pb0, uint64_t pb1, const std::string& what) {
  if (!volume_->IsBad(pb0, pb1)) return Status::Ok();
  uint64_t first = pb0, count = pb1 - pb0;
  volume_->WalkBad([&](uint64_t pblock, uint64_t len) {
    if (pblock + len <= pb0) return true;
    if (pblock < pb1) {
      first = std::max(pblock, pb0);
      count = std::min(pblock + len, pb1) - first;
    }
    return false;
  });
  return Status::Error(EEXIST, what + DescribeBlocks(first, count) + (count == 1 ? " is" : " are") +
                                   " already poisoned");
}

Status OfflineVolume::ResolvePath(const std::string& path, InodeRecord* out) {
  InodeRecord cur;
  DAXREF_RETURN_IF_ERROR(volume_->GetInode(kRootIno, &cur));
  std::string walked;
  size_t pos = 0;
  while (pos <= path.size()) {
    size_t slash = path.find('/', pos);
    if (slash == std::string::npos) slash = path.size();
    const std::string name = path.substr(pos, slash - pos);
    pos = slash + 1;
    if (name.empty() || name == ".") continue;
    if (!S_ISDIR(cur.mode))
      return Status::Error(ENOTDIR, path + ": " + walked + " is not a directory");
    InodeRecord next;
    Status s = name == ".." ? volume_->GetInode(cur.ino == kRootIno ? kRootIno : cur.parent, &next)
                            : volume_->Lookup(cur.ino, name, &next);
    if (s.err() == ENOENT) return Status::Error(ENOENT, "no such file: " + path);
    if (!s.ok()) return Status::Error(s.err(), path + ": " + s.message());
    walked += "/" + name;
    if (S_ISLNK(next.mode))
      return Status::Error(ELOOP, path + ": " + walked +
                                      " is a symbolic link, which is not followed offline: give "
                                      "the path of the file itself");
    cur = next;
  }
  *out = cur;
  return Status::Ok();
}

}  // namespace daxref::poison
