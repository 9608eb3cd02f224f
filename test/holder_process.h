// HolderProcess: a poison_holder child (test/poison_holder.cc) driven command
// by command, for tests of who holds a file and who gets signalled; and the
// log of signals those children keep.
#pragma once

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <chrono>
#include <string>
#include <thread>
#include <vector>

#include "test/fixture.h"

namespace daxref::test {

// A running poison_holder driven command by command. Killed and reaped on
// destruction, after the children it forked (which it never reaps itself:
// it ignores SIGCHLD, so the kernel does).
class HolderProcess {
 public:
  explicit HolderProcess(std::string log) : log_(std::move(log)) {
    int to[2], from[2];
    REQUIRE(pipe2(to, O_CLOEXEC) == 0);
    REQUIRE(pipe2(from, O_CLOEXEC) == 0);
    pid_ = fork();
    REQUIRE(pid_ >= 0);
    if (pid_ == 0) {
      dup2(to[0], STDIN_FILENO);
      dup2(from[1], STDOUT_FILENO);
      const std::string bin = DAXREF_TEST_POISON_HOLDER;
      execl(bin.c_str(), bin.c_str(), log_.c_str(), static_cast<char*>(nullptr));
      _exit(127);
    }
    close(to[0]);
    close(from[1]);
    to_ = to[1];
    from_ = from[0];
    try {
      REQUIRE(ReadLine() == "ready");
    } catch (...) {
      Kill();  // no destructor runs for a constructor that throws
      throw;
    }
  }
  ~HolderProcess() {
    for (int pidfd : child_pidfds_) {
      // Through the pidfd: never a process that got the pid later.
      syscall(SYS_pidfd_send_signal, pidfd, SIGKILL, nullptr, 0);
      pollfd p{pidfd, POLLIN, 0};
      poll(&p, 1, 5000);
      close(pidfd);
    }
    Kill();
  }
  HolderProcess(const HolderProcess&) = delete;
  HolderProcess& operator=(const HolderProcess&) = delete;

  pid_t pid() const { return pid_; }
  const std::string& log() const { return log_; }

  // Sends one command; its one-line answer.
  std::string Ask(const std::string& command) {
    INFO("poison_holder " << pid_ << ": " << command);
    REQUIRE(pid_ > 0);
    const std::string line = command + "\n";
    REQUIRE(write(to_, line.data(), line.size()) == static_cast<ssize_t>(line.size()));
    return ReadLine();
  }
  int Open(const std::string& path) { return NumberAfter("fd ", Ask("open " + path)); }
  int Map(const std::string& path) { return NumberAfter("map ", Ask("map " + path)); }
  void Close(int fd) { REQUIRE(Ask("close " + std::to_string(fd)) == "ok"); }
  void Unmap(int idx) { REQUIRE(Ask("unmap " + std::to_string(idx)) == "ok"); }
  // A child that keeps every descriptor and mapping the holder has now.
  pid_t Fork() {
    const pid_t child = NumberAfter("child ", Ask("fork"));
    const int pidfd = static_cast<int>(syscall(SYS_pidfd_open, child, 0));
    REQUIRE(pidfd >= 0);
    child_pidfds_.push_back(pidfd);
    return child;
  }
  // Kills and reaps the holder now; its children die with it
  // (PR_SET_PDEATHSIG).
  void Kill() {
    if (pid_ <= 0) return;
    close(to_);
    close(from_);
    kill(pid_, SIGKILL);
    int status;
    waitpid(pid_, &status, 0);
    pid_ = -1;
  }

 private:
  // The next line of output, within the deadline.
  std::string ReadLine() {
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(5);
    size_t nl;
    while ((nl = pending_.find('\n')) == std::string::npos) {
      const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
          deadline - std::chrono::steady_clock::now());
      if (left.count() <= 0) FAIL("no answer from poison_holder " << pid_);
      pollfd p{from_, POLLIN, 0};
      if (poll(&p, 1, static_cast<int>(left.count())) <= 0) continue;
      char buf[256];
      const ssize_t n = read(from_, buf, sizeof(buf));
      if (n <= 0) FAIL("poison_holder " << pid_ << " died");
      pending_.append(buf, n);
    }
    std::string line = pending_.substr(0, nl);
    pending_.erase(0, nl + 1);
    return line;
  }
  static int NumberAfter(const std::string& prefix, const std::string& answer) {
    INFO("answer: " << answer);
    REQUIRE(answer.rfind(prefix, 0) == 0);
    return std::stoi(answer.substr(prefix.size()));
  }

  std::string log_;
  pid_t pid_ = -1;
  int to_ = -1;    // its stdin
  int from_ = -1;  // its stdout
  std::string pending_;
  std::vector<int> child_pidfds_;
};

// The lines of the log written by process pid, in order.
inline std::vector<std::string> LinesOf(const std::string& log, pid_t pid) {
  std::vector<std::string> lines;
  const std::string text = ReadFile(log);
  const std::string prefix = "pid=" + std::to_string(pid) + " ";
  size_t start = 0, nl;
  while ((nl = text.find('\n', start)) != std::string::npos) {
    if (text.compare(start, prefix.size(), prefix) == 0)
      lines.push_back(text.substr(start, nl - start));
    start = nl + 1;
  }
  return lines;
}

// Waits (up to the deadline) until process pid has logged `want` lines.
inline std::vector<std::string> WaitForLines(const std::string& log, pid_t pid, size_t want) {
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(5);
  std::vector<std::string> lines = LinesOf(log, pid);
  while (lines.size() < want && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
    lines = LinesOf(log, pid);
  }
  return lines;
}

}  // namespace daxref::test
