// The control plane: one thread (the control io_context) that owns every app's instances and
// held-request queue, runs the scaling policy on a timer, probes readiness, and publishes the
// routable instances to the proxy threads. Proxy threads talk to it only through the post_*
// functions, which hand work over with asio::post and never block.
#pragma once

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>

#include "common/metrics.hpp"
#include "config/config.hpp"
#include "scaler/app.hpp"
#include "scaler/backend.hpp"

namespace wakegate::scaler {

class control_plane {
 public:
  control_plane(boost::asio::io_context& ctx, std::vector<boost::asio::any_io_executor> workers,
                std::unique_ptr<instance_backend> backend);
  ~control_plane();
  control_plane(const control_plane&) = delete;
  control_plane& operator=(const control_plane&) = delete;

  // Control thread. Applies a (validated) config: first load or reload.
  void apply(const config::config& cfg);
  // Control thread. Called with the apps to route after every change of the app set.
  std::function<void(const std::vector<app_ptr>&)> on_apps_changed;
  // Control thread. Fails held requests, stops every instance, then calls done.
  void shutdown(std::function<void()> done);
  // Control thread, after shutdown: a second signal; the instance stops end now (backend hurry).
  void hurry_shutdown() { backend_->hurry(); }

  // ---- any thread (proxy threads): hand work to the control thread ----
  void post_enqueue(app_ptr a, waiter_ptr w);                 // caller already did a->queued++
  void post_cancel(app_ptr a, waiter_ptr w);                  // caller won waiting -> cancelled
  void post_capacity(app_ptr a);                              // capacity freed while requests are held
  void post_instance_failed(app_ptr a, instance_ptr i, std::string reason);
  void post_drained(app_ptr a, instance_ptr i);               // a non-accepting instance reached 0 in flight
  // Gives back one unit of an instance's capacity taken with try_acquire: wakes held requests and
  // lets a draining instance stop when it was the last.
  void release(const app_ptr& a, const instance_ptr& i);

  // Control thread. Admin views.
  std::string status_json() const;
  void write_metrics(metrics::text_writer& w) const;
  const std::vector<app_ptr>& apps() const noexcept { return apps_; }

 private:
  void schedule_tick();
  void schedule_retry(clock_time when);
  void tick();
  void evaluate(const app_ptr& a, clock_time now);
  void reconcile(const app_ptr& a, clock_time now);
  void drain_fewest_in_flight(const app_ptr& a, const std::vector<instance_ptr>& candidates, std::size_t n);
  void start_instance(const app_ptr& a);
  void on_started(const app_ptr& a, const instance_ptr& i, const start_result& r);
  void on_ready(const app_ptr& a, const instance_ptr& i);
  void on_start_failed(const app_ptr& a, const instance_ptr& i, const std::string& reason);
  void on_exit(const std::string& id, const std::string& reason);
  void note_exit(app& a, const instance& i, const std::string& reason);
  void forget_abandoned_cold_start(app& a);
  void fail_instance(const app_ptr& a, const instance_ptr& i, const std::string& reason);
  void count_start_failure(app& a, const instance& i, clock_time now);
  void drain(const app_ptr& a, const instance_ptr& i);
  void stop_instance(const app_ptr& a, const instance_ptr& i);
  void finish_stop(const app_ptr& a, const instance_ptr& i);
  void dispatch(const app_ptr& a);
  int dispatch_limit(const app& a, clock_time now) const;
  void fail_waiters(const app_ptr& a, waiter::why why, const std::string& reason, int retry_after_seconds = 1);
  static void reset_backoff(app& a);
  void publish(const app_ptr& a);
  void forget_pools(const instance_ptr& i);
  void notify_apps_changed();
  app_ptr find_app(const std::string& name) const;
  bool has_live_instance(const app& a) const;  // starting or ready

  boost::asio::io_context& ctx_;
  std::vector<boost::asio::any_io_executor> workers_;
  std::unique_ptr<instance_backend> backend_;
  boost::asio::steady_timer tick_timer_;
  boost::asio::steady_timer retry_timer_;
  config::duration scale_interval_{1000};
  std::vector<app_ptr> apps_;
  // The last instance number given per app name: ids are never reused over wakegate's life, also
  // when an app is removed and added back (a new instance must not take a draining one's id).
  std::unordered_map<std::string, int> instance_seq_;
  bool shutting_down_ = false;
  bool retry_pending_ = false;
  std::shared_ptr<bool> alive_ = std::make_shared<bool>(true);
};

}  // namespace wakegate::scaler
