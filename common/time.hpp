// The one clock of the request path and the scaler.
#pragma once

#include <chrono>
#include <cstdint>

namespace wakegate {

using steady = std::chrono::steady_clock;
using clock_time = steady::time_point;

inline std::int64_t now_ns() noexcept {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(steady::now().time_since_epoch()).count();
}

inline double seconds_between(clock_time a, clock_time b) noexcept {
  return std::chrono::duration<double>(b - a).count();
}

}  // namespace wakegate
