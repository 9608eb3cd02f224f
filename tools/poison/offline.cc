#include "tools/poison/offline.h"

#include <sys/stat.h>

#include <cerrno>
#include <utility>

#include "meta/format.h"
#include "meta/superblock.h"

namespace daxref::poison {

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
  const PoisonSink sink = [&](const control::Record& r) {
    fn(r);
    return true;
  };
  Status s = FitToPool(&req, superblock().block_count);
  if (!s.ok()) return fn(ErrorRecord(s.err(), s.message()));
  const uint64_t pb0 = req.pblock, pb1 = req.pblock + req.blocks;
  switch (req.command) {
    case Command::kInject:
      if (!req.file) return service_.Inject(pb0, pb1, getuid(), sink);
      {
        InodeRecord inode;
        s = ResolvePath(req.file->path, &inode);
        if (!s.ok()) return fn(ErrorRecord(s.err(), s.message()));
        return service_.InjectFile(inode.ino, req.file->offset, req.file->length, req.file->path,
                                   getuid(), sink);
      }
    case Command::kList:
      return service_.List(sink);
    case Command::kRescan:
      return service_.Rescan(sink);
    case Command::kClear:
      return service_.Clear(pb0, pb1, sink);
    case Command::kResolve:
      return service_.Resolve(pb0, pb1, sink);
    case Command::kPreRemove:
      return service_.PreRemove(sink);
  }
}

void OfflineVolume::PreRemove(const PoisonSink& sink) {
  sink(ErrorRecord(ENOTCONN, source_ + " is not mounted: nothing to pre-remove"));
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
