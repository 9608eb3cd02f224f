// daxref-poison on an unmounted filesystem: the pool and the metadata store
// opened directly (the pool's flock keeps a daemon out meanwhile), and the
// same poison service as the daemon's (admin/poison_service.h), so that the
// checks, the messages and the records are the same either way. No process
// can hold a file of an unmounted filesystem, so nobody is signalled, and
// pre-remove has nothing to do.
#pragma once

#include <memory>
#include <string>

#include "admin/poison_service.h"
#include "meta/status.h"
#include "meta/volume.h"
#include "pool/pool.h"
#include "tools/poison/request.h"

namespace daxref::poison {

class OfflineVolume : private PoisonHooks {
 public:
  // Opens SOURCE's pool and metadata. EBUSY: a daemon holds the pool (it
  // did not answer on the control socket, or the caller would not be here).
  static Result<std::unique_ptr<OfflineVolume>> Open(const std::string& source);

  const Superblock& superblock() const { return pool_->superblock(); }

  // Carries out `req` through the poison service and hands each record to
  // fn as it is made, the last being `done` or `error`. Nothing changes
  // when the request is refused.
  void Run(Request req, const RecordFn& fn);

 private:
  OfflineVolume(std::string source, std::unique_ptr<PoolMapping> pool,
                std::unique_ptr<Volume> volume)
      : source_(std::move(source)),
        pool_(std::move(pool)),
        volume_(std::move(volume)),
        service_(volume_.get(), this) {}

  // PoisonHooks: no owner is acted on and nothing shuts down (nothing runs
  // on an unmounted filesystem); each commit is synced, since the tool
  // exits next.
  Status AfterCommit() override { return volume_->Sync(); }
  void PreRemove(const PoisonSink& sink) override;
  Status WalkDeviceBadBlocks(const std::function<bool(uint64_t, uint64_t)>& fn) override {
    return pool_->WalkBadBlocks(fn);
  }

  // The inode of `path`, from the root, following no symlink.
  Status ResolvePath(const std::string& path, InodeRecord* out);

  std::string source_;
  // Declared before the volume, which reads through it, so that it outlives it.
  std::unique_ptr<PoolMapping> pool_;
  std::unique_ptr<Volume> volume_;
  PoisonService service_;
};

}  // namespace daxref::poison
