#include <catch2/catch.hpp>

#include <thread>

#include "scaler/concurrency.hpp"

using wakegate::scaler::concurrency_meter;

TEST_CASE("concurrency meter: the integral is exact for a known schedule", "[concurrency]") {
  concurrency_meter m;
  const std::int64_t s = 1'000'000'000;
  m.add(+1, 0);       // 1 in flight from t=0
  m.add(+1, 1 * s);   // 2 from t=1
  m.add(-1, 3 * s);   // 1 from t=3
  auto r = m.read(4 * s);
  // 1*1 + 2*2 + 1*1 = 6 request-seconds
  CHECK(r.area == Approx(6.0));
  CHECK(r.in_flight == 1);
  CHECK(r.arrivals == 2);
  m.add(-1, 4 * s);
  CHECK(m.read(10 * s).area == Approx(6.0));
  CHECK(m.in_flight() == 0);
  // When the last request ended, for scale_to_zero_after: not when a reading last saw one.
  CHECK(m.read(10 * s).last_change_ns == 4 * s);
}

TEST_CASE("concurrency meter: the last change is the latest over the threads' slots", "[concurrency]") {
  concurrency_meter m;
  std::thread a([&m] {
    wakegate::this_shard = 1;
    m.add(+1, 100);
    m.add(-1, 700);
  });
  a.join();
  std::thread b([&m] {
    wakegate::this_shard = 2;
    m.add(+1, 200);
    m.add(-1, 500);
  });
  b.join();
  CHECK(m.read(1000).last_change_ns == 700);
}

TEST_CASE("concurrency meter: slots of several threads add up", "[concurrency]") {
  concurrency_meter m;
  std::vector<std::thread> threads;
  for (std::size_t t = 0; t < 4; ++t)
    threads.emplace_back([&m, t] {
      wakegate::this_shard = t;
      for (int i = 0; i < 1000; ++i) {
        m.add(+1, 10);
        m.add(-1, 10);
      }
      m.add(+1, 10);
    });
  for (auto& t : threads) t.join();
  auto r = m.read(20);
  CHECK(r.in_flight == 4);
  CHECK(r.arrivals == 4004);
  CHECK(r.area == Approx(4 * 10 / 1e9));
}
