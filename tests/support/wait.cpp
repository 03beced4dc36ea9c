#include "tests/support/wait.hpp"

#include <thread>

namespace wakegate::test {

bool wait_until(const std::function<bool()>& cond, std::chrono::milliseconds timeout, std::chrono::milliseconds step) {
  auto deadline = std::chrono::steady_clock::now() + timeout;
  for (;;) {
    if (cond()) return true;
    if (std::chrono::steady_clock::now() >= deadline) return false;
    std::this_thread::sleep_for(step);  // poll interval of a deadline wait, not a fixed sleep
  }
}

bool holds_for(const std::function<bool()>& cond, std::chrono::milliseconds duration, std::chrono::milliseconds step) {
  auto deadline = std::chrono::steady_clock::now() + duration;
  for (;;) {
    if (!cond()) return false;
    if (std::chrono::steady_clock::now() >= deadline) return true;
    std::this_thread::sleep_for(step);  // poll interval of a bounded observation
  }
}

}  // namespace wakegate::test
