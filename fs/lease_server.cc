#include "fs/lease_server.h"

#include <fcntl.h>
#include <poll.h>
#include <spdlog/spdlog.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <cstddef>
#include <cstring>

#include "admin/lease_holders.h"
#include "admin/listen_socket.h"
#include "dax/packet.h"
#include "meta/superblock.h"

// Linux 6.5 (the kernel here is newer); Debian 12's headers predate it.
#ifndef SO_PEERPIDFD
#define SO_PEERPIDFD 77
#endif
#ifndef MAP_SYNC
#define MAP_SYNC 0x80000
#endif
#ifndef MAP_SHARED_VALIDATE
#define MAP_SHARED_VALIDATE 0x03
#endif

namespace daxref {

namespace {

using control::Record;

Record ErrorReply(const std::string& tag, int err, const std::string& msg) {
  return Record("error")
      .Add("tag", tag)
      .Add("errno", static_cast<uint64_t>(err))
      .Add("message", msg);
}

// token=HEX32: value[0] then value[1] of struct daxref_token, 16 hex digits each.
bool ParseToken(const std::string* text, Token* out) {
  if (!text || text->size() != 32) return false;
  for (int w = 0; w < 2; ++w) {
    uint64_t v = 0;
    for (int i = 0; i < 16; ++i) {
      char c = (*text)[w * 16 + i];
      int d = c >= '0' && c <= '9'   ? c - '0'
              : c >= 'a' && c <= 'f' ? c - 'a' + 10
              : c >= 'A' && c <= 'F' ? c - 'A' + 10
                                     : -1;
      if (d < 0) return false;
      v = v << 4 | static_cast<uint64_t>(d);
    }
    (*out)[w] = v;
  }
  return true;
}

// Can the pool's host filesystem map it with MAP_SYNC (a DAX filesystem)?
bool TakesMapSync(int fd) {
  void* p = mmap(nullptr, 4096, PROT_READ | PROT_WRITE, MAP_SHARED_VALIDATE | MAP_SYNC, fd, 0);
  if (p == MAP_FAILED) return false;
  munmap(p, 4096);
  return true;
}

}  // namespace

Result<std::unique_ptr<LeaseServer>> LeaseServer::Bind(const std::string& source, bool read_only) {
  std::unique_ptr<LeaseServer> ls(new LeaseServer());
  ls->path_ = dax::SocketPath(source);
  ls->read_only_ = read_only;
  // The holders' descriptors of the pool are opened here, never dup'd from
  // the mapping's: the mapping's open file holds the pool's flock, and a
  // holder's mmap would keep that open file (and so the lock) alive after a
  // daemon crash, so that the next daemon could never start to revoke it.
  const std::string pool = PoolPath(source);
  ls->pool_ro_.Reset(open(pool.c_str(), O_RDONLY | O_CLOEXEC));
  if (!ls->pool_ro_.valid()) return Status::Error(errno, pool + ": " + strerror(errno));
  if (!read_only) {
    ls->pool_rw_.Reset(open(pool.c_str(), O_RDWR | O_CLOEXEC));
    if (!ls->pool_rw_.valid()) return Status::Error(errno, pool + ": " + strerror(errno));
    ls->map_sync_ = TakesMapSync(ls->pool_rw_.get());
  }
  struct stat st {};
  if (fstat(ls->pool_ro_.get(), &st) != 0) return Status::Error(errno, pool + ": fstat");
  ls->pool_uid_ = st.st_uid;
  ls->pool_dev_ = st.st_dev;
  ls->pool_ino_ = st.st_ino;

  Result<UniqueFd> sock = ListenInSource(source, "dax", SOCK_SEQPACKET);
  if (!sock.ok()) return sock.status();
  ls->stop_.Reset(eventfd(0, EFD_CLOEXEC));
  if (!ls->stop_.valid()) return Status::Error(errno, std::string("eventfd: ") + strerror(errno));
  ls->listen_ = std::move(*sock);
  return ls;
}

void LeaseServer::Start(Filesystem* fs, LeaseTable* table) {
  fs_ = fs;
  table_ = table;
  grant_worker_ = std::make_unique<WorkerThread>();
  publish_worker_ = std::make_unique<WorkerThread>();
  poller_ = std::thread([this] { Run(); });
}

void LeaseServer::StopGrants() {
  grants_stopped_.store(true);
  if (grant_worker_) grant_worker_->Stop();
}

LeaseServer::~LeaseServer() {
  StopGrants();
  if (poller_.joinable()) {
    uint64_t one = 1;
    if (write(stop_.get(), &one, sizeof(one)) != sizeof(one)) spdlog::warn("dax: cannot stop");
    poller_.join();
  }
  if (publish_worker_) publish_worker_->Stop();
  if (listen_.valid()) unlink(path_.c_str());
}

void LeaseServer::Run() {
  std::vector<Conn> conns;
  std::vector<pollfd> fds;
  for (;;) {
    fds.clear();
    fds.push_back({stop_.get(), POLLIN, 0});
    fds.push_back({listen_.get(), POLLIN, 0});
    for (const Conn& c : conns) {
      fds.push_back({c.open ? c.session->sock.get() : -1, POLLIN, 0});
      fds.push_back({c.session->pidfd.get(), POLLIN, 0});
    }
    int n = poll(fds.data(), fds.size(), -1);
    if (n < 0) {
      if (errno == EINTR) continue;
      spdlog::error("dax: poll failed: {}; the lease channel stops", strerror(errno));
      return;
    }
    if (fds[0].revents) return;
    std::vector<bool> forget(conns.size(), false);
    for (size_t i = 0; i < conns.size(); ++i) {
      Conn& c = conns[i];
      const pollfd& ps = fds[2 + 2 * i];
      const pollfd& pp = fds[3 + 2 * i];
      if (pp.revents) {
        // The process is gone, its address space with it.
        table_->SessionGone(c.session.get());
        forget[i] = true;
        continue;
      }
      if (c.open && ps.revents) {
        if (!ReadOne(&c)) {
          c.open = false;
          forget[i] = !Closed(&c);
        }
      }
    }
    std::vector<Conn> kept;
    for (size_t i = 0; i < conns.size(); ++i)
      if (!forget[i]) kept.push_back(std::move(conns[i]));
    conns = std::move(kept);
    if (fds[1].revents) Accept(&conns);
  }
}

void LeaseServer::Accept(std::vector<Conn>* conns) {
  for (;;) {
    UniqueFd conn(accept4(listen_.get(), nullptr, nullptr, SOCK_CLOEXEC));
    if (!conn.valid()) return;  // EAGAIN: nothing more waiting
    ucred cred{};
    socklen_t clen = sizeof(cred);
    if (getsockopt(conn.get(), SOL_SOCKET, SO_PEERCRED, &cred, &clen) != 0) continue;
    if (cred.uid != 0 && cred.uid != pool_uid_) {
      // A lease exposes the pool: root and its owner only (docs/dax.md).
      spdlog::warn("dax: refused a session from uid {} (pid {}): not root nor the pool's owner",
                   cred.uid, cred.pid);
      continue;
    }
    if (conns->size() >= kMaxSessions) {
      spdlog::warn("dax: refused a session from pid {}: {} sessions open", cred.pid, kMaxSessions);
      continue;
    }
    auto s = std::make_shared<LeaseSession>();
    s->pid = cred.pid;
    s->uid = cred.uid;
    int pidfd = -1;
    socklen_t plen = sizeof(pidfd);
    if (getsockopt(conn.get(), SOL_SOCKET, SO_PEERPIDFD, &pidfd, &plen) != 0) {
      // Kernels before 6.5: a pidfd opened now names whoever has the pid
      // now. The peer could have exited and its pid been reused between
      // its connect and this call; the start time read below (and the
      // socket still being open, checked at every packet) is what ties
      // the two, as well as it can.
      pidfd = static_cast<int>(syscall(SYS_pidfd_open, cred.pid, 0));
    }
    if (pidfd < 0) {
      spdlog::warn("dax: no pidfd for pid {}: {}; session refused", cred.pid, strerror(errno));
      continue;
    }
    s->pidfd.Reset(pidfd);
    s->start_time = ProcessStartTime(cred.pid);
    timeval tv{kSendSeconds, 0};
    setsockopt(conn.get(), SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
    s->sock = std::move(conn);
    spdlog::debug("dax: session from pid {} (uid {})", s->pid, s->uid);
    conns->push_back(Conn{std::move(s)});
  }
}

bool LeaseServer::ReadOne(Conn* c) {
  Record r;
  switch (dax::ReceivePacket(c->session->sock.get(), &r, nullptr)) {
    case dax::Received::kClosed:
      return false;
    case dax::Received::kError:
      if (errno == EAGAIN || errno == EINTR) return true;
      spdlog::warn("dax: session of pid {}: {}; closing it", c->session->pid, strerror(errno));
      return false;
    case dax::Received::kRecord:
      break;
  }
  const std::shared_ptr<LeaseSession>& s = c->session;
  const std::string tag = r.Get("tag") ? *r.Get("tag") : "";
  uint64_t id = 0;
  if (r.kind == "revoked") {
    if (r.GetU64("lease", &id)) table_->Acknowledged(s.get(), id);
  } else if (r.kind == "release") {
    if (!r.GetU64("lease", &id) || !table_->Release(s.get(), id)) {
      s->Send(ErrorReply(tag, ENOENT, "no such lease in this session"));
    } else {
      s->Send(Record("released").Add("tag", tag).Add("lease", id));
    }
  } else if (r.kind == "lease") {
    if (grants_stopped_.load()) {
      s->Send(ErrorReply(tag, EIO, "the filesystem is going away"));
    } else {
      grant_worker_->Post([this, s, r] { Grant(s, r); });
    }
  } else if (r.kind == "publish") {
    publish_worker_->Post([this, s, r] { Publish(s, r); });
  } else {
    s->Send(ErrorReply(tag, EINVAL, "unknown request " + r.kind));
  }
  return true;
}

bool LeaseServer::Closed(Conn* c) {
  LeaseSession* s = c->session.get();
  // A holder that closed its session by hand, and still maps the pool, is
  // killed: it would otherwise keep access nobody can revoke any more.
  if (ProcessMapsFile(s->pid, pool_dev_, pool_ino_)) {
    spdlog::warn("dax: process {} closed its lease session but still maps the pool: killing it",
                 s->pid);
    if (s->Kill()) {
      c->killed = true;
      return true;  // its leases end when the pidfd reports the exit
    }
    if (errno != ESRCH) spdlog::error("dax: cannot kill process {}: {}", s->pid, strerror(errno));
  }
  table_->SessionGone(s);
  return false;
}

void LeaseServer::Publish(const std::shared_ptr<LeaseSession>& s, const Record& req) {
  const std::string tag = req.Get("tag") ? *req.Get("tag") : "";
  uint64_t id = 0, off = 0, len = 0;
  LeaseTable::Lease l;
  if (!req.GetU64("lease", &id) || !req.GetU64("offset", &off) || !req.GetU64("length", &len)) {
    s->Send(ErrorReply(tag, EINVAL, "publish needs lease, offset and length"));
    return;
  }
  if (!table_->Find(s.get(), id, &l)) {
    s->Send(ErrorReply(tag, ENOENT, "no such lease in this session"));
    return;
  }
  // Holding no lock: the kernel may write dirty pages back through the
  // daemon before it drops them.
  fs_->InvalidateCache(l.ino, off, len);
  s->Send(Record("published").Add("tag", tag).Add("lease", id));
}

void LeaseServer::Grant(const std::shared_ptr<LeaseSession>& s, const Record& req) {
  const std::string tag = req.Get("tag") ? *req.Get("tag") : "";
  auto fail = [&](int err, const std::string& msg) {
    spdlog::debug("dax: lease for pid {} refused: {} ({})", s->pid, msg, strerror(err));
    s->Send(ErrorReply(tag, err, msg));
  };
  // A grant changes the file (a write lease allocates): pre-remove's freeze
  // keeps it out, and waits for one under way.
  ModifyScope scope(fs_->modify_gate());
  if (!scope || fs_->shut_down() || grants_stopped_.load())
    return fail(EIO, "the filesystem is shut down or going away");
  // 1. The caller (checked on accept) and the token.
  Token token;
  uint64_t off = 0, len = 0;
  const std::string* mode_text = req.Get("mode");
  if (!ParseToken(req.Get("token"), &token) || !req.GetU64("offset", &off) ||
      !req.GetU64("length", &len) || !mode_text || (*mode_text != "read" && *mode_text != "write"))
    return fail(EINVAL, "lease needs token=HEX32 offset= length= mode=read|write");
  const bool write = *mode_text == "write";
  uint64_t ino = 0;
  Handle h;
  if (!fs_->handles().Redeem(token, &ino, &h))
    return fail(EBADF, "the token names no open file of this mount (used up, or expired)");
  if (write && !h.writable()) return fail(EBADF, "a write lease needs a descriptor open O_RDWR");
  if (write && (read_only_ || fs_->volume()->read_only()))
    return fail(EROFS, "read-only filesystem: no write lease");
  if (len == 0 || off % kBlockSize != 0 || len % kBlockSize != 0 || off + len < off)
    return fail(EINVAL, "offset and length must be multiples of 4096, length not 0");
  InodeRecord r;
  Status st = fs_->volume()->GetInode(ino, &r);
  if (!st.ok()) return fail(KernelErrno(st), st.message());
  if (!S_ISREG(r.mode)) return fail(EINVAL, "not a regular file");
  // 2. Dirty pages come back through the daemon before the range is laid out.
  if (write) fs_->InvalidateCache(ino, 0, 0);
  std::vector<LeasedExtent> extents;
  LeaseTable::Lease lease;
  {
    // 3. Nothing may change the file's map until the reply is out; a
    // revocation of this inode waits here too, so it comes after it.
    auto state = fs_->inodes().Get(ino);
    WriterLock io(&state->io);
    auto collect = [&](const LeasedExtent& e) { extents.push_back(e); };
    const uint64_t fblock = off >> kBlockShift, blocks = len >> kBlockShift;
    st = write ? fs_->volume()->PrepareForStores(ino, fblock, blocks, collect)
               : fs_->volume()->LeaseExtents(ino, fblock, blocks, collect);
    if (!st.ok()) return fail(KernelErrno(st), st.message());
    // 4. On disk before the holder can store a byte.
    LeaseRecord rec;
    rec.id = fs_->volume()->NewLeaseId();
    rec.ino = ino;
    rec.fblock = fblock;
    rec.blocks = blocks;
    rec.mode = write ? LeaseMode::kWrite : LeaseMode::kRead;
    rec.uid = s->uid;
    rec.pid = static_cast<uint32_t>(s->pid);
    rec.start_time = s->start_time;
    rec.boot_id = BootId();
    rec.extents = extents;
    // A read-only store records nothing: a read lease of a read-only mount
    // lives in the table only (a holder left after a crash can read, never
    // store, and the library unmaps when its session ends).
    if (!fs_->volume()->read_only()) st = fs_->volume()->RecordLease(rec);
    if (!st.ok()) return fail(KernelErrno(st), "recording the lease: " + st.message());
    lease = LeaseTable::Lease{rec.id, ino, off, len, rec.mode, s};
    bool sent = s->SendAll([&](int sock) {
      // Added under the session's send lock: a revocation that does not
      // wait for io (unmount, shutdown) can pick the lease at once, but its
      // `revoke` goes out only after this whole reply.
      table_->Add(lease);
      Record g("granted");
      g.Add("tag", tag)
          .Add("lease", rec.id)
          .Add("ino", ino)
          .Add("offset", off)
          .Add("length", len)
          .Add("mode", write ? "write" : "read")
          .Add("sync", map_sync_ && write ? uint64_t{1} : uint64_t{0})
          .Add("block", kBlockSize);
      if (!dax::SendPacket(sock, g, write ? pool_rw_.get() : pool_ro_.get())) return false;
      uint64_t at = fblock;
      auto piece = [&](uint64_t fb, uint64_t n, const LeasedExtent* e) {
        Record x("extent");
        x.Add("lease", rec.id).Add("logical", fb << kBlockShift);
        if (e)
          x.Add("physical", (e->pblock + (fb - e->fblock)) << kBlockShift);
        else
          x.Add("hole", uint64_t{1});
        x.Add("length", n << kBlockShift);
        return dax::SendPacket(sock, x);
      };
      for (const LeasedExtent& e : extents) {
        if (e.fblock > at && !piece(at, e.fblock - at, nullptr)) return false;
        uint64_t from = std::max(at, e.fblock);
        if (e.fend() > from && !piece(from, e.fend() - from, &e)) return false;
        at = std::max(at, e.fend());
      }
      if (at < fblock + blocks && !piece(at, fblock + blocks - at, nullptr)) return false;
      return dax::SendPacket(sock, Record("end").Add("tag", tag).Add("lease", rec.id));
    });
    if (!sent) {
      spdlog::warn("dax: the grant of lease {} could not be sent to process {}: {}", rec.id, s->pid,
                   strerror(errno));
      table_->Release(s.get(), rec.id);
      return;
    }
    spdlog::info("dax: lease {} granted to process {}: inode {} bytes {}+{} {}", rec.id, s->pid,
                 ino, off, len, write ? "write" : "read");
  }
  // 5. Pages read in between go too; opens are uncached from now on.
  if (write) fs_->InvalidateCache(ino, 0, 0);
}

}  // namespace daxref
