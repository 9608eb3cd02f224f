// Walking every record under one key prefix of the store, in key order: how
// the in-memory mirrors (free space, refcounts, bad blocks) load at open.
#pragma once

#include <rocksdb/db.h>

#include <memory>
#include <string>
#include <string_view>

#include "meta/status.h"

namespace daxref {

// Calls fn(key, value) for each record whose key starts with the one-byte
// `prefix`, in order, stopping at the first failure, which it returns.
template <typename Fn>
Status WalkPrefix(rocksdb::DB* db, char prefix, Fn&& fn) {
  // Both bounds: without the lower one a seek would step over every
  // deleted key before the prefix.
  std::string lo(1, prefix), hi(1, static_cast<char>(prefix + 1));
  rocksdb::Slice lower(lo), upper(hi);
  rocksdb::ReadOptions ro;
  ro.iterate_lower_bound = &lower;
  ro.iterate_upper_bound = &upper;
  std::unique_ptr<rocksdb::Iterator> it(db->NewIterator(ro));
  for (it->Seek(lower); it->Valid(); it->Next()) {
    Status s = fn(it->key().ToStringView(), it->value().ToStringView());
    if (!s.ok()) return s;
  }
  if (it->status().IsCorruption())
    return Status::Corruption("metadata store is damaged (reading '" + lo +
                              "' records): " + it->status().ToString());
  if (!it->status().ok())
    return Status::IOError("metadata store: reading '" + lo +
                           "' records: " + it->status().ToString());
  return Status::Ok();
}

}  // namespace daxref
