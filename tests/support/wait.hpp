// Waiting for a condition with a deadline, instead of sleeping a fixed time.
#pragma once

#include <chrono>
#include <functional>

namespace wakegate::test {

// Polls `cond` every `step` until it is true (returns true) or `timeout` passes (returns false).
bool wait_until(const std::function<bool()>& cond, std::chrono::milliseconds timeout,
                std::chrono::milliseconds step = std::chrono::milliseconds(10));

}  // namespace wakegate::test
