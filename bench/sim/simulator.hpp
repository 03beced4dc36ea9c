// A deterministic, trace-driven simulator of one app behind wakegate: arrivals from a trace, a
// holding queue, instances with a start-time distribution, a service-time distribution and a
// hard max_concurrency, and a scaler loop that calls the REAL policy code (scaler/policy.hpp,
// scaler/window.hpp) every scale_interval on a virtual clock.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "config/config.hpp"

namespace wakegate::sim {

// Offered load: requests per second at time t (seconds from the trace's start).
struct trace {
  std::string name;
  std::string title;
  double duration = 0;  // seconds
  std::function<double(double)> rate;
  double peak = 0;      // the highest rate(t), for sizing the fixed fleet
};

struct instance_model {
  double start_median = 2.0;  // seconds from start to ready, log-normal
  double start_sigma = 0.35;
  double service_median = 0.2;  // seconds per request, log-normal
  double service_sigma = 0.5;
  int max_concurrency = 20;     // requests one instance serves at once; more are held
  double queue_timeout = 30;    // held longer: counted as failed (503)
};

enum class policy_kind { wakegate, fixed_peak, plain };
const char* to_string(policy_kind k) noexcept;

struct second_sample {
  double arrivals = 0;  // requests arrived in this second
  int ready = 0;        // ready instances at the end of the second
  int desired = 0;      // the scaler's latest decision
  double p99 = 0;       // p99 latency of requests arrived in this second (seconds)
  bool panic = false;
};

struct result {
  policy_kind policy{};
  std::uint64_t requests = 0;
  std::uint64_t failed = 0;       // held longer than queue_timeout
  std::uint64_t held = 0;         // waited in the holding queue
  std::uint64_t cold = 0;         // arrived while no instance was ready
  std::uint64_t starts = 0;       // instances started
  double p50 = 0, p99 = 0;        // latency of served requests, queueing included (seconds)
  double held_seconds = 0;        // total time requests spent held
  double instance_seconds = 0;    // from start to stop, starting time included
  std::vector<second_sample> timeline;
};

struct run_options {
  config::app_settings settings;  // the app's scaling settings (wakegate policy)
  instance_model model;
  double scale_interval = 1.0;
  std::uint64_t seed = 1;
};

// Runs `t` under `policy`. Same options and seed: same result, bit for bit.
result simulate(const trace& t, policy_kind policy, const run_options& options);

}  // namespace wakegate::sim
