// The instance backend interface: how the control plane starts, stops and watches instances.
// Implementations: backends/process_backend.hpp, backends/docker_backend.hpp, and
// backends/backend_set.hpp, which sends each app to the one its config names. All callbacks run
// on the control io_context's thread.
#pragma once

#include <cstdint>
#include <functional>
#include <string>

#include "common/metrics.hpp"
#include "config/config.hpp"

namespace wakegate::scaler {

// What the backend needs to know to start one instance.
struct instance_spec {
  std::string app;  // app name
  std::string id;   // unique instance id, e.g. "hello-3"
  const config::backend* backend = nullptr;  // valid until start() calls `done`
};

struct start_result {
  bool ok = false;
  std::string error;     // readable reason when !ok
  std::string host;      // where the instance listens, e.g. "127.0.0.1"
  std::uint16_t port = 0;
  int pid = 0;           // process id where there is one (for /status), else 0
  std::string container;  // container id where there is one (for /status), else ""
};

class instance_backend {
 public:
  virtual ~instance_backend() = default;

  // Starts an instance. `done` is called once, with the address it will listen on (the
  // control plane then probes readiness) or with an error.
  virtual void start(const instance_spec& spec, std::function<void(start_result)> done) = 0;

  // Stops an instance gracefully (its stop signal, then a kill after its stop timeout).
  // `done` is called once it is gone. Unknown ids complete at once.
  virtual void stop(const std::string& id, std::function<void()> done) = 0;

  // Stops every instance now (shutdown path): graceful signal, then kill after the timeouts.
  // Calls `done` once all are gone.
  virtual void stop_all(std::function<void()> done) = 0;
  // A second shutdown signal: the stops under way end at once where the backend can do that
  // (processes: SIGKILL now). Default: nothing (they end at their stop timeout).
  virtual void hurry() {}

  // Control plane hooks with no-op defaults: the configuration was (re)applied; an instance
  // passed its readiness probe; the backend's own metric families for /metrics.
  virtual void configure(const config::config& /*cfg*/) {}
  virtual void instance_ready(const std::string& /*id*/) {}
  virtual void write_metrics(metrics::text_writer& /*w*/) const {}

  // Set by the control plane: called when an instance exits without being asked to
  // (crash or exit at start), with a readable reason such as "exited with status 3". Also
  // called, before the stop's `done`, for an instance found to have ended on its own while its
  // stop was under way (processes: dead before the stop, or killed by another signal;
  // containers: found exited when the stop began).
  std::function<void(const std::string& id, const std::string& reason)> on_exit;
};

}  // namespace wakegate::scaler
