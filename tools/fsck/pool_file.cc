#include "tools/fsck/pool_file.h"

#include <fcntl.h>
#include <sys/file.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <vector>

namespace daxref::fsck {

namespace {

Status Errno(const std::string& what) {
  const int err = errno;
  return Status::Error(err, what + ": " + strerror(err));
}

}  // namespace

Result<PoolFile> PoolFile::Open(const std::string& path, bool writable) {
  UniqueFd fd(open(path.c_str(), (writable ? O_RDWR : O_RDONLY) | O_CLOEXEC));
  if (!fd.valid()) return Errno(path);
  if (flock(fd.get(), (writable ? LOCK_EX : LOCK_SH) | LOCK_NB) != 0) {
    if (errno == EWOULDBLOCK) return Status::Error(EBUSY, path + " is in use");
    return Errno(path + ": flock");
  }
  return PoolFile(std::move(fd), writable);
}

Status PoolFile::Sync() {
  if (dirty_ && fdatasync(fd_.get()) != 0) return Errno("syncing the pool");
  dirty_ = false;
  return Status::Ok();
}

Status PoolFile::Write(uint64_t pool_off, const void* src, size_t len) {
  if (!writable_) return Status::Error(EBADF, "the pool is open read-only");
  const char* p = static_cast<const char*>(src);
  while (len > 0) {
    ssize_t n = pwrite(fd_.get(), p, len, static_cast<off_t>(pool_off));
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return n < 0 ? Errno("writing the pool") : Status::IOError("writing the pool");
    p += n, pool_off += static_cast<uint64_t>(n), len -= static_cast<size_t>(n);
    dirty_ = true;
  }
  return Status::Ok();
}

Status PoolFile::Load(uint64_t pool_off, void* dst, size_t len) {
  char* p = static_cast<char*>(dst);
  while (len > 0) {
    ssize_t n = pread(fd_.get(), p, len, static_cast<off_t>(pool_off));
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return Errno("reading the pool");
    if (n == 0) return Status::IOError("reading the pool: past its end");
    p += n, pool_off += static_cast<uint64_t>(n), len -= static_cast<size_t>(n);
  }
  return Status::Ok();
}

Status PoolFile::Copy(uint64_t dst_pool_off, uint64_t src_pool_off, size_t len) {
  std::vector<char> buf(std::min<size_t>(len, 1 << 20));
  while (len > 0) {
    const size_t n = std::min(len, buf.size());
    DAXREF_RETURN_IF_ERROR(Load(src_pool_off, buf.data(), n));
    DAXREF_RETURN_IF_ERROR(Write(dst_pool_off, buf.data(), n));
    src_pool_off += n, dst_pool_off += n, len -= n;
  }
  return Status::Ok();
}

Status PoolFile::Zero(uint64_t pool_off, size_t len) {
  std::vector<char> zeros(std::min<size_t>(len, 1 << 20), 0);
  while (len > 0) {
    const size_t n = std::min(len, zeros.size());
    DAXREF_RETURN_IF_ERROR(Write(pool_off, zeros.data(), n));
    pool_off += n, len -= n;
  }
  return Status::Ok();
}

Status PoolFile::Persist(uint64_t, size_t) {
  // The repair persists copies before the extent that points at them
  // commits: a crash in between leaves the copy in blocks still free.
  if (!dirty_) return Status::Ok();
  if (fdatasync(fd_.get()) != 0)
    return Status::Error(errno, std::string("fdatasync of the pool: ") + strerror(errno));
  dirty_ = false;
  return Status::Ok();
}

bool StoreLocked(const std::string& meta_dir) {
  const std::string lock = meta_dir + "/LOCK";
  UniqueFd fd(open(lock.c_str(), O_RDONLY | O_CLOEXEC));
  if (!fd.valid()) return false;
  struct flock fl {};
  fl.l_type = F_WRLCK;
  fl.l_whence = SEEK_SET;
  if (fcntl(fd.get(), F_GETLK, &fl) != 0) return false;
  return fl.l_type != F_UNLCK;
}

}  // namespace daxref::fsck
