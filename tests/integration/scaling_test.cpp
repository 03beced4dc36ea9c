// Scaling up under load, bounded by max_instances.
#include <signal.h>

#include <algorithm>
#include <atomic>
#include <catch2/catch.hpp>
#include <future>
#include <mutex>
#include <optional>
#include <set>
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

namespace {

// The instance of `app` with this id in /status; nullopt if there is none.
std::optional<instance_status> instance_of(std::uint16_t admin_port, const std::string& app, const std::string& id) {
  auto st = fetch_app_status(admin_port, app);
  if (!st) return std::nullopt;
  if (const auto* i = st->find(id)) return *i;
  return std::nullopt;
}

int in_flight_of(std::uint16_t admin_port, const std::string& app, const std::string& id) {
  auto i = instance_of(admin_port, app, id);
  return i ? i->in_flight : -1;
}

http_request get_request(const std::string& host, const std::string& target) {
  http_request req;
  req.host = host;
  req.target = target;
  return req;
}

}  // namespace

// README "least-in-flight ready instance with room (ties at random)": requests one at a time (a
// tie every time) reach both instances (a fixed pick would give one of them all 20; a random one
// does so twice in a million), and with one request in flight on one of two ready instances,
// every next request goes to the other one (were the choice random, six in a row would all go
// there one time in 64).
TEST_CASE("a request goes to the ready instance with the fewest requests in flight", "[integration][scaling]") {
  auto marker = unique_marker();
  config_yaml c;
  c.extra.push_back("workers: 1");  // a response's release of its slot comes before the next request
  c.apps.push_back(app_yaml("l", {"l.test"}, marker).set("min_instances", "2").set("max_instances", "2"));
  wakegate_process wg(c.str(), wakegate_options::cleaning({marker}));
  app_status st;
  REQUIRE(wait_app(wg.admin_port(), "l", [](const app_status& a) { return a.count("ready") == 2; }, 15s, &st));

  std::set<std::string> answered_by;
  for (int i = 0; i < 20; ++i) {
    auto r = http_get(wg.http_port(), "l.test", "/");
    INFO("tie " << i << ": " << describe(r));
    CHECK(r.status == 200);
    answered_by.insert(r.body);
  }
  CHECK(answered_by == std::set<std::string>{"ok " + std::to_string(st.instances[0].pid),
                                             "ok " + std::to_string(st.instances[1].pid)});

  auto slow = std::async(std::launch::async, [&] { return http_get(wg.http_port(), "l.test", "/sleep?ms=4000"); });
  REQUIRE(wait_app(
      wg.admin_port(), "l",
      [](const app_status& a) {
        return a.instances.size() == 2 && a.instances[0].in_flight + a.instances[1].in_flight == 1;
      },
      3s, &st));
  const auto& busy = st.instances[0].in_flight == 1 ? st.instances[0] : st.instances[1];
  const auto& idle = st.instances[0].in_flight == 1 ? st.instances[1] : st.instances[0];
  INFO("busy " << busy.id << " (pid " << busy.pid << "), idle " << idle.id << " (pid " << idle.pid << ")");
  for (int i = 0; i < 6; ++i) {
    auto r = http_get(wg.http_port(), "l.test", "/");
    INFO("request " << i << ": " << describe(r));
    CHECK(r.status == 200);
    CHECK(r.body == "ok " + std::to_string(idle.pid));
  }
  CHECK(in_flight_of(wg.admin_port(), "l", busy.id) == 1);  // the slow one was still running
  CHECK(slow.get().status == 200);
}

// README max_concurrency: "a hard cap per instance": with every instance at its cap, a request
// is held (not sent to a full instance), and goes to the first instance that has room again.
TEST_CASE("max_concurrency caps each instance: a request with every instance full is held until one has room",
          "[integration][scaling]") {
  auto marker = unique_marker();
  config_yaml c;
  c.apps.push_back(app_yaml("m", {"m.test"}, marker)
                       .set("min_instances", "2")
                       .set("max_instances", "2")
                       .set("max_concurrency", "1"));
  wakegate_process wg(c.str(), wakegate_options::cleaning({marker}));
  app_status st;
  REQUIRE(wait_app(wg.admin_port(), "m", [](const app_status& a) { return a.count("ready") == 2; }, 15s, &st));

  auto first = std::async(std::launch::async, [&] { return http_get(wg.http_port(), "m.test", "/sleep?ms=4000"); });
  REQUIRE(wait_app(
      wg.admin_port(), "m",
      [](const app_status& a) {
        return a.instances.size() == 2 && a.instances[0].in_flight + a.instances[1].in_flight == 1;
      },
      3s, &st));
  const auto frees_first = st.instances[0].in_flight == 1 ? st.instances[0] : st.instances[1];
  auto second = std::async(std::launch::async, [&] { return http_get(wg.http_port(), "m.test", "/sleep?ms=10000"); });
  REQUIRE(wait_app(
      wg.admin_port(), "m",
      [](const app_status& a) {
        return a.instances.size() == 2 && a.instances[0].in_flight == 1 && a.instances[1].in_flight == 1;
      },
      3s, &st));
  auto third = std::async(std::launch::async, [&] { return http_get(wg.http_port(), "m.test", "/pid?third"); });
  REQUIRE(wait_app(wg.admin_port(), "m", [](const app_status& a) { return a.queue_length == 1; }, 3s, &st));
  // Held while both are full: neither instance gets a second request.
  CHECK(holds_for(
      [&] {
        auto a = fetch_app_status(wg.admin_port(), "m");
        return a && a->queue_length == 1 && a->instances.size() == 2 && a->instances[0].in_flight == 1 &&
               a->instances[1].in_flight == 1;
      },
      500ms));
  auto r = third.get();
  INFO(describe(r));
  CHECK(r.status == 200);
  CHECK(r.body == std::to_string(frees_first.pid));  // the first instance with room again
  CHECK(first.get().status == 200);
  auto rec = wg.access_record("/pid?third");
  CHECK(json_bool(rec, "held") == std::optional<bool>(true));
  CHECK(json_number(rec, "held_ms").value_or(0) >= 500);
  CHECK(second.get().status == 200);
}

// README "The instance removed is the one with the fewest in-flight requests": made deterministic
// by loading the instance that would go first without that rule (the older, first in the list,
// which a tie would also pick), then lowering min_instances by a reload: the idle one is drained,
// the busy one serves on and finishes its request.
TEST_CASE("scale-down drains the instance with the fewest requests in flight", "[integration][scaling]") {
  auto marker = unique_marker();
  config_yaml c;
  c.apps.push_back(app_yaml("d", {"d.test"}, marker).set("min_instances", "2").set("max_instances", "2"));
  wakegate_process wg(c.str(), wakegate_options::cleaning({marker}));
  REQUIRE(wait_app(
      wg.admin_port(), "d", [](const app_status& a) { return a.ids("ready") == std::vector<std::string>{"d-1", "d-2"}; },
      15s));

  // A long request on d-1, and none on d-2. The first one goes to either; if it went to d-2, a
  // second one goes to d-1 (the least loaded) and the first client hangs up.
  client_options quick;
  quick.io_timeout = 20s;
  http_connection a(wg.http_port(), quick), b(wg.http_port(), quick);
  REQUIRE(a.write_request(get_request("d.test", "/sleep?ms=8000")).empty());
  REQUIRE(wait_until(
      [&] { return in_flight_of(wg.admin_port(), "d", "d-1") + in_flight_of(wg.admin_port(), "d", "d-2") == 1; }, 3s));
  http_connection* busy_client = &a;
  if (in_flight_of(wg.admin_port(), "d", "d-1") == 0) {
    REQUIRE(b.write_request(get_request("d.test", "/sleep?ms=8000")).empty());
    REQUIRE(wait_until([&] { return in_flight_of(wg.admin_port(), "d", "d-1") == 1; }, 3s));
    a.close();
    busy_client = &b;
    REQUIRE(wait_until([&] { return in_flight_of(wg.admin_port(), "d", "d-2") == 0; }, 5s));
  }
  REQUIRE(in_flight_of(wg.admin_port(), "d", "d-1") == 1);

  config_yaml one = c;
  one.apps[0].set("min_instances", "1");
  wg.write_config(one.str());
  wg.signal(SIGHUP);
  app_status last;
  CHECK(wait_app(
      wg.admin_port(), "d",
      [](const app_status& a) {
        const auto* d2 = a.find("d-2");
        return a.desired == 1 && a.ids("ready") == std::vector<std::string>{"d-1"} &&
               (d2 == nullptr || d2->state == "draining" || d2->state == "stopped");
      },
      5s, &last));
  INFO("desired " << last.desired << ", ready: " << [&] {
    std::string s;
    for (const auto& id : last.ids("ready")) s += id + " ";
    return s;
  }());
  auto r = busy_client->read_response();
  INFO(describe(r));
  CHECK(r.status == 200);
  CHECK(r.body == "slept 8000");
  CHECK(fetch_app_status(wg.admin_port(), "d").value().ids("ready") == std::vector<std::string>{"d-1"});
}
