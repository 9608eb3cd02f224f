#include "test/store_damage.h"

#include <fcntl.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <sstream>

#include "meta/superblock.h"
#include "test/fixture.h"

namespace daxref::test {

StoreEditor::StoreEditor(const std::string& source) : source_(source) {
  rocksdb::Options o;
  rocksdb::DB* raw = nullptr;
  rocksdb::Status s = rocksdb::DB::Open(o, MetaPath(source), &raw);
  INFO(s.ToString());
  REQUIRE(s.ok());
  db_.reset(raw);
}

StoreEditor::~StoreEditor() {
  if (db_) {
    db_->FlushWAL(true);
    db_->Close();
  }
}

std::vector<std::pair<std::string, std::string>> StoreEditor::Scan(const std::string& prefix) {
  std::vector<std::pair<std::string, std::string>> out;
  std::unique_ptr<rocksdb::Iterator> it(db_->NewIterator(rocksdb::ReadOptions()));
  for (it->Seek(prefix); it->Valid() && it->key().starts_with(prefix); it->Next())
    out.emplace_back(it->key().ToString(), it->value().ToString());
  REQUIRE(it->status().ok());
  return out;
}

std::optional<std::string> StoreEditor::Get(const std::string& key) {
  std::string v;
  rocksdb::Status s = db_->Get(rocksdb::ReadOptions(), key, &v);
  if (s.IsNotFound()) return std::nullopt;
  REQUIRE(s.ok());
  return v;
}

void StoreEditor::Put(const std::string& key, const std::string& value) {
  rocksdb::WriteOptions wo;
  wo.sync = true;
  REQUIRE(db_->Put(wo, key, value).ok());
}

void StoreEditor::Delete(const std::string& key) {
  REQUIRE(Get(key).has_value());
  rocksdb::WriteOptions wo;
  wo.sync = true;
  REQUIRE(db_->Delete(wo, key).ok());
}

uint64_t StoreEditor::Lookup(const std::string& path) {
  uint64_t ino = kRootIno;
  std::istringstream in(path);
  for (std::string part; std::getline(in, part, '/');) {
    if (part.empty()) continue;
    ino = Dirent(ino, part).ino;
  }
  return ino;
}

InodeRecord StoreEditor::Inode(uint64_t ino) {
  auto v = Get(keys::Inode(ino));
  INFO("inode " << ino);
  REQUIRE(v.has_value());
  InodeRecord r;
  REQUIRE(DecodeInode(ino, *v, &r).ok());
  return r;
}

void StoreEditor::PutInode(const InodeRecord& r) {
  Put(keys::Inode(r.ino), EncodeInode(r));
}

DirentRecord StoreEditor::Dirent(uint64_t dir, const std::string& name) {
  auto v = Get(keys::Dirent(dir, name));
  INFO("entry " << name << " in " << dir);
  REQUIRE(v.has_value());
  DirentRecord d;
  REQUIRE(DecodeDirent(*v, &d).ok());
  return d;
}

std::vector<Extent> StoreEditor::Extents(uint64_t ino) {
  std::vector<Extent> out;
  for (const auto& [k, v] : Scan(keys::ExtentPrefix(ino))) {
    Extent e;
    REQUIRE(DecodeExtent(k, v, PoolGeometry{UINT64_MAX}, &e).ok());
    out.push_back(e);
  }
  return out;
}

uint64_t StoreEditor::BlockCount() {
  auto v = Get(keys::Misc(kMiscBlocks));
  REQUIRE(v.has_value());
  uint64_t n = 0;
  REQUIRE(DecodeLength(*v, &n).ok());
  return n;
}

std::string StoreEditor::RandomDamage(std::mt19937_64& rng) {
  // A random record: seek to a random key and take the one there.
  std::unique_ptr<rocksdb::Iterator> it(db_->NewIterator(rocksdb::ReadOptions()));
  static const std::string kPrefixes = "BCDEFILMNOPRX";
  std::string seek(1, kPrefixes[rng() % kPrefixes.size()]);
  for (int i = 0; i < 8; ++i) seek.push_back(static_cast<char>(rng() & 0xff));
  it->Seek(seek);
  if (!it->Valid()) it->SeekToFirst();
  REQUIRE(it->Valid());
  const std::string k = it->key().ToString();
  std::string v = it->value().ToString();
  it.reset();
  const std::string what =
      "record '" + k.substr(0, 1) + "' of " + std::to_string(k.size()) + " key bytes";
  switch (rng() % 3) {
    case 0:
      Delete(k);
      return "deleted " + what;
    case 1: {
      if (v.empty()) {
        v = std::string(1 + rng() % 9, static_cast<char>(rng()));
      } else {
        const int flips = 1 + static_cast<int>(rng() % 4);
        for (int i = 0; i < flips; ++i) v[rng() % v.size()] ^= static_cast<char>(1 << (rng() % 8));
      }
      Put(k, v);
      return "flipped bits in the value of " + what;
    }
    default:
      v.resize(v.empty() ? 0 : rng() % v.size());
      Put(k, v);
      return "cut the value of " + what + " to " + std::to_string(v.size()) + " bytes";
  }
}

void ScribblePool(const std::string& source, uint64_t off, size_t len, char byte) {
  int fd = open(PoolPath(source).c_str(), O_WRONLY | O_CLOEXEC);
  REQUIRE(fd >= 0);
  std::string bytes(len, byte);
  REQUIRE(pwrite(fd, bytes.data(), len, static_cast<off_t>(off)) == static_cast<ssize_t>(len));
  REQUIRE(close(fd) == 0);
}

std::string ReadPool(const std::string& source, uint64_t off, size_t len) {
  int fd = open(PoolPath(source).c_str(), O_RDONLY | O_CLOEXEC);
  REQUIRE(fd >= 0);
  std::string bytes(len, '\0');
  REQUIRE(pread(fd, bytes.data(), len, static_cast<off_t>(off)) == static_cast<ssize_t>(len));
  close(fd);
  return bytes;
}

std::string TreeDigest(const std::string& dir) {
  RunResult r = Run({"/bin/sh", "-c",
                     "cd \"$1\" && find . -type f -print0 | sort -z | xargs -0r sha256sum && "
                     "find . | sort",
                     "sh", dir});
  INFO(r.err);
  REQUIRE(r.status == 0);
  return r.out;
}

void CopySource(const std::string& from, const std::string& to) {
  RunResult r = Run({"/bin/cp", "-a", "--sparse=always", from, to});
  INFO(r.err);
  REQUIRE(r.status == 0);
}

}  // namespace daxref::test
