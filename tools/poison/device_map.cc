#include "tools/poison/device_map.h"

#include <fcntl.h>
#include <linux/fiemap.h>
#include <linux/fs.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <vector>

#include "base/unique_fd.h"

namespace daxref::poison {

Status MapDeviceRange(const std::string& pool_path, uint64_t dev_off, uint64_t len,
                      std::vector<DevicePiece>* out) {
  out->clear();
  UniqueFd fd(open(pool_path.c_str(), O_RDONLY | O_CLOEXEC));
  if (!fd.valid()) return Status::Error(errno, pool_path + ": " + strerror(errno));
  const uint64_t dev_end = dev_off + len;
  // Every extent of the file, a batch at a time: FIEMAP walks file
  // offsets, and the device range may lie under any of them.
  constexpr uint32_t kBatch = 256;
  std::vector<char> buf(sizeof(fiemap) + kBatch * sizeof(fiemap_extent));
  uint64_t start = 0;
  for (bool last = false; !last;) {
    std::fill(buf.begin(), buf.end(), 0);
    auto* fm = reinterpret_cast<fiemap*>(buf.data());
    fm->fm_start = start;
    fm->fm_length = FIEMAP_MAX_OFFSET - start;
    fm->fm_flags = FIEMAP_FLAG_SYNC;
    fm->fm_extent_count = kBatch;
    if (ioctl(fd.get(), FS_IOC_FIEMAP, fm) != 0) {
      const int err = errno;
      if (err == EOPNOTSUPP || err == ENOTTY)
        return Status::Error(EOPNOTSUPP, pool_path +
                                             ": its host filesystem cannot say where the file "
                                             "lies on the device (no FIEMAP, as on tmpfs)");
      return Status::Error(err, pool_path + ": FIEMAP: " + strerror(err));
    }
    if (fm->fm_mapped_extents == 0) break;
    for (uint32_t i = 0; i < fm->fm_mapped_extents; ++i) {
      const fiemap_extent& e = fm->fm_extents[i];
      last = last || (e.fe_flags & FIEMAP_EXTENT_LAST);
      start = e.fe_logical + e.fe_length;
      // Data the device does not hold at a fixed place (inline, packed,
      // not yet allocated) has no device offset to match.
      if (e.fe_flags & (FIEMAP_EXTENT_UNKNOWN | FIEMAP_EXTENT_ENCODED | FIEMAP_EXTENT_DATA_INLINE |
                        FIEMAP_EXTENT_NOT_ALIGNED))
        continue;
      const uint64_t s = std::max<uint64_t>(dev_off, e.fe_physical);
      const uint64_t t = std::min<uint64_t>(dev_end, e.fe_physical + e.fe_length);
      if (s < t) out->push_back({s, e.fe_logical + (s - e.fe_physical), t - s});
    }
  }
  std::sort(out->begin(), out->end(), [](const DevicePiece& a, const DevicePiece& b) {
    return a.device_offset < b.device_offset;
  });
  return Status::Ok();
}

}  // namespace daxref::poison
