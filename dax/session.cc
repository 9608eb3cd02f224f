#include "dax/session.h"

#include <daxref/ioctl.h>
#include <signal.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <climits>
#include <cstdlib>
#include <cstring>
#include <string>
#include <utility>

#include "dax/packet.h"
#include "dax/persist.h"
#include "dax/raw_mmap.h"

namespace daxref::dax {

// The process's sessions, by the mount's device. Never destroyed (see
// session.h); a dead session is replaced on the next Of.
struct SessionTable {
  Mutex mu;
  std::map<dev_t, std::shared_ptr<Session>> by_dev GUARDED_BY(mu);

  static SessionTable* Get() {
    static SessionTable* table = [] {
      auto* t = new SessionTable;
      pthread_atfork(nullptr, nullptr, &SessionTable::InChild);
      return t;
    }();
    return table;
  }

  // After fork, in the child: its copies of the sessions' sockets are
  // closed and the sessions forgotten (leaked: their locks may have been
  // held by a thread that does not exist here). The child maps nothing
  // (MADV_DONTFORK) and opens its own session when it asks for a lease.
  static void InChild() NO_THREAD_SAFETY_ANALYSIS {
    SessionTable* t = Get();
    new (&t->mu) Mutex;
    auto* old = new std::map<dev_t, std::shared_ptr<Session>>(std::move(t->by_dev));
    for (auto& [dev, s] : *old) close(s->sock_.get());
    t->by_dev.clear();
  }
};

namespace {

int ErrnoOf(const control::Record& r) {
  uint64_t e = 0;
  if (!r.GetU64("errno", &e) || e == 0 || e > 4095) return EPROTO;
  return static_cast<int>(e);
}

// The daemon's reason is words ("truncate", "punch hole", "clone into",
// "copy_file_range from", ...); its first word decides (docs/dax.md).
daxref_dax_reason ReasonOf(const std::string* why) {
  static const std::pair<const char*, daxref_dax_reason> kReasons[] = {
      {"truncate", DAXREF_DAX_REVOKED_TRUNCATE},
      {"punch", DAXREF_DAX_REVOKED_PUNCH},
      {"zero", DAXREF_DAX_REVOKED_PUNCH},
      {"collapse", DAXREF_DAX_REVOKED_PUNCH},
      {"insert", DAXREF_DAX_REVOKED_PUNCH},
      {"unshare", DAXREF_DAX_REVOKED_PUNCH},
      {"allocate", DAXREF_DAX_REVOKED_PUNCH},
      {"write", DAXREF_DAX_REVOKED_WRITE},
      {"clone", DAXREF_DAX_REVOKED_CLONE},
      {"copy_file_range", DAXREF_DAX_REVOKED_CLONE},
      {"dedupe", DAXREF_DAX_REVOKED_CLONE},
      {"reclaim", DAXREF_DAX_REVOKED_RECLAIM},
      {"unmount", DAXREF_DAX_REVOKED_UNMOUNT},
      {"shutdown", DAXREF_DAX_REVOKED_UNMOUNT},
      {"pre-remove", DAXREF_DAX_REVOKED_PRE_REMOVE},
  };
  if (why == nullptr) return DAXREF_DAX_REVOKED_OTHER;
  const std::string first = why->substr(0, why->find(' '));
  for (const auto& [name, reason] : kReasons)
    if (first == name) return reason;
  return DAXREF_DAX_REVOKED_OTHER;
}

void CallRevoke(DaxMap* m, daxref_dax_reason why) {
  daxref_dax_revoke_fn fn;
  void* arg;
  {
    MutexLock l(&m->cb_mu);
    fn = m->on_revoke;
    arg = m->revoke_arg;
  }
  if (fn != nullptr) fn(m, why, arg);
}

}  // namespace

std::shared_ptr<Session> Session::Of(int fd, const struct stat& st) {
  SessionTable* t = SessionTable::Get();
  MutexLock l(&t->mu);
  auto it = t->by_dev.find(st.st_dev);
  if (it != t->by_dev.end()) {
    if (it->second->alive()) return it->second;
    t->by_dev.erase(it);
  }

  daxref_dax_info info{};
  if (ioctl(fd, DAXREF_IOC_DAX_INFO, &info) != 0 || info.magic != DAXREF_INFO_MAGIC) {
    errno = ENOTTY;
    return nullptr;
  }
  info.socket[sizeof(info.socket) - 1] = '\0';
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  if (strlen(info.socket) >= sizeof(addr.sun_path)) {
    errno = ENAMETOOLONG;
    return nullptr;
  }
  strcpy(addr.sun_path, info.socket);
  UniqueFd sock(socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0));
  if (!sock.valid()) return nullptr;
  int r;
  do {
    r = connect(sock.get(), reinterpret_cast<sockaddr*>(&addr), sizeof(addr));
  } while (r != 0 && errno == EINTR);
  if (r != 0) {
    // The socket is the daemon user's, mode 0600: anyone else is refused
    // the lease itself, which is what the caller asked for.
    if (errno == EACCES) errno = EPERM;
    return nullptr;
  }

  auto s = std::make_shared<Session>(std::move(sock));
  // The reader runs with every signal blocked but the synchronous ones and
  // SIGBUS (which it raises on itself for poison without a callback): the
  // program's handlers run on its own threads.
  sigset_t all, old;
  sigfillset(&all);
  for (int sig : {SIGBUS, SIGSEGV, SIGILL, SIGFPE, SIGABRT}) sigdelset(&all, sig);
  pthread_sigmask(SIG_SETMASK, &all, &old);
  auto* ref = new std::shared_ptr<Session>(s);
  int e = pthread_create(&s->reader_, nullptr, &Session::ReaderMain, ref);
  pthread_sigmask(SIG_SETMASK, &old, nullptr);
  if (e != 0) {
    delete ref;
    errno = e;
    return nullptr;
  }
  pthread_detach(s->reader_);
  t->by_dev[st.st_dev] = s;
  return s;
}

void* Session::ReaderMain(void* arg) {
  auto* ref = static_cast<std::shared_ptr<Session>*>(arg);
  std::shared_ptr<Session> self = std::move(*ref);
  delete ref;
  self->Serve();
  return nullptr;
}

bool Session::OnReader() const {
  return pthread_equal(pthread_self(), reader_) != 0;
}

void Session::Serve() {
  for (;;) {
    control::Record r;
    UniqueFd passed;
    Received got = ReceivePacket(sock_.get(), &r, &passed);
    if (got == Received::kError && errno == EPROTO) continue;  // one bad packet
    if (got != Received::kRecord) break;

    if (r.kind == "revoke") {
      OnRevoke(r);
      continue;
    }
    if (r.kind == "poison") {
      OnPoison(r);
      continue;
    }
    MutexLock l(&mu_);
    if (waiting_tag_ == 0 || reply_done_) continue;  // nobody asked: dropped
    uint64_t tag = 0;
    const bool tagged = r.GetU64("tag", &tag);
    if (r.kind == "extent") {
      reply_.records.push_back(std::move(r));
      continue;
    }
    if (!tagged || tag != waiting_tag_) continue;
    if (r.kind == "granted") {
      uint64_t lease = 0;
      if (r.GetU64("lease", &lease)) pending_[lease] = false;
      reply_.passed = std::move(passed);
      reply_.records.push_back(std::move(r));
      continue;  // extents and `end` follow
    }
    if (r.kind == "error") reply_.err = ErrnoOf(r);
    reply_.records.push_back(std::move(r));
    reply_done_ = true;
    replied_.SignalAll();
  }
  OnEnd();
}

Session::Reply Session::Call(control::Record req) {
  if (OnReader()) {
    Reply r;
    r.err = EDEADLK;
    return r;
  }
  MutexLock call(&call_mu_);
  const uint64_t tag = next_tag_++;
  req.Add("tag", tag);
  {
    MutexLock l(&mu_);
    reply_ = Reply{};
    reply_done_ = false;
    waiting_tag_ = tag;
  }
  const bool sent = alive() && SendPacket(sock_.get(), req);
  const int send_err = errno;
  MutexLock l(&mu_);
  if (!sent) {
    waiting_tag_ = 0;
    Reply r;
    r.err = alive() ? send_err : ECONNRESET;
    if (r.err == EPIPE) r.err = ECONNRESET;
    return r;
  }
  while (!reply_done_ && alive()) replied_.Wait(&mu_);
  waiting_tag_ = 0;
  Reply r = std::move(reply_);
  if (!reply_done_) r.err = ECONNRESET;
  reply_ = Reply{};
  return r;
}

bool Session::Send(const control::Record& r) {
  return alive() && SendPacket(sock_.get(), r);
}

void Session::Attach(DaxMap* m) {
  bool revoked = false;
  {
    MutexLock cb(&cb_mu_);
    MutexLock l(&mu_);
    auto it = pending_.find(m->lease);
    revoked = (it != pending_.end() && it->second) || !alive();
    if (it != pending_.end()) pending_.erase(it);
    if (revoked) {
      RestoreMapping(m);
      m->revoked.store(true, std::memory_order_release);
    } else {
      maps_[m->lease] = m;
    }
  }
  if (revoked) Send(control::Record("revoked").Add("lease", m->lease));
}

void Session::Abandon(uint64_t lease) {
  bool revoked;
  {
    MutexLock l(&mu_);
    auto it = pending_.find(lease);
    revoked = it != pending_.end() && it->second;
    if (it != pending_.end()) pending_.erase(it);
  }
  if (revoked)
    Send(control::Record("revoked").Add("lease", lease));
  else
    Call(control::Record("release").Add("lease", lease));
}

bool Session::Detach(DaxMap* m, EndHow how) {
  MutexLock cb(&cb_mu_);
  MutexLock l(&mu_);
  maps_.erase(m->lease);
  if (how == EndHow::kRestore)
    RestoreMapping(m);
  else
    RawMunmap(m->base, m->region_length);
  return !m->revoked.load(std::memory_order_acquire) && alive();
}

void Session::OnRevoke(const control::Record& r) {
  uint64_t lease = 0;
  if (!r.GetU64("lease", &lease)) return;
  const daxref_dax_reason why = ReasonOf(r.Get("reason"));
  MutexLock cb(&cb_mu_);
  DaxMap* m = nullptr;
  {
    MutexLock l(&mu_);
    auto it = maps_.find(lease);
    if (it != maps_.end()) {
      m = it->second;
      maps_.erase(it);
      RestoreMapping(m);
      m->revoked.store(true, std::memory_order_release);
    } else if (auto p = pending_.find(lease); p != pending_.end()) {
      p->second = true;  // Attach or Abandon acknowledges
      return;
    }
  }
  // Unknown leases too: their mappings are gone (unmapped) already.
  Send(control::Record("revoked").Add("lease", lease));
  if (m != nullptr) CallRevoke(m, why);
}

void Session::OnPoison(const control::Record& r) {
  uint64_t lease = 0, offset = 0, length = 0;
  if (!r.GetU64("lease", &lease) || !r.GetU64("offset", &offset) || !r.GetU64("length", &length) ||
      length == 0)
    return;
  MutexLock cb(&cb_mu_);
  DaxMap* m = nullptr;
  char* addr = nullptr;
  size_t len = 0;
  {
    MutexLock l(&mu_);
    auto it = maps_.find(lease);
    if (it == maps_.end()) return;
    m = it->second;
    // The bad bytes' place in the mapping (clipped to the lease's range).
    const uint64_t lo = std::max(offset, m->lease_offset);
    const uint64_t end = offset + length < offset ? UINT64_MAX : offset + length;
    const uint64_t hi = std::min<uint64_t>(end, m->lease_offset + m->region_length);
    if (lo >= hi) return;
    addr = m->base + (lo - m->lease_offset);
    len = hi - lo;
  }
  daxref_dax_poison_fn fn;
  void* arg;
  {
    MutexLock l(&m->cb_mu);
    fn = m->on_poison;
    arg = m->poison_arg;
  }
  if (fn != nullptr) {
    fn(m, addr, len, arg);
    return;
  }
  // As the kernel's action-optional machine check: SIGBUS, BUS_MCEERR_AO,
  // the address, the granule (a page). A process may queue any si_code to
  // itself (the target thread is this one, which does not block SIGBUS).
  siginfo_t si{};
  si.si_signo = SIGBUS;
  si.si_code = BUS_MCEERR_AO;
  si.si_addr = addr;
  si.si_addr_lsb = 12;
  syscall(SYS_rt_tgsigqueueinfo, getpid(), static_cast<pid_t>(syscall(SYS_gettid)), SIGBUS, &si);
}

void Session::OnEnd() {
  dead_.store(true, std::memory_order_release);
  std::vector<DaxMap*> gone;
  MutexLock cb(&cb_mu_);
  {
    MutexLock l(&mu_);
    for (auto& [lease, m] : maps_) {
      // The daemon is gone: no ordinary mapping to fall back to either.
      MakeInaccessible(m->base, m->region_length);
      m->revoked.store(true, std::memory_order_release);
      gone.push_back(m);
    }
    maps_.clear();
    replied_.SignalAll();
  }
  for (DaxMap* m : gone) CallRevoke(m, DAXREF_DAX_REVOKED_DAEMON_GONE);
}

PersistFn Session::Persister(int pool_fd) {
  MutexLock l(&mu_);
  if (!persist_probed_) {
    persist_ = ProbePersist(pool_fd);
    persist_probed_ = true;
  }
  return persist_;
}

}  // namespace daxref::dax
