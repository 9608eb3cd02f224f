// An unmounted daxref filesystem opened for reading only, as daxref-info and
// daxref-map fsmap read one: the pool's superblock and the metadata store,
// opened read-only (nothing in SOURCE is created or written, not even
// RocksDB's log; meta/store.h), after the same identity checks a mount makes.
//
// The pool file is held with a shared flock for as long as this lives: a
// daemon (which takes it exclusive) cannot start meanwhile, and one that
// holds it already makes Open fail with EBUSY.
#pragma once

#include <memory>
#include <string>

#include "base/unique_fd.h"
#include "meta/status.h"
#include "meta/superblock.h"

namespace rocksdb {
class DB;
}  // namespace rocksdb

namespace daxref {

class OfflineStore {
 public:
  static Result<std::unique_ptr<OfflineStore>> Open(const std::string& source);
  ~OfflineStore();
  OfflineStore(const OfflineStore&) = delete;
  OfflineStore& operator=(const OfflineStore&) = delete;

  rocksdb::DB* db() { return db_.get(); }
  const Superblock& superblock() const { return sb_; }

 private:
  OfflineStore() = default;
  UniqueFd pool_;  // the shared flock; declared first, so released last
  Superblock sb_;
  std::unique_ptr<rocksdb::DB> db_;
};

}  // namespace daxref
