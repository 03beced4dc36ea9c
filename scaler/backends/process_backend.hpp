// The process backend: one local child process per instance, in its own process group.
//
// Everything runs on the control io_context's thread, callbacks included. start() forks there,
// and it must be the long-lived control thread: PR_SET_PDEATHSIG (which kills an instance when
// wakegate dies) fires when the *thread* that forked exits, not the process. Grandchildren are
// covered by a watchdog process (watchdog.hpp) that SIGKILLs registered groups when wakegate
// dies. Each instance's stdout/stderr go to wakegate's stderr, one line at a time, prefixed
// "[app/instance-id] ".
#pragma once

#include <boost/asio/io_context.hpp>
#include <boost/asio/signal_set.hpp>

#include <cstddef>
#include <functional>
#include <map>
#include <memory>
#include <string>

#include "scaler/backend.hpp"
#include "scaler/backends/watchdog.hpp"

namespace wakegate::scaler {

class process_backend final : public instance_backend {
 public:
  explicit process_backend(boost::asio::io_context& ctx);
  // Kills every remaining instance group with SIGKILL and reaps them (pending stop callbacks
  // are dropped: their owners may be gone too).
  ~process_backend() override;
  process_backend(const process_backend&) = delete;
  process_backend& operator=(const process_backend&) = delete;

  // Picks a free loopback port, then forks and execs the command. Waits (briefly, blocking)
  // until exec has succeeded or failed; `done` is always posted, never called inline.
  void start(const instance_spec& spec, std::function<void(start_result)> done) override;
  void stop(const std::string& id, std::function<void()> done) override;
  void stop_all(std::function<void()> done) override;
  void hurry() override { kill_all(true); }

  // Last resort, synchronous: SIGKILLs every instance group and reaps the leaders. Pending
  // stop callbacks are posted as completed; on_exit is not called.
  void shutdown();

  int pid_of(const std::string& id) const;  // also the pgid; 0 if unknown
  std::size_t running() const;              // instances started and not yet reaped
  int watchdog_pid() const { return watchdog_.pid(); }  // 0 if it could not be started

 private:
  struct instance;

  void wait_sigchld();
  void reap_exited();
  void finish(const std::shared_ptr<instance>& inst, int status);
  void kill_all(bool complete_stops);

  boost::asio::io_context& ctx_;
  watchdog watchdog_;
  boost::asio::signal_set sigchld_;
  std::map<std::string, std::shared_ptr<instance>> instances_;
  std::shared_ptr<int> alive_ = std::make_shared<int>(0);  // handlers hold a weak_ptr to it
};

}  // namespace wakegate::scaler
