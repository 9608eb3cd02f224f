// poison_holder: a process that holds files on command and records the
// signals it gets, for the tests of the poison path (fs_holder_scan_test.cc,
// fs_poison_test.cc). Plain C++17 and POSIX; no daxref code.
//
// Usage: poison_holder LOGFILE
//
// Signals: SIGBUS, SIGUSR1, SIGUSR2 and SIGRTMIN+1..+3 are caught, and each
// appends one line to LOGFILE (a single write(2) to an O_APPEND file, so
// lines of the holder and of its forked children never interleave):
//   pid=P sig=S code=C errno=E value=V
// all decimal, V being (uint64_t)si_value.sival_ptr. A queued signal never
// kills the holder. A SIGBUS the kernel raises on a `touch` is logged and
// answered `sigbus CODE`; one raised anywhere else kills the holder, as it
// would any program.
//
// Commands, one a line on stdin, each answered with exactly one line on
// stdout (after `ready`, written once the handlers are in place):
//   open PATH            -> fd N | err ERRNO      (O_RDONLY)
//   openrw PATH          -> fd N | err ERRNO      (O_RDWR)
//   map PATH             -> map IDX | err ERRNO   whole file, PROT_READ,
//                           MAP_SHARED; the descriptor is closed, so only
//                           the mapping holds the file. IDX counts 0, 1, ...
//   close FD             -> ok | err ERRNO
//   unmap IDX            -> ok | err ERRNO
//   read FD OFFSET LEN   -> ok N | err ERRNO      (pread)
//   touch IDX OFFSET     -> ok BYTEVALUE | sigbus CODE | err ERRNO
//   fork                 -> child PID   the child keeps every descriptor and
//                           mapping, reads no more commands and waits for
//                           signals until it is killed or the holder dies
//   pid                  -> pid P
//   quit, or end of input: exits 0
// Anything else is answered `err 22` (EINVAL).
//
// Children that are killed are reaped by the kernel (SIGCHLD is ignored),
// so a killed child's pid disappears at once.
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <string>
#include <vector>

namespace {

int g_log_fd = -1;

// The touch in progress. A kernel SIGBUS during it jumps back to
// g_touch_env with its si_code in g_sigbus_code.
sigjmp_buf g_touch_env;
volatile sig_atomic_t g_touching = 0;
volatile sig_atomic_t g_sigbus_code = 0;

// ---- async-signal-safe formatting: the handler may not call snprintf ----

struct LineBuffer {
  char text[160];
  size_t len = 0;

  void Put(const char* s) {
    while (*s && len < sizeof(text)) text[len++] = *s++;
  }
  void PutUnsigned(uint64_t v) {
    char digits[20];
    size_t n = 0;
    do {
      digits[n++] = static_cast<char>('0' + v % 10);
      v /= 10;
    } while (v != 0);
    while (n > 0 && len < sizeof(text)) text[len++] = digits[--n];
  }
  void PutSigned(int64_t v) {
    if (v < 0) {
      Put("-");
      PutUnsigned(0 - static_cast<uint64_t>(v));
    } else {
      PutUnsigned(static_cast<uint64_t>(v));
    }
  }
};

void OnSignal(int sig, siginfo_t* info, void*) {
  const int saved_errno = errno;
  LineBuffer line;
  line.Put("pid=");
  line.PutSigned(getpid());
  line.Put(" sig=");
  line.PutSigned(sig);
  line.Put(" code=");
  line.PutSigned(info->si_code);
  line.Put(" errno=");
  line.PutSigned(info->si_errno);
  line.Put(" value=");
  line.PutUnsigned(reinterpret_cast<uintptr_t>(info->si_value.sival_ptr));
  line.Put("\n");
  // One write: O_APPEND makes it land whole at the end of the log.
  ssize_t ignored = write(g_log_fd, line.text, line.len);
  (void)ignored;
  // A SIGBUS with si_code > 0 comes from the kernel (a fault); codes <= 0
  // (SI_USER, SI_QUEUE, SI_TKILL) were sent by a process and are only logged.
  if (sig == SIGBUS && info->si_code > 0) {
    if (g_touching) {
      g_touching = 0;
      g_sigbus_code = info->si_code;
      siglongjmp(g_touch_env, 1);
    }
    // A fault outside a touch: returning re-runs the faulting access, which
    // now kills the holder as it would any program.
    signal(SIGBUS, SIG_DFL);
  }
  errno = saved_errno;
}

int InstallHandlers() {
  struct sigaction sa;
  memset(&sa, 0, sizeof(sa));
  sa.sa_sigaction = OnSignal;
  // SA_RESTART: a signal never disturbs the command loop's read of stdin
  // (nor a forked child's pause, which just goes on pausing).
  sa.sa_flags = SA_SIGINFO | SA_RESTART;
  sigfillset(&sa.sa_mask);
  const int signals[] = {SIGBUS, SIGUSR1, SIGUSR2, SIGRTMIN + 1, SIGRTMIN + 2, SIGRTMIN + 3};
  for (int sig : signals)
    if (sigaction(sig, &sa, nullptr) != 0) return errno;
  signal(SIGCHLD, SIG_IGN);
  return 0;
}

void Reply(const std::string& line) {
  fputs(line.c_str(), stdout);
  fputc('\n', stdout);
  fflush(stdout);
}

std::string Err(int err) {
  return "err " + std::to_string(err);
}

// Parses a whole decimal (or 0x hex) number; false if s is not one.
bool ParseU64(const std::string& s, uint64_t* out) {
  if (s.empty() || s[0] == '-') return false;
  char* end = nullptr;
  errno = 0;
  const unsigned long long v = strtoull(s.c_str(), &end, 0);
  if (errno != 0 || *end != '\0') return false;
  *out = v;
  return true;
}

std::vector<std::string> Words(const std::string& s) {
  std::vector<std::string> words;
  size_t i = 0;
  while (i < s.size()) {
    while (i < s.size() && s[i] == ' ') ++i;
    const size_t start = i;
    while (i < s.size() && s[i] != ' ') ++i;
    if (i > start) words.push_back(s.substr(start, i - start));
  }
  return words;
}

struct Mapping {
  void* addr = nullptr;  // null once unmapped
  size_t len = 0;
};

class Holder {
 public:
  // Answers one command line; false for `quit`.
  bool Handle(const std::string& line) {
    const size_t space = line.find(' ');
    const std::string verb = line.substr(0, space);
    // A path is the rest of the line, spaces and all.
    const std::string rest = space == std::string::npos ? "" : line.substr(space + 1);
    const std::vector<std::string> args = Words(rest);
    if (verb == "open" || verb == "openrw") {
      const int fd = open(rest.c_str(), (verb == "open" ? O_RDONLY : O_RDWR) | O_CLOEXEC);
      Reply(fd >= 0 ? "fd " + std::to_string(fd) : Err(errno));
    } else if (verb == "map") {
      Reply(Map(rest));
    } else if (verb == "close" && args.size() == 1) {
      uint64_t fd;
      if (!ParseU64(args[0], &fd)) return Invalid();
      Reply(close(static_cast<int>(fd)) == 0 ? "ok" : Err(errno));
    } else if (verb == "unmap" && args.size() == 1) {
      uint64_t idx;
      if (!ParseU64(args[0], &idx) || idx >= maps_.size() || maps_[idx].addr == nullptr)
        return Invalid();
      if (munmap(maps_[idx].addr, maps_[idx].len) != 0) {
        Reply(Err(errno));
      } else {
        maps_[idx].addr = nullptr;
        Reply("ok");
      }
    } else if (verb == "read" && args.size() == 3) {
      uint64_t fd, off, len;
      if (!ParseU64(args[0], &fd) || !ParseU64(args[1], &off) || !ParseU64(args[2], &len))
        return Invalid();
      std::vector<char> buf(len);
      const ssize_t n = pread(static_cast<int>(fd), buf.data(), len, static_cast<off_t>(off));
      Reply(n >= 0 ? "ok " + std::to_string(n) : Err(errno));
    } else if (verb == "touch" && args.size() == 2) {
      uint64_t idx, off;
      if (!ParseU64(args[0], &idx) || !ParseU64(args[1], &off) || idx >= maps_.size() ||
          maps_[idx].addr == nullptr || off >= maps_[idx].len)
        return Invalid();
      Reply(Touch(static_cast<const volatile unsigned char*>(maps_[idx].addr) + off));
    } else if (verb == "fork" && args.empty()) {
      Reply(Fork());
    } else if (verb == "pid" && args.empty()) {
      Reply("pid " + std::to_string(getpid()));
    } else if (verb == "quit" && args.empty()) {
      return false;
    } else {
      return Invalid();
    }
    return true;
  }

 private:
  bool Invalid() {
    Reply(Err(EINVAL));
    return true;
  }

  std::string Map(const std::string& path) {
    const int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) return Err(errno);
    struct stat st;
    void* addr = MAP_FAILED;
    int err = 0;
    if (fstat(fd, &st) != 0) {
      err = errno;
    } else {
      addr = mmap(nullptr, static_cast<size_t>(st.st_size), PROT_READ, MAP_SHARED, fd, 0);
      if (addr == MAP_FAILED) err = errno;
    }
    close(fd);  // the mapping alone holds the file from here on
    if (err != 0) return Err(err);
    maps_.push_back(Mapping{addr, static_cast<size_t>(st.st_size)});
    return "map " + std::to_string(maps_.size() - 1);
  }

  // Reads the byte at p; a SIGBUS the access raises jumps back here.
  static std::string Touch(const volatile unsigned char* p) {
    // savemask 1: the jump restores the signal mask the handler ran with.
    if (sigsetjmp(g_touch_env, 1) != 0) return "sigbus " + std::to_string(g_sigbus_code);
    g_touching = 1;
    const unsigned char byte = *p;
    g_touching = 0;
    return "ok " + std::to_string(byte);
  }

  static std::string Fork() {
    const pid_t parent = getpid();
    fflush(stdout);  // nothing buffered may be written twice
    const pid_t child = fork();
    if (child < 0) return Err(errno);
    if (child > 0) return "child " + std::to_string(child);
    // The child: dies with the holder, so a test that kills the holder
    // leaves nothing behind. The check after prctl covers a holder that
    // died before it.
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (getppid() != parent) _exit(0);
    // Off the test's pipes, so that only the holder answers commands.
    const int null = open("/dev/null", O_RDWR);
    if (null >= 0) {
      dup2(null, STDIN_FILENO);
      dup2(null, STDOUT_FILENO);
      if (null > STDOUT_FILENO) close(null);
    }
    for (;;) pause();
  }

  std::vector<Mapping> maps_;
};

}  // namespace

int main(int argc, char** argv) {
  if (argc != 2) {
    fprintf(stderr, "usage: poison_holder LOGFILE\n");
    return 2;
  }
  g_log_fd = open(argv[1], O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644);
  if (g_log_fd < 0) {
    fprintf(stderr, "poison_holder: %s: %s\n", argv[1], strerror(errno));
    return 1;
  }
  if (const int err = InstallHandlers(); err != 0) {
    fprintf(stderr, "poison_holder: sigaction: %s\n", strerror(err));
    return 1;
  }
  Reply("ready");
  Holder holder;
  char* line = nullptr;
  size_t cap = 0;
  ssize_t n;
  while ((n = getline(&line, &cap, stdin)) > 0) {
    std::string command(line, static_cast<size_t>(n));
    if (command.back() == '\n') command.pop_back();
    if (!holder.Handle(command)) break;
  }
  free(line);
  return 0;
}
