// The daxref ioctls: what the daemon does for a FUSE_IOCTL request.
#pragma once

#include "fs/filesystem.h"

namespace daxref {

// Replies to req exactly once.
void HandleIoctl(Filesystem* fs, fuse_req_t req, fuse_ino_t ino, unsigned int cmd,
                 fuse_file_info* fi, unsigned flags, const void* in_buf, size_t in_bufsz,
                 size_t out_bufsz);

}  // namespace daxref
