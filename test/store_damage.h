// Damaging a daxref filesystem on purpose, for the tests of fsck.daxref and
// of the checker: the metadata store of an unmounted SOURCE opened
// read-write, with the records looked up by path, edited, dropped or
// mangled; the pool's superblock copies overwritten; and a digest of every
// byte under SOURCE, to prove that a read-only check changed none.
#pragma once

#include <rocksdb/db.h>

#include <cstdint>
#include <memory>
#include <optional>
#include <random>
#include <string>
#include <utility>
#include <vector>

#include "meta/format.h"

namespace daxref::test {

class StoreEditor {
 public:
  // Opens SOURCE/meta (nothing may have it open).
  explicit StoreEditor(const std::string& source);
  ~StoreEditor();
  StoreEditor(const StoreEditor&) = delete;
  StoreEditor& operator=(const StoreEditor&) = delete;

  // Every record whose key starts with `prefix`, in key order.
  std::vector<std::pair<std::string, std::string>> Scan(const std::string& prefix);
  std::optional<std::string> Get(const std::string& key);
  void Put(const std::string& key, const std::string& value);
  // The key must exist.
  void Delete(const std::string& key);

  // The inode a path ("/dir/file") names, following D records from the root.
  uint64_t Lookup(const std::string& path);
  InodeRecord Inode(uint64_t ino);
  void PutInode(const InodeRecord& r);
  DirentRecord Dirent(uint64_t dir, const std::string& name);
  std::vector<Extent> Extents(uint64_t ino);
  uint64_t BlockCount();

  // One random change for the fuzz loop: a random record deleted, some bits
  // of its value flipped, or its value cut short. Says what it did.
  std::string RandomDamage(std::mt19937_64& rng);

 private:
  std::string source_;
  std::unique_ptr<rocksdb::DB> db_;
};

// Overwrites `len` bytes of SOURCE/pool at `off` with `byte`.
void ScribblePool(const std::string& source, uint64_t off, size_t len, char byte);
// Reads `len` bytes of SOURCE/pool at `off`.
std::string ReadPool(const std::string& source, uint64_t off, size_t len);

// The SHA-256 of every file under `dir`, with its path, one per line in
// path order: equal digests, byte-identical trees.
std::string TreeDigest(const std::string& dir);

// A copy of SOURCE `from` made at `to` (sparse files stay sparse).
void CopySource(const std::string& from, const std::string& to);

}  // namespace daxref::test
