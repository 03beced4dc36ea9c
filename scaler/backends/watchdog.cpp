#include "scaler/backends/watchdog.hpp"

#include <csignal>
#include <cstdint>
#include <cstdio>
#include <system_error>

#include <pthread.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>

namespace wakegate::scaler {

namespace detail {

void reset_signal_dispositions() noexcept {
  struct sigaction sa {};
  sa.sa_handler = SIG_DFL;
  sigemptyset(&sa.sa_mask);
  // Fails harmlessly for SIGKILL, SIGSTOP and the signals glibc reserves.
  for (int sig = 1; sig < NSIG; ++sig) ::sigaction(sig, &sa, nullptr);
}

namespace {

void close_range_or_loop(unsigned first, unsigned last, long max_fd) noexcept {
  if (first > last) return;
  if (::close_range(first, last, 0) == 0) return;
  // Kernels before 5.9 have no close_range: close one by one up to the descriptor limit.
  for (unsigned fd = first; fd <= last && static_cast<long>(fd) < max_fd; ++fd) {
    ::close(static_cast<int>(fd));
  }
}

}  // namespace

void close_fds_from(int lowest, int keep, long max_fd) noexcept {
  const auto low = static_cast<unsigned>(lowest);
  if (keep < lowest) {
    close_range_or_loop(low, ~0U, max_fd);
    return;
  }
  const auto kept = static_cast<unsigned>(keep);
  if (kept > low) close_range_or_loop(low, kept - 1, max_fd);
  close_range_or_loop(kept + 1, ~0U, max_fd);
}

}  // namespace detail

namespace {

// PID_MAX_LIMIT on 64-bit Linux: pids (hence pgids) are below it, so a bitmap covers them all.
constexpr std::uint64_t pid_limit = std::uint64_t{1} << 22;
constexpr std::size_t bitmap_bytes = pid_limit / 8;

std::string errno_text(int err) { return std::generic_category().message(err); }

// The watchdog process. Only async-signal-safe calls: wakegate may have had other threads.
[[noreturn]] void watchdog_main(int fd, std::uint64_t* registered, long max_fd) noexcept {
  detail::reset_signal_dispositions();
  ::setpgid(0, 0);  // own group: Ctrl-C and group kills aimed at wakegate do not reach it
  ::prctl(PR_SET_NAME, "wakegate-watch", 0, 0, 0);
  detail::close_fds_from(0, fd, max_fd);
  sigset_t none;
  sigemptyset(&none);
  ::sigprocmask(SIG_SETMASK, &none, nullptr);

  char buf[4096];
  char op = 0;
  std::uint64_t value = 0;
  bool digits = false;
  for (;;) {
    const ssize_t n = ::read(fd, buf, sizeof buf);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;  // EOF: wakegate is gone
    for (ssize_t i = 0; i < n; ++i) {
      const char c = buf[i];
      if (c == '+' || c == '-') {
        op = c;
        value = 0;
        digits = false;
      } else if (c >= '0' && c <= '9') {
        if (value < pid_limit) value = value * 10 + static_cast<std::uint64_t>(c - '0');
        digits = true;
      } else if (c == '\n') {
        if (op != 0 && digits && value > 0 && value < pid_limit) {
          const std::uint64_t bit = std::uint64_t{1} << (value % 64);
          if (op == '+') {
            registered[value / 64] |= bit;
          } else {
            registered[value / 64] &= ~bit;
          }
        }
        op = 0;
        digits = false;
      }
    }
  }
  for (std::uint64_t word = 0; word < pid_limit / 64; ++word) {
    if (registered[word] == 0) continue;
    for (std::uint64_t bit = 0; bit < 64; ++bit) {
      if (registered[word] & (std::uint64_t{1} << bit)) {
        ::kill(-static_cast<pid_t>(word * 64 + bit), SIGKILL);
      }
    }
  }
  ::_exit(0);
}

}  // namespace

watchdog::watchdog() { spawn(); }

watchdog::~watchdog() {
  // Kill what is still registered ourselves rather than rely on EOF: a forked copy of our
  // socket end (fork without exec elsewhere) would delay it.
  for (int pgid : pgids_) ::kill(-pgid, SIGKILL);
  if (fd_ >= 0) ::close(fd_);
  if (pid_ > 0) {
    ::kill(pid_, SIGKILL);
    while (::waitpid(pid_, nullptr, 0) < 0 && errno == EINTR) {
    }
  }
}

void watchdog::add(int pgid) {
  pgids_.insert(pgid);
  if (fd_ >= 0 && send_record('+', pgid)) return;
  restart();  // the watchdog died: a new one learns every group, this one included
}

void watchdog::remove(int pgid) {
  pgids_.erase(pgid);
  if (fd_ >= 0) send_record('-', pgid);  // failure: check() restarts it on its SIGCHLD
}

void watchdog::check() {
  if (pid_ <= 0) return;
  pid_t r = 0;
  do {
    r = ::waitpid(pid_, nullptr, WNOHANG);
  } while (r < 0 && errno == EINTR);
  if (r == 0) return;  // still running
  pid_ = 0;
  restart();
}

void watchdog::restart() {
  if (pid_ > 0) {
    // Unreaped, so the pid is still ours to kill.
    ::kill(pid_, SIGKILL);
    while (::waitpid(pid_, nullptr, 0) < 0 && errno == EINTR) {
    }
    pid_ = 0;
  }
  if (fd_ >= 0) ::close(fd_);
  fd_ = -1;
  spawn();
}

bool watchdog::spawn() {
  int sv[2];
  if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) != 0) {
    error_ = "cannot start the watchdog: " + errno_text(errno);
    return false;
  }
  // The child's registry, mapped before fork so the child never allocates; untouched pages
  // cost nothing.
  void* mem = ::mmap(nullptr, bitmap_bytes, PROT_READ | PROT_WRITE,
                     MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
  if (mem == MAP_FAILED) {
    error_ = "cannot start the watchdog: " + errno_text(errno);
    ::close(sv[0]);
    ::close(sv[1]);
    return false;
  }
  const long max_fd = ::sysconf(_SC_OPEN_MAX);

  sigset_t all;
  sigset_t old;
  sigfillset(&all);
  ::pthread_sigmask(SIG_SETMASK, &all, &old);  // no handler of ours may run in the child
  const pid_t pid = ::fork();
  if (pid == 0) watchdog_main(sv[1], static_cast<std::uint64_t*>(mem), max_fd);
  const int fork_errno = errno;
  ::pthread_sigmask(SIG_SETMASK, &old, nullptr);
  ::munmap(mem, bitmap_bytes);
  ::close(sv[1]);
  if (pid < 0) {
    ::close(sv[0]);
    error_ = "cannot start the watchdog: " + errno_text(fork_errno);
    return false;
  }
  fd_ = sv[0];
  pid_ = pid;
  error_.clear();
  for (int pgid : pgids_) {
    if (!send_record('+', pgid)) {
      error_ = "cannot register with the watchdog: " + errno_text(errno);
      return false;
    }
  }
  return true;
}

bool watchdog::send_record(char op, int pgid) {
  char buf[24];
  const int len = std::snprintf(buf, sizeof buf, "%c%d\n", op, pgid);
  const char* p = buf;
  auto left = static_cast<std::size_t>(len);
  while (left > 0) {
    const ssize_t n = ::send(fd_, p, left, MSG_NOSIGNAL);  // a dead watchdog must not SIGPIPE us
    if (n < 0) {
      if (errno == EINTR) continue;
      return false;
    }
    p += n;
    left -= static_cast<std::size_t>(n);
  }
  return true;
}

}  // namespace wakegate::scaler
