#include "fs/lease_table.h"

#include <poll.h>
#include <signal.h>
#include <spdlog/spdlog.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "dax/packet.h"

namespace daxref {

namespace {

// How long a killed holder may take to be gone (docs/dax.md, step 2).
constexpr std::chrono::seconds kKillWait{10};

bool Overlaps(uint64_t a, uint64_t alen, uint64_t b, uint64_t blen) {
  return a < b + blen && b < a + alen;
}

bool Selected(LeaseMode mode, LeaseWhich which) {
  switch (which) {
    case LeaseWhich::kAll:
      return true;
    case LeaseWhich::kWrite:
      return mode == LeaseMode::kWrite;
    case LeaseWhich::kRead:
      return mode == LeaseMode::kRead;
  }
  return true;
}

}  // namespace

bool LeaseSession::Send(const control::Record& r, int pass) {
  MutexLock g(&send_mu);
  return dax::SendPacket(sock.get(), r, pass);
}

bool LeaseSession::Kill() {
  if (syscall(SYS_pidfd_send_signal, pidfd.get(), SIGKILL, nullptr, 0) == 0) return true;
  return false;
}

bool LeaseSession::AwaitExit(std::chrono::milliseconds limit) {
  const auto deadline = std::chrono::steady_clock::now() + limit;
  for (;;) {
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
        deadline - std::chrono::steady_clock::now());
    pollfd p{pidfd.get(), POLLIN, 0};
    int n = poll(&p, 1, static_cast<int>(std::max<int64_t>(0, left.count())));
    if (n > 0) return true;
    if (n == 0) return false;
    if (errno != EINTR) return false;
  }
}

void LeaseTable::Add(const Lease& l) {
  auto e = std::make_shared<Entry>();
  e->lease = l;
  MutexLock g(&mu_);
  leases_[l.id] = e;
  by_ino_[l.ino].push_back(e);
  live_.fetch_add(1, std::memory_order_release);
}

bool LeaseTable::HasLeases(uint64_t ino) {
  if (empty()) return false;
  MutexLock g(&mu_);
  return by_ino_.count(ino) > 0;
}

bool LeaseTable::HasWriteLease(uint64_t ino) {
  if (empty()) return false;
  MutexLock g(&mu_);
  auto it = by_ino_.find(ino);
  if (it == by_ino_.end()) return false;
  for (const EntryPtr& e : it->second)
    if (e->lease.mode == LeaseMode::kWrite && e->state != State::kDone) return true;
  return false;
}

void LeaseTable::RemoveLocked(uint64_t id) {
  auto it = leases_.find(id);
  if (it == leases_.end()) return;
  EntryPtr e = it->second;
  leases_.erase(it);
  auto bi = by_ino_.find(e->lease.ino);
  if (bi != by_ino_.end()) {
    auto& v = bi->second;
    for (auto vi = v.begin(); vi != v.end(); ++vi)
      if (*vi == e) {
        v.erase(vi);
        break;
      }
    if (v.empty()) by_ino_.erase(bi);
  }
  live_.fetch_sub(1, std::memory_order_release);
}

void LeaseTable::Drop(const std::vector<uint64_t>& ids, const char* why) {
  if (ids.empty()) return;
  {
    MutexLock g(&mu_);
    for (uint64_t id : ids) RemoveLocked(id);
  }
  DropRecords(ids, why);
}

void LeaseTable::DropRecords(const std::vector<uint64_t>& ids, const char* why) {
  if (ids.empty()) return;
  // A read-only store has no records to drop (the grant wrote none; those
  // of a mount remounted read-only since go at the next mount).
  if (volume_->read_only()) return;
  Status s = volume_->DropLeases(std::span<const uint64_t>(ids.data(), ids.size()));
  if (!s.ok())
    spdlog::error("deleting the records of {} leases ({}) failed: {}", ids.size(), why,
                  s.message());
}

Status LeaseTable::Revoke(uint64_t ino, uint64_t off, uint64_t len, LeaseWhich which,
                          const std::string& reason) {
  if (empty()) return Status::Ok();
  if (len > UINT64_MAX - off) len = UINT64_MAX - off;
  std::vector<EntryPtr> picked;
  {
    MutexLock g(&mu_);
    auto it = by_ino_.find(ino);
    if (it == by_ino_.end()) return Status::Ok();
    for (const EntryPtr& e : it->second) {
      if (e->state != State::kLive || !Selected(e->lease.mode, which)) continue;
      if (!Overlaps(e->lease.off, e->lease.len, off, len)) continue;
      e->state = State::kRevoking;
      picked.push_back(e);
    }
  }
  return RevokePicked(picked, reason);
}

Status LeaseTable::RevokeAll(const std::string& reason) {
  if (empty()) return Status::Ok();
  std::vector<EntryPtr> picked;
  {
    MutexLock g(&mu_);
    for (auto& [id, e] : leases_) {
      if (e->state != State::kLive) continue;
      e->state = State::kRevoking;
      picked.push_back(e);
    }
  }
  return RevokePicked(picked, reason);
}

Status LeaseTable::RevokePicked(const std::vector<EntryPtr>& picked, const std::string& reason) {
  if (picked.empty()) return Status::Ok();
  const auto started = std::chrono::steady_clock::now();
  // 1. Tell every holder; a holder that cannot be told is waited for all
  // the same (it may be reading slowly) and then killed.
  for (const EntryPtr& e : picked) {
    control::Record r("revoke");
    r.Add("lease", e->lease.id).Add("reason", reason);
    if (!e->lease.session->Send(r))
      spdlog::warn("lease {}: cannot send the revocation to process {}: {}", e->lease.id,
                   e->lease.session->pid, strerror(errno));
  }
  // Wait for the acknowledgements (the poll thread marks them kDone).
  const auto deadline = started + revoke_timeout_;
  std::vector<EntryPtr> silent;
  {
    MutexLock g(&mu_);
    for (;;) {
      silent.clear();
      for (const EntryPtr& e : picked)
        if (e->state != State::kDone) silent.push_back(e);
      if (silent.empty() || std::chrono::steady_clock::now() >= deadline) break;
      changed_.WaitUntil(&mu_, deadline);
    }
  }
  // 2. Who did not answer is killed, as the kernel kills a process that
  // will not let go of a poisoned DAX page; its exit is what ends its
  // access (the address space is gone once the pidfd reports it).
  Status result = Status::Ok();
  std::vector<uint64_t> stuck;
  for (const EntryPtr& e : silent) {
    LeaseSession* s = e->lease.session.get();
    spdlog::warn(
        "lease {} (inode {}, bytes {}+{}): process {} did not acknowledge the revocation ({}) "
        "within {} ms: killing it",
        e->lease.id, e->lease.ino, e->lease.off, e->lease.len, s->pid, reason,
        revoke_timeout_.count());
    if (!s->Kill() && errno != ESRCH)
      spdlog::error("lease {}: cannot kill process {}: {}", e->lease.id, s->pid, strerror(errno));
    if (s->AwaitExit(kKillWait)) continue;
    spdlog::error("lease {}: process {} is still there {} s after SIGKILL: the lease stays ({})",
                  e->lease.id, s->pid, kKillWait.count(), reason);
    stuck.push_back(e->lease.id);
    result = Status::Error(EBUSY, "lease " + std::to_string(e->lease.id) + " of process " +
                                      std::to_string(s->pid) + " could not be revoked");
  }
  // 3. The records go; a lease that could not be revoked stays live.
  std::vector<uint64_t> ids;
  {
    MutexLock g(&mu_);
    for (const EntryPtr& e : picked) {
      bool kept = false;
      for (uint64_t id : stuck) kept |= id == e->lease.id;
      if (kept)
        e->state = State::kLive;
      else
        ids.push_back(e->lease.id);
    }
  }
  Drop(ids, "revoked");
  auto took = std::chrono::duration_cast<std::chrono::microseconds>(
      std::chrono::steady_clock::now() - started);
  spdlog::info("revoked {} leases ({}) in {} us", ids.size(), reason, took.count());
  return result;
}

void LeaseTable::Acknowledged(const LeaseSession* s, uint64_t id) {
  MutexLock g(&mu_);
  auto it = leases_.find(id);
  if (it == leases_.end() || it->second->lease.session.get() != s) return;
  if (it->second->state == State::kRevoking) {
    it->second->state = State::kDone;
    changed_.SignalAll();
  }
}

bool LeaseTable::Release(const LeaseSession* s, uint64_t id) {
  {
    MutexLock g(&mu_);
    auto it = leases_.find(id);
    if (it == leases_.end() || it->second->lease.session.get() != s) return false;
    if (it->second->state != State::kLive) {
      // Being revoked: the library unmapped it, which is the acknowledgement.
      it->second->state = State::kDone;
      changed_.SignalAll();
      return true;
    }
    RemoveLocked(id);
  }
  DropRecords({id}, "released");
  return true;
}

bool LeaseTable::Find(const LeaseSession* s, uint64_t id, Lease* out) {
  MutexLock g(&mu_);
  auto it = leases_.find(id);
  if (it == leases_.end() || it->second->lease.session.get() != s) return false;
  *out = it->second->lease;
  return true;
}

void LeaseTable::SessionGone(const LeaseSession* s) {
  std::vector<uint64_t> ids;
  {
    MutexLock g(&mu_);
    for (auto& [id, e] : leases_) {
      if (e->lease.session.get() != s) continue;
      if (e->state == State::kLive) {
        ids.push_back(id);
      } else if (e->state == State::kRevoking) {
        e->state = State::kDone;  // its revoker drops it
        changed_.SignalAll();
      }
    }
    for (uint64_t id : ids) RemoveLocked(id);
  }
  if (!ids.empty()) spdlog::warn("process {} went away: its {} leases end", s->pid, ids.size());
  DropRecords(ids, "holder gone");
}

void LeaseTable::ForEachOverlapping(
    uint64_t ino, uint64_t off, uint64_t len,
    const std::function<void(const Lease&, uint64_t, uint64_t)>& fn) {
  if (empty()) return;
  std::vector<Lease> hit;
  {
    MutexLock g(&mu_);
    auto it = by_ino_.find(ino);
    if (it == by_ino_.end()) return;
    for (const EntryPtr& e : it->second)
      if (e->state != State::kDone && Overlaps(e->lease.off, e->lease.len, off, len))
        hit.push_back(e->lease);
  }
  for (const Lease& l : hit) {
    uint64_t s = std::max(off, l.off);
    uint64_t end = std::min(off + len, l.off + l.len);
    fn(l, s, end - s);
  }
}

}  // namespace daxref
