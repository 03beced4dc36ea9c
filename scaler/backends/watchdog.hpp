// A tiny helper process that SIGKILLs the registered process groups as soon as wakegate dies,
// however it dies (SIGKILL included). PR_SET_PDEATHSIG only covers an instance's direct child;
// the watchdog covers everything else in the instance's process group.
//
// wakegate keeps one end of a socket pair; the watchdog reads "+<pgid>\n" / "-<pgid>\n" records
// from the other. When its read returns EOF (every copy of wakegate's end is closed, which the
// kernel does when wakegate exits), it kills every group still registered and exits.
#pragma once

#include <set>
#include <string>

namespace wakegate::scaler {

class watchdog {
 public:
  // Forks the watchdog process. Failure is not fatal: error() says why, and instances still
  // get PR_SET_PDEATHSIG.
  watchdog();
  // Closes wakegate's end (the watchdog then exits with nothing to kill) and reaps the process.
  ~watchdog();
  watchdog(const watchdog&) = delete;
  watchdog& operator=(const watchdog&) = delete;

  // Registers / unregisters a process group. Unregister only once the group is dead or its
  // leader is reaped, so the watchdog never kills a reused pgid.
  void add(int pgid);
  void remove(int pgid);

  // Call on SIGCHLD: if the watchdog process has died, reaps it and starts a new one that knows
  // every registered group.
  void check();

  int pid() const { return pid_; }  // 0 when not running
  const std::string& error() const { return error_; }

 private:
  bool spawn();
  void restart();
  bool send_record(char op, int pgid);

  int fd_ = -1;
  int pid_ = 0;
  std::set<int> pgids_;
  std::string error_;
};

namespace detail {

// Async-signal-safe helpers for the code between fork() and exec()/_exit() (the parent may have
// other threads, so nothing here allocates or takes locks).

// Sets every signal's disposition back to SIG_DFL (leaves the mask alone).
void reset_signal_dispositions() noexcept;

// Closes every descriptor >= lowest except `keep`; `max_fd` (sysconf(_SC_OPEN_MAX), read
// before fork) bounds the fallback loop on kernels without close_range.
void close_fds_from(int lowest, int keep, long max_fd) noexcept;

}  // namespace detail

}  // namespace wakegate::scaler
