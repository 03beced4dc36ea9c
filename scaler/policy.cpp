#include "scaler/policy.hpp"

#include <algorithm>
#include <cmath>
#include <limits>

namespace wakegate::scaler {

namespace {

// ceil(avg / target), with avg values within 1e-9 above a multiple of target counted as that
// multiple (averages of integers come out as 10.0000000001 rather than 10).
int instances_for(double avg, int target) {
  if (!(avg > 0)) return 0;  // also NaN
  const double t = std::max(target, 1);
  const double k = std::floor(avg / t);
  const double n = avg - k * t <= 1e-9 ? k : k + 1;
  return n >= std::numeric_limits<int>::max() ? std::numeric_limits<int>::max() : static_cast<int>(n);
}

}  // namespace

policy_decision decide(const config::app_settings& settings, const policy_input& in, policy_state& state) {
  const bool busy = in.in_flight > 0 || in.queued > 0;
  const bool ever_requested = in.last_request != clock_time{};
  const bool recent_request = ever_requested && in.now - in.last_request < settings.scale_to_zero_after;

  if (settings.min_instances <= 0 && !busy && !recent_request) {
    state.recent.clear();
    return {0, "idle"};
  }

  int raw = instances_for(in.avg_concurrency, settings.target_concurrency);
  if (busy || recent_request) raw = std::max(raw, 1);

  if (settings.scale_down_delay <= config::duration::zero()) {
    state.recent.clear();
  } else {
    const clock_time horizon = in.now - settings.scale_down_delay;
    while (!state.recent.empty() && state.recent.front().first < horizon) state.recent.pop_front();
  }
  state.recent.emplace_back(in.now, raw);
  int held = raw;
  for (const auto& entry : state.recent) held = std::max(held, entry.second);

  const int lo = std::max(settings.min_instances, 0);
  const int hi = std::max(settings.max_instances, lo);
  if (held < lo) return {lo, "min"};
  if (held > hi) return {hi, "max"};
  if (held > raw) return {held, "delay"};
  return {held, "load"};
}

}  // namespace wakegate::scaler
