#include "scaler/control.hpp"

#include <algorithm>
#include <cmath>
#include <random>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/json.hpp>

#include "common/log.hpp"
#include "scaler/probe.hpp"
#include "scaler/schedule.hpp"

namespace wakegate::scaler {

namespace asio = boost::asio;
namespace json = boost::json;

namespace {

// An instance ready this long resets the failed-start count; one failing sooner after it got
// ready counts as a failed start (a crash loop backs off).
constexpr std::chrono::seconds stable_after{10};

// Failed starts in a row (rounds, as counted for the backoff) after which held requests are
// answered 503 with the reason instead of waiting for the next start.
constexpr int start_failures_to_answer = 3;

// Exponential backoff after consecutive failed starts: 250 ms, 500 ms, 1 s ... capped at 30 s.
std::chrono::milliseconds start_backoff(int failures) {
  if (failures <= 0) return std::chrono::milliseconds(0);
  auto ms = 250.0 * std::pow(2.0, std::min(failures - 1, 7));
  return std::chrono::milliseconds(static_cast<long>(std::min(ms, 30000.0)));
}

// Seconds since the Unix epoch, for `schedule`.
std::int64_t unix_now() {
  return std::chrono::duration_cast<std::chrono::seconds>(std::chrono::system_clock::now().time_since_epoch()).count();
}

// The schedule's zone, or nothing without ranges (the loader checked the zone exists).
std::optional<time_zone> load_zone(const config::app_settings& s, const std::string& app) {
  if (s.schedule.ranges.empty()) return std::nullopt;
  std::string why;
  auto z = time_zone::load(s.schedule.time_zone, why);
  if (!z) log::error("schedule ignored", {{"app", app}, {"error", why}});
  return z;
}

// Whether instances started with `a` run what `b` would start. Settings that apply to running
// instances (how they are stopped) do not count.
bool same_backend(const config::backend& a, const config::backend& b) {
  if (a.index() != b.index()) return false;
  if (const auto* o = std::get_if<config::process_backend>(&a)) {
    const auto& n = std::get<config::process_backend>(b);
    return o->command == n.command && o->cwd == n.cwd && o->env == n.env;
  }
  auto o = std::get<config::docker_backend>(a);
  o.stop_timeout = std::get<config::docker_backend>(b).stop_timeout;
  return o == std::get<config::docker_backend>(b);
}

}  // namespace

control_plane::control_plane(asio::io_context& ctx, std::vector<asio::any_io_executor> workers,
                             std::unique_ptr<instance_backend> backend)
    : ctx_(ctx), workers_(std::move(workers)), backend_(std::move(backend)), tick_timer_(ctx), retry_timer_(ctx) {
  backend_->on_exit = [this](const std::string& id, const std::string& reason) { on_exit(id, reason); };
}

control_plane::~control_plane() { *alive_ = false; }

// ---------------------------------------------------------------------------------------------
// Configuration

void control_plane::apply(const config::config& cfg) {
  scale_interval_ = cfg.scale_interval;
  std::vector<app_ptr> next;
  for (const auto& ac : cfg.apps) {
    auto existing = find_app(ac.name);
    if (!existing) {
      // Removed, and added back before its instances drained: the same app again (one set of
      // series in /metrics, one entry in /status); the draining instances finish as they were.
      for (auto& a : apps_)
        if (a->name() == ac.name && a->removed) existing = a;
      if (existing) {
        existing->removed = false;
        reset_backoff(*existing);
        existing->policy = {};  // its load history ended when it was removed
        existing->window.reset();
        log::info("app added back", {{"app", ac.name}});
      }
    }
    if (existing) {
      const bool backend_changed = !same_backend(existing->cfg_->backend, ac.backend);
      existing->cfg_ = std::make_shared<const config::app_config>(ac);
      existing->zone = load_zone(ac.settings, ac.name);
      if (backend_changed) {
        log::info("app backend changed: replacing instances", {{"app", ac.name}});
        reset_backoff(*existing);
      }
      // New instances run the new backend. The old ready ones serve until new ones are ready to
      // take their place (reconcile), so a deploy costs no cold start, and one that fails to start
      // leaves the old ones serving (found by black-box testing: they were drained at once). Old
      // ones still starting are of no use: stopped. Each instance is compared with the backend it
      // was started with, so a reload that reverts a deploy keeps the instances that run it.
      for (auto& i : std::vector<instance_ptr>(existing->instances)) {
        const bool old = !same_backend(i->started_with->backend, ac.backend);
        if (old && i->state == instance_state::starting) drain(existing, i);
        if (i->state == instance_state::ready) i->outdated = old;
      }
      next.push_back(existing);
    } else {
      auto a = std::make_shared<app>(ac);
      a->zone = load_zone(ac.settings, ac.name);
      log::info("app added", {{"app", ac.name}});
      next.push_back(a);
    }
  }
  for (auto& a : apps_) {
    if (std::none_of(next.begin(), next.end(), [&](const app_ptr& n) { return n == a; })) {
      if (!a->removed) {
        log::info("app removed: draining", {{"app", a->name()}});
        a->removed = true;
        a->desired = 0;  // no instance will be started for it (found by black-box testing: it kept its last desired)
        a->desired_reason = "removed";
        fail_waiters(a, waiter::why::app_removed, "app " + a->name() + " was removed from the configuration");
        for (auto& i : std::vector<instance_ptr>(a->instances)) drain(a, i);
      }
      if (!a->instances.empty()) next.push_back(a);  // kept until its instances have stopped
    }
  }
  apps_ = std::move(next);
  backend_->configure(cfg);
  notify_apps_changed();
  auto now = steady::now();
  for (auto& a : apps_)
    if (!a->removed) evaluate(a, now);
  schedule_tick();
}

void control_plane::notify_apps_changed() {
  if (!on_apps_changed) return;
  std::vector<app_ptr> routable;
  for (auto& a : apps_)
    if (!a->removed) routable.push_back(a);
  on_apps_changed(routable);
}

app_ptr control_plane::find_app(const std::string& name) const {
  for (auto& a : apps_)
    if (a->name() == name && !a->removed) return a;
  return nullptr;
}

// ---------------------------------------------------------------------------------------------
// Scaling

void control_plane::schedule_tick() {
  tick_timer_.expires_after(scale_interval_);
  tick_timer_.async_wait([this, alive = alive_](boost::system::error_code ec) {
    if (ec || !*alive || shutting_down_) return;
    tick();
    schedule_tick();
  });
}

void control_plane::tick() {
  auto now = steady::now();
  for (auto& a : std::vector<app_ptr>(apps_)) {
    if (!a->removed) evaluate(a, now);
    if (!a->queue.empty()) dispatch(a);  // held for a sibling that is taking too long (dispatch_limit)
    // Draining instances whose last request finished are stopped here as a safety net too.
    for (auto& i : std::vector<instance_ptr>(a->instances))
      if (i->state == instance_state::draining && !i->stop_requested && i->in_flight.load() == 0)
        stop_instance(a, i);
  }
  std::erase_if(apps_, [](const app_ptr& a) { return a->removed && a->instances.empty(); });
}

void control_plane::evaluate(const app_ptr& a, clock_time now) {
  const auto& s = a->cfg_->settings;
  auto reading = a->meter.read(now_ns());
  if (reading.arrivals != a->last_arrivals) {
    a->last_arrivals = reading.arrivals;
    a->last_request = now;
  }
  // Busy until its last request ended, to the nanosecond: not the last evaluation that saw one in
  // flight, up to a scale_interval earlier (found by black-box testing: scale_to_zero_after 3s
  // drained the instance 2 s after a 6 s request ended).
  if (reading.in_flight > 0)
    a->last_busy = now;
  else if (reading.last_change_ns > 0)
    a->last_busy = std::max(a->last_busy, clock_time(std::chrono::nanoseconds(reading.last_change_ns)));
  a->window.reserve(std::max(s.stable_window, s.panic_window));
  a->window.record(now, reading.area, reading.arrivals);

  int current = 0, ready = 0;
  for (auto& i : a->instances) {
    if (i->state == instance_state::starting || i->state == instance_state::ready) ++current;
    if (i->state == instance_state::ready) ++ready;
    // Reset by an instance that got ready after the last failure and stayed so (not by one that
    // was up all along while its siblings failed).
    if (i->state == instance_state::ready && i->ready_at > a->last_start_failure && now - i->ready_at >= stable_after)
      a->consecutive_failures = 0;
  }

  policy_input in;
  in.now = now;
  if (a->window.covered_seconds(now) < 0.001) {
    // Just woke: nothing to average yet, the requests in flight are the load.
    in.stable_concurrency = in.panic_concurrency = static_cast<double>(reading.in_flight);
  } else {
    in.stable_concurrency = a->window.average_concurrency(now, s.stable_window);
    in.panic_concurrency = a->window.average_concurrency(now, s.panic_window);
    in.stable_rps = a->window.request_rate(now, s.stable_window);
    in.panic_rps = a->window.request_rate(now, s.panic_window);
  }
  in.in_flight = static_cast<int>(reading.in_flight);
  in.queued = static_cast<int>(a->queue.size());
  in.last_request = a->last_request;
  in.last_busy = a->last_busy;
  in.ready = ready;
  in.current = current;
  in.scheduled_min = a->zone ? scheduled_min(s.schedule, *a->zone, unix_now()) : 0;
  in.start_estimate = a->start_estimate;
  auto d = decide(s, in, a->policy);
  if (d.panic != a->last_decision.panic)
    log::info(d.panic ? "panic mode entered" : "panic mode left",
              {{"app", a->name()}, {"panic_concurrency", in.panic_concurrency}, {"ready", ready}});
  if (d.desired != a->desired)
    log::info("desired instances", {{"app", a->name()}, {"from", a->desired}, {"to", d.desired},
                                   {"reason", d.reason}, {"avg_concurrency", in.stable_concurrency},
                                   {"panic_concurrency", in.panic_concurrency}});
  // A decision is a change of the desired count; replacing a failed instance is not one (found
  // by black-box testing: a crash loop counted as constant scaling up).
  if (d.desired > a->desired) a->stats.scale_up.add();
  if (d.desired < a->desired) a->stats.scale_down.add();
  a->desired = d.desired;
  a->desired_reason = d.reason;
  a->last_decision = d;
  a->observed_stable = in.stable_concurrency;
  a->observed_panic = in.panic_concurrency;
  a->observed_rps = in.stable_rps;
  a->scheduled_min = in.scheduled_min;
  if (d.desired == 0 && current == 0) a->window.reset();  // the next wake starts a fresh history
  reconcile(a, now);
}

void control_plane::reconcile(const app_ptr& a, clock_time now) {
  if (shutting_down_ || a->removed) return;
  std::vector<instance_ptr> live, outdated;
  int proven = 0;  // new-backend instances ready for stable_after: past a crash loop's reach
  for (auto& i : a->instances) {
    if (i->state != instance_state::starting && i->state != instance_state::ready) continue;
    (i->outdated ? outdated : live).push_back(i);
    if (!i->outdated && i->state == instance_state::ready && now - i->ready_at >= stable_after) ++proven;
  }
  int current = static_cast<int>(live.size());
  // Instances of a previous backend serve while fewer new ones have proven themselves than are
  // wanted: each new one that has stayed ready for stable_after lets one go (fewest requests in
  // flight first). Not at once when it gets ready: a new backend that crashes soon after would
  // take the old ones down with it (found in review).
  const int keep_outdated = std::max(0, a->desired - proven);  // 0 when the app goes idle
  if (static_cast<int>(outdated.size()) > keep_outdated) {
    drain_fewest_in_flight(a, outdated, outdated.size() - static_cast<std::size_t>(keep_outdated));
  }

  if (a->desired > current) {
    if (now < a->next_start_allowed) {
      schedule_retry(a->next_start_allowed);  // backing off after failed starts
      // Nothing can be ready within queue_timeout: the held requests get the reason now (found by
      // black-box testing: they waited the whole queue_timeout, then got "queue timeout").
      const auto wait = a->next_start_allowed - now;
      // (Instances of a previous backend still serve the held requests: not failed then.)
      if (!has_live_instance(*a) && wait >= a->cfg_->settings.queue_timeout) {
        const auto seconds = static_cast<int>(std::chrono::ceil<std::chrono::seconds>(wait).count());
        fail_waiters(a, waiter::why::start_failed,
                     "app " + a->name() + " failed to start: " + a->last_error + " (next attempt in " +
                         std::to_string(seconds) + "s)",
                     seconds);
      }
      return;
    }
    for (int n = current; n < a->desired; ++n) start_instance(a);
  } else if (a->desired < current) {
    // Remove starting instances first (no traffic), then the ready ones with fewest in flight.
    drain_fewest_in_flight(a, live, static_cast<std::size_t>(current - a->desired));
  }
}

// Drains `n` of `candidates`: those starting first (no traffic), then the ready ones with the
// fewest requests in flight, as counted once here (proxy threads change the counts meanwhile: a
// sort must not read them again, found in review).
void control_plane::drain_fewest_in_flight(const app_ptr& a, const std::vector<instance_ptr>& candidates, std::size_t n) {
  std::vector<std::pair<long, instance_ptr>> order;
  order.reserve(candidates.size());
  for (const auto& i : candidates)
    order.emplace_back(i->state == instance_state::starting ? -1L : static_cast<long>(i->in_flight.load()), i);
  std::stable_sort(order.begin(), order.end(), [](const auto& x, const auto& y) { return x.first < y.first; });
  for (std::size_t k = 0; k < n && k < order.size(); ++k) drain(a, order[k].second);
}

void control_plane::schedule_retry(clock_time when) {
  if (retry_pending_ && retry_timer_.expiry() <= when) return;
  retry_pending_ = true;
  retry_timer_.expires_at(when);
  retry_timer_.async_wait([this, alive = alive_](boost::system::error_code ec) {
    if (ec || !*alive) return;
    retry_pending_ = false;
    if (shutting_down_) return;
    auto now = steady::now();
    for (auto& a : std::vector<app_ptr>(apps_))
      if (!a->removed) evaluate(a, now);
  });
}

// ---------------------------------------------------------------------------------------------
// Instance lifecycle

void control_plane::start_instance(const app_ptr& a) {
  auto i = std::make_shared<instance>(a->name() + "-" + std::to_string(++instance_seq_[a->name()]), a->name());
  i->started_with = a->cfg_;
  a->instances.push_back(i);
  log::info("instance starting", {{"app", a->name()}, {"instance", i->id}});
  instance_spec spec{a->name(), i->id, &a->cfg_->backend};
  // Keep the config alive for the call (the backend may read it asynchronously).
  auto cfg = a->cfg_;
  backend_->start(spec, [this, alive = alive_, a, i, cfg](start_result r) {
    if (!*alive) return;
    i->backend_answered = true;
    on_started(a, i, r);
  });
  // startup_timeout covers the backend's part too (a Docker pull or create that hangs): found by
  // black-box testing, the deadline was kept only by the readiness probes, which start after it.
  auto timer = std::make_shared<asio::steady_timer>(ctx_, i->created_at + cfg->settings.startup_timeout);
  timer->async_wait([this, alive = alive_, a, i, timer, timeout = cfg->settings.startup_timeout](boost::system::error_code ec) {
    if (ec || !*alive || i->backend_answered || i->state != instance_state::starting || i->stop_requested) return;
    on_start_failed(a, i, "not started after startup_timeout (" + std::to_string(timeout.count()) +
                              "ms): the backend is still creating it");
  });
}

void control_plane::on_started(const app_ptr& a, const instance_ptr& i, const start_result& r) {
  if (!r.ok) {
    on_start_failed(a, i, r.error);
    return;
  }
  boost::system::error_code ec;
  auto addr = asio::ip::make_address(r.host, ec);
  if (ec) {
    on_start_failed(a, i, "backend returned a bad address: " + r.host);
    return;
  }
  i->endpoint = asio::ip::tcp::endpoint(addr, r.port);
  i->address = r.host + ":" + std::to_string(r.port);
  i->pid = r.pid;
  i->container = r.container;
  // Stopped while the backend was starting it (at shutdown too: no probes, no "not ready" then).
  if (i->state != instance_state::starting || i->stop_requested) return;

  // Probe until ready, failed, or no longer wanted.
  auto cfg = a->cfg_;
  asio::co_spawn(
      ctx_,
      [this, alive = alive_, a, i, cfg]() -> asio::awaitable<void> {
        const auto& rd = cfg->settings.readiness;
        auto deadline = i->created_at + cfg->settings.startup_timeout;
        asio::steady_timer t(ctx_);
        std::string last;
        for (;;) {
          if (!*alive || i->state != instance_state::starting) co_return;
          auto now = steady::now();
          if (now >= deadline) {
            on_start_failed(a, i,
                            "not ready after startup_timeout (" +
                                std::to_string(cfg->settings.startup_timeout.count()) + "ms)" +
                                (last.empty() ? "" : ": " + last));
            co_return;
          }
          auto timeout = std::min<std::chrono::milliseconds>(
              rd.timeout, std::chrono::duration_cast<std::chrono::milliseconds>(deadline - now) +
                              std::chrono::milliseconds(1));
          auto res = co_await probe_http(i->endpoint, rd.path, timeout);
          if (!*alive || i->state != instance_state::starting) co_return;
          if (res.ready) {
            on_ready(a, i);
            co_return;
          }
          last = res.detail;
          t.expires_after(rd.interval);
          co_await t.async_wait(asio::as_tuple(asio::use_awaitable));
        }
      },
      asio::detached);
}

void control_plane::on_ready(const app_ptr& a, const instance_ptr& i) {
  auto now = steady::now();
  i->state = instance_state::ready;
  i->ready_at = now;
  i->accepting.store(true);
  a->next_start_allowed = {};  // consecutive_failures resets once it has stayed ready (evaluate)
  backend_->instance_ready(i->id);
  log::info("instance ready", {{"app", a->name()}, {"instance", i->id}, {"address", i->address},
                               {"start_ms", std::chrono::duration<double, std::milli>(now - i->created_at).count()}});
  // Start-time estimate: an exponentially weighted moving average (weight 0.3 for the newest).
  const double took = seconds_between(i->created_at, now);
  a->stats.instance_start.observe(took);
  a->start_estimate = a->start_estimate > 0 ? 0.7 * a->start_estimate + 0.3 * took : took;
  if (a->first_held_at != clock_time{}) {
    a->stats.cold_start.observe(seconds_between(a->first_held_at, now));
    a->first_held_at = {};
  }
  publish(a);
  dispatch(a);
}

void control_plane::on_start_failed(const app_ptr& a, const instance_ptr& i, const std::string& reason) {
  if (i->state == instance_state::failed || i->state == instance_state::stopped) return;
  log::error("instance failed", {{"app", a->name()}, {"instance", i->id}, {"error", reason}});
  a->stats.instance_failures.add();
  a->last_error = i->id + ": " + reason;
  i->failure = reason;
  const auto now = steady::now();
  count_start_failure(*a, *i, now);
  i->state = instance_state::failed;
  i->accepting.store(false);
  forget_abandoned_cold_start(*a);
  stop_instance(a, i);
  // Held requests should not wait for a timeout when the app is broken: answered now once its
  // starts failed start_failures_to_answer times in a row, or when the next attempt, taking as
  // long as this one, cannot be ready before the oldest held request's queue_timeout (found in
  // review: starts failing 12 s in made them end in a plain "queue timeout", the reason lost).
  // Otherwise a failure is waited out: the next start comes 250 ms later (found by black-box
  // testing: a start that failed once answered every held request 503, and the retry served the
  // next one). reconcile answers them too when the next start is further away than queue_timeout.
  const bool too_late = !a->queue.empty() && std::max(a->next_start_allowed, now) + (now - i->created_at) >
                                                 a->queue.front()->enqueued_at + a->cfg_->settings.queue_timeout;
  if (!has_live_instance(*a) && (a->consecutive_failures >= start_failures_to_answer || too_late))
    fail_waiters(a, waiter::why::start_failed,
                 "app " + a->name() + " failed to start" +
                     (a->consecutive_failures > 1 ? " " + std::to_string(a->consecutive_failures) + " times in a row" : "") +
                     ": " + reason);
  reconcile(a, now);
  dispatch(a);  // requests held for it go to the ready ones (dispatch_limit)
}

// One more failed start for the backoff, counted once per round of starts: instances started
// together (a wake) that fail together back off as one failure, not one doubling each.
void control_plane::count_start_failure(app& a, const instance& i, clock_time now) {
  if (i.created_at >= a.last_start_failure) {
    a.consecutive_failures++;
    a.last_start_failure = now;
  }
  a.next_start_allowed = std::max(a.next_start_allowed, now + start_backoff(a.consecutive_failures));
}

// A new backend, or an app added back: what failed before says nothing of what starts next.
void control_plane::reset_backoff(app& a) {
  a.consecutive_failures = 0;
  a.next_start_allowed = {};
  a.last_start_failure = {};
}

void control_plane::fail_instance(const app_ptr& a, const instance_ptr& i, const std::string& reason) {
  if (i->state == instance_state::starting) {
    on_start_failed(a, i, reason);
    return;
  }
  if (i->state != instance_state::ready && i->state != instance_state::draining) return;
  bool was_draining = i->state == instance_state::draining;
  log::error("instance failed", {{"app", a->name()}, {"instance", i->id}, {"error", reason}});
  a->stats.instance_failures.add();
  a->last_error = i->id + ": " + reason;
  i->failure = reason;
  const auto now = steady::now();
  // Failing soon after it got ready is a crash loop: the replacement backs off as after a failed
  // start (found by black-box testing: 31 starts in 10 s of an app that exits 300 ms after ready).
  if (!was_draining && now - i->ready_at < stable_after) count_start_failure(*a, *i, now);
  i->state = instance_state::failed;
  i->accepting.store(false);
  publish(a);
  forget_pools(i);
  stop_instance(a, i);
  if (!was_draining) evaluate(a, steady::now());  // replace it if still needed
}

void control_plane::on_exit(const std::string& id, const std::string& reason) {
  for (auto& a : apps_)
    for (auto& i : a->instances)
      if (i->id == id) {
        auto keep_a = a;
        auto keep_i = i;
        if (keep_i->stop_requested) {
          note_exit(*keep_a, *keep_i, reason);  // the stop's callback finishes it
        } else if (keep_i->state == instance_state::starting) {
          on_start_failed(keep_a, keep_i, "exited during start: " + reason);
        } else {
          fail_instance(keep_a, keep_i, reason);
        }
        return;
      }
}

// An instance that ended on its own while a stop was under way. After a failure the proxy saw
// first (connect refused, dropped connections), its exit is the cause: the log says so, and the
// app's last_error gives it in place of the symptom (found by black-box testing: a kill -9 under
// load was reported as "connect: Connection refused", the SIGKILL nowhere).
void control_plane::note_exit(app& a, const instance& i, const std::string& reason) {
  log::error("instance exited", {{"app", a.name()}, {"instance", i.id}, {"error", reason}});
  if (i.state == instance_state::failed && !i.failure.empty() && a.last_error == i.id + ": " + i.failure)
    a.last_error = i.id + ": " + reason + " (seen first as: " + i.failure + ")";
}

void control_plane::drain(const app_ptr& a, const instance_ptr& i) {
  if (i->state == instance_state::draining || i->state == instance_state::stopped) return;
  bool was_ready = i->state == instance_state::ready;
  if (was_ready && i->ready_at > a->last_start_failure) a->consecutive_failures = 0;  // it ran, and is let go
  i->state = instance_state::draining;
  i->accepting.store(false);
  forget_abandoned_cold_start(*a);
  log::info("instance draining", {{"app", a->name()}, {"instance", i->id}});
  if (was_ready) {
    publish(a);
    forget_pools(i);
  }
  if (i->in_flight.load() == 0) stop_instance(a, i);
}

void control_plane::stop_instance(const app_ptr& a, const instance_ptr& i) {
  if (i->stop_requested) return;
  i->stop_requested = true;
  backend_->stop(i->id, [this, alive = alive_, a, i] {
    if (!*alive) return;
    finish_stop(a, i);
  });
}

void control_plane::finish_stop(const app_ptr& a, const instance_ptr& i) {
  if (i->state != instance_state::failed) i->state = instance_state::stopped;
  std::erase(a->instances, i);
  log::info("instance stopped", {{"app", a->name()}, {"instance", i->id}});
  if (a->removed && a->instances.empty()) std::erase(apps_, a);
}

// A cold start whose held requests all left is still measured when its instance gets ready; one
// whose instances were all stopped or failed before that did not happen.
void control_plane::forget_abandoned_cold_start(app& a) {
  if (a.queue.empty() && std::none_of(a.instances.begin(), a.instances.end(), [](const instance_ptr& i) {
        return i->state == instance_state::starting;
      }))
    a.first_held_at = {};
}

bool control_plane::has_live_instance(const app& a) const {
  return std::any_of(a.instances.begin(), a.instances.end(), [](const instance_ptr& i) {
    return i->state == instance_state::starting || i->state == instance_state::ready;
  });
}

// ---------------------------------------------------------------------------------------------
// Holding

void control_plane::post_enqueue(app_ptr a, waiter_ptr w) {
  asio::post(ctx_, [this, a = std::move(a), w = std::move(w)] {
    if (w->state.load() != waiter::waiting) {  // gave up before we saw it
      a->queued.fetch_sub(1);
      return;
    }
    auto fail_now = [&](waiter::why why, std::string msg) {
      w->failure = why;
      w->error = std::move(msg);
      int expected = waiter::waiting;
      a->queued.fetch_sub(1);
      if (w->state.compare_exchange_strong(expected, waiter::failed))
        wake(w);
    };
    if (shutting_down_) return fail_now(waiter::why::shutting_down, "wakegate is shutting down");
    if (a->removed) return fail_now(waiter::why::app_removed, "app " + a->name() + " was removed");
    if (static_cast<int>(a->queue.size()) >= a->cfg_->settings.queue_size)
      return fail_now(waiter::why::queue_full, "app " + a->name() + ": queue full");
    bool any_ready = std::any_of(a->instances.begin(), a->instances.end(),
                                 [](const instance_ptr& i) { return i->state == instance_state::ready; });
    // With no instance ready this request waits for a cold start, measured from the first
    // request held for it: kept while an instance is starting, even when the requests held
    // for it have left (found by black-box testing: the cold starts that outlasted
    // queue_timeout, the ones that fail requests, were never recorded).
    if (!any_ready) {
      bool any_starting = std::any_of(a->instances.begin(), a->instances.end(),
                                      [](const instance_ptr& i) { return i->state == instance_state::starting; });
      // A stale start (its instances stopped before ready, nobody waits) is replaced; one in a
      // backoff after a failed start, with requests still waiting, is not (found in review).
      if (a->first_held_at == clock_time{} || (!any_starting && a->queue.empty())) a->first_held_at = w->enqueued_at;
    }
    a->queue.push_back(w);
    dispatch(a);
    // Scale from zero at once, not at the next tick.
    if (!a->queue.empty() && !has_live_instance(*a)) evaluate(a, steady::now());
  });
}

void control_plane::post_cancel(app_ptr a, waiter_ptr w) {
  asio::post(ctx_, [a = std::move(a), w = std::move(w)] {
    auto it = std::find(a->queue.begin(), a->queue.end(), w);
    if (it != a->queue.end()) {
      a->queue.erase(it);
      a->queued.fetch_sub(1);
    }
    // Not found: post_enqueue has not run yet and will drop it (state is no longer waiting).
  });
}

void control_plane::post_capacity(app_ptr a) {
  asio::post(ctx_, [this, a = std::move(a)] { dispatch(a); });
}

void control_plane::post_instance_failed(app_ptr a, instance_ptr i, std::string reason) {
  asio::post(ctx_, [this, a = std::move(a), i = std::move(i), reason = std::move(reason)] {
    fail_instance(a, i, reason);
  });
}

void control_plane::post_drained(app_ptr a, instance_ptr i) {
  asio::post(ctx_, [this, a = std::move(a), i = std::move(i)] {
    if (i->state == instance_state::draining && i->in_flight.load() == 0) stop_instance(a, i);
  });
}

// How many requests one instance may have in flight when held ones are handed out. While
// instances of a wake are still starting, an app without max_concurrency gives each ready one no
// more than the slot the wake was sized by (the target value, README "Waking"): the rest wait
// for the others, instead of a burst all going to whichever instance is ready first (found by
// black-box testing: 200 held requests on the first of 10 instances). An instance taking more
// than twice the start estimate (at least 1 s) is not waited for; tick() dispatches again.
int control_plane::dispatch_limit(const app& a, clock_time now) const {
  const auto& s = a.cfg_->settings;
  if (s.max_concurrency > 0) return s.max_concurrency;
  const auto patience = std::chrono::duration<double>(std::max(2 * a.start_estimate, 1.0));
  for (const auto& i : a.instances)
    if (i->state == instance_state::starting && now - i->created_at < patience)
      return std::max(1, static_cast<int>(std::ceil(target_value(s))));
  return 0;
}

void control_plane::dispatch(const app_ptr& a) {
  const auto now = steady::now();
  const int wake_limit = a->queue.empty() ? 0 : dispatch_limit(*a, now);
  const auto& s = a->cfg_->settings;
  for (auto it = a->queue.begin(); it != a->queue.end();) {
    auto& w = *it;
    if (w->state.load() != waiter::waiting) {
      it = a->queue.erase(it);
      a->queued.fetch_sub(1);
      continue;
    }
    // A request held half its queue_timeout waits for no sibling: any ready instance takes it.
    const bool overdue = now - w->enqueued_at >= s.queue_timeout / 2;
    // A request handed back by an instance goes to another (found by CI: a GET that an instance
    // dropped as it died went to it again, before its death was seen, and was reset), until
    // avoid_until (waiter::avoid_grace).
    const instance_ptr avoid = overdue || now >= w->avoid_until ? nullptr : w->avoid.lock();
    auto best = acquire_least_loaded(a->instances, overdue ? s.max_concurrency : wake_limit, avoid.get());
    if (!best) {
      if (!avoid) return;  // no room for anyone
      ++it;  // no other instance for this one yet: those behind it may take the one it avoids
      continue;
    }
    w->granted_instance = best;
    int expected = waiter::waiting;
    if (!w->state.compare_exchange_strong(expected, waiter::granted)) {
      w->granted_instance.reset();
      release(a, best);
    } else {
      wake(w);
    }
    it = a->queue.erase(it);
    a->queued.fetch_sub(1);
  }
}

void control_plane::release(const app_ptr& a, const instance_ptr& i) {
  int left = i->in_flight.fetch_sub(1) - 1;
  if (a->queued.load(std::memory_order_relaxed) > 0) post_capacity(a);
  if (left == 0 && !i->accepting.load()) post_drained(a, i);
}

void control_plane::fail_waiters(const app_ptr& a, waiter::why why, const std::string& reason,
                                 int retry_after_seconds) {
  while (!a->queue.empty()) {
    auto w = a->queue.front();
    a->queue.pop_front();
    a->queued.fetch_sub(1);
    w->failure = why;
    w->error = reason;
    w->retry_after_seconds = retry_after_seconds;
    int expected = waiter::waiting;
    if (w->state.compare_exchange_strong(expected, waiter::failed))
      wake(w);
  }
  // The cold start these requests waited for did not happen: a later one is measured from its
  // own first held request (found by black-box testing: 8 s recorded for a 52 ms start).
  a->first_held_at = {};
}

// ---------------------------------------------------------------------------------------------
// Publication to proxy threads

void control_plane::publish(const app_ptr& a) {
  auto list = std::make_shared<instance_list>();
  for (auto& i : a->instances)
    if (i->accepting.load()) list->push_back(i);
  std::shared_ptr<const instance_list> view = std::move(list);
  for (auto& ex : workers_) asio::post(ex, [a, view] { a->set_view(view); });
}

void control_plane::forget_pools(const instance_ptr& i) {
  for (auto& ex : workers_) asio::post(ex, [i] { i->pools[this_shard].clear(); });
}

// ---------------------------------------------------------------------------------------------
// Shutdown

void control_plane::shutdown(std::function<void()> done) {
  shutting_down_ = true;
  tick_timer_.cancel();
  retry_timer_.cancel();
  for (auto& a : apps_) {
    fail_waiters(a, waiter::why::shutting_down, "wakegate is shutting down");
    for (auto& i : a->instances) {
      i->accepting.store(false);
      i->stop_requested = true;
      forget_pools(i);
    }
    publish(a);
  }
  backend_->stop_all([this, alive = alive_, done = std::move(done)] {
    if (*alive)
      for (auto& a : apps_) {
        for (auto& i : a->instances) {
          if (i->state != instance_state::failed) i->state = instance_state::stopped;
          log::info("instance stopped", {{"app", a->name()}, {"instance", i->id}});
        }
        a->instances.clear();
      }
    done();
  });
}

// ---------------------------------------------------------------------------------------------
// Admin views

std::string control_plane::status_json() const {
  json::array apps;
  auto now = steady::now();
  for (auto& a : apps_) {
    json::object o;
    o["name"] = a->name();
    json::array hosts;
    for (auto& h : a->cfg_->hosts) hosts.emplace_back(h);
    o["hosts"] = std::move(hosts);
    o["min_instances"] = a->cfg_->settings.min_instances;
    o["max_instances"] = a->cfg_->settings.max_instances;
    o["desired"] = a->desired;
    o["desired_reason"] = a->desired_reason;
    o["in_flight"] = a->meter.in_flight();
    o["queue_length"] = a->queue.size();
    o["last_error"] = a->last_error;
    o["consecutive_failures"] = a->consecutive_failures;
    if (a->next_start_allowed > now)
      o["next_start_in_seconds"] = seconds_between(now, a->next_start_allowed);
    o["removed"] = a->removed;
    const auto& d = a->last_decision;
    o["panic"] = d.panic;
    o["observed_concurrency"] = json::object{{"stable", a->observed_stable}, {"panic", a->observed_panic}};
    o["observed_rps"] = a->observed_rps;
    o["start_estimate_seconds"] = a->start_estimate;
    o["keep_warm_seconds"] = std::chrono::duration<double>(d.grace).count();
    o["scheduled_min_instances"] = a->scheduled_min;
    json::array insts;
    for (auto& i : a->instances) {
      json::object io;
      io["id"] = i->id;
      io["state"] = to_string(i->state);
      io["address"] = i->address;
      io["port"] = i->endpoint.port();
      io["pid"] = i->pid;
      io["container"] = i->container;
      io["in_flight"] = i->in_flight.load();
      io["age_seconds"] = seconds_between(i->created_at, now);
      if (i->outdated) io["outdated"] = true;  // runs the previous backend, until replaced
      insts.emplace_back(std::move(io));
    }
    o["instances"] = std::move(insts);
    apps.emplace_back(std::move(o));
  }
  json::object root;
  root["apps"] = std::move(apps);
  return json::serialize(root);
}

void control_plane::write_metrics(metrics::text_writer& w) const {
  using metrics::label;
  w.family("wakegate_requests_total", "counter", "Requests answered, by app and status code.");
  for (auto& a : apps_)
    for (int code = code_counter::first; code <= code_counter::last; ++code)
      if (auto v = a->stats.requests.value(code)) {
        char buf[4];
        std::snprintf(buf, sizeof buf, "%d", code);
        w.sample("wakegate_requests_total", {label{"app", a->name()}, label{"code", buf}}, static_cast<double>(v));
      }
  w.family("wakegate_request_duration_seconds", "histogram", "Time from request headers read to response end.");
  for (auto& a : apps_) {
    label l[] = {{"app", a->name()}};
    w.histogram("wakegate_request_duration_seconds", l, a->stats.request_duration.snapshot());
  }
  w.family("wakegate_in_flight_requests", "gauge", "Requests routed to the app and not yet finished, held ones included.");
  for (auto& a : apps_) w.sample("wakegate_in_flight_requests", {label{"app", a->name()}}, static_cast<double>(a->meter.in_flight()));
  w.family("wakegate_queued_requests", "gauge", "Requests held while the app has no ready instance with room.");
  for (auto& a : apps_) w.sample("wakegate_queued_requests", {label{"app", a->name()}}, static_cast<double>(a->queue.size()));
  w.family("wakegate_instances", "gauge", "Instances by state.");
  for (auto& a : apps_) {
    int n[3] = {0, 0, 0};
    for (auto& i : a->instances)
      if (i->state == instance_state::starting) ++n[0];
      else if (i->state == instance_state::ready) ++n[1];
      else if (i->state == instance_state::draining) ++n[2];
    w.sample("wakegate_instances", {label{"app", a->name()}, label{"state", "starting"}}, n[0]);
    w.sample("wakegate_instances", {label{"app", a->name()}, label{"state", "ready"}}, n[1]);
    w.sample("wakegate_instances", {label{"app", a->name()}, label{"state", "draining"}}, n[2]);
  }
  w.family("wakegate_desired_instances", "gauge", "Instances the scaler wants.");
  for (auto& a : apps_) w.sample("wakegate_desired_instances", {label{"app", a->name()}}, a->desired);
  w.family("wakegate_panic_mode", "gauge", "1 while the scaler is in panic mode (a burst over the panic threshold).");
  for (auto& a : apps_) w.sample("wakegate_panic_mode", {label{"app", a->name()}}, a->last_decision.panic ? 1 : 0);
  w.family("wakegate_observed_concurrency", "gauge", "Time-weighted average in-flight requests over the stable and panic windows.");
  for (auto& a : apps_) {
    w.sample("wakegate_observed_concurrency", {label{"app", a->name()}, label{"window", "stable"}}, a->observed_stable);
    w.sample("wakegate_observed_concurrency", {label{"app", a->name()}, label{"window", "panic"}}, a->observed_panic);
  }
  w.family("wakegate_instance_start_seconds", "histogram", "From an instance being started to it being ready.");
  for (auto& a : apps_) {
    label l[] = {{"app", a->name()}};
    w.histogram("wakegate_instance_start_seconds", l, a->stats.instance_start.snapshot());
  }
  w.family("wakegate_cold_start_seconds", "histogram", "From the first held request to an instance being ready.");
  for (auto& a : apps_) {
    label l[] = {{"app", a->name()}};
    w.histogram("wakegate_cold_start_seconds", l, a->stats.cold_start.snapshot());
  }
  w.family("wakegate_queue_wait_seconds", "histogram",
           "Held requests: time held waiting for an instance with room (also when answered 503 or abandoned).");
  for (auto& a : apps_) {
    label l[] = {{"app", a->name()}};
    w.histogram("wakegate_queue_wait_seconds", l, a->stats.queue_wait.snapshot());
  }
  w.family("wakegate_upstream_response_seconds", "histogram",
           "From starting to send the request to the instance to its response starting to go to the client.");
  for (auto& a : apps_) {
    label l[] = {{"app", a->name()}};
    w.histogram("wakegate_upstream_response_seconds", l, a->stats.upstream_response.snapshot());
  }
  w.family("wakegate_queue_rejections_total", "counter", "Held requests answered 503, by reason.");
  for (auto& a : apps_) {
    w.sample("wakegate_queue_rejections_total", {label{"app", a->name()}, label{"reason", "full"}},
             static_cast<double>(a->stats.rejected_full.value()));
    w.sample("wakegate_queue_rejections_total", {label{"app", a->name()}, label{"reason", "timeout"}},
             static_cast<double>(a->stats.rejected_timeout.value()));
  }
  w.family("wakegate_scale_events_total", "counter",
           "Scaling decisions: changes of the desired instance count, by direction (a failed instance's replacement is not one).");
  for (auto& a : apps_) {
    w.sample("wakegate_scale_events_total", {label{"app", a->name()}, label{"direction", "up"}},
             static_cast<double>(a->stats.scale_up.value()));
    w.sample("wakegate_scale_events_total", {label{"app", a->name()}, label{"direction", "down"}},
             static_cast<double>(a->stats.scale_down.value()));
  }
  w.family("wakegate_instance_failures_total", "counter", "Instances that failed to start or died.");
  for (auto& a : apps_)
    w.sample("wakegate_instance_failures_total", {label{"app", a->name()}},
             static_cast<double>(a->stats.instance_failures.value()));
  backend_->write_metrics(w);
}

instance_ptr acquire_least_loaded(const instance_list& list, int max_concurrency, const instance* skip) noexcept {
  thread_local std::minstd_rand rng{std::random_device{}()};
  const instance_ptr* best = nullptr;
  int best_n = 0;
  unsigned ties = 0;
  for (const auto& i : list) {
    if (!i->accepting.load(std::memory_order_relaxed) || i.get() == skip) continue;
    int n = i->in_flight.load(std::memory_order_relaxed);
    if (max_concurrency > 0 && n >= max_concurrency) continue;
    if (best == nullptr || n < best_n) {
      best = &i, best_n = n, ties = 1;
    } else if (n == best_n && rng() % ++ties == 0) {
      best = &i;
    }
  }
  return best != nullptr && (*best)->try_acquire(max_concurrency) ? *best : nullptr;
}

const char* to_string(instance_state s) noexcept {
  switch (s) {
    case instance_state::starting: return "starting";
    case instance_state::ready: return "ready";
    case instance_state::draining: return "draining";
    case instance_state::stopped: return "stopped";
    case instance_state::failed: return "failed";
  }
  return "unknown";
}

}  // namespace wakegate::scaler
