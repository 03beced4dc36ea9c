#include "scaler/policy.hpp"

#include <cmath>
#include <limits>
#include <string>
#include <vector>

#include <catch2/catch.hpp>

using namespace std::chrono_literals;
using wakegate::config::app_settings;
using wakegate::scaler::clock_time;
using wakegate::scaler::decide;
using wakegate::scaler::policy_decision;
using wakegate::scaler::policy_input;
using wakegate::scaler::policy_state;

namespace {

// A hand-advanced clock; starts well away from the epoch, which means "never requested".
struct virtual_clock {
  clock_time now = clock_time{} + 1000h;
  void advance(std::chrono::nanoseconds d) { now += d; }
};

app_settings make_settings(int min, int max, int target) {
  app_settings s;
  s.min_instances = min;
  s.max_instances = max;
  s.target_concurrency = target;
  s.scale_to_zero_after = 5min;
  s.scale_down_delay = 30s;
  s.target_utilization = 1.0;  // these tests check the core rules with the target as given
  return s;
}

policy_input load(const virtual_clock& c, double avg, int in_flight = 0, int queued = 0) {
  policy_input in;
  in.now = c.now;
  in.stable_concurrency = avg;
  in.in_flight = in_flight;
  in.queued = queued;
  in.last_request = c.now;  // traffic right now
  return in;
}

policy_input idle_since(const virtual_clock& c, clock_time last_request) {
  policy_input in;
  in.now = c.now;
  in.last_request = last_request;
  return in;
}

}  // namespace

TEST_CASE("policy: scales to zero only after scale_to_zero_after without requests", "[policy]") {
  virtual_clock c;
  auto s = make_settings(0, 10, 10);
  policy_state st;
  const clock_time last = c.now;

  auto d = decide(s, load(c, 3), st);
  CHECK(d.desired == 1);

  c.advance(s.scale_to_zero_after - 1ms);
  d = decide(s, idle_since(c, last), st);
  CHECK(d.desired == 1);
  CHECK(std::string(d.reason) == "load");

  c.advance(1ms);  // exactly scale_to_zero_after since the last request
  d = decide(s, idle_since(c, last), st);
  CHECK(d.desired == 0);
  CHECK(std::string(d.reason) == "idle");
  CHECK(st.recent.empty());

  c.advance(1h);
  d = decide(s, idle_since(c, last), st);
  CHECK(d.desired == 0);
  CHECK(std::string(d.reason) == "idle");
}

TEST_CASE("policy: scale_to_zero_after counts from the end of the last request, not its arrival", "[policy]") {
  virtual_clock c;
  auto s = make_settings(0, 10, 10);
  s.scale_to_zero_after = 5s;
  policy_state st;
  const clock_time arrived = c.now;
  c.advance(7s);  // a 7 s request ends now: last seen in flight at this evaluation
  const clock_time ended = c.now;
  auto in = idle_since(c, arrived);
  in.last_busy = ended;
  c.advance(1s);
  in.now = c.now;
  auto d = decide(s, in, st);
  CHECK(d.desired == 1);  // 8 s after it arrived, 1 s after it ended
  c.advance(4s);
  in.now = c.now;
  CHECK(decide(s, in, st).desired == 0);  // 5 s after it ended
}

TEST_CASE("policy: never scales to zero while requests are in flight or queued", "[policy]") {
  virtual_clock c;
  auto s = make_settings(0, 10, 10);
  const clock_time last = c.now;
  c.advance(1h);  // long past scale_to_zero_after

  SECTION("in flight") {
    policy_state st;
    auto in = idle_since(c, last);
    in.in_flight = 1;
    auto d = decide(s, in, st);
    CHECK(d.desired == 1);
    CHECK(std::string(d.reason) == "load");
  }
  SECTION("queued") {
    policy_state st;
    auto in = idle_since(c, last);
    in.queued = 4;
    auto d = decide(s, in, st);
    CHECK(d.desired == 1);
  }
  SECTION("queued on an app that was never requested before") {
    policy_state st;
    auto in = idle_since(c, clock_time{});
    in.queued = 1;
    CHECK(decide(s, in, st).desired == 1);
  }
}

TEST_CASE("policy: a never requested app with min 0 wants no instance", "[policy]") {
  virtual_clock c;
  auto s = make_settings(0, 10, 10);
  policy_state st;
  auto d = decide(s, idle_since(c, clock_time{}), st);
  CHECK(d.desired == 0);
  CHECK(std::string(d.reason) == "idle");
}

TEST_CASE("policy: min_instances is kept", "[policy]") {
  virtual_clock c;
  policy_state st;
  SECTION("min 2, no traffic ever") {
    auto s = make_settings(2, 10, 10);
    auto d = decide(s, idle_since(c, clock_time{}), st);
    CHECK(d.desired == 2);
    CHECK(std::string(d.reason) == "min");
  }
  SECTION("min 1, idle for a long time") {
    auto s = make_settings(1, 10, 10);
    const clock_time last = c.now;
    c.advance(24h);
    auto d = decide(s, idle_since(c, last), st);
    CHECK(d.desired == 1);
    CHECK(std::string(d.reason) == "min");
  }
  SECTION("min 3 with load for 2") {
    auto s = make_settings(3, 10, 10);
    auto d = decide(s, load(c, 15, 15), st);
    CHECK(d.desired == 3);
    CHECK(std::string(d.reason) == "min");
  }
}

TEST_CASE("policy: a burst is cut at max_instances", "[policy]") {
  virtual_clock c;
  auto s = make_settings(0, 5, 10);
  policy_state st;
  auto d = decide(s, load(c, 200, 200), st);
  CHECK(d.desired == 5);
  CHECK(std::string(d.reason) == "max");
}

TEST_CASE("policy: max_instances is never exceeded", "[policy]") {
  virtual_clock c;
  auto s = make_settings(0, 7, 3);
  policy_state st;
  for (double avg : {0.0, 1.0, 20.0, 21.0, 22.0, 1e6, 1e300, std::numeric_limits<double>::infinity(), 5.0, 0.0}) {
    CAPTURE(avg);
    c.advance(1s);
    auto d = decide(s, load(c, avg, 1), st);
    CHECK(d.desired >= 1);
    CHECK(d.desired <= 7);
  }
}

TEST_CASE("policy: target rounding", "[policy]") {
  virtual_clock c;
  auto s = make_settings(0, 100, 10);
  auto desired = [&](double avg) {
    policy_state st;
    return decide(s, load(c, avg), st).desired;
  };
  CHECK(desired(10) == 1);
  CHECK(desired(10.0000000001) == 1);
  CHECK(desired(10.5) == 2);
  CHECK(desired(0.1) == 1);
  CHECK(desired(20) == 2);
  CHECK(desired(20.000001) == 3);
  CHECK(desired(0.1 + 0.2 + 29.7) == 3);  // 30.000000000000004
  CHECK(desired(99.99) == 10);
  // A recent request keeps one instance even when the average is zero.
  CHECK(desired(0) == 1);
}

TEST_CASE("policy: a concurrency target above max_concurrency is capped at it, as Knative does", "[policy]") {
  virtual_clock c;
  auto s = make_settings(0, 100, 10);
  s.max_concurrency = 2;
  policy_state st;
  CHECK(decide(s, load(c, 8), st).desired == 4);  // 8 in flight, 2 per instance (not 10)
  s.max_concurrency = 20;                          // above the target: the target decides
  policy_state st2;
  CHECK(decide(s, load(c, 8), st2).desired == 1);
  s.max_concurrency = 0;  // no limit
  policy_state st3;
  CHECK(decide(s, load(c, 25), st3).desired == 3);
}

TEST_CASE("policy: scale-up is immediate", "[policy]") {
  virtual_clock c;
  auto s = make_settings(0, 10, 10);
  policy_state st;
  CHECK(decide(s, load(c, 5), st).desired == 1);
  c.advance(1s);
  auto d = decide(s, load(c, 50), st);
  CHECK(d.desired == 5);
  CHECK(std::string(d.reason) == "load");
  c.advance(1s);
  CHECK(decide(s, load(c, 80), st).desired == 8);
}

TEST_CASE("policy: scale-down waits exactly scale_down_delay", "[policy]") {
  virtual_clock c;
  auto s = make_settings(0, 10, 10);
  policy_state st;
  for (int i = 0; i < 10; ++i) {
    CHECK(decide(s, load(c, 50), st).desired == 5);
    c.advance(1s);
  }
  // Demand is lower from here on; evaluations every second.
  const clock_time lowered = c.now;
  while (c.now < lowered + s.scale_down_delay) {
    CAPTURE((c.now - lowered) / 1ms);
    auto d = decide(s, load(c, 12), st);
    CHECK(d.desired == 5);
    CHECK(std::string(d.reason) == "delay");
    c.advance(1s);
  }
  REQUIRE(c.now == lowered + s.scale_down_delay);
  auto d = decide(s, load(c, 12), st);
  CHECK(d.desired == 2);
  CHECK(std::string(d.reason) == "load");
  c.advance(1s);
  CHECK(decide(s, load(c, 12), st).desired == 2);
}

TEST_CASE("policy: a short spike holds the higher count for the delay", "[policy]") {
  virtual_clock c;
  auto s = make_settings(0, 10, 10);
  policy_state st;
  CHECK(decide(s, load(c, 5), st).desired == 1);
  c.advance(1s);
  CHECK(decide(s, load(c, 70), st).desired == 7);  // the spike
  c.advance(1s);
  CHECK(decide(s, load(c, 30), st).desired == 7);
  c.advance(s.scale_down_delay - 1s);  // spike exactly scale_down_delay ago: still held
  CHECK(decide(s, load(c, 30), st).desired == 7);
  c.advance(1ms);
  auto d = decide(s, load(c, 30), st);
  CHECK(d.desired == 3);
  CHECK(std::string(d.reason) == "load");
}

TEST_CASE("policy: scale_down_delay 0 follows the load", "[policy]") {
  virtual_clock c;
  auto s = make_settings(0, 10, 10);
  s.scale_down_delay = 0s;
  policy_state st;
  for (double avg : {80.0, 20.0, 55.0, 10.0, 10.0}) {
    auto d = decide(s, load(c, avg), st);
    CHECK(d.desired == static_cast<int>(std::ceil(avg / 10)));
    CHECK(std::string(d.reason) == "load");
  }
  c.advance(1s);
  CHECK(decide(s, load(c, 5), st).desired == 1);
  CHECK(st.recent.size() == 1);
}

TEST_CASE("policy: scale_down_delay holds the largest result of the delay, in memory bounded by the results", "[policy]") {
  virtual_clock c;
  auto s = make_settings(0, 10, 10);
  s.scale_down_delay = 20s;
  policy_state st;
  std::vector<std::pair<clock_time, int>> all;  // every result, for the maximum computed the long way
  std::uint32_t seed = 12345;
  std::size_t longest = 0;
  for (int i = 0; i < 5000; ++i) {  // 100 ms apart: 200 evaluations per delay
    seed = seed * 1664525u + 1013904223u;
    const double avg = static_cast<double>((seed >> 16) % 100);
    auto in = load(c, avg);
    const int want = static_cast<int>(std::ceil(avg / 10));
    all.emplace_back(c.now, want);
    int expected = 0;
    for (const auto& [at, w] : all)
      if (at >= c.now - s.scale_down_delay) expected = std::max(expected, w);
    CAPTURE(i);
    REQUIRE(decide(s, in, st).desired == std::max(expected, 0));
    longest = std::max(longest, st.recent.size());
    c.advance(100ms);
  }
  // Kept: only results that may still be the largest, fewer than the distinct values (0-10).
  CHECK(longest <= 11);
}

TEST_CASE("policy: delay held above max is reported as max", "[policy]") {
  virtual_clock c;
  auto s = make_settings(0, 4, 10);
  policy_state st;
  CHECK(decide(s, load(c, 90), st).desired == 4);
  c.advance(1s);
  auto d = decide(s, load(c, 10), st);
  CHECK(d.desired == 4);
  CHECK(std::string(d.reason) == "max");
}

TEST_CASE("policy: decide is a function of its inputs", "[policy]") {
  virtual_clock c;
  auto s = make_settings(0, 10, 10);
  policy_state st;
  decide(s, load(c, 40), st);
  c.advance(3s);
  policy_state copy = st;
  auto in = load(c, 12);
  auto a = decide(s, in, st);
  auto b = decide(s, in, copy);
  CHECK(a.desired == b.desired);
  CHECK(std::string(a.reason) == b.reason);
  CHECK(st.recent == copy.recent);
}
