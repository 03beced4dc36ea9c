// The scaling policy: a pure function of (measurements, settings, clock) -> desired instances.
// It keeps no hidden state: what it must remember between evaluations lives in policy_state,
// which the caller owns, so tests drive it with a virtual clock.
#pragma once

#include <chrono>
#include <deque>
#include <utility>

#include "config/config.hpp"

namespace wakegate::scaler {

using clock_time = std::chrono::steady_clock::time_point;

struct policy_input {
  clock_time now;
  double avg_concurrency = 0;   // time-weighted average in-flight (held included) over the
                                // stable window, or over the time since the app woke if shorter
  int in_flight = 0;            // right now, held included
  int queued = 0;               // held right now
  clock_time last_request{};    // arrival of the most recent request (epoch = never)
  int current = 0;              // instances starting + ready (not draining)
};

struct policy_state {
  // (time, unclamped-by-delay desired) of recent evaluations, kept for scale_down_delay.
  std::deque<std::pair<clock_time, int>> recent;
};

struct policy_decision {
  int desired = 0;
  const char* reason = "";  // short, for logs and /status: "load", "min", "max", "idle", ...
};

policy_decision decide(const config::app_settings& settings, const policy_input& in, policy_state& state);

}  // namespace wakegate::scaler
