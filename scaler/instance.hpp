// One running copy of an app. The control plane owns its lifecycle; proxy threads read the
// atomics and use their own slot of the upstream connection pool.
#pragma once

#include <array>
#include <atomic>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include <boost/asio/ip/tcp.hpp>

#include "common/shard.hpp"
#include "common/time.hpp"
#include "config/config.hpp"

namespace wakegate::scaler {

enum class instance_state { starting, ready, draining, stopped, failed };
const char* to_string(instance_state s) noexcept;

// Idle keep-alive connections to one instance, owned by one proxy thread.
struct idle_connection {
  boost::asio::ip::tcp::socket socket;
  std::int64_t idle_since_ns = 0;
};

struct instance {
  instance(std::string id_, std::string app_) : id(std::move(id_)), app(std::move(app_)) {}

  const std::string id;
  const std::string app;

  // Control-plane fields (control thread only).
  instance_state state = instance_state::starting;
  clock_time created_at = steady::now();
  clock_time ready_at{};
  int pid = 0;
  std::string container;  // the Docker container's id; "" for processes
  bool stop_requested = false;
  std::string failure;  // why it failed, as first seen ("" until it fails)
  bool backend_answered = false;  // the backend's start callback came (with an address or an error)
  // The app's configuration when this instance was started: its backend is what it runs.
  std::shared_ptr<const config::app_config> started_with;
  // Runs a backend other than the app's (a reload changed it): serves until a new instance is
  // ready to take its place, then drains (control_plane::reconcile).
  bool outdated = false;

  // Set before the instance is published to proxy threads, constant afterwards.
  boost::asio::ip::tcp::endpoint endpoint;
  std::string address;  // "127.0.0.1:4321"

  // Shared with proxy threads.
  std::atomic<int> in_flight{0};
  std::atomic<bool> accepting{false};  // routable: ready and not draining
  // Exchanges in a row whose connection the instance dropped (before or during its response);
  // any exchange that completes resets it. At io_failure_limit the instance is failed: one
  // dropped connection (a handler that closes instead of answering) must not restart the
  // instance and cut every other request on it, a run of them means it is broken.
  std::atomic<std::uint32_t> io_failures{0};
  static constexpr std::uint32_t io_failure_limit = 3;

  // Takes one unit of capacity; false when the instance is full or no longer accepting.
  // The count is raised before `accepting` is read again (both sequentially consistent), and
  // drain() clears `accepting` before it reads the count: so either this sees the drain and backs
  // out, or the drain sees this request and waits for it. No request reaches a stopping instance.
  bool try_acquire(int max_concurrency) noexcept {
    if (!accepting.load(std::memory_order_relaxed)) return false;
    int n = in_flight.load(std::memory_order_relaxed);
    for (;;) {
      if (max_concurrency > 0 && n >= max_concurrency) return false;
      if (in_flight.compare_exchange_weak(n, n + 1, std::memory_order_seq_cst)) break;
    }
    if (accepting.load(std::memory_order_seq_cst)) return true;
    in_flight.fetch_sub(1, std::memory_order_seq_cst);  // a draining instance is stopped by the next tick
    return false;
  }

  // Per proxy thread: idle upstream connections (slot index = this_shard).
  std::array<std::vector<idle_connection>, max_shards> pools;
};

using instance_ptr = std::shared_ptr<instance>;
using instance_list = std::vector<instance_ptr>;

// Load balancing, shared by the proxy's fast path and the control plane's queue dispatch: among
// accepting instances with room, the fewest in flight, ties broken at random. Takes the capacity.
// nullptr when none has room. `skip`: an instance not to choose (a retry's, control plane only).
instance_ptr acquire_least_loaded(const instance_list& list, int max_concurrency,
                                  const instance* skip = nullptr) noexcept;

}  // namespace wakegate::scaler
