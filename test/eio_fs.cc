// eio_fs: a FUSE filesystem that passes one directory through and, on
// command, fails every write and fsync with EIO: a host filesystem for a
// daxref pool whose write-back can fail, so that msync of the pool mapping
// fails for real (fs_persist_error_test.cc).
//
// The usual way to get such failures, a device-mapper "error" or "flakey"
// target under a filesystem, needs CONFIG_BLK_DEV_DM, which the development
// VM's kernel lacks (and it has no modules). A FUSE filesystem is a real
// filesystem to the kernel: the daemon's msync of its MAP_SHARED mapping
// writes the dirty pages back through WRITE requests and then sends FSYNC,
// and an error here is the error msync returns, as it would be for a disk
// that failed.
//
//   eio_fs BACKDIR MOUNTPOINT   (stays in the foreground; SIGTERM unmounts)
//
// SIGUSR1 starts failing writes and fsyncs with EIO, SIGUSR2 stops. Only
// flat directories of regular files: what one pool file needs.
#define FUSE_USE_VERSION 31
#include <dirent.h>
#include <fcntl.h>
#include <fuse.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <string>

namespace {

std::string g_back;
std::atomic<bool> g_fail{false};

std::string Back(const char* path) {
  return g_back + path;
}

int Getattr(const char* path, struct stat* st, fuse_file_info*) {
  return lstat(Back(path).c_str(), st) == 0 ? 0 : -errno;
}

int Readdir(const char* path, void* buf, fuse_fill_dir_t fill, off_t, fuse_file_info*,
            fuse_readdir_flags) {
  DIR* d = opendir(Back(path).c_str());
  if (d == nullptr) return -errno;
  while (dirent* e = readdir(d))
    fill(buf, e->d_name, nullptr, 0, static_cast<fuse_fill_dir_flags>(0));
  closedir(d);
  return 0;
}

int Open(const char* path, fuse_file_info* fi) {
  int fd = open(Back(path).c_str(), fi->flags & ~O_CREAT);
  if (fd < 0) return -errno;
  fi->fh = static_cast<uint64_t>(fd);
  return 0;
}

int Create(const char* path, mode_t mode, fuse_file_info* fi) {
  int fd = open(Back(path).c_str(), fi->flags | O_CREAT, mode);
  if (fd < 0) return -errno;
  fi->fh = static_cast<uint64_t>(fd);
  return 0;
}

int Read(const char*, char* buf, size_t size, off_t off, fuse_file_info* fi) {
  ssize_t n = pread(static_cast<int>(fi->fh), buf, size, off);
  return n < 0 ? -errno : static_cast<int>(n);
}

int Write(const char*, const char* buf, size_t size, off_t off, fuse_file_info* fi) {
  if (g_fail.load()) return -EIO;
  ssize_t n = pwrite(static_cast<int>(fi->fh), buf, size, off);
  return n < 0 ? -errno : static_cast<int>(n);
}

int Fsync(const char*, int, fuse_file_info* fi) {
  if (g_fail.load()) return -EIO;
  return fsync(static_cast<int>(fi->fh)) == 0 ? 0 : -errno;
}

int Release(const char*, fuse_file_info* fi) {
  close(static_cast<int>(fi->fh));
  return 0;
}

int Truncate(const char* path, off_t size, fuse_file_info* fi) {
  int rc = fi ? ftruncate(static_cast<int>(fi->fh), size) : truncate(Back(path).c_str(), size);
  return rc == 0 ? 0 : -errno;
}

int Fallocate(const char*, int mode, off_t off, off_t len, fuse_file_info* fi) {
  if (g_fail.load()) return -EIO;
  return fallocate(static_cast<int>(fi->fh), mode, off, len) == 0 ? 0 : -errno;
}

int Unlink(const char* path) {
  return unlink(Back(path).c_str()) == 0 ? 0 : -errno;
}

int Statfs(const char*, struct statvfs* st) {
  return statvfs(g_back.c_str(), st) == 0 ? 0 : -errno;
}

int Chmod(const char* path, mode_t mode, fuse_file_info*) {
  return chmod(Back(path).c_str(), mode) == 0 ? 0 : -errno;
}

int Utimens(const char* path, const struct timespec tv[2], fuse_file_info*) {
  return utimensat(AT_FDCWD, Back(path).c_str(), tv, 0) == 0 ? 0 : -errno;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 3) {
    fprintf(stderr, "usage: eio_fs BACKDIR MOUNTPOINT\n");
    return 2;
  }
  g_back = argv[1];
  struct sigaction sa {};
  sa.sa_handler = [](int sig) { g_fail.store(sig == SIGUSR1); };
  sigemptyset(&sa.sa_mask);
  sa.sa_flags = SA_RESTART;
  sigaction(SIGUSR1, &sa, nullptr);
  sigaction(SIGUSR2, &sa, nullptr);

  fuse_operations ops{};
  ops.getattr = Getattr;
  ops.readdir = Readdir;
  ops.open = Open;
  ops.create = Create;
  ops.read = Read;
  ops.write = Write;
  ops.fsync = Fsync;
  ops.release = Release;
  ops.truncate = Truncate;
  ops.fallocate = Fallocate;
  ops.unlink = Unlink;
  ops.statfs = Statfs;
  ops.chmod = Chmod;
  ops.utimens = Utimens;
  // Foreground, one thread: a test process owns it and ends it with SIGTERM.
  char* fargv[] = {argv[0], const_cast<char*>("-f"), const_cast<char*>("-s"), argv[2], nullptr};
  return fuse_main(4, fargv, &ops, nullptr);
}
