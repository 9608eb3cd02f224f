// UniqueFd: the one owner of a file descriptor, closed when it goes out of
// scope. Every layer uses it (the daemon, the admin and pool libraries, the
// tools), so that no descriptor is closed by hand on an error path.
#pragma once

#include <unistd.h>

#include <utility>

namespace daxref {

// Owns one descriptor, or none (-1). Movable, not copyable: the descriptor
// is closed exactly once, by its last owner.
class UniqueFd {
 public:
  UniqueFd() = default;
  explicit UniqueFd(int fd) : fd_(fd) {}
  UniqueFd(UniqueFd&& other) noexcept : fd_(std::exchange(other.fd_, -1)) {}
  UniqueFd& operator=(UniqueFd&& other) noexcept {
    if (this != &other) Reset(std::exchange(other.fd_, -1));
    return *this;
  }
  UniqueFd(const UniqueFd&) = delete;
  UniqueFd& operator=(const UniqueFd&) = delete;
  ~UniqueFd() { Reset(); }

  int get() const { return fd_; }
  bool valid() const { return fd_ >= 0; }
  // Gives the descriptor up without closing it (to a stream that now owns it,
  // say); the object holds none afterwards.
  int release() { return std::exchange(fd_, -1); }
  // Closes the descriptor held, if any, and holds `fd` instead.
  void Reset(int fd = -1) {
    if (fd_ >= 0) close(fd_);
    fd_ = fd;
  }

 private:
  int fd_ = -1;
};

}  // namespace daxref
