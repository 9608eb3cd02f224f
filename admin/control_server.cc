#include "admin/control_server.h"

#include <fcntl.h>
#include <poll.h>
#include <spdlog/spdlog.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstring>
#include <utility>

#include "admin/fs_report.h"
#include "admin/listen_socket.h"
#include "admin/scrub.h"
#include "base/unique_fd.h"

namespace daxref {

namespace {

using control::Record;

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

// Answers a connection the poller is done with: one record, sent without
// waiting (the socket is non-blocking; a reply that does not fit is
// dropped, the connection is closed next anyway).
void Answer(int fd, const Record& r) {
  const std::string line = r.Encode();
  ssize_t n = send(fd, line.data(), line.size(), MSG_NOSIGNAL | MSG_DONTWAIT);
  (void)n;
}

}  // namespace

Result<std::unique_ptr<ControlServer>> ControlServer::Bind(const std::string& source) {
  std::unique_ptr<ControlServer> c(new ControlServer());
  c->path_ = control::ControlSocketPath(source);
  c->source_ = source;
  Result<UniqueFd> sock = ListenInSource(source, "control", SOCK_STREAM);
  if (!sock.ok()) return sock.status();
  c->stop_fd_ = eventfd(0, EFD_CLOEXEC);
  if (c->stop_fd_ < 0) return Status::Error(errno, std::string("eventfd: ") + strerror(errno));
  c->listen_fd_ = sock->release();
  return c;
}

void ControlServer::Start(PoisonService* poison, Volume* volume, std::function<void()> detach) {
  poison_ = poison;
  volume_ = volume;
  detach_ = std::move(detach);
  for (int i = 0; i < kWorkers; ++i) workers_.emplace_back([this] { WorkerLoop(); });
  poller_ = std::thread([this] { Run(); });
}

ControlServer::~ControlServer() {
  // A scrub under way sees stopping_ at its next step and ends.
  stopping_ = true;
  if (poller_.joinable()) {
    uint64_t one = 1;
    if (write(stop_fd_, &one, sizeof(one)) != sizeof(one)) spdlog::warn("control: cannot stop");
    poller_.join();
  }
  {
    MutexLock g(&mu_);
    stop_workers_ = true;
    queue_.clear();  // not started: their clients see the connection close
  }
  work_cv_.SignalAll();
  for (std::thread& t : workers_) t.join();
  if (listen_fd_ >= 0) {
    close(listen_fd_);
    unlink(path_.c_str());
  }
  if (stop_fd_ >= 0) close(stop_fd_);
}

size_t ControlServer::InService() {
  MutexLock g(&mu_);
  return queue_.size() + serving_;
}

void ControlServer::Run() {
  std::vector<Incoming> incoming;
  std::vector<pollfd> p;
  for (;;) {
    p.clear();
    p.push_back({stop_fd_, POLLIN, 0});
    p.push_back({listen_fd_, POLLIN, 0});
    auto first = std::chrono::steady_clock::time_point::max();
    for (const Incoming& in : incoming) {
      p.push_back({in.conn.get(), POLLIN, 0});
      first = std::min(first, in.deadline);
    }
    int timeout_ms = -1;
    if (!incoming.empty()) {
      auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
          first - std::chrono::steady_clock::now());
      timeout_ms = static_cast<int>(std::max<int64_t>(0, left.count() + 1));
    }
    if (poll(p.data(), p.size(), timeout_ms) < 0) {
      if (errno == EINTR) continue;
      spdlog::error("control: poll: {}", strerror(errno));
      return;
    }
    if (p[0].revents) return;
    const auto now = std::chrono::steady_clock::now();
    // p[i + 2] is incoming[i]; connections leave in place, in order.
    size_t kept = 0;
    for (size_t i = 0; i < incoming.size(); ++i) {
      Incoming& in = incoming[i];
      bool done = false;
      if (p[i + 2].revents) done = ReadRequest(&in);
      if (!done && now >= in.deadline) {
        spdlog::warn("control: no whole request from uid {} (pid {}) within {} s: closed",
                     in.cred.uid, in.cred.pid, kRequestSeconds);
        Answer(in.conn.get(), Refusal(ETIMEDOUT, "no whole request within " +
                                                     std::to_string(kRequestSeconds) + " s"));
        done = true;
      }
      if (!done) {
        if (kept != i) incoming[kept] = std::move(in);
        ++kept;
      }
    }
    incoming.resize(kept);
    if (p[1].revents & POLLIN) Accept(&incoming);
  }
}

void ControlServer::Accept(std::vector<Incoming>* incoming) {
  // The listening socket is non-blocking: take every connection waiting.
  for (;;) {
    UniqueFd conn(accept4(listen_fd_, nullptr, nullptr, SOCK_CLOEXEC | SOCK_NONBLOCK));
    if (!conn.valid()) return;
    ucred cred{};
    socklen_t cl = sizeof(cred);
    if (getsockopt(conn.get(), SOL_SOCKET, SO_PEERCRED, &cred, &cl) != 0) continue;
    if (cred.uid != 0 && cred.uid != getuid()) {
      // Closed unread and unanswered. One log line a minute at most: any
      // local user could otherwise fill the log.
      const auto now = std::chrono::steady_clock::now();
      if (now - last_refusal_log_ >= std::chrono::minutes(1)) {
        last_refusal_log_ = now;
        spdlog::warn(
            "control: closed a connection from uid {} (pid {}): not root or the mount's owner "
            "(further ones within a minute are not logged)",
            cred.uid, cred.pid);
      }
      continue;
    }
    if (incoming->size() + InService() >= kMaxConnections) {
      spdlog::warn("control: refused a connection from uid {} (pid {}): {} already open", cred.uid,
                   cred.pid, kMaxConnections);
      Answer(conn.get(), Refusal(EBUSY, "too many control connections open (" +
                                            std::to_string(kMaxConnections) + ")"));
      continue;
    }
    Incoming in;
    in.conn = std::move(conn);
    in.cred = cred;
    in.deadline = std::chrono::steady_clock::now() + std::chrono::seconds(kRequestSeconds);
    incoming->push_back(std::move(in));
  }
}

bool ControlServer::ReadRequest(Incoming* in) {
  char chunk[4096];
  for (;;) {
    // Never more than the bound (and its '\n') in memory.
    const size_t room = kMaxRequestBytes + 1 - in->buf.size();
    ssize_t n = recv(in->conn.get(), chunk, std::min(room, sizeof(chunk)), 0);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) return false;
    if (n <= 0) {
      // The client closed (or failed) before a whole line.
      Answer(in->conn.get(), Refusal(EPROTO, "no request"));
      return true;
    }
    const size_t old = in->buf.size();
    in->buf.append(chunk, static_cast<size_t>(n));
    const size_t nl = in->buf.find('\n', old);
    if (nl != std::string::npos) {
      Request r;
      if (!Record::Decode(std::string_view(in->buf).substr(0, nl), &r.req)) {
        Answer(in->conn.get(), Refusal(EPROTO, "the request is not a record"));
        return true;
      }
      r.conn = std::move(in->conn);
      r.cred = in->cred;
      Enqueue(std::move(r));
      return true;
    }
    if (in->buf.size() > kMaxRequestBytes) {
      spdlog::warn("control: request from uid {} (pid {}) longer than {} bytes: closed",
                   in->cred.uid, in->cred.pid, kMaxRequestBytes);
      Answer(in->conn.get(), Refusal(EMSGSIZE, "request longer than " +
                                                   std::to_string(kMaxRequestBytes) + " bytes"));
      return true;
    }
  }
}

void ControlServer::Enqueue(Request r) {
  // Replies are written blocking, each send bounded (see ReplyWriter).
  const int fd = r.conn.get();
  fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) & ~O_NONBLOCK);
  timeval tv{kSendSeconds, 0};
  setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
  {
    MutexLock g(&mu_);
    queue_.push_back(std::move(r));
  }
  work_cv_.Signal();
}

void ControlServer::WorkerLoop() {
  for (;;) {
    Request r;
    {
      MutexLock g(&mu_);
      while (!stop_workers_ && queue_.empty()) work_cv_.Wait(&mu_);
      if (stop_workers_) return;
      r = std::move(queue_.front());
      queue_.pop_front();
      ++serving_;
    }
    Serve(std::move(r.conn), r.cred, r.req);
    MutexLock g(&mu_);
    --serving_;
  }
}

void ControlServer::Serve(UniqueFd conn, const ucred& cred, const Record& req) {
  ReplyWriter writer(conn.get());
  auto sink = [&](const Record& r) { return writer.Send(r); };
  spdlog::info("control: '{}' from uid {} (pid {})", req.kind, cred.uid, cred.pid);
  uint64_t pb0 = 0, pb1 = 0, ino = 0, off = 0, len = 0;
  if (req.kind == "inject" && req.GetU64("ino", &ino)) {
    if (!req.GetU64("offset", &off) || !req.GetU64("length", &len))
      return (void)sink(Refusal(EINVAL, "inject by file needs ino, offset and length"));
    // `name`: the path the admin typed, for messages (absent: the inode).
    const std::string* name = req.Get("name");
    poison_->InjectFile(ino, off, len, name ? *name : "", cred.uid, sink);
  } else if (req.kind == "inject") {
    if (!RangeOf(req, &pb0, &pb1)) return (void)sink(Refusal(EINVAL, "inject needs a range"));
    poison_->Inject(pb0, pb1, cred.uid, sink);
  } else if (req.kind == "list") {
    poison_->List(sink);
  } else if (req.kind == "rescan") {
    poison_->Rescan(sink);
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
    // The walk's progress goes out as scrub's does, at most once a second
    // (the first at once): daxref-info shows it on a terminal.
    FsInfo info;
    auto last = std::chrono::steady_clock::now() - std::chrono::seconds(1);
    Status s = CollectFsInfo(
        volume_->db(), volume_->superblock(), source_,
        [&](std::string_view phase, double done) {
          const auto now = std::chrono::steady_clock::now();
          if (now - last < std::chrono::seconds(1)) return true;
          last = now;
          sink(Record("progress")
                   .Add("phase", phase)
                   .Add("percent", static_cast<uint64_t>(done * 100)));
          return true;
        },
        &info);
    if (!s.ok()) return (void)sink(Refusal(s.err(), s.message()));
    info.log_destination = log_destination_;
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
  } else if (req.kind == "remount") {
    // daxref -o remount,ro|rw (docs/design.md, "Remounting"); the kernel
    // mount was made read-only first (ro) or is made read-write after (rw).
    const std::string* mode = req.Get("mode");
    if (!mode || (*mode != "ro" && *mode != "rw"))
      return (void)sink(Refusal(EINVAL, "remount needs mode=ro or mode=rw"));
    Status s = volume_->SetReadOnly(*mode == "ro");
    if (!s.ok()) return (void)sink(Refusal(s.err(), s.message()));
    spdlog::info("remounted {}", *mode == "ro" ? "read-only" : "read-write");
    sink(Record("done"));
  } else if (req.kind == "scrub") {
    Scrub(std::move(conn));
  } else if (req.kind == "pre-remove") {
    poison_->PreRemove(sink);
    // The reply is out (closing the connection ends it); then the mount goes.
    conn.Reset();
    if (detach_) detach_();
  } else {
    sink(Refusal(EINVAL, "unknown request '" + req.kind + "'"));
  }
}

void ControlServer::Scrub(UniqueFd conn) {
  ReplyWriter writer(conn.get());
  // One scrub at a time, on this worker: the others stay free for poison.
  if (scrub_running_.exchange(true)) {
    writer.Send(Refusal(EBUSY, "a scrub is already running"));
    return;
  }
  bool running = true;
  ScrubVolume(volume_, stopping_, [&](const Record& r) {
    // A client that has read the last record may ask for the next scrub
    // at once: it must not find this one still running.
    if (r.kind == "done" || r.kind == "error") {
      running = false;
      scrub_running_ = false;
    }
    return writer.Send(r);
  });
  writer.Flush();
  if (running) scrub_running_ = false;
}

}  // namespace daxref
