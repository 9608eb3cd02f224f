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
constexpr size_t kCrcOffset = 48;
}  // namespace

uint32_t Crc32c(const void* data, size_t len) {
  const auto* p = static_cast<const uint8_t*>(data);
  uint32_t c = 0xFFFFFFFFu;
  for (size_t i = 0; i < len; ++i) c = kCrcTable.t[(c ^ p[i]) & 0xff] ^ (c >> 8);
  return c ^ 0xFFFFFFFFu;
}

void EncodeSuperblock(const Superblock& sb, char* block) {
  std::string s(kPoolMagic, sizeof(kPoolMagic));
  codec::PutU32(&s, sb.version);
  codec::PutU32(&s, sb.block_size);
  codec::PutU64(&s, sb.block_count);
  s.append(reinterpret_cast<const char*>(sb.uuid.data()), sb.uuid.size());
  codec::PutU64(&s, sb.created);
  codec::PutU32(&s, Crc32c(s.data(), kCrcOffset));
  memset(block, 0, kBlockSize);
  memcpy(block, s.data(), s.size());
}

Status DecodeSuperblock(const char* block, Superblock* out) {
  if (memcmp(block, kPoolMagic, sizeof(kPoolMagic)) != 0)
    return Status::Error(EINVAL, "not a daxref pool (bad magic)");
  if (codec::LoadU32(block + kCrcOffset) != Crc32c(block, kCrcOffset))
    return Status::Corruption("pool superblock checksum mismatch");
  out->version = codec::LoadU32(block + 8);
  out->block_size = codec::LoadU32(block + 12);
  out->block_count = codec::LoadU64(block + 16);
  memcpy(out->uuid.data(), block + 24, 16);
  out->created = codec::LoadU64(block + 40);
  if (out->version != kPoolFormatVersion)
    return Status::Error(EINVAL, "unsupported pool format version " + std::to_string(out->version));
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

std::string PoolPath(const std::string& source) {
  return source + "/pool";
}
std::string MetaPath(const std::string& source) {
  return source + "/meta";
}

}  // namespace daxref
