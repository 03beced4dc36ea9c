#include "common/metrics.hpp"

#include <sys/wait.h>
#include <unistd.h>

#include <array>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <limits>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include <catch2/catch.hpp>

namespace m = wakegate::metrics;

namespace {

std::string number(double v) {
  m::text_writer w;
  w.sample("x", {}, v);
  auto s = w.take();
  return s.substr(2, s.size() - 3);  // strip "x " and "\n"
}

struct run_result {
  int status = -1;
  std::string output;
};

run_result run_shell(const std::string& command) {
  run_result r;
  FILE* p = ::popen(command.c_str(), "r");
  REQUIRE(p != nullptr);
  std::array<char, 4096> buf;
  std::size_t n;
  while ((n = std::fread(buf.data(), 1, buf.size(), p)) > 0) r.output.append(buf.data(), n);
  int st = ::pclose(p);
  r.status = WIFEXITED(st) ? WEXITSTATUS(st) : -1;
  return r;
}

}  // namespace

TEST_CASE("text_writer: counter family with labels", "[metrics]") {
  m::text_writer w;
  w.family("wakegate_requests_total", "counter", "Requests proxied, by app and status code.");
  w.sample("wakegate_requests_total", {{"app", "hello"}, {"code", "200"}}, 42);
  w.sample("wakegate_requests_total", {{"app", "hello"}, {"code", "503"}}, 0);
  CHECK(w.str() ==
        "# HELP wakegate_requests_total Requests proxied, by app and status code.\n"
        "# TYPE wakegate_requests_total counter\n"
        "wakegate_requests_total{app=\"hello\",code=\"200\"} 42\n"
        "wakegate_requests_total{app=\"hello\",code=\"503\"} 0\n");
}

TEST_CASE("text_writer: span overload matches initializer_list overload", "[metrics]") {
  const std::array<m::label, 2> labels{{{"app", "a"}, {"state", "ready"}}};
  m::text_writer a;
  m::text_writer b;
  a.sample("wakegate_instances", std::span<const m::label>(labels), 3);
  b.sample("wakegate_instances", {{"app", "a"}, {"state", "ready"}}, 3);
  CHECK(a.str() == "wakegate_instances{app=\"a\",state=\"ready\"} 3\n");
  CHECK(a.str() == b.str());
}

TEST_CASE("text_writer: escaping in help and label values", "[metrics]") {
  m::text_writer w;
  w.family("x_total", "counter", "back\\slash \"quoted\"\nsecond line");
  w.sample("x_total", {{"path", "C:\\dir"}, {"q", "say \"hi\""}, {"nl", "a\nb"}}, 1);
  CHECK(w.str() ==
        "# HELP x_total back\\\\slash \"quoted\"\\nsecond line\n"
        "# TYPE x_total counter\n"
        "x_total{path=\"C:\\\\dir\",q=\"say \\\"hi\\\"\",nl=\"a\\nb\"} 1\n");
}

TEST_CASE("text_writer: gauge without labels has no braces", "[metrics]") {
  m::text_writer w;
  w.family("wakegate_up", "gauge", "1 while running.");
  w.sample("wakegate_up", {}, 1);
  w.sample("wakegate_up", std::span<const m::label>{}, -2.5);
  CHECK(w.str() ==
        "# HELP wakegate_up 1 while running.\n"
        "# TYPE wakegate_up gauge\n"
        "wakegate_up 1\n"
        "wakegate_up -2.5\n");
}

TEST_CASE("text_writer: number formatting", "[metrics]") {
  CHECK(number(0) == "0");
  CHECK(number(-0.0) == "0");
  CHECK(number(7) == "7");
  CHECK(number(-3) == "-3");
  CHECK(number(123456789012.0) == "123456789012");
  CHECK(number(9007199254740991.0) == "9007199254740991");  // 2^53 - 1: integer path
  CHECK(number(9007199254740992.0) == "9.007199254740992e+15");  // 2^53: shortest round-trip
  CHECK(number(1234567.5) == "1.2345675e+06");
  CHECK(number(1e20) == "1e+20");
  CHECK(number(0.25) == "0.25");
  CHECK(number(0.1) == "0.1");
  CHECK(number(0.1 + 0.2) == "0.30000000000000004");
  CHECK(number(1e-5) == "1e-05");
  CHECK(number(0.0005) == "0.0005");  // %g notation, not the shorter 5e-04
  CHECK(number(1234.5) == "1234.5");
  CHECK(number(-0.0025) == "-0.0025");
  CHECK(number(1.5e300) == "1.5e+300");
  CHECK(number(std::numeric_limits<double>::infinity()) == "+Inf");
  CHECK(number(-std::numeric_limits<double>::infinity()) == "-Inf");
  CHECK(number(std::numeric_limits<double>::quiet_NaN()) == "NaN");
  CHECK(std::strtod(number(0.1 + 0.2).c_str(), nullptr) == 0.1 + 0.2);
}

TEST_CASE("text_writer: +Inf and NaN samples", "[metrics]") {
  m::text_writer w;
  w.family("wakegate_ratio", "gauge", "A ratio.");
  w.sample("wakegate_ratio", {{"app", "a"}}, std::numeric_limits<double>::infinity());
  w.sample("wakegate_ratio", {{"app", "b"}}, -std::numeric_limits<double>::infinity());
  w.sample("wakegate_ratio", {{"app", "c"}}, std::numeric_limits<double>::quiet_NaN());
  CHECK(w.str() ==
        "# HELP wakegate_ratio A ratio.\n"
        "# TYPE wakegate_ratio gauge\n"
        "wakegate_ratio{app=\"a\"} +Inf\n"
        "wakegate_ratio{app=\"b\"} -Inf\n"
        "wakegate_ratio{app=\"c\"} NaN\n");
}

TEST_CASE("text_writer: histogram with cumulative buckets", "[metrics]") {
  const std::array<double, 3> bounds{0.25, 0.5, 1};
  m::histogram h(bounds);
  for (double v : {0.125, 0.25, 0.375, 0.5, 2.0}) h.observe(v);
  const std::array<m::label, 1> labels{{{"app", "hello"}}};
  m::text_writer w;
  w.family("wakegate_request_duration_seconds", "histogram", "Request latency.");
  w.histogram("wakegate_request_duration_seconds", labels, h.snapshot());
  CHECK(w.str() ==
        "# HELP wakegate_request_duration_seconds Request latency.\n"
        "# TYPE wakegate_request_duration_seconds histogram\n"
        "wakegate_request_duration_seconds_bucket{app=\"hello\",le=\"0.25\"} 2\n"
        "wakegate_request_duration_seconds_bucket{app=\"hello\",le=\"0.5\"} 4\n"
        "wakegate_request_duration_seconds_bucket{app=\"hello\",le=\"1\"} 4\n"
        "wakegate_request_duration_seconds_bucket{app=\"hello\",le=\"+Inf\"} 5\n"
        "wakegate_request_duration_seconds_sum{app=\"hello\"} 3.25\n"
        "wakegate_request_duration_seconds_count{app=\"hello\"} 5\n");
}

TEST_CASE("text_writer: histogram without labels", "[metrics]") {
  const std::array<double, 1> bounds{30};
  m::histogram h(bounds);
  h.observe(1.5);
  m::text_writer w;
  w.histogram("x_seconds", {}, h.snapshot());
  CHECK(w.str() ==
        "x_seconds_bucket{le=\"30\"} 1\n"
        "x_seconds_bucket{le=\"+Inf\"} 1\n"
        "x_seconds_sum 1.5\n"
        "x_seconds_count 1\n");
}

TEST_CASE("text_writer: take() returns the text and empties the writer", "[metrics]") {
  m::text_writer w;
  w.sample("a", {}, 1);
  CHECK(w.take() == "a 1\n");
  CHECK(w.str().empty());
  w.sample("b", {}, 2);
  CHECK(w.str() == "b 2\n");
}

TEST_CASE("latency_buckets are the documented bounds", "[metrics]") {
  const std::vector<double> expected{0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1,
                                     0.25,   0.5,   1,      2.5,   5,     10,   30,    60};
  auto b = m::latency_buckets();
  CHECK(std::vector<double>(b.begin(), b.end()) == expected);

  m::histogram h(b);
  m::text_writer w;
  w.histogram("d", {}, h.snapshot());
  CHECK(w.str().find("d_bucket{le=\"0.0005\"} 0\nd_bucket{le=\"0.001\"} 0\nd_bucket{le=\"0.0025\"} 0\n") == 0);
  CHECK(w.str().find("d_bucket{le=\"2.5\"} 0\nd_bucket{le=\"5\"} 0\nd_bucket{le=\"10\"} 0\n") != std::string::npos);
}

TEST_CASE("histogram: a value equal to a bound falls in that bucket", "[metrics]") {
  auto bounds = m::latency_buckets();
  for (std::size_t i = 0; i < bounds.size(); ++i) {
    CAPTURE(i, bounds[i]);
    m::histogram h(bounds);
    h.observe(bounds[i]);
    auto s = h.snapshot();
    REQUIRE(s.counts.size() == bounds.size() + 1);
    for (std::size_t j = 0; j < s.counts.size(); ++j) CHECK(s.counts[j] == (j >= i ? 1u : 0u));

    // Just above the bound: the next bucket.
    m::histogram above(bounds);
    above.observe(std::nextafter(bounds[i], std::numeric_limits<double>::infinity()));
    auto a = above.snapshot();
    for (std::size_t j = 0; j < a.counts.size(); ++j) CHECK(a.counts[j] == (j > i ? 1u : 0u));
  }
}

TEST_CASE("histogram: values outside the bounds", "[metrics]") {
  const std::array<double, 2> bounds{1, 2};
  m::histogram h(bounds);
  h.observe(-5);   // below the first bound: first bucket
  h.observe(100);  // above the last: +Inf only
  h.observe(std::numeric_limits<double>::infinity());
  auto s = h.snapshot();
  CHECK(s.counts == std::vector<std::uint64_t>{1, 1, 3});
  CHECK(s.count == 3);
  CHECK(s.bounds == std::vector<double>{1, 2});

  m::histogram n(bounds);
  n.observe(std::numeric_limits<double>::quiet_NaN());
  auto ns = n.snapshot();
  CHECK(ns.counts == std::vector<std::uint64_t>{0, 0, 1});
  CHECK(std::isnan(ns.sum));
}

TEST_CASE("histogram: rejects bad bounds", "[metrics]") {
  const std::array<double, 2> descending{2, 1};
  const std::array<double, 2> duplicate{1, 1};
  const std::array<double, 2> infinite{1, std::numeric_limits<double>::infinity()};
  const std::array<double, 1> nan{std::numeric_limits<double>::quiet_NaN()};
  const std::vector<double> too_many(m::histogram::max_bounds + 1, 0);
  std::vector<double> most(m::histogram::max_bounds);
  for (std::size_t i = 0; i < most.size(); ++i) most[i] = static_cast<double>(i);
  CHECK_THROWS_AS(m::histogram(descending), std::invalid_argument);
  CHECK_THROWS_AS(m::histogram(duplicate), std::invalid_argument);
  CHECK_THROWS_AS(m::histogram(infinite), std::invalid_argument);
  CHECK_THROWS_AS(m::histogram(nan), std::invalid_argument);
  CHECK_THROWS_AS(m::histogram(too_many), std::invalid_argument);
  CHECK_NOTHROW(m::histogram(most));
  CHECK_NOTHROW(m::histogram(std::span<const double>{}));
}

TEST_CASE("counter gauge and histogram sum their shards", "[metrics]") {
  constexpr std::size_t threads = 8;
  constexpr std::uint64_t per_thread = 100000;
  m::counter c;
  m::sharded_gauge g;
  const std::array<double, 2> bounds{1, 10};
  m::histogram h(bounds);

  std::vector<std::thread> workers;
  for (std::size_t t = 0; t < threads; ++t) {
    workers.emplace_back([&, t] {
      wakegate::this_shard = t + 1;
      for (std::uint64_t i = 0; i < per_thread; ++i) {
        c.add();
        g.add(i % 2 == 0 ? 3 : -1);
        h.observe(i % 2 == 0 ? 0.5 : 5);
      }
      c.add(static_cast<std::uint64_t>(t));
    });
  }
  for (auto& w : workers) w.join();
  c.add(1000);  // main thread, shard 0
  g.add(-7);
  wakegate::this_shard = wakegate::max_shards - 1;  // the last slot is usable too
  c.add(5);
  wakegate::this_shard = 0;

  CHECK(c.value() == threads * per_thread + (0 + 1 + 2 + 3 + 4 + 5 + 6 + 7) + 1000 + 5);
  CHECK(g.value() == static_cast<std::int64_t>(threads * (per_thread / 2) * 2) - 7);
  auto s = h.snapshot();
  CHECK(s.count == threads * per_thread);
  CHECK(s.counts == std::vector<std::uint64_t>{threads * per_thread / 2, threads * per_thread,
                                               threads * per_thread});
  CHECK(s.sum == Approx(threads * (per_thread / 2) * 5.5));
}

TEST_CASE("histogram: sized to the threads in use (shard_count), every one of them counted", "[metrics]") {
  const std::size_t saved = wakegate::shard_count;
  wakegate::shard_count = 3;  // 2 workers and the control thread, as main sets it
  const std::array<double, 1> bounds{1};
  m::histogram h(bounds);
  wakegate::shard_count = saved;  // a histogram keeps the count it was made with
  for (std::size_t t = 0; t < 3; ++t) {
    std::thread([&, t] {
      wakegate::this_shard = t;
      for (std::size_t i = 0; i <= t; ++i) h.observe(0.5);
    }).join();
  }
  auto s = h.snapshot();
  CHECK(s.count == 1 + 2 + 3);
  CHECK(s.sum == Approx(3.0));
}

TEST_CASE("a realistic exposition passes promtool check metrics", "[metrics][promtool]") {
  // Not skippable: the Debian package `prometheus` provides promtool and the test needs it.
  auto which = run_shell("command -v promtool 2>&1");
  INFO("promtool must be on PATH (Debian package `prometheus`)");
  REQUIRE(which.status == 0);

  m::histogram latency(m::latency_buckets());
  for (double v : {0.0003, 0.0005, 0.004, 0.02, 0.02, 0.3, 1.0, 7.5, 45.0, 120.0}) latency.observe(v);
  const std::array<double, 6> cold_bounds{0.1, 0.25, 0.5, 1, 2.5, 10};
  m::histogram cold(cold_bounds);
  cold.observe(0.4);

  m::text_writer w;
  w.family("wakegate_requests_total", "counter", "Requests proxied, by app and status code.");
  w.sample("wakegate_requests_total", {{"app", "hello"}, {"code", "200"}}, 1234);
  w.sample("wakegate_requests_total", {{"app", "hello"}, {"code", "503"}}, 2);
  w.sample("wakegate_requests_total", {{"app", "we\"ird\\app\nname"}, {"code", "200"}}, 1);
  w.family("wakegate_request_duration_seconds", "histogram", "Time from request to last response byte.");
  const std::array<m::label, 1> hello{{{"app", "hello"}}};
  w.histogram("wakegate_request_duration_seconds", hello, latency.snapshot());
  w.family("wakegate_in_flight_requests", "gauge", "Requests in flight, held ones included.");
  w.sample("wakegate_in_flight_requests", {{"app", "hello"}}, 3);
  w.family("wakegate_queued_requests", "gauge", "Requests held while no instance is ready.");
  w.sample("wakegate_queued_requests", {{"app", "hello"}}, 0);
  w.family("wakegate_instances", "gauge", "Instances by state.");
  for (auto state : {"starting", "ready", "draining"})
    w.sample("wakegate_instances", {{"app", "hello"}, {"state", state}}, state[0] == 'r' ? 2 : 0);
  w.family("wakegate_desired_instances", "gauge", "Instances the scaler wants.");
  w.sample("wakegate_desired_instances", {{"app", "hello"}}, 2);
  w.family("wakegate_cold_start_seconds", "histogram", "First held request to instance ready.");
  w.histogram("wakegate_cold_start_seconds", hello, cold.snapshot());
  w.family("wakegate_queue_rejections_total", "counter", "Held requests rejected, by reason.");
  w.sample("wakegate_queue_rejections_total", {{"app", "hello"}, {"reason", "full"}}, 0);
  w.sample("wakegate_queue_rejections_total", {{"app", "hello"}, {"reason", "timeout"}}, 1);
  w.family("wakegate_scale_events_total", "counter", "Scaling decisions that changed desired.");
  w.sample("wakegate_scale_events_total", {{"app", "hello"}, {"direction", "up"}}, 4);
  w.sample("wakegate_scale_events_total", {{"app", "hello"}, {"direction", "down"}}, 2);
  w.family("wakegate_instance_failures_total", "counter", "Instances that failed to start or died.");
  w.sample("wakegate_instance_failures_total", {{"app", "hello"}}, 0);
  w.family("wakegate_load_ratio", "gauge", "Average concurrency over target \\ with a backslash.");
  w.sample("wakegate_load_ratio", {{"app", "hello"}}, 0.30000000000000004);
  w.sample("wakegate_load_ratio", {{"app", "idle"}}, std::numeric_limits<double>::quiet_NaN());
  w.sample("wakegate_load_ratio", {{"app", "huge"}}, std::numeric_limits<double>::infinity());
  const std::string text = w.take();

  auto path = (std::filesystem::temp_directory_path() / "wakegate-metrics-XXXXXX").string();
  int fd = ::mkstemp(path.data());
  REQUIRE(fd >= 0);
  ::close(fd);
  {
    std::ofstream out(path, std::ios::binary);
    out << text;
    REQUIRE(out.good());
  }
  auto r = run_shell("promtool check metrics < '" + path + "' 2>&1");
  std::filesystem::remove(path);
  {
    INFO("exposition:\n" << text);
    INFO("promtool output:\n" << r.output);
    CHECK(r.status == 0);
    CHECK(r.output.empty());
  }

  // The harness does catch problems: a family without HELP and a malformed line are reported.
  auto lint = run_shell("printf 'x_total 1\\n' | promtool check metrics 2>&1");
  CHECK(lint.status != 0);
  CHECK_FALSE(lint.output.empty());
  auto broken = run_shell("printf 'x{a=\"b} 1\\n' | promtool check metrics 2>&1");
  CHECK(broken.status != 0);
  CHECK_FALSE(broken.output.empty());
}
