#include "admin/control_server.h"

#include <fcntl.h>
#include <poll.h>
#include <spdlog/spdlog.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <cstring>
#include <utility>

#include "admin/fs_report.h"
#include "admin/scrub.h"
#include "base/unique_fd.h"

namespace daxref {

namespace {

using control::Record;

// sun_path holds 108 bytes; SOURCE may be longer. The socket is named
// through a descriptor of SOURCE instead.
bool ShortName(int dir_fd, sockaddr_un* addr, socklen_t* len) {
  memset(addr, 0, sizeof(*addr));
  addr->sun_family = AF_UNIX;
  int n = snprintf(addr->sun_path, sizeof(addr->sun_path), "/proc/self/fd/%d/control", dir_fd);
  if (n < 0 || static_cast<size_t>(n) >= sizeof(addr->sun_path)) return false;
  *len = static_cast<socklen_t>(offsetof(sockaddr_un, sun_path) + n + 1);
  return true;
}

Record Refusal(int err, const std::string& msg) {
  return Record("error").Add("errno", static_cast<uint64_t>(err)).Add("message", msg);
}

// The block range of a request, in pool blocks.
bool RangeOf(const Record& req, uint64_t* pb0, uint64_t* pb1) {
  uint64_t p = 0, n = 0;
  if (!req.GetU64("pblock", &p) || !req.GetU64("blocks", &n)) return false;
  if (p + n < p) return false;
  *pb0 = p;
  *pb1 = p + n;
  return true;
}

// Records are sent in batches of up to 32 KiB, and the last when the reply
// ends: a send (and a wake-up of the reader) per record would cost a third
// of a large walk. False once the peer is gone (or stopped reading for the
// send timeout).
class ReplyWriter {
 public:
  explicit ReplyWriter(int fd) : fd_(fd) {}
  bool Send(const Record& r) {
    if (gone_) return false;
    out_ += r.Encode();
    if (out_.size() >= (32 << 10) || r.kind == "done" || r.kind == "error") Flush();
    return !gone_;
  }
  void Flush() {
    if (!gone_ && !out_.empty() && !control::WriteBytes(fd_, out_)) gone_ = true;
    out_.clear();
  }

 private:
  int fd_;
  std::string out_;
  bool gone_ = false;
};

}  // namespace

Result<std::unique_ptr<ControlServer>> ControlServer::Bind(const std::string& source) {
  std::unique_ptr<ControlServer> c(new ControlServer());
  c->path_ = control::ControlSocketPath(source);
  c->source_ = source;
  UniqueFd dir(open(source.c_str(), O_PATH | O_DIRECTORY | O_CLOEXEC));
  if (dir.get() < 0) return Status::Error(errno, source + ": " + strerror(errno));
  sockaddr_un addr;
  socklen_t len = 0;
  if (!ShortName(dir.get(), &addr, &len)) return Status::Invalid("control socket name too long");
  UniqueFd sock(socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
  if (sock.get() < 0) return Status::Error(errno, std::string("socket: ") + strerror(errno));
  unlinkat(dir.get(), "control", 0);
  if (bind(sock.get(), reinterpret_cast<sockaddr*>(&addr), len) != 0)
    return Status::Error(errno, "cannot create " + c->path_ + ": " + strerror(errno));
  // Open to every user: the peer's credentials decide (see the header).
  fchmodat(dir.get(), "control", 0666, 0);
  if (listen(sock.get(), 16) != 0)
    return Status::Error(errno, std::string("listen: ") + strerror(errno));
  c->stop_fd_ = eventfd(0, EFD_CLOEXEC);
  if (c->stop_fd_ < 0) return Status::Error(errno, std::string("eventfd: ") + strerror(errno));
  c->listen_fd_ = sock.release();
  return c;
}

void ControlServer::Start(PoisonService* poison, Volume* volume, std::function<void()> detach) {
  poison_ = poison;
  volume_ = volume;
  detach_ = std::move(detach);
  thread_ = std::thread([this] { Run(); });
}

ControlServer::~ControlServer() {
  stopping_ = true;
  if (thread_.joinable()) {
    uint64_t one = 1;
    if (write(stop_fd_, &one, sizeof(one)) != sizeof(one)) spdlog::warn("control: cannot stop");
    thread_.join();
  }
  // A scrub under way sees stopping_ at its next step and ends.
  if (scrub_thread_.joinable()) scrub_thread_.join();
  if (listen_fd_ >= 0) {
    close(listen_fd_);
    unlink(path_.c_str());
  }
  if (stop_fd_ >= 0) close(stop_fd_);
}

void ControlServer::Run() {
  for (;;) {
    pollfd p[2] = {{listen_fd_, POLLIN, 0}, {stop_fd_, POLLIN, 0}};
    if (poll(p, 2, -1) < 0) {
      if (errno == EINTR) continue;
      spdlog::error("control: poll: {}", strerror(errno));
      return;
    }
    if (p[1].revents) return;
    if (!(p[0].revents & POLLIN)) continue;
    int conn = accept4(listen_fd_, nullptr, nullptr, SOCK_CLOEXEC);
    if (conn < 0) continue;
    Serve(conn);
  }
}

void ControlServer::Serve(int conn_fd) {
  UniqueFd conn(conn_fd);
  // A client that stops reading must not hold up the poison path for
  // long: after this, what it has not read is dropped (the log keeps it).
  timeval tv{10, 0};
  setsockopt(conn.get(), SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
  timeval rtv{5, 0};
  setsockopt(conn.get(), SOL_SOCKET, SO_RCVTIMEO, &rtv, sizeof(rtv));
  ReplyWriter writer(conn.get());
  auto sink = [&](const Record& r) { return writer.Send(r); };

  ucred cred{};
  socklen_t cl = sizeof(cred);
  if (getsockopt(conn.get(), SOL_SOCKET, SO_PEERCRED, &cred, &cl) != 0) return;
  control::RecordReader reader(conn.get());
  Record req;
  int err = 0;
  if (!reader.Next(&req, &err)) {
    sink(Refusal(EPROTO, "no request"));
    return;
  }
  if (cred.uid != 0 && cred.uid != getuid()) {
    spdlog::warn("control: refused '{}' from uid {} (pid {}): not root or the mount's owner",
                 req.kind, cred.uid, cred.pid);
    sink(Refusal(EPERM, "permission denied: only root or the owner of the mount (uid " +
                            std::to_string(getuid()) + ") may use the control channel"));
    return;
  }
  spdlog::info("control: '{}' from uid {} (pid {})", req.kind, cred.uid, cred.pid);
  uint64_t pb0 = 0, pb1 = 0, ino = 0, off = 0, len = 0;
  if (req.kind == "inject" && req.GetU64("ino", &ino)) {
    if (!req.GetU64("offset", &off) || !req.GetU64("length", &len))
      return (void)sink(Refusal(EINVAL, "inject by file needs ino, offset and length"));
    // `name`: the path the admin typed, for messages (absent: the inode).
    const std::string* name = req.Get("name");
    poison_->InjectFile(ino, off, len, name ? *name : "", sink);
  } else if (req.kind == "inject") {
    if (!RangeOf(req, &pb0, &pb1)) return (void)sink(Refusal(EINVAL, "inject needs a range"));
    poison_->Inject(pb0, pb1, sink);
  } else if (req.kind == "list") {
    poison_->List(sink);
  } else if (req.kind == "clear") {
    if (!RangeOf(req, &pb0, &pb1)) return (void)sink(Refusal(EINVAL, "clear needs a range"));
    poison_->Clear(pb0, pb1, sink);
  } else if (req.kind == "resolve") {
    if (!RangeOf(req, &pb0, &pb1)) return (void)sink(Refusal(EINVAL, "resolve needs a range"));
    poison_->Resolve(pb0, pb1, sink);
  } else if (req.kind == "info") {
    // daxref-info: one walk of a snapshot of the store (admin/fs_report.h),
    // on this thread: it reads counters only, and a poison request waits
    // for it no longer than for a resolve of a busy range.
    FsInfo info;
    Status s = CollectFsInfo(volume_->db(), volume_->superblock(), source_, &info);
    if (!s.ok()) return (void)sink(Refusal(s.err(), s.message()));
    SendFsInfo(info, sink);
  } else if (req.kind == "fsmap") {
    // daxref-map fsmap: the pool-wide map of [pblock, pblock+blocks), or of
    // the whole pool without a range.
    if (!req.Get("pblock")) {
      pb0 = 0;
      pb1 = volume_->superblock().block_count;
    } else if (!RangeOf(req, &pb0, &pb1)) {
      return (void)sink(Refusal(EINVAL, "fsmap needs a range"));
    }
    SendFsmap(volume_->db(), volume_->superblock(), pb0, pb1, sink);
  } else if (req.kind == "scrub") {
    if (scrub_running_) return (void)sink(Refusal(EBUSY, "a scrub is already running"));
    StartScrub(conn.release());
  } else if (req.kind == "pre-remove") {
    poison_->PreRemove(sink);
    // The reply is out (closing the connection ends it); then the mount goes.
    close(conn.release());
    if (detach_) detach_();
  } else {
    sink(Refusal(EINVAL, "unknown request '" + req.kind + "'"));
  }
}

void ControlServer::StartScrub(int conn_fd) {
  // The previous scrub has finished (scrub_running_ is false): reap it.
  if (scrub_thread_.joinable()) scrub_thread_.join();
  scrub_running_ = true;
  scrub_thread_ = std::thread([this, conn_fd] {
    UniqueFd conn(conn_fd);
    ReplyWriter writer(conn.get());
    bool running = true;
    ScrubVolume(volume_, stopping_, [&](const Record& r) {
      // A client that has read the last record may ask for the next scrub
      // at once: it must not find this one still running. StartScrub joins
      // this thread before starting another.
      if (r.kind == "done" || r.kind == "error") {
        running = false;
        scrub_running_ = false;
      }
      return writer.Send(r);
    });
    writer.Flush();
    if (running) scrub_running_ = false;
  });
}

}  // namespace daxref
