// The Knative-class rules of decide(), one by one, with a virtual clock: stable and panic windows,
// panic entry and exit, rate limits, initial instances, the cold-burst estimate, rps, keep_warm.
#include <catch2/catch.hpp>
#include <string>

#include "scaler/policy.hpp"

using namespace std::chrono_literals;
using wakegate::config::app_settings;
using wakegate::config::scale_metric;
using wakegate::scaler::clock_time;
using wakegate::scaler::decide;
using wakegate::scaler::keep_warm_period;
using wakegate::scaler::policy_input;
using wakegate::scaler::policy_state;

namespace {

struct virtual_clock {
  clock_time now = clock_time{} + 1000h;
  void advance(std::chrono::nanoseconds d) { now += d; }
};

// Knative's defaults (config.hpp), plus max_instances high enough not to interfere.
app_settings knative(int target) {
  app_settings s;
  s.target_concurrency = target;
  s.max_instances = 1000;
  s.scale_down_delay = 0s;
  return s;
}

policy_input observed(const virtual_clock& c, double stable, double panic, int ready) {
  policy_input in;
  in.now = c.now;
  in.stable_concurrency = stable;
  in.panic_concurrency = panic;
  in.in_flight = static_cast<int>(panic);
  in.last_request = c.now;
  in.ready = ready;
  in.current = ready;
  return in;
}

}  // namespace

TEST_CASE("knative: defaults match Knative's", "[policy][knative]") {
  app_settings s;
  CHECK(s.stable_window == 60s);
  CHECK(s.panic_window == 6s);
  CHECK(s.panic_threshold == 2.0);
  CHECK(s.target_utilization == 0.7);
  CHECK(s.max_scale_up_rate == 1000);
  CHECK(s.max_scale_down_rate == 2);
  CHECK(s.initial_instances == 1);
  CHECK(s.metric == scale_metric::concurrency);
  CHECK_FALSE(s.keep_warm_auto);
}

TEST_CASE("knative: worked example -- 1 ready, target 100 at 70%, 350 over the panic window -> 5 in panic",
          "[policy][knative]") {
  virtual_clock c;
  auto s = knative(100);
  policy_state st;
  auto d = decide(s, observed(c, 70, 350, 1), st);
  CHECK(d.panic_wanted == 5);  // ceil(350 / 70)
  CHECK(d.stable_wanted == 1);
  CHECK(d.panic);
  CHECK(d.desired == 5);
  CHECK(std::string(d.reason) == "panic");
  CHECK(st.panicking());
}

TEST_CASE("knative: stable mode follows ceil(stable / (target * utilization))", "[policy][knative]") {
  virtual_clock c;
  auto s = knative(10);  // tv = 7
  policy_state st;
  // Ready 10, panic window close to the stable one: no panic.
  for (auto [stable, want] : std::initializer_list<std::pair<double, int>>{{70, 10}, {70.5, 11}, {63, 9}, {77, 11}}) {
    CAPTURE(stable);
    auto d = decide(s, observed(c, stable, stable, 10), st);
    CHECK_FALSE(d.panic);
    CHECK(d.desired == want);
    CHECK(std::string(d.reason) == "load");
    c.advance(1s);
  }
}

TEST_CASE("knative: panic starts at panic_threshold x ready, not below", "[policy][knative]") {
  virtual_clock c;
  auto s = knative(10);  // tv = 7
  policy_state st;
  // 4 ready: threshold 200% -> panic at ceil(panic / 7) >= 8, i.e. panic > 49.
  auto d = decide(s, observed(c, 20, 49, 4), st);
  CHECK_FALSE(d.panic);
  CHECK(d.desired == 3);  // stable: ceil(20/7)
  c.advance(1s);
  d = decide(s, observed(c, 20, 49.5, 4), st);
  CHECK(d.panic);
  CHECK(d.desired == 8);

  // A 300% threshold needs 12.
  auto s3 = s;
  s3.panic_threshold = 3.0;
  policy_state st3;
  CHECK_FALSE(decide(s3, observed(c, 20, 77, 4), st3).panic);  // 11
  CHECK(decide(s3, observed(c, 20, 78, 4), st3).panic);        // 12
}

TEST_CASE("knative: panic never scales down and holds for a stable window after the last overload",
          "[policy][knative]") {
  virtual_clock c;
  auto s = knative(10);
  s.stable_window = 60s;
  policy_state st;
  auto d = decide(s, observed(c, 10, 140, 2), st);  // wants 20 >= 2 x 2
  REQUIRE(d.panic);
  CHECK(d.desired == 20);
  // Still overloaded at 10 s: the panic time moves.
  c.advance(10s);
  d = decide(s, observed(c, 30, 100, 20), st);  // 15 wanted, 15/20 < 2: under the threshold now
  CHECK(d.panic);
  CHECK(d.desired == 20);  // never down while panicking
  c.advance(1s);
  d = decide(s, observed(c, 30, 300, 20), st);  // 43 wanted: up is allowed
  CHECK(d.desired == 43);
  CHECK(d.panic);
  const clock_time last_over = c.now;  // 43 / 20 >= 2
  // Under the threshold from here: panic holds until a whole stable window has passed.
  while (c.now < last_over + s.stable_window) {
    c.advance(5s);
    d = decide(s, observed(c, 30, 30, 43), st);
    if (c.now <= last_over + s.stable_window) {
      CHECK(d.panic);
      CHECK(d.desired == 43);
    }
  }
  c.advance(1ms);
  d = decide(s, observed(c, 30, 30, 43), st);
  CHECK_FALSE(d.panic);
  CHECK_FALSE(st.panicking());
  CHECK(d.desired == 21);  // stable wants ceil(30/7) = 5, but max_scale_down_rate 2: floor(43/2)
}

TEST_CASE("knative: max_scale_up_rate caps at ceil(rate x ready), ready counted as at least 1", "[policy][knative]") {
  virtual_clock c;
  auto s = knative(10);
  s.max_scale_up_rate = 2.5;
  s.panic_threshold = 10.0;  // keep panic out of this test
  policy_state st;
  CHECK(decide(s, observed(c, 700, 0, 3), st).desired == 8);   // ceil(2.5 * 3)
  CHECK(decide(s, observed(c, 700, 0, 0), st).desired == 3);   // ceil(2.5 * 1)
  CHECK(decide(s, observed(c, 700, 0, 40), st).desired == 100);  // under the cap: ceil(700 / 7)
}

TEST_CASE("knative: max_scale_down_rate keeps at least floor(ready / rate)", "[policy][knative]") {
  virtual_clock c;
  auto s = knative(10);
  policy_state st;
  CHECK(decide(s, observed(c, 1, 1, 10), st).desired == 5);  // floor(10 / 2)
  CHECK(decide(s, observed(c, 1, 1, 5), st).desired == 2);
  CHECK(decide(s, observed(c, 1, 1, 2), st).desired == 1);
  s.max_scale_down_rate = 4;
  CHECK(decide(s, observed(c, 1, 1, 10), st).desired == 2);
}

TEST_CASE("knative: scale_down_delay holds the maximum of the window, then clamps", "[policy][knative]") {
  virtual_clock c;
  auto s = knative(10);
  s.scale_down_delay = 10s;
  s.max_scale_down_rate = 1000;
  s.max_instances = 6;
  policy_state st;
  CHECK(decide(s, observed(c, 35, 35, 5), st).desired == 5);
  c.advance(5s);
  auto d = decide(s, observed(c, 7, 7, 5), st);
  CHECK(d.desired == 5);
  CHECK(std::string(d.reason) == "delay");
  c.advance(5s);
  CHECK(decide(s, observed(c, 7, 7, 5), st).desired == 5);  // exactly the delay ago: still in
  c.advance(1ms);
  CHECK(decide(s, observed(c, 7, 7, 5), st).desired == 1);
  c.advance(1s);
  d = decide(s, observed(c, 70, 70, 1), st);  // 10 wanted, max 6
  CHECK(d.desired == 6);
  CHECK(std::string(d.reason) == "max");
}

TEST_CASE("knative: metric rps uses target_rps x utilization", "[policy][knative]") {
  virtual_clock c;
  auto s = knative(10);
  s.metric = scale_metric::rps;
  s.target_rps = 50;
  s.target_utilization = 0.8;  // tv = 40 req/s
  policy_state st;
  auto in = observed(c, 1, 1, 2);  // concurrency is ignored
  in.stable_rps = 100;
  in.panic_rps = 100;
  auto d = decide(s, in, st);
  CHECK(d.stable_wanted == 3);
  CHECK(d.desired == 3);
  in.panic_rps = 161;  // ceil(161/40) = 5 >= 2 x 2
  d = decide(s, in, st);
  CHECK(d.panic);
  CHECK(d.desired == 5);
}

TEST_CASE("initial_instances: started at once on wake and on boot with a minimum", "[policy][knative]") {
  virtual_clock c;
  auto s = knative(10);
  s.initial_instances = 3;
  s.scale_down_delay = 30s;
  policy_state st;
  auto in = observed(c, 1, 1, 0);
  in.current = 0;
  auto d = decide(s, in, st);
  CHECK(d.desired == 3);
  CHECK(std::string(d.reason) == "initial");
  // Instances exist now: the delay keeps them, the rule does not apply again.
  c.advance(1s);
  in = observed(c, 1, 1, 0);
  in.current = 3;
  d = decide(s, in, st);
  CHECK(d.desired == 3);
  CHECK(std::string(d.reason) == "delay");
  c.advance(31s);
  in.now = c.now;
  in.last_request = c.now;
  CHECK(decide(s, in, st).desired == 1);

  // Boot: no traffic, min 1 -> initial_instances.
  auto b = knative(10);
  b.min_instances = 1;
  b.initial_instances = 2;
  policy_state bst;
  policy_input boot;
  boot.now = c.now;
  CHECK(decide(b, boot, bst).desired == 2);
  // ... while min 0 and no traffic boots nothing.
  b.min_instances = 0;
  policy_state bst0;
  CHECK(decide(b, boot, bst0).desired == 0);
}

TEST_CASE("cold burst: the start estimate sizes the wake for the held queue and the arrivals to come",
          "[policy][knative]") {
  virtual_clock c;
  auto s = knative(10);  // tv 7
  policy_state st;
  policy_input in;
  in.now = c.now;
  in.last_request = c.now;
  in.in_flight = in.queued = 50;
  in.stable_concurrency = in.panic_concurrency = 25;
  in.panic_rps = 100;
  in.ready = 0;
  in.current = 1;  // one already starting
  in.start_estimate = 2.0;
  auto d = decide(s, in, st);
  CHECK(d.desired == 36);  // ceil((50 + 100 x 2) / 7)
  CHECK(std::string(d.reason) == "cold-burst");
  // With a hard limit per instance, each takes max_concurrency of them at once.
  policy_state st1;
  s.max_concurrency = 20;
  CHECK(decide(s, in, st1).desired == 13);  // ceil(250 / 20)
  s.max_concurrency = 0;
  // Without an estimate yet: Knative's rules alone (panic over the short window).
  policy_state st2;
  in.start_estimate = 0;
  d = decide(s, in, st2);
  CHECK(d.desired == 4);  // ceil(25 / 7)
  // Once an instance is ready, the estimate is no longer used.
  policy_state st3;
  in.start_estimate = 2.0;
  in.ready = 1;
  CHECK(decide(s, in, st3).desired == 4);
}

TEST_CASE("schedule raises the minimum and says so", "[policy][knative]") {
  virtual_clock c;
  auto s = knative(10);
  s.min_instances = 1;
  s.max_instances = 5;
  policy_state st;
  policy_input in;
  in.now = c.now;
  in.scheduled_min = 3;
  in.current = 1;
  auto d = decide(s, in, st);
  CHECK(d.desired == 3);
  CHECK(std::string(d.reason) == "schedule");
  in.scheduled_min = 9;  // never above max_instances
  CHECK(decide(s, in, st).desired == 5);
  in.scheduled_min = 0;
  d = decide(s, in, st);
  CHECK(d.desired == 1);
  CHECK(std::string(d.reason) == "min");
}

TEST_CASE("keep_warm auto: the idle period is learnt from gaps between requests", "[policy][knative]") {
  virtual_clock c;
  auto s = knative(10);
  s.scale_to_zero_after = 5min;
  s.keep_warm_auto = true;
  policy_state st;
  policy_input in;
  auto request_at = [&](clock_time t) {
    in = policy_input{};
    in.now = t;
    in.last_request = t;
    in.current = 1;
    in.ready = 1;
    return decide(s, in, st);
  };
  // Fewer than 4 gaps: scale_to_zero_after.
  for (int i = 0; i < 4; ++i) {
    CHECK(request_at(c.now).grace == 5min);
    c.advance(10s);
  }
  auto d = request_at(c.now);  // 4 gaps of 10 s seen
  CHECK(d.grace == 12500ms);   // 1.25 x 10 s
  const clock_time last = c.now;
  // Idle: one instance until the learnt period has passed, then zero.
  in.last_request = last;
  in.now = last + 12499ms;
  CHECK(decide(s, in, st).desired == 1);
  in.now = last + 12500ms;
  d = decide(s, in, st);
  CHECK(d.desired == 0);
  CHECK(std::string(d.reason) == "idle");
  CHECK(keep_warm_period(s, st) == 12500ms);

  SECTION("never above scale_to_zero_after") {
    for (int i = 0; i < 8; ++i) {
      c.advance(20min);
      request_at(c.now);
    }
    CHECK(keep_warm_period(s, st) == 5min);
  }
  SECTION("never below panic_window; gaps under 2 s are traffic, not gaps") {
    for (int i = 0; i < 80; ++i) {  // the ring keeps the latest 32 gaps
      c.advance(i % 2 ? 1s : 2s);
      request_at(c.now);
    }
    CHECK(keep_warm_period(s, st) == s.panic_window);  // 1.25 x 2 s < 6 s
  }
  SECTION("off: scale_to_zero_after") {
    s.keep_warm_auto = false;
    CHECK(keep_warm_period(s, st) == 5min);
  }
}
