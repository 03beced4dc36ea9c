// Load history for the policy: per-second buckets in a ring, each holding the integral of
// in-flight requests (held included) and the arrivals of that second. Fed by the control plane
// from the exact concurrency meter at every evaluation; windows are averaged over the time
// covered (the window, or the time since the app woke if shorter).
#pragma once

#include <chrono>
#include <cstdint>
#include <vector>

#include "common/time.hpp"

namespace wakegate::scaler {

class load_window {
 public:
  // Ring capacity: enough whole seconds for the longest window asked for.
  void reserve(std::chrono::milliseconds longest);
  // Cumulative readings at `now`: request-seconds of in-flight and arrivals since the meter began.
  // The first record after construction or reset() starts the history ("the app woke").
  void record(clock_time now, double area, std::uint64_t arrivals);
  void reset() noexcept;

  // Time-weighted average in-flight over the last `window` (or since the first record).
  double average_concurrency(clock_time now, std::chrono::milliseconds window) const noexcept;
  // Requests per second arrived over the last `window` (or since the first record).
  double request_rate(clock_time now, std::chrono::milliseconds window) const noexcept;
  bool empty() const noexcept { return !started_; }
  // Seconds of history behind `now` (0 before the first record).
  double covered_seconds(clock_time now) const noexcept { return started_ ? seconds_between(woke_, now) : 0; }

 private:
  struct bucket {
    std::int64_t second = -1;  // whole seconds since the clock's epoch; -1 = empty
    double area = 0;
    double arrivals = 0;
  };
  struct totals {
    double area = 0, arrivals = 0, span = 0;
  };
  totals sum(clock_time now, std::chrono::milliseconds window) const noexcept;
  bucket& slot(std::int64_t second);
  void spread(double from_s, double to_s, double area, double arrivals);

  std::vector<bucket> ring_ = std::vector<bucket>(64);
  bool started_ = false;
  clock_time woke_{};
  clock_time last_{};
  double last_area_ = 0;
  std::uint64_t last_arrivals_ = 0;
};

}  // namespace wakegate::scaler
