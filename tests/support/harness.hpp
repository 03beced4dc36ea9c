// Small tools shared by the integration tests: concurrent request bursts, background sampling,
// readable descriptions for failure messages.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "tests/support/http_client.hpp"

namespace wakegate::test {

// Runs fn(0) ... fn(n - 1) on n threads released together (a latch), returns the responses in
// index order.
std::vector<http_response> run_concurrently(int n, const std::function<http_response(int)>& fn);

// `n` GETs of `target` for `host`, at once, each on a connection of its own whose reads and
// writes may take `io_timeout` (a burst held through a cold start).
std::vector<http_response> get_concurrently(std::uint16_t port, const std::string& host, const std::string& target,
                                            int n, std::chrono::milliseconds io_timeout);

// How many responses have `status` (0 counts those that failed without a status).
int count_status(const std::vector<http_response>& responses, int status);

// "200 (12 ms) body..." or "error: read: ...", for failure messages.
std::string describe(const http_response& r);
// A summary "status -> count" of a set of responses, errors listed.
std::string summarize(const std::vector<http_response>& responses);

// Calls `sample` every `step` on a background thread until stop() or destruction.
class background_sampler {
 public:
  background_sampler(std::function<void()> sample, std::chrono::milliseconds step);
  ~background_sampler();
  background_sampler(const background_sampler&) = delete;
  background_sampler& operator=(const background_sampler&) = delete;
  void stop();  // joins; runs one last sample first

 private:
  std::function<void()> sample_;
  std::chrono::milliseconds step_;
  std::atomic<bool> stop_{false};
  std::thread thread_;
};

}  // namespace wakegate::test

namespace wakegate::test {

std::string to_lower(std::string s);
bool contains(const std::string& haystack, const std::string& needle);
bool starts_with(const std::string& s, const std::string& prefix);

// 1-based line and column of the first occurrence of `needle` in `text` ({0, 0} if absent).
struct text_position {
  int line = 0;
  int column = 0;
};
text_position position_of(const std::string& text, const std::string& needle);

// 64-bit FNV-1a, incrementally: h = fnv1a(h, piece).
constexpr std::uint64_t fnv1a_init = 1469598103934665603ULL;
std::uint64_t fnv1a(std::uint64_t h, std::string_view piece);

}  // namespace wakegate::test
