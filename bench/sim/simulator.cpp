#include "bench/sim/simulator.hpp"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <deque>
#include <memory>
#include <queue>

#include "scaler/policy.hpp"
#include "scaler/window.hpp"

namespace wakegate::sim {

const char* to_string(policy_kind k) noexcept {
  switch (k) {
    case policy_kind::wakegate: return "wakegate";
    case policy_kind::fixed_peak: return "fixed-peak";
    case policy_kind::plain: return "plain";
  }
  return "?";
}

namespace {

// SplitMix64 + our own distributions: the same numbers on every platform and library.
class rng {
 public:
  explicit rng(std::uint64_t seed) : s_(seed) {}
  std::uint64_t next() {
    std::uint64_t z = (s_ += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
  }
  double uniform() { return (static_cast<double>(next() >> 11) + 0.5) * (1.0 / 9007199254740992.0); }
  double exponential(double rate) { return -std::log(uniform()) / rate; }
  double normal() { return std::sqrt(-2 * std::log(uniform())) * std::cos(6.283185307179586 * uniform()); }
  double lognormal(double median, double sigma) { return median * std::exp(sigma * normal()); }

 private:
  std::uint64_t s_;
};

struct instance {
  double started = 0;
  double ready_at = 0;
  bool ready = false;
  bool draining = false;
  bool stopped = false;
  double stopped_at = 0;
  int in_flight = 0;
};

struct request {
  double arrival = 0;
  double dispatched = -1;
};

enum class event_kind { arrival, completion, ready, tick };
struct event {
  double t;
  std::uint64_t seq;  // FIFO among equal times: determinism
  event_kind kind;
  std::size_t index;  // request (completion), instance (ready)
  bool operator>(const event& o) const { return t != o.t ? t > o.t : seq > o.seq; }
};

double percentile(std::vector<double>& v, double p) {
  if (v.empty()) return 0;
  auto k = static_cast<std::size_t>(std::ceil(p * static_cast<double>(v.size()))) - 1;
  k = std::min(k, v.size() - 1);
  std::nth_element(v.begin(), v.begin() + static_cast<std::ptrdiff_t>(k), v.end());
  return v[k];
}

clock_time at(double t) {
  return clock_time{} + std::chrono::hours(1000) +
         std::chrono::duration_cast<clock_time::duration>(std::chrono::duration<double>(t));
}

class simulation {
 public:
  simulation(const trace& t, policy_kind p, const run_options& o)
      : trace_(t), policy_(p), o_(o), settings_(o.settings), arrivals_rng_(o.seed), model_rng_(o.seed * 7919 + 1) {
    if (p == policy_kind::plain) {
      // The core issue's rule: ceil(average in-flight / target), scale-down delay, zero after idle.
      settings_.target_utilization = 1.0;
      settings_.panic_threshold = 1e9;
      settings_.max_scale_up_rate = 1e9;
      settings_.max_scale_down_rate = 1e9;
      settings_.initial_instances = 1;
    }
    window_.reserve(std::max(settings_.stable_window, settings_.panic_window));
    res_.policy = p;
    res_.timeline.resize(static_cast<std::size_t>(std::ceil(t.duration)) + 1);
  }

  result run() {
    if (policy_ == policy_kind::fixed_peak) {
      const double tv = settings_.target_concurrency * settings_.target_utilization;
      const int n = std::max(1, static_cast<int>(std::ceil(trace_.peak * mean_service() / tv)));
      for (int i = 0; i < n; ++i) {
        start_instance(0);
        instances_.back()->ready = true;  // up before the trace begins
        instances_.back()->ready_at = 0;
      }
      desired_ = n;
    }
    schedule_next_arrival(0);
    push(o_.scale_interval, event_kind::tick, 0);
    while (!events_.empty()) {
      event e = events_.top();
      events_.pop();
      if (e.t > trace_.duration + 120) break;  // drain bound
      advance(e.t);
      switch (e.kind) {
        case event_kind::arrival: on_arrival(); break;
        case event_kind::completion: on_completion(e.index); break;
        case event_kind::ready: on_ready(e.index); break;
        case event_kind::tick: on_tick(); break;
      }
      if (done()) break;
    }
    finish();
    return std::move(res_);
  }

 private:
  double mean_service() const {
    return o_.model.service_median * std::exp(o_.model.service_sigma * o_.model.service_sigma / 2);
  }

  void push(double t, event_kind k, std::size_t index) { events_.push(event{t, seq_++, k, index}); }

  // Time integral of in-flight (held included) up to `t`.
  void advance(double t) {
    area_ += static_cast<double>(in_flight_) * (t - now_);
    now_ = t;
  }

  bool done() const {
    return now_ >= trace_.duration && in_flight_ == 0 &&
           std::none_of(instances_.begin(), instances_.end(), [](const auto& i) { return !i->stopped; });
  }

  // Non-homogeneous Poisson arrivals by thinning against the trace's peak.
  void schedule_next_arrival(double from) {
    const double peak = std::max(trace_.peak, 1e-9);
    double t = from;
    for (;;) {
      t += arrivals_rng_.exponential(peak);
      if (t >= trace_.duration) return;
      if (arrivals_rng_.uniform() * peak <= trace_.rate(t)) break;
    }
    push(t, event_kind::arrival, 0);
  }

  void on_arrival() {
    ++arrivals_;
    ++in_flight_;
    last_request_ = now_;
    requests_.push_back(request{now_});
    const auto sec = static_cast<std::size_t>(now_);
    if (sec < res_.timeline.size()) res_.timeline[sec].arrivals += 1;
    if (std::none_of(instances_.begin(), instances_.end(), [](const auto& i) { return i->ready && !i->draining; }))
      ++res_.cold;
    queue_.push_back(requests_.size() - 1);
    dispatch();
    // wakegate evaluates at once when a request arrives for an app with nothing running.
    if (!queue_.empty() && policy_ != policy_kind::fixed_peak && live() == 0) evaluate();
    schedule_next_arrival(now_);
  }

  void dispatch() {
    while (!queue_.empty()) {
      auto& r = requests_[queue_.front()];
      if (now_ - r.arrival > o_.model.queue_timeout) {  // timed out while held
        ++res_.failed;
        res_.held_seconds += now_ - r.arrival;
        --in_flight_;
        r.dispatched = -2;
        queue_.pop_front();
        continue;
      }
      instance* best = nullptr;
      for (auto& i : instances_)
        if (i->ready && !i->draining && i->in_flight < o_.model.max_concurrency &&
            (best == nullptr || i->in_flight < best->in_flight))
          best = i.get();
      if (best == nullptr) return;
      const std::size_t ri = queue_.front();
      queue_.pop_front();
      r.dispatched = now_;
      if (now_ > r.arrival) {
        ++res_.held;
        res_.held_seconds += now_ - r.arrival;
      }
      ++best->in_flight;
      owner_.resize(requests_.size());
      owner_[ri] = best;
      push(now_ + model_rng_.lognormal(o_.model.service_median, o_.model.service_sigma), event_kind::completion, ri);
    }
  }

  void on_completion(std::size_t ri) {
    --in_flight_;
    instance* i = owner_[ri];
    --i->in_flight;
    const double latency = now_ - requests_[ri].arrival;
    latencies_.push_back(latency);
    latency_of_.resize(requests_.size());
    latency_of_[ri] = latency;
    if (i->draining && i->in_flight == 0) stop(*i);
    dispatch();
  }

  void on_ready(std::size_t ii) {
    auto& i = *instances_[ii];
    if (i.stopped || i.draining) return;
    i.ready = true;
    i.ready_at = now_;
    const double took = now_ - i.started;
    start_estimate_ = start_estimate_ > 0 ? 0.7 * start_estimate_ + 0.3 * took : took;
    dispatch();
  }

  void on_tick() {
    // Expire held requests even when no capacity frees up.
    dispatch();
    if (policy_ != policy_kind::fixed_peak) evaluate();
    const auto sec = static_cast<std::size_t>(now_) - 1;
    if (sec < res_.timeline.size()) {
      res_.timeline[sec].ready = static_cast<int>(
          std::count_if(instances_.begin(), instances_.end(), [](const auto& i) { return i->ready && !i->draining; }));
      res_.timeline[sec].desired = desired_;
      res_.timeline[sec].panic = panic_;
    }
    if (now_ < trace_.duration + 120) push(now_ + o_.scale_interval, event_kind::tick, 0);
  }

  int live() const {
    return static_cast<int>(std::count_if(instances_.begin(), instances_.end(),
                                          [](const auto& i) { return !i->stopped && !i->draining; }));
  }

  // What control_plane::evaluate does, on the virtual clock.
  void evaluate() {
    const clock_time now = at(now_);
    window_.record(now, area_, arrivals_);
    int ready = 0;
    for (auto& i : instances_)
      if (i->ready && !i->draining && !i->stopped) ++ready;
    scaler::policy_input in;
    in.now = now;
    if (window_.covered_seconds(now) < 0.001) {
      in.stable_concurrency = in.panic_concurrency = static_cast<double>(in_flight_);
    } else {
      in.stable_concurrency = window_.average_concurrency(now, settings_.stable_window);
      in.panic_concurrency = window_.average_concurrency(now, settings_.panic_window);
      in.stable_rps = window_.request_rate(now, settings_.stable_window);
      in.panic_rps = window_.request_rate(now, settings_.panic_window);
    }
    in.in_flight = static_cast<int>(in_flight_);
    in.queued = static_cast<int>(queue_.size());
    in.last_request = last_request_ < 0 ? clock_time{} : at(last_request_);
    in.ready = ready;
    in.current = live();
    in.start_estimate = policy_ == policy_kind::plain ? 0 : start_estimate_;
    auto d = scaler::decide(settings_, in, state_);
    desired_ = d.desired;
    panic_ = d.panic;
    if (d.desired == 0 && in.current == 0) window_.reset();
    reconcile();
  }

  void reconcile() {
    int current = live();
    for (; current < desired_; ++current) start_instance(now_);
    if (current > desired_) {
      // Starting instances first, then the ready ones with the fewest in flight (as wakegate does).
      std::vector<instance*> live_list;
      for (auto& i : instances_)
        if (!i->stopped && !i->draining) live_list.push_back(i.get());
      std::stable_sort(live_list.begin(), live_list.end(), [](const instance* x, const instance* y) {
        if (x->ready != y->ready) return !x->ready;
        return x->in_flight < y->in_flight;
      });
      for (int n = 0; n < current - desired_; ++n) {
        auto* i = live_list[static_cast<std::size_t>(n)];
        i->draining = true;
        if (i->in_flight == 0) stop(*i);
      }
    }
  }

  void start_instance(double t) {
    auto i = std::make_unique<instance>();
    i->started = t;
    ++res_.starts;
    const double took = std::max(0.05, model_rng_.lognormal(o_.model.start_median, o_.model.start_sigma));
    instances_.push_back(std::move(i));
    push(t + took, event_kind::ready, instances_.size() - 1);
  }

  void stop(instance& i) {
    if (i.stopped) return;
    i.stopped = true;
    i.stopped_at = now_;
    res_.instance_seconds += now_ - i.started;
  }

  void finish() {
    for (auto& i : instances_)
      if (!i->stopped) {
        i->stopped = true;
        res_.instance_seconds += std::max(now_, trace_.duration) - i->started;
      }
    // Requests still held at the end failed.
    for (auto ri : queue_) {
      ++res_.failed;
      res_.held_seconds += now_ - requests_[ri].arrival;
    }
    res_.requests = requests_.size();
    // Per-second p99 by arrival second.
    std::vector<std::vector<double>> per_second(res_.timeline.size());
    for (std::size_t k = 0; k < requests_.size(); ++k) {
      const auto& r = requests_[k];
      if (r.dispatched < 0) continue;
      const auto s = static_cast<std::size_t>(r.arrival);
      if (s < per_second.size() && k < latency_of_.size()) per_second[s].push_back(latency_of_[k]);
    }
    for (std::size_t s = 0; s < per_second.size(); ++s) res_.timeline[s].p99 = percentile(per_second[s], 0.99);
    res_.p50 = percentile(latencies_, 0.5);
    res_.p99 = percentile(latencies_, 0.99);
  }

  const trace& trace_;
  policy_kind policy_;
  const run_options& o_;
  config::app_settings settings_;
  rng arrivals_rng_;
  rng model_rng_;
  std::priority_queue<event, std::vector<event>, std::greater<>> events_;
  std::uint64_t seq_ = 0;
  double now_ = 0;
  double area_ = 0;
  std::uint64_t arrivals_ = 0;
  std::int64_t in_flight_ = 0;
  double last_request_ = -1;
  std::vector<request> requests_;
  std::vector<instance*> owner_;
  std::vector<double> latencies_;
  std::vector<double> latency_of_;
  std::deque<std::size_t> queue_;
  std::vector<std::unique_ptr<instance>> instances_;
  scaler::load_window window_;
  scaler::policy_state state_;
  double start_estimate_ = 0;
  int desired_ = 0;
  bool panic_ = false;
  result res_;
};

}  // namespace

result simulate(const trace& t, policy_kind policy, const run_options& options) {
  return simulation(t, policy, options).run();
}

}  // namespace wakegate::sim
