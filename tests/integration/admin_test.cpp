// The admin listener: /healthz, /readyz, /status, /metrics (checked by promtool, counts exact).
#include <catch2/catch.hpp>
#include <csignal>
#include <future>
#include <string>

#include "tests/support/integration.hpp"

using namespace wakegate::test;

TEST_CASE("admin /healthz and /readyz answer 200 once ready", "[integration][admin]") {
  auto marker = unique_marker();
  config_yaml c;
  c.apps.push_back(app_yaml("t", {"t.test"}, marker));
  wakegate_process wg(c.str(), wakegate_options::cleaning({marker}));

  auto health = http_get(wg.admin_port(), "127.0.0.1", "/healthz");
  INFO(describe(health));
  CHECK(health.status == 200);
  CHECK(starts_with(health.body, "ok"));
  auto ready = http_get(wg.admin_port(), "127.0.0.1", "/readyz");
  INFO(describe(ready));
  CHECK(ready.status == 200);

  auto status = fetch_status(wg.admin_port());
  REQUIRE(status);
  REQUIRE(status->size() == 1);
  const auto& app = status->front();
  CHECK(app.name == "t");
  CHECK(app.hosts == std::vector<std::string>{"t.test"});
  CHECK(app.min_instances == 0);
  CHECK(app.max_instances == 10);
  CHECK(app.queue_length == 0);
  CHECK(app.instances.empty());
}

TEST_CASE("/metrics passes promtool and counts exactly what the test did", "[integration][admin]") {
  auto marker = unique_marker();
  config_yaml c;
  c.apps.push_back(app_yaml("t", {"t.test"}, marker).set("min_instances", "1"));
  wakegate_process wg(c.str(), wakegate_options::cleaning({marker}));
  REQUIRE(wait_one_ready(wg.admin_port(), "t"));

  int ok = 0;
  http_connection conn(wg.http_port());
  for (int i = 0; i < 7; ++i) {
    http_request req;
    req.host = "t.test";
    req.target = "/";
    auto r = (i % 2 == 0) ? conn.send(req) : http_send(wg.http_port(), req);  // kept-alive and new connections
    INFO(describe(r));
    if (r.status == 200) ++ok;
  }
  CHECK(ok == 7);
  CHECK(http_get(wg.http_port(), "unknown.test", "/").status == 404);
  CHECK(http_get(wg.http_port(), "t.test", "/no-such-path").status == 404);  // the instance's own 404

  std::optional<double> requests;
  CHECK(wait_metric(wg.admin_port(), "wakegate_requests_total", {{"app", "t"}, {"code", "200"}}, ok, 3s, &requests));
  INFO("wakegate_requests_total{app=t,code=200}: " << requests.value_or(-1));
  CHECK(wait_metric(wg.admin_port(), "wakegate_requests_total", {{"app", "t"}, {"code", "404"}}, 1, 3s));
  CHECK(wait_metric(wg.admin_port(), "wakegate_request_duration_seconds_count", {{"app", "t"}}, ok + 1, 3s));

  auto text = fetch_metrics(wg.admin_port());
  REQUIRE(text);
  INFO("metrics:\n" << *text);

  auto check = promtool_check_metrics(*text);
  INFO("promtool: " << check.output);
  REQUIRE(check.ran);
  CHECK(check.exit_code == 0);

  // Gauges agree with /status.
  auto st = fetch_app_status(wg.admin_port(), "t");
  REQUIRE(st);
  CHECK(metric_value(*text, "wakegate_instances", {{"app", "t"}, {"state", "ready"}}).value_or(-1) ==
        st->count("ready"));
  CHECK(metric_value(*text, "wakegate_instances", {{"app", "t"}, {"state", "starting"}}).value_or(0) ==
        st->count("starting"));
  CHECK(metric_value(*text, "wakegate_desired_instances", {{"app", "t"}}).value_or(-1) == st->desired);
  CHECK(metric_value(*text, "wakegate_in_flight_requests", {{"app", "t"}}).value_or(-1) == 0);
  CHECK(metric_value(*text, "wakegate_queued_requests", {{"app", "t"}}).value_or(-1) == 0);
  CHECK(metric_value(*text, "wakegate_request_duration_seconds_bucket", {{"app", "t"}, {"le", "+Inf"}}).value_or(-1) ==
        ok + 1);

  // Every documented family is there with its type.
  CHECK(metric_type(*text, "wakegate_requests_total") == "counter");
  CHECK(metric_type(*text, "wakegate_request_duration_seconds") == "histogram");
  CHECK(metric_type(*text, "wakegate_in_flight_requests") == "gauge");
  CHECK(metric_type(*text, "wakegate_queued_requests") == "gauge");
  CHECK(metric_type(*text, "wakegate_instances") == "gauge");
  CHECK(metric_type(*text, "wakegate_desired_instances") == "gauge");
  CHECK(metric_type(*text, "wakegate_cold_start_seconds") == "histogram");
  CHECK(metric_type(*text, "wakegate_queue_rejections_total") == "counter");
  CHECK(metric_type(*text, "wakegate_scale_events_total") == "counter");
  CHECK(metric_type(*text, "wakegate_instance_failures_total") == "counter");
}

// Found by black-box testing: a cold start whose held requests all timed out was never recorded
// (the slow ones, which fail requests), and each replacement of a crashed instance counted as a
// scale-up decision.
TEST_CASE("metrics: a cold start outlasting its held requests is recorded, replacements are not scale events",
          "[integration][admin]") {
  auto marker = unique_marker();
  config_yaml c;
  c.apps.push_back(
      app_yaml("cold", {"cold.test"}, marker).set("queue_timeout", "300ms").env_var("STARTUP_DELAY_MS", "1500"));
  c.apps.push_back(app_yaml("crashy", {"crashy.test"}, marker).set("min_instances", "1").env_var("EXIT_AFTER_MS", "300"));
  wakegate_process wg(c.str(), wakegate_options::cleaning({marker}));

  auto r = http_get(wg.http_port(), "cold.test", "/");
  INFO(describe(r));
  CHECK(r.status == 503);  // queue timeout: the instance takes 1.5 s
  REQUIRE(wait_one_ready(wg.admin_port(), "cold", 10s));
  CHECK(wait_metric(wg.admin_port(), "wakegate_cold_start_seconds_count", {{"app", "cold"}}, 1, 3s));
  CHECK(scrape_value(wg.admin_port(), "wakegate_cold_start_seconds_sum", {{"app", "cold"}}).value_or(0) >= 1.4);

  CHECK(wait_metric(wg.admin_port(), "wakegate_instance_failures_total", {{"app", "crashy"}}, 3, 15s));
  CHECK(scrape_value(wg.admin_port(), "wakegate_scale_events_total", {{"app", "crashy"}, {"direction", "up"}}) ==
        std::optional<double>(1));  // 0 -> 1 (min_instances), once
}

TEST_CASE("a removed app whose instance still drains reports desired 0, reason removed", "[integration][admin]") {
  auto marker = unique_marker();
  config_yaml with_b;
  with_b.apps.push_back(app_yaml("a", {"a.test"}, marker));
  with_b.apps.push_back(app_yaml("b", {"b.test"}, marker).set("min_instances", "1"));
  wakegate_process wg(with_b.str(), wakegate_options::cleaning({marker}));
  REQUIRE(wait_one_ready(wg.admin_port(), "b"));
  auto slow = std::async(std::launch::async, [&] { return http_get(wg.http_port(), "b.test", "/sleep?ms=2000"); });
  REQUIRE(wait_app(wg.admin_port(), "b", [](const app_status& a) { return a.in_flight == 1; }, 3s));
  config_yaml without_b;
  without_b.apps.push_back(app_yaml("a", {"a.test"}, marker));
  wg.write_config(without_b.str());
  wg.signal(SIGHUP);
  app_status last;
  CHECK(wait_app(
      wg.admin_port(), "b", [](const app_status& a) { return a.count("draining") == 1 && a.desired == 0; }, 5s, &last));
  auto status = fetch_status_json(wg.admin_port());
  REQUIRE(status);
  for (const auto& app : status->at("apps").as_array())
    if (app.at("name").as_string() == "b") CHECK(app.at("desired_reason").as_string() == "removed");
  CHECK(scrape_value(wg.admin_port(), "wakegate_desired_instances", {{"app", "b"}}) == std::optional<double>(0));
  CHECK(slow.get().status == 200);
}
