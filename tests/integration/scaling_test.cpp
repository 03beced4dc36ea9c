// Scaling up under load, bounded by max_instances.
#include <algorithm>
#include <atomic>
#include <catch2/catch.hpp>
#include <mutex>
#include <string>

#include "tests/support/integration.hpp"

using namespace wakegate::test;

namespace {

// Maxima of instance counts seen by a background sampler.
struct instance_watch {
  std::atomic<int> max_live{0};       // /status instances starting|ready|draining
  std::atomic<int> max_ready{0};      // /status instances ready
  std::atomic<int> max_processes{0};  // processes with the marker
  std::atomic<int> max_desired{0};    // /status desired
  std::atomic<int> samples{0};

  void sample(std::uint16_t admin_port, const std::string& app, const std::string& marker) {
    auto raise = [](std::atomic<int>& m, int v) {
      int cur = m.load();
      while (v > cur && !m.compare_exchange_weak(cur, v)) {
      }
    };
    if (auto s = fetch_app_status(admin_port, app)) {
      raise(max_live, s->live());
      raise(max_ready, s->count("ready"));
      raise(max_desired, s->desired);
    }
    raise(max_processes, count_processes(marker));
    ++samples;
  }
};

}  // namespace

TEST_CASE("a burst of 200 concurrent requests to a cold app all get 200 and scale above 1 but never above max_instances",
          "[integration][scaling]") {
  auto marker = unique_marker();
  config_yaml c;
  c.apps.push_back(app_yaml("t", {"t.test"}, marker)
                       .set("target_concurrency", "5")
                       .set("max_instances", "4")
                       .env_var("STARTUP_DELAY_MS", "300"));
  wakegate_process wg(c.str(), wakegate_options::cleaning({marker}));
  REQUIRE(count_processes(marker) == 0);

  instance_watch watch;
  background_sampler sampler([&] { watch.sample(wg.admin_port(), "t", marker); }, 20ms);

  auto responses = get_concurrently(wg.http_port(), "t.test", "/sleep?ms=300", 200, 60s);
  // Scaling may trail the burst a little; keep sampling a bounded while if it has not shown yet.
  wait_until([&] { return watch.max_live.load() > 1; }, 3s);
  sampler.stop();

  INFO("responses: " << summarize(responses));
  INFO("max live " << watch.max_live << ", max ready " << watch.max_ready << ", max processes " << watch.max_processes
                   << ", max desired " << watch.max_desired << ", samples " << watch.samples);
  CHECK(count_status(responses, 200) == 200);
  for (const auto& r : responses)
    if (r.status == 200) CHECK(r.body == "slept 300");
  CHECK(watch.samples > 5);
  CHECK(watch.max_live > 1);
  CHECK(watch.max_live <= 4);
  CHECK(watch.max_processes > 1);
  CHECK(watch.max_processes <= 4);
  CHECK(watch.max_desired <= 4);

  std::optional<double> ok_count;
  CHECK(wait_metric(wg.admin_port(), "wakegate_requests_total", {{"app", "t"}, {"code", "200"}}, 200, 3s, &ok_count));
  INFO("wakegate_requests_total{code=200}: " << ok_count.value_or(-1));
  CHECK(scrape_value(wg.admin_port(), "wakegate_scale_events_total", {{"app", "t"}, {"direction", "up"}}).value_or(0) >=
        1);
  CHECK(scrape_value(wg.admin_port(), "wakegate_cold_start_seconds_count", {{"app", "t"}}).value_or(0) >= 1);
}

TEST_CASE("max_instances is never exceeded under sustained load", "[integration][scaling]") {
  auto marker = unique_marker();
  config_yaml c;
  c.apps.push_back(app_yaml("t", {"t.test"}, marker).set("target_concurrency", "2").set("max_instances", "2"));
  wakegate_process wg(c.str(), wakegate_options::cleaning({marker}));

  instance_watch watch;
  background_sampler sampler([&] { watch.sample(wg.admin_port(), "t", marker); }, 20ms);

  // 40 clients, each looping on one keep-alive connection for a bounded 3 s.
  auto deadline = std::chrono::steady_clock::now() + 3s;
  std::atomic<int> ok{0}, failed{0};
  std::mutex mu;
  std::string first_failure;
  run_concurrently(40, [&](int) {
    http_connection conn(wg.http_port());
    http_request req;
    req.host = "t.test";
    req.target = "/sleep?ms=100";
    while (std::chrono::steady_clock::now() < deadline) {
      auto r = conn.send(req);
      if (r.status == 200) {
        ++ok;
      } else {
        ++failed;
        std::lock_guard lk(mu);
        if (first_failure.empty()) first_failure = describe(r);
      }
    }
    return http_response{};
  });
  sampler.stop();

  INFO("ok " << ok << ", failed " << failed << " (first: " << first_failure << ")");
  INFO("max live " << watch.max_live << ", max processes " << watch.max_processes << ", max desired "
                   << watch.max_desired);
  CHECK(failed == 0);
  CHECK(ok > 40);
  CHECK(watch.max_live == 2);  // reached, never exceeded
  CHECK(watch.max_processes <= 2);
  CHECK(watch.max_desired <= 2);
  auto desired = scrape_value(wg.admin_port(), "wakegate_desired_instances", {{"app", "t"}});
  CHECK(desired.value_or(-1) <= 2);
}
