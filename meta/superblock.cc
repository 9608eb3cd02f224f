#include "meta/superblock.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstring>

#include "meta/codec.h"

namespace daxref {

namespace {
struct Crc32cTable {
  uint32_t t[256];
  constexpr Crc32cTable() : t() {
    for (uint32_t i = 0; i < 256; ++i) {
      uint32_t c = i;
      for (int k = 0; k < 8; ++k) c = (c & 1) ? (c >> 1) ^ 0x82F63B78u : c >> 1;
      t[i] = c;
    }
  }
};
constexpr Crc32cTable kCrcTable;
// Where the checksum sits, by version: version 1 had no generation.
constexpr size_t kCrcOffsetV1 = 48;
constexpr size_t kCrcOffset = 64;
}  // namespace

uint32_t Crc32c(const void* data, size_t len) {
  const auto* p = static_cast<const uint8_t*>(data);
  uint32_t c = 0xFFFFFFFFu;
  for (size_t i = 0; i < len; ++i) c = kCrcTable.t[(c ^ p[i]) & 0xff] ^ (c >> 8);
  return c ^ 0xFFFFFFFFu;
}

void EncodeSuperblock(const Superblock& sb, char* block) {
  std::string s(kPoolMagic, sizeof(kPoolMagic));
  codec::PutU32(&s, kPoolFormatVersion);
  codec::PutU32(&s, sb.block_size);
  codec::PutU64(&s, sb.block_count);
  s.append(reinterpret_cast<const char*>(sb.uuid.data()), sb.uuid.size());
  codec::PutU64(&s, sb.created);
  codec::PutU64(&s, sb.generation);
  codec::PutU64(&s, sb.store_sequence);
  codec::PutU32(&s, Crc32c(s.data(), kCrcOffset));
  memset(block, 0, kBlockSize);
  memcpy(block, s.data(), s.size());
}

Status DecodeSuperblock(const char* block, Superblock* out) {
  if (memcmp(block, kPoolMagic, sizeof(kPoolMagic)) != 0)
    return Status::Error(EINVAL, "not a daxref pool (bad magic)");
  uint32_t version = codec::LoadU32(block + 8);
  if (version != kPoolFormatVersion && version != kPoolFormatPreviousVersion)
    return Status::Error(EINVAL, "unsupported pool format version " + std::to_string(version));
  size_t crc_at = version == kPoolFormatPreviousVersion ? kCrcOffsetV1 : kCrcOffset;
  if (codec::LoadU32(block + crc_at) != Crc32c(block, crc_at))
    return Status::Corruption("pool superblock checksum mismatch");
  out->version = version;
  out->block_size = codec::LoadU32(block + 12);
  out->block_count = codec::LoadU64(block + 16);
  memcpy(out->uuid.data(), block + 24, 16);
  out->created = codec::LoadU64(block + 40);
  bool v1 = version == kPoolFormatPreviousVersion;
  out->generation = v1 ? 0 : codec::LoadU64(block + 48);
  out->store_sequence = v1 ? 0 : codec::LoadU64(block + 56);
  if (out->block_size != kBlockSize)
    return Status::Corruption("pool block size " + std::to_string(out->block_size) +
                              " is not 4096");
  if (out->block_count < kMinPoolBlocks) return Status::Corruption("pool block count too small");
  return Status::Ok();
}

Status ReadPoolSuperblock(const std::string& path, Superblock* out, bool* used_backup) {
  int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return Status::Error(errno, path + ": " + strerror(errno));
  struct stat st {};
  fstat(fd, &st);
  alignas(64) char block[kBlockSize];
  Status primary;
  ssize_t n = pread(fd, block, kBlockSize, 0);
  if (n != static_cast<ssize_t>(kBlockSize)) {
    primary = Status::Error(EINVAL, path + ": not a daxref pool (too short)");
  } else {
    primary = DecodeSuperblock(block, out);
  }
  if (primary.ok()) {
    close(fd);
    *used_backup = false;
    return Status::Ok();
  }
  // The backup lives in the last block of the pool as mkfs sized it; if the
  // file was truncated it is gone too, and the primary's error stands.
  Status backup = Status::Error(EINVAL, "");
  if (st.st_size >= static_cast<off_t>(kMinPoolBlocks * kBlockSize)) {
    off_t last = (st.st_size / kBlockSize - 1) * kBlockSize;
    if (pread(fd, block, kBlockSize, last) == static_cast<ssize_t>(kBlockSize)) {
      backup = DecodeSuperblock(block, out);
      if (backup.ok() && out->block_count * kBlockSize != static_cast<uint64_t>(last) + kBlockSize)
        backup = Status::Corruption("backup superblock geometry mismatch");
    }
  }
  close(fd);
  if (backup.ok()) {
    *used_backup = true;
    return Status::Ok();
  }
  return Status::Error(primary.err(), path + ": " + primary.message());
}

Status WritePoolSuperblocks(const std::string& path, const Superblock& sb) {
  int fd = open(path.c_str(), O_WRONLY | O_CLOEXEC);
  if (fd < 0) return Status::Error(errno, path + ": " + strerror(errno));
  alignas(64) char block[kBlockSize];
  EncodeSuperblock(sb, block);
  Status s;
  for (uint64_t at : {uint64_t{0}, (sb.block_count - 1) * kBlockSize}) {
    if (pwrite(fd, block, kBlockSize, static_cast<off_t>(at)) != static_cast<ssize_t>(kBlockSize)) {
      s = Status::Error(errno ? errno : EIO,
                        path + ": cannot write the superblock: " + strerror(errno));
      break;
    }
  }
  if (s.ok() && fdatasync(fd) != 0)
    s = Status::Error(errno, path + ": cannot sync the superblock: " + strerror(errno));
  close(fd);
  return s;
}

std::string PoolPath(const std::string& source) {
  return source + "/pool";
}
std::string MetaPath(const std::string& source) {
  return source + "/meta";
}

}  // namespace daxref
