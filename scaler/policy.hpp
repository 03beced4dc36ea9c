// The scaling policy: a pure function of (measurements, settings, clock) -> desired instances.
// It keeps no hidden state: what it must remember between evaluations lives in policy_state,
// which the caller owns, so tests and the simulator (bench/sim) drive it with a virtual clock.
//
// The rules are Knative's KPA (pkg/autoscaler/scaling/autoscaler.go), with wakegate's additions:
//   target value     tv = target_concurrency (or target_rps) * target_utilization
//   stable, panic    ceil(observed over stable_window / tv), ceil(observed over panic_window / tv),
//                    each kept within [floor(ready / max_scale_down_rate), ceil(max_scale_up_rate * ready)]
//                    (ready counted as at least 1)
//   panic            entered when ceil(panic / tv) >= panic_threshold * ready; left once the load stayed
//                    under the threshold for a whole stable_window; while panicking the result is the
//                    largest seen since panic began (never scales down)
//   traffic          at least 1 while requests are in flight, held, or arrived within the grace period
//                    (scale_to_zero_after, or the learnt keep-warm period)
//   waking           at least initial_instances when nothing runs; while nothing is ready, with a
//                    start-time estimate: enough max_concurrency slots (or tv without a limit) for the
//                    held requests plus those arriving while instances start
//   delay            the maximum of the results of the last scale_down_delay
//   clamp            [max(min_instances, schedule), max_instances]
#pragma once

#include <array>
#include <chrono>
#include <cstddef>
#include <deque>
#include <utility>

#include "config/config.hpp"

namespace wakegate::scaler {

using clock_time = std::chrono::steady_clock::time_point;

struct policy_input {
  clock_time now;
  double stable_concurrency = 0;  // time-weighted average in-flight (held included) over stable_window,
                                  // or over the time since the app woke if shorter
  double panic_concurrency = 0;   // the same over panic_window
  double stable_rps = 0;          // arrivals per second over stable_window (metric: rps)
  double panic_rps = 0;           // ... over panic_window (also used to project a cold start)
  int in_flight = 0;              // right now, held included
  int queued = 0;                 // held right now
  clock_time last_request{};      // arrival of the most recent request (epoch = never)
  clock_time last_busy{};         // last seen with a request in flight or held (epoch = never)
  int ready = 0;                  // ready instances
  int current = 0;                // instances starting + ready (not draining)
  int scheduled_min = 0;          // min_instances raised by `schedule` right now
  double start_estimate = 0;      // seconds an instance takes to become ready (0 = unknown)
};

struct policy_state {
  // (time, desired before the delay) of recent evaluations within scale_down_delay that may still
  // be the largest: desired decreases from front to back (the front is the maximum).
  std::deque<std::pair<clock_time, int>> recent;
  clock_time panic_time{};  // last evaluation over the panic threshold (epoch = not panicking)
  int max_panic = 0;        // largest desired since panic began
  // keep_warm: auto -- gaps between requests, a ring of the latest.
  clock_time seen_request{};
  std::array<double, 32> gaps{};
  std::size_t gap_count = 0;
  bool panicking() const noexcept { return panic_time != clock_time{}; }
};

struct policy_decision {
  int desired = 0;
  const char* reason = "";  // short, for logs and /status: "load", "panic", "min", "max", "idle", ...
  bool panic = false;
  int stable_wanted = 0;    // ceil(stable / tv), before rate limits
  int panic_wanted = 0;     // ceil(panic / tv), before rate limits
  std::chrono::milliseconds grace{0};  // idle period before scaling to zero in effect
};

policy_decision decide(const config::app_settings& settings, const policy_input& in, policy_state& state);

// What the scaler aims at per instance: target_concurrency (capped at max_concurrency when that is
// set), or target_rps with `metric: rps`, times target_utilization.
double target_value(const config::app_settings& settings);

// The idle period before scaling to zero: scale_to_zero_after, or with keep_warm: auto 1.25x the
// 90th percentile of the latest gaps between requests (at least 4 seen; gaps under 2 s don't count),
// never below panic_window and never above scale_to_zero_after.
std::chrono::milliseconds keep_warm_period(const config::app_settings& settings, const policy_state& state);

}  // namespace wakegate::scaler
