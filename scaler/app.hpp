// An app at run time: what the control plane keeps about it (instances, held requests, scaling
// state) and what proxy threads read without locks (their own view of the ready instances,
// sharded counters, the concurrency meter).
#pragma once

#include <array>
#include <atomic>
#include <cstdint>
#include <deque>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>

#include "common/metrics.hpp"
#include "common/shard.hpp"
#include "common/time.hpp"
#include "config/config.hpp"
#include "scaler/concurrency.hpp"
#include "scaler/instance.hpp"
#include "common/time_zone.hpp"
#include "scaler/policy.hpp"
#include "scaler/window.hpp"

namespace wakegate::scaler {

// A request held in an app's queue. The proxy thread that holds it keeps a read pending on the
// client's socket (which its queue deadline also cancels); the control plane grants it an
// instance (or fails it) by setting `state` with a compare-exchange and then waking the holder
// (wake(), below), which cancels that read on the holder's thread. Whoever moves `state` away
// from `waiting` first decides the outcome, so a grant racing a timeout or a client hang-up is
// resolved exactly once.
struct waiter {
  enum : int { waiting, granted, cancelled, failed };

  explicit waiter(boost::asio::io_context::executor_type holder_) : holder(holder_) {}

  enum class why { none, queue_full, start_failed, app_removed, shutting_down };

  std::atomic<int> state{waiting};
  why failure = why::none;        // written before state becomes `failed`
  instance_ptr granted_instance;  // written before state becomes `granted`
  std::string error;              // written before state becomes `failed`
  int retry_after_seconds = 1;    // the answer's Retry-After; written before state becomes `failed`
  clock_time enqueued_at = steady::now();
  boost::asio::io_context::executor_type holder;  // the holding proxy thread's
  // Set before it is queued, for a request handed back by the instance it was sent to (which
  // dropped or refused it): granted another one, that one again only from avoid_until (or once
  // the request is overdue). The grace is long enough for a dying instance's death to be seen, and
  // short enough that a live one that dropped a connection, alone in its app, costs the retry
  // little (found in review: half the queue_timeout, 15 s by default). Ticks end the wait.
  static constexpr std::chrono::seconds avoid_grace{1};
  std::weak_ptr<instance> avoid;
  clock_time avoid_until{};

  // Holder's thread only: the held client's socket while a read (or wait) on it is pending.
  boost::asio::ip::tcp::socket* held_socket = nullptr;
};
using waiter_ptr = std::shared_ptr<waiter>;

// Control plane, after it moved w->state away from `waiting`: interrupts the holder's pending
// read on the holder's own thread. A read that completed meanwhile is not affected, and the
// holder sees the new state before it reads again.
inline void wake(const waiter_ptr& w) {
  boost::asio::post(w->holder, [w] {
    boost::system::error_code ignored;
    if (w->held_socket != nullptr) w->held_socket->cancel(ignored);
  });
}

// requests_total by status code, sharded like metrics::counter but one block of codes per shard.
class code_counter {
 public:
  static constexpr int first = 100, last = 599;
  void add(int code) noexcept {
    if (code < first || code > last) code = last;
    auto& c = blocks_[this_shard].codes[code - first];
    c.store(c.load(std::memory_order_relaxed) + 1, std::memory_order_relaxed);
  }
  std::uint64_t value(int code) const noexcept {
    std::uint64_t n = 0;
    for (const auto& b : blocks_) n += b.codes[code - first].load(std::memory_order_relaxed);
    return n;
  }

 private:
  struct alignas(64) block {
    std::array<std::atomic<std::uint64_t>, last - first + 1> codes{};
  };
  std::vector<block> blocks_ = std::vector<block>(shard_count);
};

struct app_metrics {
  code_counter requests;
  metrics::histogram request_duration{metrics::latency_buckets()};
  metrics::histogram cold_start{metrics::latency_buckets()};
  metrics::histogram instance_start{metrics::latency_buckets()};  // instance created -> ready
  metrics::histogram queue_wait{metrics::latency_buckets()};         // held requests: time held
  metrics::histogram upstream_response{metrics::latency_buckets()};  // request sent -> response going out
  metrics::counter rejected_full;
  metrics::counter rejected_timeout;
  metrics::counter scale_up;
  metrics::counter scale_down;
  metrics::counter instance_failures;
};

class app {
 public:
  explicit app(config::app_config cfg)
      : name_(cfg.name), cfg_(std::make_shared<const config::app_config>(std::move(cfg))) {}

  // Any thread: an app keeps its name (a reload replaces cfg_ on the control plane's thread).
  const std::string& name() const noexcept { return name_; }

 private:
  const std::string name_;

 public:

  // ---- read by proxy threads ----
  // This thread's view of the routable instances (only ever touched by its own thread).
  const instance_list& ready_view() const noexcept { return *views_[this_shard].ready; }
  std::atomic<int> queued{0};  // held requests; > 0 makes new requests queue behind them (FIFO)
  concurrency_meter meter;
  app_metrics stats;

  // ---- control plane only ----
  std::shared_ptr<const config::app_config> cfg_;
  instance_list instances;           // every instance not yet stopped
  std::deque<waiter_ptr> queue;      // FIFO of held requests
  policy_state policy;
  int desired = 0;
  const char* desired_reason = "";
  std::string last_error;
  int consecutive_failures = 0;      // failed starts in a row (README "Instances": backoff)
  clock_time last_start_failure{};
  clock_time next_start_allowed{};
  clock_time last_request{};         // derived from meter arrivals at each evaluation
  clock_time last_busy{};            // the last evaluation that saw a request in flight or held
  std::uint64_t last_arrivals = 0;
  clock_time first_held_at{};        // cold start measurement: first held request with no ready instance
  bool removed = false;              // no longer in the config: draining out
  load_window window;                // per-second load history for the stable and panic windows
  std::optional<time_zone> zone;     // of settings.schedule, loaded when the config is applied
  double start_estimate = 0;         // seconds from start to ready, moving average (0 = none yet)
  policy_decision last_decision;     // of the latest evaluation, for /status and /metrics
  double observed_stable = 0, observed_panic = 0;  // average in-flight over the two windows
  double observed_rps = 0;           // arrivals/s over the stable window
  int scheduled_min = 0;

  // Publishes a new view to one thread's slot; call only on that thread.
  void set_view(std::shared_ptr<const instance_list> v) noexcept { views_[this_shard].ready = std::move(v); }

 private:
  struct alignas(64) view {
    std::shared_ptr<const instance_list> ready = std::make_shared<const instance_list>();
  };
  std::array<view, max_shards> views_{};
};

using app_ptr = std::shared_ptr<app>;

}  // namespace wakegate::scaler
