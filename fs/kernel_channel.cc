#include "fs/kernel_channel.h"

#include <linux/fuse.h>
#include <sys/uio.h>
#include <unistd.h>

#include <atomic>
#include <cstring>

namespace daxref {

namespace {

// Set once by the INIT request, read by the INIT reply; afterwards inert.
// One daemon serves one mount, so this is per-mount state.
std::atomic<uint64_t> g_init_unique{0};
std::atomic<bool> g_kernel_offers_v2{false};

ssize_t ChannelRead(int fd, void* buf, size_t len, void*) {
  ssize_t n = read(fd, buf, len);
  if (n >= static_cast<ssize_t>(sizeof(fuse_in_header) + 16)) {
    const auto* h = static_cast<const fuse_in_header*>(buf);
    if (h->opcode == FUSE_INIT) {
      const auto* in = reinterpret_cast<const fuse_init_in*>(h + 1);
      g_kernel_offers_v2 = (in->flags & FUSE_HANDLE_KILLPRIV_V2) != 0;
      g_init_unique = h->unique;
    }
  }
  return n;
}

ssize_t ChannelWritev(int fd, iovec* iov, int count, void*) {
  uint64_t init = g_init_unique.load(std::memory_order_relaxed);
  if (init != 0 && count >= 2 && iov[0].iov_len >= sizeof(fuse_out_header)) {
    const auto* h = static_cast<const fuse_out_header*>(iov[0].iov_base);
    if (h->unique == init && h->error == 0 && iov[1].iov_len >= 16) {
      g_init_unique = 0;
      if (g_kernel_offers_v2) {
        auto* out = static_cast<fuse_init_out*>(iov[1].iov_base);
        out->flags |= FUSE_HANDLE_KILLPRIV_V2;
      }
    }
  }
  return writev(fd, iov, count);
}

}  // namespace

int InstallKernelChannel(fuse_session* se) {
  static const fuse_custom_io io = [] {
    fuse_custom_io c{};
    c.read = ChannelRead;
    c.writev = ChannelWritev;
    return c;
  }();
  return fuse_session_custom_io(se, &io, fuse_session_fd(se));
}

}  // namespace daxref
