// load_window: per-second buckets of the exact in-flight integral and of arrivals.
#include <catch2/catch.hpp>

#include "scaler/window.hpp"

using namespace std::chrono_literals;
using wakegate::clock_time;
using wakegate::scaler::load_window;

namespace {
// Feeds a constant in-flight `n` and `rps` arrivals per second from `t` for `seconds`, reading every `step`.
struct feeder {
  load_window w;
  clock_time t = clock_time{} + 500h;
  double area = 0;
  std::uint64_t arrivals = 0;
  void run(double n, std::uint64_t per_step, std::chrono::milliseconds step, int steps) {
    for (int i = 0; i < steps; ++i) {
      t += step;
      area += n * std::chrono::duration<double>(step).count();
      arrivals += per_step;
      w.record(t, area, arrivals);
    }
  }
};
}  // namespace

TEST_CASE("window: constant load averages to itself over any window", "[window]") {
  feeder f;
  f.t += 250ms;  // readings off the bucket boundaries
  f.w.reserve(60s);
  f.w.record(f.t, 0, 0);
  f.run(3, 5, 1s, 100);
  CHECK(f.w.average_concurrency(f.t, 60s) == Approx(3));
  CHECK(f.w.average_concurrency(f.t, 6s) == Approx(3));
  CHECK(f.w.request_rate(f.t, 60s) == Approx(5));
  CHECK(f.w.request_rate(f.t, 6s) == Approx(5));
}

TEST_CASE("window: a step shows in the panic window first", "[window]") {
  feeder f;
  f.w.reserve(60s);
  f.w.record(f.t, 0, 0);
  f.run(1, 1, 1s, 60);
  f.run(31, 10, 1s, 6);
  CHECK(f.w.average_concurrency(f.t, 6s) == Approx(31));
  CHECK(f.w.average_concurrency(f.t, 60s) == Approx((54 * 1 + 6 * 31) / 60.0));
  CHECK(f.w.request_rate(f.t, 6s) == Approx(10));
}

TEST_CASE("window: off the bucket boundaries a step is blurred by at most one bucket", "[window]") {
  feeder f;
  f.t += 250ms;
  f.w.reserve(60s);
  f.w.record(f.t, 0, 0);
  f.run(1, 1, 1s, 60);
  f.run(31, 10, 1s, 6);
  // Exact: 31. Each bucket holds parts of two readings, spread evenly: within one second's worth.
  CHECK(f.w.average_concurrency(f.t, 6s) <= 31);
  CHECK(f.w.average_concurrency(f.t, 6s) >= 31 - 30.0 / 6);
}

TEST_CASE("window: shorter than the window since waking, and reset starts over", "[window]") {
  feeder f;
  f.w.reserve(60s);
  CHECK(f.w.empty());
  f.w.record(f.t, 100, 7);  // the meter's totals before waking do not count
  CHECK(f.w.covered_seconds(f.t) == 0);
  f.area = 100;
  f.arrivals = 7;
  f.run(8, 2, 500ms, 6);  // 3 s
  CHECK(f.w.covered_seconds(f.t) == Approx(3));
  CHECK(f.w.average_concurrency(f.t, 60s) == Approx(8));
  CHECK(f.w.request_rate(f.t, 60s) == Approx(4));
  f.w.reset();
  CHECK(f.w.empty());
  CHECK(f.w.average_concurrency(f.t, 60s) == 0);
}

TEST_CASE("window: right after waking, arrivals are counted over a second at least", "[window]") {
  feeder f;
  f.w.reserve(60s);
  f.w.record(f.t, 0, 0);
  f.run(3, 3, 5ms, 1);  // three requests 5 ms after the wake: not 600 per second
  CHECK(f.w.request_rate(f.t, 6s) == Approx(3));
  CHECK(f.w.request_rate(f.t, 500ms) == Approx(6));  // a window shorter than a second: over the window
  f.run(3, 100, 250ms, 4);  // then 400 per second for a second
  CHECK(f.w.request_rate(f.t, 6s) == Approx(403 / 1.005));
}

TEST_CASE("window: readings further apart than the ring and growing the ring keep the average", "[window]") {
  feeder f;
  f.w.reserve(10s);
  f.w.record(f.t, 0, 0);
  f.run(4, 40, 20s, 3);  // 60 s in 3 readings
  CHECK(f.w.average_concurrency(f.t, 10s) == Approx(4));
  f.w.reserve(60s);
  f.run(4, 4, 1s, 5);
  CHECK(f.w.average_concurrency(f.t, 10s) == Approx(4));
  CHECK(f.w.request_rate(f.t, 5s) == Approx(4));
}
