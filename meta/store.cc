#include "meta/store.h"

#include <rocksdb/db.h>
#include <rocksdb/env.h>
#include <rocksdb/filter_policy.h>
#include <rocksdb/options.h>
#include <rocksdb/slice_transform.h>
#include <rocksdb/table.h>
#include <rocksdb/utilities/table_properties_collectors.h>
#include <sys/stat.h>

#include <algorithm>
#include <cstring>
#include <memory>

#include "meta/codec.h"

namespace daxref {

namespace {

// RocksDB's info log for a look that must change nothing: it would
// otherwise create SOURCE/meta/LOG and rename the previous one.
class DiscardLogger : public rocksdb::Logger {
 public:
  using rocksdb::Logger::Logv;
  void Logv(const char*, va_list) override {}
};

Status OpenError(const std::string& dir, const rocksdb::Status& s) {
  int err = EIO;
  if (s.IsIOError() && s.ToString().find("lock") != std::string::npos) err = EBUSY;
  if (s.IsCorruption()) err = EUCLEAN;
  return Status::Error(err, "cannot open metadata store " + dir + ": " + s.ToString());
}

// A read of the store that failed: damage (a checksum that does not match,
// a table file missing) or an I/O error, named with the file RocksDB names.
Status ReadError(const std::string& what, const rocksdb::Status& s) {
  if (s.IsCorruption())
    return Status::Corruption("metadata store is damaged (" + what + "): " + s.ToString());
  return Status::IOError("metadata store: " + what + ": " + s.ToString());
}

Status GetMisc(rocksdb::DB* db, const rocksdb::ReadOptions& ro, std::string_view name,
               std::string* v) {
  rocksdb::Status s = db->Get(ro, keys::Misc(name), v);
  if (s.IsNotFound())
    return Status::Corruption("metadata store has no '" + std::string(name) + "' record");
  if (!s.ok()) return ReadError("reading '" + std::string(name) + "'", s);
  return Status::Ok();
}

Status GetMiscU64(rocksdb::DB* db, const rocksdb::ReadOptions& ro, std::string_view name,
                  uint64_t* out) {
  std::string v;
  DAXREF_RETURN_IF_ERROR(GetMisc(db, ro, name, &v));
  if (!DecodeLength(v, out).ok())
    return Status::Corruption("metadata '" + std::string(name) + "' record is malformed");
  return Status::Ok();
}

std::string Gen(uint64_t g) {
  return std::to_string(g);
}

// The groups of keys an operation tends to insert next to the ones it (or
// the one before it) inserted: a directory's D and C records (a create
// adds a name and the next cookie of its directory), a file's E records,
// and each M record (rewritten in place, batch after batch). RocksDB keeps
// the last insert position per group and starts the next insert of the
// group from there, instead of from the top of the memtable's skip list.
// Only a hint: any key is put where it belongs either way.
class InsertGroups : public rocksdb::SliceTransform {
 public:
  const char* Name() const override { return "daxref.InsertGroups"; }
  rocksdb::Slice Transform(const rocksdb::Slice& key) const override {
    if (key[0] == prefix::kMisc) return key;
    return rocksdb::Slice(key.data(), 9);  // the type and the directory or inode
  }
  bool InDomain(const rocksdb::Slice& key) const override {
    if (key.empty()) return false;
    if (key[0] == prefix::kMisc) return true;
    return key.size() >= 9 &&
           (key[0] == prefix::kDirent || key[0] == prefix::kDirCookie || key[0] == prefix::kExtent);
  }
};

}  // namespace

rocksdb::Options StoreOptions(size_t cache_bytes) {
  rocksdb::Options o;
  rocksdb::BlockBasedTableOptions t;
  t.block_cache = rocksdb::NewLRUCache(cache_bytes);
  t.filter_policy.reset(rocksdb::NewBloomFilterPolicy(10));
  o.table_factory.reset(rocksdb::NewBlockBasedTableFactory(t));
  o.max_background_jobs = 2;
  o.write_buffer_size = 32 << 20;
  // A bloom filter over the memtable's whole keys: a create asks twice for
  // a name that does not exist yet (the kernel's LOOKUP, then the check
  // under the mutation lock), and without it each miss walks the skip list
  // (docs/design.md, "The namespace path").
  o.memtable_prefix_bloom_size_ratio = 0.02;
  o.memtable_whole_key_filtering = true;
  o.memtable_insert_with_hint_prefix_extractor = std::make_shared<InsertGroups>();
  // Bounds the log a mount after a crash must replay.
  o.max_total_wal_size = 64 << 20;
  // Churn (extent edits, unlinks) writes deletions; a table file that is
  // mostly deletions is compacted soon rather than when its level fills,
  // so that scans of the keys around them (loading an extent map, the
  // owners query, readdir) stop stepping over them.
  o.table_properties_collector_factories.emplace_back(
      rocksdb::NewCompactOnDeletionCollectorFactory(64 * 1024, 16 * 1024, 0.5));
  // Never open by dropping what the store holds: every table file the
  // MANIFEST names must be there with its size, and any damage in the log
  // but a torn last record (an operation that never returned) fails the
  // open. RocksDB's defaults already refuse the first; the log mode is ours.
  o.paranoid_checks = true;
  o.best_efforts_recovery = false;
  o.wal_recovery_mode = rocksdb::WALRecoveryMode::kTolerateCorruptedTailRecords;
  return o;
}

Result<std::unique_ptr<rocksdb::DB>> OpenStoreReadOnly(const std::string& dir) {
  struct stat st {};
  if (stat((dir + "/CURRENT").c_str(), &st) != 0)
    return Status::Error(ENOENT, "metadata store " + dir + " is missing");
  rocksdb::Options o = StoreOptions(8 << 20);
  o.info_log = std::make_shared<DiscardLogger>();
  rocksdb::DB* raw = nullptr;
  rocksdb::Status s = rocksdb::DB::OpenForReadOnly(o, dir, &raw);
  if (!s.ok()) return OpenError(dir, s);
  return std::unique_ptr<rocksdb::DB>(raw);
}

Status ReadStoreIdentity(rocksdb::DB* db, const rocksdb::ReadOptions& ro, StoreIdentity* out) {
  *out = StoreIdentity{};
  std::string v;
  rocksdb::Status us = db->Get(ro, keys::Misc(kMiscUuid), &v);
  if (us.IsNotFound()) return Status::Corruption("metadata store has no pool uuid");
  if (!us.ok()) return ReadError("reading the pool uuid", us);
  if (v.size() != 16) return Status::Corruption("metadata store's pool uuid is malformed");
  memcpy(out->uuid.data(), v.data(), 16);
  DAXREF_RETURN_IF_ERROR(GetMisc(db, ro, kMiscFormat, &v));
  if (v.size() != 4) return Status::Corruption("metadata format record is malformed");
  out->format = codec::LoadU32(v.data());
  DAXREF_RETURN_IF_ERROR(GetMiscU64(db, ro, kMiscBlocks, &out->blocks));
  DAXREF_RETURN_IF_ERROR(GetMiscU64(db, ro, kMiscNextIno, &out->next_ino));
  DAXREF_RETURN_IF_ERROR(GetMiscU64(db, ro, kMiscInodes, &out->inodes));
  // Generations are absent from stores made before they existed (0), and
  // zero is not a valid length record: stored as a length, it is never 0.
  rocksdb::Status rs = db->Get(ro, keys::Misc(kMiscGeneration), &v);
  if (rs.ok()) {
    if (!DecodeLength(v, &out->generation).ok())
      return Status::Corruption("metadata generation record is malformed");
  } else if (!rs.IsNotFound()) {
    return ReadError("reading the generation", rs);
  }
  rs = db->Get(ro, keys::Misc(kMiscGenerationPending), &v);
  if (rs.ok()) {
    uint64_t p = 0;
    if (!DecodeLength(v, &p).ok() || p <= out->generation)
      return Status::Corruption("metadata pending-generation record is malformed");
    out->generation_pending = p;
  } else if (!rs.IsNotFound()) {
    return ReadError("reading the generation", rs);
  }
  return Status::Ok();
}

Status CheckGeneration(uint64_t pool_generation, const StoreIdentity& id) {
  if (pool_generation == id.generation) return Status::Ok();
  if (id.generation_pending && pool_generation == *id.generation_pending) return Status::Ok();
  if (id.generation < pool_generation)
    return Status::Error(ESTALE, "metadata is older than the pool: generation " +
                                     Gen(id.generation) + " < " + Gen(pool_generation));
  return Status::Error(ESTALE, "pool is older than the metadata: generation " +
                                   Gen(pool_generation) + " < " + Gen(id.generation));
}

Status VerifyStore(rocksdb::DB* db, const StoreIdentity& id, const Superblock& sb) {
  if (id.uuid != sb.uuid)
    return Status::Error(EINVAL, "metadata belongs to pool " + UuidToString(id.uuid) +
                                     ", not to this pool " + UuidToString(sb.uuid));
  if (!MetaFormatReadable(id.format))
    return Status::Error(EINVAL,
                         "unsupported metadata format version " + std::to_string(id.format));
  if (id.blocks != sb.block_count)
    return Status::Corruption("metadata block count " + std::to_string(id.blocks) +
                              " does not match the pool superblock's " +
                              std::to_string(sb.block_count));
  DAXREF_RETURN_IF_ERROR(CheckGeneration(sb.generation, id));
  uint64_t seq = db->GetLatestSequenceNumber();
  if (seq < sb.store_sequence)
    return Status::Error(ESTALE, "metadata is older than the pool: it ends at update " +
                                     std::to_string(seq) + ", the pool has seen update " +
                                     std::to_string(sb.store_sequence) +
                                     " (a damaged MANIFEST or an old copy)");

  rocksdb::ReadOptions ro;
  std::string v;
  rocksdb::Status s = db->Get(ro, keys::Inode(kRootIno), &v);
  if (s.IsNotFound()) return Status::Corruption("metadata store has no root directory");
  if (!s.ok()) return ReadError("reading the root inode", s);
  InodeRecord root;
  Status ds = DecodeInode(kRootIno, v, &root);
  if (!ds.ok()) return Status::Corruption("root directory: " + ds.message());
  if (!S_ISDIR(root.mode)) return Status::Corruption("root inode is not a directory");

  // The highest inode in use must lie below the counter that hands out the
  // next one, or a new file would overwrite it.
  std::string lo = keys::Inode(0), hi = keys::Successor(std::string(1, prefix::kInode));
  rocksdb::Slice lo_s(lo), hi_s(hi);
  ro.iterate_lower_bound = &lo_s;
  ro.iterate_upper_bound = &hi_s;
  std::unique_ptr<rocksdb::Iterator> it(db->NewIterator(ro));
  it->SeekToLast();
  if (!it->status().ok()) return ReadError("scanning inodes", it->status());
  if (it->Valid()) {
    uint64_t last = keys::U64At(it->key().ToStringView(), 1);
    if (it->key().size() != 9 || last >= id.next_ino)
      return Status::Corruption("inode " + std::to_string(last) + " lies past the inode counter " +
                                std::to_string(id.next_ino));
  }
  if (id.inodes == 0) return Status::Corruption("metadata inode count is 0 (there is a root)");
  return Status::Ok();
}

Status AdvanceGeneration(rocksdb::DB* db, const std::string& pool_path, Superblock* sb) {
  StoreIdentity id;
  DAXREF_RETURN_IF_ERROR(ReadStoreIdentity(db, rocksdb::ReadOptions(), &id));
  DAXREF_RETURN_IF_ERROR(CheckGeneration(sb->generation, id));
  // Never a number either half may have carried: past the pool's, the
  // store's and a pending target an interrupted advance may have written.
  uint64_t next = std::max({sb->generation, id.generation, id.generation_pending.value_or(0)}) + 1;
  rocksdb::WriteOptions sync;
  sync.sync = true;
  rocksdb::Status s = db->Put(sync, keys::Misc(kMiscGenerationPending), EncodeLength(next));
  if (!s.ok()) return Status::IOError("cannot record the next generation: " + s.ToString());
  Superblock updated = *sb;
  updated.version = kPoolFormatVersion;
  updated.generation = next;
  updated.store_sequence = db->GetLatestSequenceNumber();
  DAXREF_RETURN_IF_ERROR(WritePoolSuperblocks(pool_path, updated));
  rocksdb::WriteBatch b;
  b.Put(keys::Misc(kMiscGeneration), EncodeLength(next));
  b.Delete(keys::Misc(kMiscGenerationPending));
  s = db->Write(sync, &b);
  if (!s.ok()) return Status::IOError("cannot store the generation: " + s.ToString());
  *sb = updated;
  return Status::Ok();
}

Status RecordStoreSequence(rocksdb::DB* db, const std::string& pool_path, Superblock* sb) {
  Superblock updated = *sb;
  updated.store_sequence = db->GetLatestSequenceNumber();
  if (updated.store_sequence == sb->store_sequence) return Status::Ok();
  DAXREF_RETURN_IF_ERROR(WritePoolSuperblocks(pool_path, updated));
  *sb = updated;
  return Status::Ok();
}

}  // namespace daxref
