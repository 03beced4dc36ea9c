#include "tests/support/harness.hpp"

#include <cctype>
#include <latch>
#include <map>

namespace wakegate::test {

std::vector<http_response> run_concurrently(int n, const std::function<http_response(int)>& fn) {
  std::vector<http_response> out(static_cast<std::size_t>(n));
  std::latch go(n + 1);
  std::vector<std::thread> threads;
  threads.reserve(static_cast<std::size_t>(n));
  for (int i = 0; i < n; ++i) {
    threads.emplace_back([&, i] {
      go.arrive_and_wait();
      out[static_cast<std::size_t>(i)] = fn(i);
    });
  }
  go.arrive_and_wait();
  for (auto& t : threads) t.join();
  return out;
}

std::vector<http_response> get_concurrently(std::uint16_t port, const std::string& host, const std::string& target,
                                            int n, std::chrono::milliseconds io_timeout) {
  client_options options;
  options.io_timeout = io_timeout;
  return run_concurrently(n, [&](int) {
    http_request req;
    req.host = host;
    req.target = target;
    return http_send(port, req, {}, options);
  });
}

int count_status(const std::vector<http_response>& responses, int status) {
  int n = 0;
  for (const auto& r : responses)
    if (r.status == status) ++n;
  return n;
}

std::string describe(const http_response& r) {
  std::string s;
  if (r.status) s += std::to_string(r.status) + " ";
  s += "(" + std::to_string(r.elapsed.count()) + " ms)";
  if (!r.error.empty()) s += " error: " + r.error;
  if (!r.write_error.empty()) s += " write error: " + r.write_error;
  if (!r.body.empty()) s += " body: " + r.body.substr(0, 200);
  return s;
}

std::string summarize(const std::vector<http_response>& responses) {
  std::map<int, int> by_status;
  std::map<std::string, int> errors;
  for (const auto& r : responses) {
    ++by_status[r.status];
    if (!r.error.empty()) ++errors[r.error];
  }
  std::string s;
  for (const auto& [status, n] : by_status) s += std::to_string(status) + " x" + std::to_string(n) + "; ";
  for (const auto& [e, n] : errors) s += "error '" + e + "' x" + std::to_string(n) + "; ";
  return s;
}

background_sampler::background_sampler(std::function<void()> sample, std::chrono::milliseconds step)
    : sample_(std::move(sample)), step_(step) {
  thread_ = std::thread([this] {
    while (!stop_.load()) {
      sample_();
      std::this_thread::sleep_for(step_);  // poll period of the sampler
    }
    sample_();
  });
}

background_sampler::~background_sampler() { stop(); }

void background_sampler::stop() {
  stop_ = true;
  if (thread_.joinable()) thread_.join();
}

}  // namespace wakegate::test

namespace wakegate::test {

std::string to_lower(std::string s) {
  for (auto& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return s;
}

bool contains(const std::string& haystack, const std::string& needle) {
  return haystack.find(needle) != std::string::npos;
}

bool starts_with(const std::string& s, const std::string& prefix) { return s.rfind(prefix, 0) == 0; }

text_position position_of(const std::string& text, const std::string& needle) {
  auto at = text.find(needle);
  if (at == std::string::npos) return {};
  text_position p{1, 1};
  for (std::size_t i = 0; i < at; ++i) {
    if (text[i] == '\n') {
      ++p.line;
      p.column = 1;
    } else {
      ++p.column;
    }
  }
  return p;
}

std::uint64_t fnv1a(std::uint64_t h, std::string_view piece) {
  for (unsigned char c : piece) {
    h ^= c;
    h *= 1099511628211ULL;
  }
  return h;
}

}  // namespace wakegate::test
