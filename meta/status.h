// Errors as values. Every fallible call at a module boundary returns a Status
// (or a Result<T>): an errno-style code that the FUSE layer can hand straight
// back to the kernel, plus a message for logs and admin tools. No exception
// crosses a module boundary on the request path.
#pragma once

#include <cerrno>
#include <optional>
#include <string>
#include <utility>

namespace daxref {

class [[nodiscard]] Status {
 public:
  Status() = default;
  static Status Ok() { return Status(); }
  static Status Error(int err, std::string msg) { return Status(err, std::move(msg)); }
  static Status NotFound(std::string msg) { return Status(ENOENT, std::move(msg)); }
  static Status Corruption(std::string msg) { return Status(EUCLEAN, std::move(msg)); }
  static Status IOError(std::string msg) { return Status(EIO, std::move(msg)); }
  static Status Invalid(std::string msg) { return Status(EINVAL, std::move(msg)); }
  static Status NoSpace(std::string msg) { return Status(ENOSPC, std::move(msg)); }

  bool ok() const { return err_ == 0; }
  // errno value; 0 when ok().
  int err() const { return err_; }
  const std::string& message() const { return msg_; }
  std::string ToString() const { return ok() ? "ok" : msg_; }

 private:
  Status(int err, std::string msg) : err_(err), msg_(std::move(msg)) {}
  int err_ = 0;
  std::string msg_;
};

// A value or the Status explaining why there is none.
template <typename T>
class [[nodiscard]] Result {
 public:
  Result(T value) : value_(std::move(value)) {}          // NOLINT: implicit by design
  Result(Status status) : status_(std::move(status)) {}  // NOLINT
  bool ok() const { return status_.ok(); }
  const Status& status() const { return status_; }
  T& value() { return *value_; }
  const T& value() const { return *value_; }
  T& operator*() { return *value_; }
  T* operator->() { return &*value_; }

 private:
  std::optional<T> value_;
  Status status_;
};

#define DAXREF_RETURN_IF_ERROR(expr) \
  do {                               \
    ::daxref::Status _s = (expr);    \
    if (!_s.ok()) return _s;         \
  } while (0)

}  // namespace daxref
