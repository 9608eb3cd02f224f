// From the device to the pool: which pool bytes lie behind bytes of the
// block device under the pool file's host filesystem. ndctl reports media
// errors as 512-byte sectors of the namespace's block device (/dev/pmemN);
// a DAX filesystem over it places the pool file's bytes at device offsets
// that FIEMAP reports (what filefrag -v and xfs_bmap print), so the pool
// byte behind device byte D is fe_logical + (D - fe_physical) of the
// extent holding D (man/daxref-poison.8, "From ndctl's media errors").
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "meta/status.h"

namespace daxref::poison {

inline constexpr uint64_t kSectorSize = 512;

// Device bytes [device_offset, +length) hold pool bytes [pool_offset, +length).
struct DevicePiece {
  uint64_t device_offset = 0;
  uint64_t pool_offset = 0;
  uint64_t length = 0;
};

// The pieces of device bytes [dev_off, dev_off + len) that belong to the
// file at `pool_path`, in device order (the rest belongs to other files or
// to nothing). EOPNOTSUPP, with a message saying so, where the host
// filesystem has no FIEMAP (tmpfs).
Status MapDeviceRange(const std::string& pool_path, uint64_t dev_off, uint64_t len,
                      std::vector<DevicePiece>* out);

}  // namespace daxref::poison
