#include "tools/common/offline_store.h"

#include <fcntl.h>
#include <rocksdb/db.h>
#include <sys/file.h>

#include <cerrno>
#include <cstring>

#include "admin/control_protocol.h"
#include "meta/store.h"

namespace daxref {

Result<std::unique_ptr<OfflineStore>> OfflineStore::Open(const std::string& source) {
  std::unique_ptr<OfflineStore> s(new OfflineStore());
  const std::string pool = PoolPath(source);
  s->pool_ = UniqueFd(open(pool.c_str(), O_RDONLY | O_CLOEXEC));
  if (!s->pool_.valid()) return Status::Error(errno, pool + ": " + strerror(errno));
  if (flock(s->pool_.get(), LOCK_SH | LOCK_NB) != 0) {
    if (errno == EWOULDBLOCK)
      return Status::Error(EBUSY, source +
                                      " is in use by a daxref daemon that does not answer on " +
                                      control::ControlSocketPath(source));
    return Status::Error(errno, pool + ": flock: " + strerror(errno));
  }
  bool backup = false;
  DAXREF_RETURN_IF_ERROR(ReadPoolSuperblock(pool, &s->sb_, &backup));
  const std::string meta = MetaPath(source);
  auto db = OpenStoreReadOnly(meta);
  if (!db.ok()) return Status::Error(db.status().err(), meta + ": " + db.status().message());
  s->db_ = std::move(*db);
  StoreIdentity id;
  Status v = ReadStoreIdentity(s->db_.get(), rocksdb::ReadOptions(), &id);
  if (v.ok()) v = VerifyStore(s->db_.get(), id, s->sb_);
  if (!v.ok())
    return Status::Error(v.err(), meta + ": " + v.message() + " (fsck.daxref checks it)");
  return s;
}

OfflineStore::~OfflineStore() {
  db_.reset();  // before the lock goes
}

}  // namespace daxref
