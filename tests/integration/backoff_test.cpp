// Instances that fail to start, or crash soon after they got ready: held requests get the reason,
// and starts back off (README "Instances"). Found by black-box testing: a wake's instances failing
// together doubled the backoff once each; requests during a long backoff waited the whole
// queue_timeout for a "queue timeout"; a crash loop restarted without any backoff.
#include <algorithm>
#include <catch2/catch.hpp>
#include <future>
#include <string>

#include <boost/json.hpp>

#include "tests/support/integration.hpp"

using namespace wakegate::test;

namespace {

// A number of the app's object in /status; -1 when it cannot be read or is absent.
double status_number(std::uint16_t admin_port, const std::string& app, const char* key) {
  auto st = fetch_status_json(admin_port);
  if (!st) return -1;
  for (const auto& a : st->at("apps").as_array())
    if (a.at("name").as_string() == app) {
      const auto& o = a.as_object();
      return o.contains(key) ? o.at(key).to_number<double>() : -1;
    }
  return -1;
}

int consecutive_failures(std::uint16_t admin_port, const std::string& app) {
  return static_cast<int>(status_number(admin_port, app, "consecutive_failures"));
}

}  // namespace

namespace {

// Requests `host` until an answer says when the next start comes ("next attempt in"): the first
// one answered at once because the backoff outlasts its queue_timeout. Gives up after 20 s.
http_response answer_during_backoff(const wakegate_process& wg, const std::string& host) {
  http_response last;
  CHECK(wait_until(
      [&] {
        last = http_get(wg.http_port(), host, "/");
        return contains(last.body, "next attempt in");
      },
      20s, 50ms));
  return last;
}

}  // namespace

TEST_CASE("failed starts: the reason at once, one backoff step per round of starts, no wait that cannot end well",
          "[integration][failure]") {
  auto marker = unique_marker();
  config_yaml c;
  c.apps.push_back(app_yaml("t", {"t.test"}, marker)
                       .with_command({"/bin/sh", "-c", "exit 3", "--marker=" + marker})
                       .set("initial_instances", "3")
                       .set("max_instances", "3")
                       .set("queue_timeout", "5s"));
  wakegate_process wg(c.str(), wakegate_options::cleaning({marker}));

  // Three instances started together, all failing: the held request gets why once three rounds
  // failed (0, 250 ms, 750 ms), and each round is one step of the backoff, not three.
  auto first = http_get(wg.http_port(), "t.test", "/");
  INFO(describe(first));
  CHECK(first.status == 503);
  CHECK(contains(first.body, "failed to start"));
  CHECK(contains(first.body, "status 3"));
  CHECK(wait_until([&] { return wg.records_with_msg("instance failed", "t").size() >= 9; }, 5s, 20ms));
  // Counted once per round: 3, or 4 if the next round already failed too; nine failures counted
  // one by one would have answered after the first round, at 3.
  const int failures = consecutive_failures(wg.admin_port(), "t");
  CHECK(failures >= 3);
  CHECK(failures <= 4);

  // Rounds 250 ms, 500 ms, 1 s, 2 s, 4 s apart: once the next start is further away than
  // queue_timeout (8 s), a new request is answered with the reason and when the next attempt
  // comes, instead of waiting.
  http_response last = answer_during_backoff(wg, "t.test");
  INFO(describe(last));
  CHECK(last.status == 503);
  CHECK(contains(last.body, "failed to start"));
  CHECK(contains(last.body, "status 3"));
  CHECK_FALSE(contains(last.body, "queue timeout"));
  CHECK(consecutive_failures(wg.admin_port(), "t") >= 3);
}

TEST_CASE("a start that fails too late for a retry within queue_timeout answers the held request with the reason",
          "[integration][failure]") {
  auto marker = unique_marker();
  config_yaml c;
  // Each start fails 1.5 s in; queue_timeout 2 s: a second attempt cannot be ready in time.
  c.apps.push_back(app_yaml("t", {"t.test"}, marker)
                       .with_command({"/bin/sh", "-c", "sleep 1.5; exit 4", "--marker=" + marker})
                       .set("queue_timeout", "2s"));
  wakegate_process wg(c.str(), wakegate_options::cleaning({marker}));
  auto r = http_get(wg.http_port(), "t.test", "/");
  INFO(describe(r));
  CHECK(r.status == 503);
  CHECK(contains(r.body, "failed to start"));
  CHECK(contains(r.body, "status 4"));
  CHECK_FALSE(contains(r.body, "queue timeout"));
}

TEST_CASE("a start that fails once is waited out: the held request is served by the next start", "[integration][failure]") {
  auto marker = unique_marker();
  temp_dir dir;
  const std::string once = dir.path() + "/failed-once";
  config_yaml c;
  // The first start exits 3; the next ones serve.
  c.apps.push_back(app_yaml("t", {"t.test"}, marker)
                       .with_command(test_app_after_shell("mkdir \"$0\" 2>/dev/null && exit 3;", once, marker)));
  wakegate_process wg(c.str(), wakegate_options::cleaning({marker}));
  // Found by black-box testing: answered 503 at the first failure, and the next request got 200.
  auto r = http_get(wg.http_port(), "t.test", "/");
  INFO(describe(r));
  CHECK(r.status == 200);
  CHECK(wg.records_with_msg("instance failed", "t").size() == 1);
}

TEST_CASE("an instance that crashes soon after it got ready is replaced with a backoff, as a failed start is",
          "[integration][failure]") {
  auto marker = unique_marker();
  config_yaml c;
  c.apps.push_back(app_yaml("t", {"t.test"}, marker).set("min_instances", "1").env_var("EXIT_AFTER_MS", "300"));
  wakegate_process wg(c.str(), wakegate_options::cleaning({marker}));
  // The third failure in a row waits 1 s before the next start (250 ms, 500 ms, 1 s, ...).
  CHECK(wait_until(
      [&] {
        return consecutive_failures(wg.admin_port(), "t") >= 3 &&
               status_number(wg.admin_port(), "t", "next_start_in_seconds") > 0.5;
      },
      20s, 20ms));
  CHECK(wg.records_with_msg("instance ready", "t").size() >= 3);
}

TEST_CASE("a crash loop backs off although a healthy sibling stays ready", "[integration][failure]") {
  auto marker = unique_marker();
  temp_dir dir;
  // The first instance to start takes the lock and stays up; every later one crashes 300 ms
  // after it got ready.
  const std::string lock = dir.path() + "/healthy";
  config_yaml c;
  c.apps.push_back(app_yaml("t", {"t.test"}, marker)
                       .with_command(test_app_after_shell(
                           "mkdir \"$0\" 2>/dev/null || export EXIT_AFTER_MS=300;", lock, marker))
                       .set("min_instances", "2")
                       .set("max_instances", "2"));
  wakegate_process wg(c.str(), wakegate_options::cleaning({marker}));
  REQUIRE(wait_until([&] { return consecutive_failures(wg.admin_port(), "t") >= 2; }, 15s, 50ms));
  auto first = fetch_app_status(wg.admin_port(), "t");
  REQUIRE(first);
  const instance_status* oldest = nullptr;
  for (const auto& i : first->instances)
    if (i.state == "ready" && (oldest == nullptr || i.age_seconds > oldest->age_seconds)) oldest = &i;
  REQUIRE(oldest != nullptr);
  const std::string healthy = oldest->id;

  // Backoff 250 ms, 500 ms, 1 s, 2 s, 4 s, 8 s: five failures within about 6 s. Once the healthy
  // instance has been ready for more than 10 s, the count must still be there: it got ready
  // before the failures, so it says nothing about whether the crash loop is over.
  double age = 0;
  CHECK(wait_until(
      [&] {
        auto st = fetch_app_status(wg.admin_port(), "t");
        if (!st) return false;
        for (const auto& i : st->instances)
          if (i.id == healthy) age = i.age_seconds;
        return age > 11;
      },
      20s, 100ms));
  INFO("the healthy instance's age: " << age);
  CHECK(consecutive_failures(wg.admin_port(), "t") >= 5);
  auto st = fetch_app_status(wg.admin_port(), "t");
  REQUIRE(st);
  const auto ready = st->ids("ready");
  CHECK(std::find(ready.begin(), ready.end(), healthy) != ready.end());  // up the whole time, and serving
  CHECK(http_get(wg.http_port(), "t.test", "/").status == 200);
}

// Found in review: a request held while the app backed off after a failed start (nothing ready,
// nothing starting) restarted the cold start's clock, so the metric measured from it, not from
// the first request still waiting.
TEST_CASE("a cold start through failed starts is measured from the first request held for it", "[integration][failure]") {
  auto marker = unique_marker();
  temp_dir dir;
  const std::string flag = dir.path() + "/failed";
  config_yaml c;
  // The first two starts exit 3 (backoffs of 250 and 500 ms follow them); the third serves.
  c.apps.push_back(app_yaml("t", {"t.test"}, marker)
                       .with_command(test_app_after_shell(
                           "mkdir \"$0\" 2>/dev/null && exit 3; mkdir \"$0/2\" 2>/dev/null && exit 3;", flag, marker)));
  wakegate_process wg(c.str(), wakegate_options::cleaning({marker}));
  auto a = std::async(std::launch::async, [&] { return http_get(wg.http_port(), "t.test", "/pid?a"); });
  REQUIRE(wg.wait_for_record(
      [](const auto& x) { return json_string(x, "msg") == "instance failed" && json_string(x, "instance") == "t-2"; },
      10s));
  auto b = http_get(wg.http_port(), "t.test", "/pid?b");  // held during the 500 ms backoff
  CHECK(b.status == 200);
  CHECK(a.get().status == 200);
  double a_held_ms = 0;
  REQUIRE(wg.wait_for_record(
      [&](const auto& x) {
        if (json_string(x, "type") != "access" || json_string(x, "path") != "/pid?a") return false;
        a_held_ms = json_number(x, "held_ms").value_or(0);
        return true;
      },
      5s));
  REQUIRE(wait_metric(wg.admin_port(), "wakegate_cold_start_seconds_count", {{"app", "t"}}, 1, 3s));
  const double measured = scrape_value(wg.admin_port(), "wakegate_cold_start_seconds_sum", {{"app", "t"}}).value_or(0);
  INFO("cold start " << measured << " s; /a held " << a_held_ms << " ms");
  CHECK(measured >= a_held_ms / 1000.0 - 0.05);
}

// README "then with Retry-After set to the wait": a request that arrives while the app backs off
// after failed starts, the next attempt further away than its queue_timeout, gets 503 at once with
// Retry-After equal to the seconds to that attempt, the figure its body gives. queue_timeout 2 s:
// such a wait is at least 2 s, so the field cannot be the default 1 of other 503s.
TEST_CASE("failed starts: the 503 during a backoff longer than queue_timeout has Retry-After set to the wait",
          "[integration][failure]") {
  auto marker = unique_marker();
  config_yaml c;
  c.apps.push_back(app_yaml("t", {"t.test"}, marker)
                       .with_command({"/bin/sh", "-c", "exit 3", "--marker=" + marker})
                       .set("queue_timeout", "2s"));
  wakegate_process wg(c.str(), wakegate_options::cleaning({marker}));
  // Backoffs of 250 ms, 500 ms, 1 s, 2 s, 4 s: until one is longer than 2 s, requests are held
  // for the next start and get the failure without a wait.
  http_response last = answer_during_backoff(wg, "t.test");
  INFO(describe(last));
  CHECK(last.status == 503);
  CHECK(contains(last.body, "failed to start"));
  const auto at = last.body.find("(next attempt in ");
  REQUIRE(at != std::string::npos);
  const int seconds = std::atoi(last.body.c_str() + at + std::string("(next attempt in ").size());
  CHECK(seconds >= 2);
  CHECK(last.header("Retry-After") == std::to_string(seconds));
  CHECK(last.elapsed < 1s);  // answered at once, not held
}
