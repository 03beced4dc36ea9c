// Waiting for a condition with a deadline, instead of sleeping a fixed time.
#pragma once

#include <chrono>
#include <functional>

namespace wakegate::test {

// Polls `cond` every `step` until it is true (returns true) or `timeout` passes (returns false).
bool wait_until(const std::function<bool()>& cond, std::chrono::milliseconds timeout,
                std::chrono::milliseconds step = std::chrono::milliseconds(10));

// The opposite check: polls `cond` every `step` for `duration` and returns false as soon as it is
// false once, true when it held at every sample (for "still true after X passed" assertions).
bool holds_for(const std::function<bool()>& cond, std::chrono::milliseconds duration,
               std::chrono::milliseconds step = std::chrono::milliseconds(20));

}  // namespace wakegate::test
