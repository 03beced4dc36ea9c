// The Docker backend: one container per instance, driven through the Engine API on the daemon's
// Unix socket (DOCKER_HOST=unix://... or /var/run/docker.sock), all of it async on the control
// io_context.
//
// - Containers are named "wakegate-<instance id>" and labelled wakegate.app / wakegate.instance.
//   The app's port is published on 127.0.0.1 with an ephemeral host port (or, with `network`,
//   reached at the container's address on that network).
// - Leftovers: before an app's first start, containers labelled with that app's name are removed
//   (they belong to an earlier wakegate run that did not stop them, e.g. after kill -9). So two
//   wakegates must not serve apps of the same name on one daemon.
// - Deaths are seen on the /events stream (filtered by label, reconnected with backoff); after
//   every (re)connect each running container is inspected once, so a death during a gap is not
//   missed.
// - stop(): POST /containers/{id}/stop?t=<stop_timeout>, then DELETE ...?force=1. A removal that
//   fails is retried with backoff (retry_removals) until the daemon answers: the control plane is
//   told the instance stopped at once, and the container is not forgotten.
#pragma once

#include <chrono>
#include <functional>
#include <map>
#include <memory>
#include <set>
#include <string>

#include <boost/asio/awaitable.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>

#include "common/metrics.hpp"
#include "scaler/backend.hpp"
#include "scaler/backends/docker_api.hpp"

namespace wakegate::scaler {

class docker_backend final : public instance_backend {
 public:
  // `socket_path` "" means: from DOCKER_HOST, else /var/run/docker.sock.
  explicit docker_backend(boost::asio::io_context& ctx, std::string socket_path = {});
  ~docker_backend() override;
  docker_backend(const docker_backend&) = delete;
  docker_backend& operator=(const docker_backend&) = delete;

  void start(const instance_spec& spec, std::function<void(start_result)> done) override;
  void stop(const std::string& id, std::function<void()> done) override;
  void stop_all(std::function<void()> done) override;
  void hurry() override;
  void configure(const config::config& cfg) override;
  void instance_ready(const std::string& id) override;
  void write_metrics(metrics::text_writer& w) const override;

 private:
  struct instance;
  struct cleanup_gate;
  enum class op { version, create, start, inspect, stop, remove, list, events, pull, kill, count };

  boost::asio::awaitable<void> run_start(std::shared_ptr<instance> inst, config::docker_backend cfg,
                                         std::function<void(start_result)> done);
  boost::asio::awaitable<std::string> create_container(instance& inst, const config::docker_backend& cfg);
  boost::asio::awaitable<std::string> pull(const std::string& image);
  boost::asio::awaitable<void> run_stop(std::shared_ptr<instance> inst);
  boost::asio::awaitable<std::string> output_tail(const instance& inst);
  // "" once the container is gone (or was already); else why not (nothing logged).
  boost::asio::awaitable<std::string> remove_container(const std::string& container, bool stop_first,
                                                       std::chrono::milliseconds stop_timeout);
  // Removes `container`, or logs why it cannot and hands it to retry_removals.
  boost::asio::awaitable<void> remove_or_retry(std::string container, bool stop_first,
                                               std::chrono::milliseconds stop_timeout);
  boost::asio::awaitable<void> retry_removals();
  boost::asio::awaitable<void> last_removals(std::function<void()> done);
  boost::asio::awaitable<std::string> ensure_version();
  boost::asio::awaitable<void> ensure_clean(std::string app);
  boost::asio::awaitable<void> sweep(std::string app, std::shared_ptr<cleanup_gate> gate);
  boost::asio::awaitable<void> run_events();
  boost::asio::awaitable<void> reconcile();
  void start_events();
  void on_event(const docker::event& e);
  void exited(const std::shared_ptr<instance>& inst, const std::string& reason);
  void finish_stop(const std::shared_ptr<instance>& inst);
  void count_error(op which) { ++api_errors_[static_cast<int>(which)]; }

  boost::asio::io_context& ctx_;
  docker::api_client api_;
  std::string logged_version_;
  std::string config_error_;  // DOCKER_HOST not usable: every start fails with this
  std::map<std::string, std::shared_ptr<instance>> instances_;  // by instance id
  std::map<std::string, std::shared_ptr<cleanup_gate>> cleanup_;  // by app name
  std::shared_ptr<docker::local_stream> events_stream_;
  bool events_running_ = false;
  bool stopping_all_ = false;
  // Containers of stopped instances whose removal failed (daemon unreachable or erroring), by
  // container id: retry_removals tries again with backoff until each is gone.
  std::set<std::string> unremoved_;
  bool retrying_removals_ = false;
  std::uint64_t api_errors_[static_cast<int>(op::count)] = {};
  // Per app: create+start (to the container running with its address known), and readiness
  // (from then to the first successful probe).
  struct app_histograms {
    metrics::histogram create_start{metrics::latency_buckets()};
    metrics::histogram readiness{metrics::latency_buckets()};
  };
  std::map<std::string, std::unique_ptr<app_histograms>> start_times_;
  std::shared_ptr<bool> alive_ = std::make_shared<bool>(true);
  std::string run_id_;  // this process's wakegate.run label: random at construction
};

}  // namespace wakegate::scaler
