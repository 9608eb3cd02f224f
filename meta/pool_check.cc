#include "meta/pool_check.h"

#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

namespace daxref {

namespace {

// Reads block `b`; false when the file ends before it does.
bool ReadBlock(int fd, uint64_t b, char* block, Status* err) {
  ssize_t n = pread(fd, block, kBlockSize, static_cast<off_t>(b * kBlockSize));
  if (n < 0) {
    *err = Status::Error(errno, std::string("reading the pool: ") + strerror(errno));
    return false;
  }
  return n == static_cast<ssize_t>(kBlockSize);
}

// The fields a superblock copy is made of: two copies agree when these do.
bool SameSuperblock(const Superblock& a, const Superblock& b) {
  char x[kBlockSize], y[kBlockSize];
  EncodeSuperblock(a, x);
  EncodeSuperblock(b, y);
  return memcmp(x, y, kBlockSize) == 0;
}

}  // namespace

Status InspectPool(int fd, PoolInspection* out) {
  *out = PoolInspection{};
  struct stat st {};
  if (fstat(fd, &st) != 0) return Status::Error(errno, std::string("pool: ") + strerror(errno));
  out->file_bytes = static_cast<uint64_t>(st.st_size);
  alignas(64) char block[kBlockSize];
  Status io;
  Superblock primary, backup;
  if (!ReadBlock(fd, 0, block, &io)) {
    if (!io.ok()) return io;
    out->primary = Status::Invalid("the pool file is shorter than one block");
  } else {
    out->primary = DecodeSuperblock(block, &primary);
  }
  // The backup sits where the primary's geometry puts it; without a valid
  // primary, in the last whole block of the file, and only if its own
  // block count puts it exactly there.
  uint64_t at = 0;
  if (out->primary.ok()) {
    at = primary.block_count - 1;
    if (out->file_bytes < primary.block_count * kBlockSize) out->truncated = true;
  } else if (out->file_bytes >= kMinPoolBlocks * kBlockSize) {
    at = out->file_bytes / kBlockSize - 1;
  }
  if (at == 0) {
    out->backup = Status::Invalid("no backup superblock (the pool file is too short)");
  } else if (!ReadBlock(fd, at, block, &io)) {
    if (!io.ok()) return io;
    out->backup = Status::Invalid("no backup superblock (the pool file is truncated)");
  } else {
    out->backup = DecodeSuperblock(block, &backup);
    if (out->backup.ok() && backup.block_count != at + 1)
      out->backup = Status::Corruption("backup superblock geometry mismatch");
  }
  if (out->primary.ok()) {
    out->sb = primary;
    out->have_sb = true;
    out->copies_differ = out->backup.ok() && !SameSuperblock(primary, backup);
  } else if (out->backup.ok()) {
    out->sb = backup;
    out->have_sb = true;
  }
  return Status::Ok();
}

Status WriteSuperblockCopy(int fd, const Superblock& sb, bool backup) {
  alignas(64) char block[kBlockSize];
  EncodeSuperblock(sb, block);
  const off_t at = backup ? static_cast<off_t>((sb.block_count - 1) * kBlockSize) : 0;
  if (pwrite(fd, block, kBlockSize, at) != static_cast<ssize_t>(kBlockSize))
    return Status::Error(errno ? errno : EIO,
                         std::string("writing a superblock copy: ") + strerror(errno));
  if (fdatasync(fd) != 0)
    return Status::Error(errno, std::string("syncing the pool: ") + strerror(errno));
  return Status::Ok();
}

}  // namespace daxref
