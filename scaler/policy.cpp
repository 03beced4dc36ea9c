#include "scaler/policy.hpp"

#include <algorithm>
#include <cmath>
#include <limits>

namespace wakegate::scaler {

namespace {

// ceil(observed / tv), with values within 1e-9 above a multiple counted as that multiple
// (averages of integers come out as 10.0000000001 rather than 10).
int instances_for(double observed, double tv) {
  if (!(observed > 0)) return 0;  // also NaN
  const double t = std::max(tv, 1e-9);
  const double q = observed / t;
  const double k = std::floor(q);
  const double n = q - k <= 1e-9 ? k : k + 1;
  return n >= std::numeric_limits<int>::max() ? std::numeric_limits<int>::max() : static_cast<int>(n);
}

int to_int(double v) {
  if (!(v > 0)) return 0;
  return v >= std::numeric_limits<int>::max() ? std::numeric_limits<int>::max() : static_cast<int>(v);
}

void learn_gap(const config::app_settings& s, const clock_time& last_request, policy_state& st) {
  if (!s.keep_warm_auto || last_request == clock_time{} || last_request == st.seen_request) return;
  if (st.seen_request != clock_time{}) {
    const double gap = std::chrono::duration<double>(last_request - st.seen_request).count();
    if (gap >= 2.0) st.gaps[st.gap_count++ % st.gaps.size()] = gap;
  }
  st.seen_request = last_request;
}

}  // namespace

std::chrono::milliseconds keep_warm_period(const config::app_settings& s, const policy_state& st) {
  if (!s.keep_warm_auto || st.gap_count < 4) return s.scale_to_zero_after;
  const std::size_t n = std::min(st.gap_count, st.gaps.size());
  std::array<double, 32> sorted{};
  std::copy_n(st.gaps.begin(), n, sorted.begin());
  std::sort(sorted.begin(), sorted.begin() + static_cast<std::ptrdiff_t>(n));
  const double p90 = sorted[std::min(n - 1, static_cast<std::size_t>(std::ceil(0.9 * static_cast<double>(n))) - 1)];
  auto learnt = std::chrono::milliseconds(static_cast<long long>(p90 * 1.25 * 1000));
  return std::min(std::max(learnt, s.panic_window), s.scale_to_zero_after);
}

double target_value(const config::app_settings& s) {
  // An instance never takes more than max_concurrency at once: a higher concurrency target is
  // capped at it, as Knative caps its target at containerConcurrency (found by black-box testing:
  // target 10 with max_concurrency 2 ran 2 instances for 8 requests and kept 4 of them held).
  const double concurrency_target =
      s.max_concurrency > 0 ? std::min(s.target_concurrency, s.max_concurrency) : s.target_concurrency;
  return (s.metric == config::scale_metric::rps ? s.target_rps : concurrency_target) * s.target_utilization;
}

policy_decision decide(const config::app_settings& s, const policy_input& in, policy_state& st) {
  policy_decision d;
  learn_gap(s, in.last_request, st);
  d.grace = keep_warm_period(s, st);

  const int hi = std::max(s.max_instances, 0);
  const int lo = std::min(std::max({s.min_instances, in.scheduled_min, 0}), hi);
  const bool busy = in.in_flight > 0 || in.queued > 0;
  const bool ever_requested = in.last_request != clock_time{};
  // The grace period runs from the end of the last request, not its arrival (found by black-box
  // testing: a 7 s request with a 5 s grace period was followed by a cold start).
  const clock_time last_active = std::max(in.last_request, in.last_busy);
  const bool recent_request = ever_requested && in.now - last_active < d.grace;

  if (lo <= 0 && !busy && !recent_request) {
    st.recent.clear();
    st.panic_time = {};
    st.max_panic = 0;
    d.reason = "idle";
    return d;
  }

  // Knative's rules.
  const bool rps = s.metric == config::scale_metric::rps;
  const double tv = target_value(s);
  const double stable = rps ? in.stable_rps : in.stable_concurrency;
  const double panic = rps ? in.panic_rps : in.panic_concurrency;
  const double ready = std::max(in.ready, 1);
  const int max_up = to_int(std::ceil(s.max_scale_up_rate * ready));
  const int max_down = to_int(std::floor(ready / s.max_scale_down_rate));
  d.stable_wanted = instances_for(stable, tv);
  d.panic_wanted = instances_for(panic, tv);
  const int stable_pods = std::min(std::max(d.stable_wanted, max_down), max_up);
  const int panic_pods = std::min(std::max(d.panic_wanted, max_down), max_up);

  const bool over = d.panic_wanted / ready >= s.panic_threshold;
  if (over) {
    st.panic_time = in.now;  // enter, or extend
  } else if (st.panicking() && st.panic_time + s.stable_window < in.now) {
    st.panic_time = {};
    st.max_panic = 0;
  }
  int want = stable_pods;
  const char* reason = "load";
  if (st.panicking()) {
    // Provision for the larger of the two; never decrease while panicking.
    want = std::max({stable_pods, panic_pods, st.max_panic});
    st.max_panic = want;
    reason = "panic";
    d.panic = true;
  }

  if (busy || recent_request) want = std::max(want, 1);
  // Waking (nothing running; traffic, or booting with a minimum): initial_instances at once.
  if (in.current == 0 && (want > 0 || lo > 0) && s.initial_instances > std::max(want, lo)) {
    want = s.initial_instances;
    reason = "initial";
  }
  // Nothing ready and requests held: they and those arriving while instances start all need a slot
  // the moment instances are ready (max_concurrency each, or the target value without a limit).
  if (in.ready == 0 && in.queued > 0 && in.start_estimate > 0) {
    const double room = s.max_concurrency > 0 ? std::max<double>(s.max_concurrency, tv) : tv;
    const int cold = instances_for(in.in_flight + in.panic_rps * in.start_estimate, room);
    if (cold > want) {
      want = cold;
      reason = "cold-burst";
    }
  }

  if (s.scale_down_delay <= config::duration::zero()) {
    st.recent.clear();
  } else {
    const clock_time horizon = in.now - s.scale_down_delay;
    while (!st.recent.empty() && st.recent.front().first < horizon) st.recent.pop_front();
  }
  // A newer result at least as large outlasts an older one within the delay: the older can no
  // longer be the maximum. So `recent` decreases from front to back, the front is the maximum,
  // and its length is bounded by the distinct results, not by scale_down_delay / scale_interval.
  while (!st.recent.empty() && st.recent.back().second <= want) st.recent.pop_back();
  st.recent.emplace_back(in.now, want);
  const int held = st.recent.front().second;
  if (held > want) reason = "delay";

  if (held < lo) {
    d.desired = lo;
    d.reason = in.scheduled_min > s.min_instances ? "schedule" : "min";
  } else if (held > hi) {
    d.desired = hi;
    d.reason = "max";
  } else {
    d.desired = held;
    d.reason = reason;
  }
  return d;
}

}  // namespace wakegate::scaler
