// daxref-poison on an unmounted filesystem: the pool and the metadata store
// opened directly (the pool's flock keeps a daemon out meanwhile), and the
// same records the daemon would send for the same request, so that the
// output is the same either way. No process can hold a file of an unmounted
// filesystem, so nobody is signalled, and pre-remove has nothing to do.
#pragma once

#include <memory>
#include <string>

#include "meta/status.h"
#include "meta/volume.h"
#include "pool/pool.h"
#include "tools/poison/request.h"

namespace daxref::poison {

class OfflineVolume {
 public:
  // Opens SOURCE's pool and metadata. EBUSY: a daemon holds the pool (it
  // did not answer on the control socket, or the caller would not be here).
  static Result<std::unique_ptr<OfflineVolume>> Open(const std::string& source);

  const Superblock& superblock() const { return pool_->superblock(); }

  // Carries out `req` (inject, list, clear or resolve) and hands each record
  // to fn as it is made, the last being `done` or `error`. Nothing changes
  // when the request is refused.
  void Run(Request req, const RecordFn& fn);

 private:
  OfflineVolume(std::string source, std::unique_ptr<PoolMapping> pool,
                std::unique_ptr<Volume> volume)
      : source_(std::move(source)), pool_(std::move(pool)), volume_(std::move(volume)) {}

  Status InjectPool(const Request& req, const RecordFn& fn);
  Status InjectFile(const FileRange& file, const RecordFn& fn);
  Status List(const RecordFn& fn);
  Status Clear(const Request& req, const RecordFn& fn);
  Status Resolve(const Request& req, const RecordFn& fn);

  // Records [pb0, pb1) bad (no block of it may be bad already) and sends
  // its `range` record, a `note` if it holds a superblock copy, and an
  // `owner` record for each owner; *owners counts them.
  Status MarkAndReport(uint64_t pb0, uint64_t pb1, const RecordFn& fn, uint64_t* owners);
  // Sends an `owner` record, paths included, for each reverse-map record
  // overlapping [pb0, pb1), clipped to it; *owners counts them.
  Status ReportOwners(uint64_t pb0, uint64_t pb1, const RecordFn& fn, uint64_t* owners);
  // EEXIST naming the first bad piece of [pb0, pb1), if there is one.
  Status RefuseIfBad(uint64_t pb0, uint64_t pb1, const std::string& what);
  // The inode of `path`, from the root, following no symlink.
  Status ResolvePath(const std::string& path, InodeRecord* out);

  std::string source_;
  // Declared before the volume, which reads through it, so that it outlives it.
  std::unique_ptr<PoolMapping> pool_;
  std::unique_ptr<Volume> volume_;
};

}  // namespace daxref::poison
