#include "meta/repair.h"

#include <rocksdb/db.h>

namespace daxref {

Result<std::unique_ptr<rocksdb::DB>> OpenStoreForRepair(const std::string& meta_dir) {
  rocksdb::Options o;
  o.create_if_missing = false;
  o.paranoid_checks = true;
  rocksdb::DB* raw = nullptr;
  rocksdb::Status s = rocksdb::DB::Open(o, meta_dir, &raw);
  if (!s.ok()) return Status::IOError("cannot open " + meta_dir + ": " + s.ToString());
  return std::unique_ptr<rocksdb::DB>(raw);
}

Status RepairStore(rocksdb::DB* db, const RepairOptions& opts, const RepairFn& done) {
  return Status::Ok();
}

}  // namespace daxref
