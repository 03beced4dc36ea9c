// Signals to wakegate: SIGHUP reloads, SIGTERM drains, SIGKILL leaves no instance behind.
#include <signal.h>

#include <algorithm>
#include <atomic>
#include <catch2/catch.hpp>
#include <future>
#include <cstring>
#include <string>
#include <thread>

#include "tests/support/integration.hpp"

using namespace wakegate::test;

namespace {

// True if `line` contains `text`, directly or inside a string field of a JSON log record.
bool mentions(const std::string& line, const std::string& text) {
  if (contains(line, text)) return true;
  auto rec = parse_log_line(line);
  if (!rec) return false;
  for (const auto& kv : *rec)
    if (kv.value().is_string() && contains(std::string(kv.value().as_string()), text)) return true;
  return false;
}

std::vector<std::string> app_names(std::uint16_t admin_port) {
  std::vector<std::string> names;
  if (auto all = fetch_status(admin_port))
    for (const auto& a : *all) names.push_back(a.name);
  std::sort(names.begin(), names.end());
  return names;
}

// One app "s" (s.test) with one instance kept up, and this shutdown_timeout.
std::string one_app_config(const std::string& marker, const char* shutdown_timeout) {
  config_yaml c;
  c.shutdown_timeout = shutdown_timeout;
  c.apps.push_back(app_yaml("s", {"s.test"}, marker).set("min_instances", "1"));
  return c.str();
}

void wait_ready(const wakegate_process& wg) {
  REQUIRE(wait_one_ready(wg.admin_port(), "s"));
}

// Waits until a request is in flight on app "s".
void wait_in_flight(const wakegate_process& wg) {
  REQUIRE(wait_app(
      wg.admin_port(), "s", [](const app_status& a) { return a.in_flight >= 1; }, 3s));
}

}  // namespace

TEST_CASE("SIGHUP: an invalid config is reported and the old one keeps serving then a valid one adds and removes apps",
          "[integration][signals]") {
  auto ma = unique_marker(), mb = unique_marker(), mc = unique_marker();
  auto a = app_yaml("a", {"a.test"}, ma).set("min_instances", "1");
  auto b = app_yaml("b", {"b.test"}, mb).set("min_instances", "1");
  auto cc = app_yaml("c", {"c.test"}, mc);

  config_yaml v1;
  v1.apps = {a, b};
  wakegate_process wg(v1.str(), wakegate_options::cleaning({ma, mb, mc}));
  REQUIRE(wait_app(
      wg.admin_port(), "a", [](const app_status& s) { return s.count("ready") == 1; }, 15s));
  REQUIRE(wait_app(
      wg.admin_port(), "b", [](const app_status& s) { return s.count("ready") == 1; }, 15s));
  REQUIRE(http_get(wg.http_port(), "a.test", "/").status == 200);
  auto a_ids = fetch_app_status(wg.admin_port(), "a").value().ids("ready");

  // 1. Invalid: max_instances -3 in app a.
  config_yaml invalid = v1;
  invalid.apps[0].settings.emplace_back("max_instances", "-3");
  std::string invalid_text = invalid.str();
  auto pos = position_of(invalid_text, "max_instances: -3");
  REQUIRE(pos.line > 0);
  std::string expected = wg.config_path() + ":" + std::to_string(pos.line) + ":" +
                         std::to_string(pos.column + static_cast<int>(std::strlen("max_instances: "))) + ":";
  wg.write_config(invalid_text);
  wg.signal(SIGHUP);
  INFO("expected in the log: " << expected);
  CHECK(wg.wait_for_line([&](const std::string& line) { return mentions(line, expected); }, 5s));
  REQUIRE(wg.running());
  for (int i = 0; i < 3; ++i) {
    auto ra = http_get(wg.http_port(), "a.test", "/");
    auto rb = http_get(wg.http_port(), "b.test", "/");
    INFO(describe(ra) << " / " << describe(rb));
    CHECK(ra.status == 200);
    CHECK(rb.status == 200);
  }
  CHECK(app_names(wg.admin_port()) == std::vector<std::string>{"a", "b"});
  CHECK(count_processes(mb) == 1);
  // The refusal in /status and /metrics, for an alert (found by black-box testing: only the log had it).
  {
    auto st = fetch_status_json(wg.admin_port());
    REQUIRE(st);
    const auto& cfg = st->at("config").as_object();
    CHECK(cfg.at("file").as_string() == wg.config_path());
    const auto& last = cfg.at("last_reload").as_object();
    CHECK_FALSE(last.at("ok").as_bool());
    CHECK(starts_with(std::string(last.at("error").as_string()), expected));
    CHECK(scrape_value(wg.admin_port(), "wakegate_config_last_reload_successful", {}) == 0.0);
    CHECK(scrape_value(wg.admin_port(), "wakegate_config_reloads_total", {{"result", "refused"}}) == 1.0);
  }
  const double loaded_at = scrape_value(wg.admin_port(), "wakegate_config_last_reload_success_timestamp_seconds", {}).value_or(0);
  CHECK(loaded_at > 1.7e9);

  // 1b. A file on which yaml-cpp 0.7's LoadAll never returns: refused at once with its position,
  // and the control plane goes on (the valid reload below still applies).
  wg.write_config("!'a,b'\n");
  wg.signal(SIGHUP);
  const std::string hang_expected = wg.config_path() + ":1:4: unexpected ','";
  INFO("expected in the log: " << hang_expected);
  CHECK(wg.wait_for_line([&](const std::string& line) { return mentions(line, hang_expected); }, 5s));
  CHECK(http_get(wg.http_port(), "a.test", "/").status == 200);

  // 2. Valid: a kept, b removed, c added.
  config_yaml v2;
  v2.apps = {a, cc};
  wg.write_config(v2.str());
  wg.signal(SIGHUP);
  http_response rc;
  CHECK(wait_until(
      [&] {
        rc = http_get(wg.http_port(), "c.test", "/");
        return rc.status == 200;
      },
      15s, 50ms));
  INFO("c.test: " << describe(rc));
  auto rb = http_get(wg.http_port(), "b.test", "/");
  INFO("b.test: " << describe(rb));
  CHECK(rb.status == 404);
  CHECK(http_get(wg.http_port(), "a.test", "/").status == 200);
  CHECK(wait_until([&] { return count_processes(mb) == 0; }, 10s));
  CHECK(wait_until([&] { return app_names(wg.admin_port()) == std::vector<std::string>{"a", "c"}; }, 5s));
  CHECK(wg.wait_for_record(
      [](const auto& x) { return json_string(x, "msg") == "instance stopped" && json_string(x, "app") == "b"; }, 5s));
  // The unchanged app keeps its instance across the reload.
  auto a_after = fetch_app_status(wg.admin_port(), "a");
  REQUIRE(a_after);
  CHECK(a_after->ids("ready") == a_ids);
  CHECK(scrape_value(wg.admin_port(), "wakegate_config_last_reload_successful", {}) == 1.0);
  CHECK(scrape_value(wg.admin_port(), "wakegate_config_reloads_total", {{"result", "refused"}}) == 2.0);
  CHECK(scrape_value(wg.admin_port(), "wakegate_config_reloads_total", {{"result", "applied"}}) == 1.0);
  CHECK(scrape_value(wg.admin_port(), "wakegate_config_last_reload_success_timestamp_seconds", {}).value_or(0) >= loaded_at);
  auto st = fetch_status_json(wg.admin_port());
  REQUIRE(st);
  CHECK(st->at("config").at("last_reload").at("ok").as_bool());
  CHECK_FALSE(st->at("config").at("last_reload").as_object().contains("error"));
}

// Found by black-box testing: the app added back was a second app of the same name, whose first
// instance took the draining one's id ("s-1"), failed on it and stopped it, cutting its request
// (502); /metrics then had every series of the app twice.
TEST_CASE("SIGHUP: an app removed and added back while its instance drains is the same app again",
          "[integration][signals]") {
  auto marker = unique_marker(), other_marker = unique_marker();
  const std::string with_s = one_app_config(marker, "5s");
  config_yaml without_s;
  without_s.apps.push_back(app_yaml("o", {"o.test"}, other_marker));
  wakegate_process wg(with_s, wakegate_options::cleaning({marker, other_marker}));
  wait_ready(wg);
  const auto first_ids = fetch_app_status(wg.admin_port(), "s").value().ids("ready");
  REQUIRE(first_ids == std::vector<std::string>{"s-1"});

  http_response slow;
  std::thread client([&, port = wg.http_port()] { slow = http_get(port, "s.test", "/sleep?ms=2000"); });
  wait_in_flight(wg);
  wg.write_config(without_s.str());
  wg.signal(SIGHUP);
  CHECK(wg.wait_for_record([](const auto& x) { return json_string(x, "msg") == "app removed: draining"; }, 5s));
  wg.write_config(with_s);
  wg.signal(SIGHUP);
  CHECK(wg.wait_for_record([](const auto& x) { return json_string(x, "msg") == "app added back"; }, 5s));
  // A new instance (min_instances 1) with a new id; the draining one finishes its request.
  CHECK(wait_app(
      wg.admin_port(), "s", [](const app_status& a) { return a.ids("ready") == std::vector<std::string>{"s-2"}; }, 10s));
  client.join();
  INFO(describe(slow));
  CHECK(slow.status == 200);
  CHECK(slow.body == "slept 2000");
  CHECK(wg.records_with_msg("instance failed", "s").empty());
  CHECK(http_get(wg.http_port(), "s.test", "/").status == 200);

  // One app "s" in /status, one series per label set in /metrics.
  CHECK(app_names(wg.admin_port()) == std::vector<std::string>{"s"});
  auto text = fetch_metrics(wg.admin_port());
  REQUIRE(text);
  INFO(*text);
  std::vector<std::string> series;
  for (std::size_t at = 0, end; at < text->size(); at = end + 1) {
    end = text->find('\n', at);
    if (end == std::string::npos) end = text->size();
    std::string line = text->substr(at, end - at);
    if (line.empty() || line[0] == '#') continue;
    series.push_back(line.substr(0, line.rfind(' ')));
  }
  std::sort(series.begin(), series.end());
  CHECK(std::adjacent_find(series.begin(), series.end()) == series.end());
}

TEST_CASE("SIGHUP that changes the backend: the old instance serves until the new one is ready, and a broken one "
          "leaves it serving",
          "[integration][signals]") {
  auto marker = unique_marker();
  auto config = [&](const std::string& delay, std::vector<std::string> command = {}) {
    config_yaml c;
    auto a = app_yaml("s", {"s.test"}, marker).set("min_instances", "1").env_var("STARTUP_DELAY_MS", delay);
    if (!command.empty()) a.with_command(std::move(command));
    c.apps.push_back(a);
    return c.str();
  };
  wakegate_process wg(config("0"), wakegate_options::cleaning({marker}));
  app_status last;
  REQUIRE(wait_one_ready(wg.admin_port(), "s", 15s, &last));
  const auto old = last.instances.front();

  // A new env: the new instance takes 1.5 s to start, and requests meanwhile go to the old one.
  wg.write_config(config("1500"));
  wg.signal(SIGHUP);
  REQUIRE(wg.wait_for_record([](const auto& x) { return json_string(x, "msg") == "reloaded"; }, 5s));
  auto during = http_get(wg.http_port(), "s.test", "/");
  INFO(describe(during));
  CHECK(during.status == 200);
  CHECK(during.body == "ok " + std::to_string(old.pid));  // not held for the new start
  CHECK(wait_app(
      wg.admin_port(), "s",
      [&](const app_status& a) { return a.instances.size() == 1 && a.instances[0].id != old.id && a.instances[0].state == "ready"; },
      30s, &last));  // the old one goes once the new one has been ready for 10 s
  const auto second = last.instances.front();
  auto after = http_get(wg.http_port(), "s.test", "/");
  CHECK(after.body == "ok " + std::to_string(second.pid));

  // A backend that cannot start: the running instance keeps serving, and /status says both.
  wg.write_config(config("0", {"/bin/false", "--marker=" + marker}));
  wg.signal(SIGHUP);
  REQUIRE(wait_app(wg.admin_port(), "s", [](const app_status& a) { return !a.last_error.empty(); }, 10s, &last));
  auto broken = http_get(wg.http_port(), "s.test", "/");
  INFO(describe(broken));
  CHECK(broken.status == 200);
  CHECK(broken.body == "ok " + std::to_string(second.pid));
  auto st = fetch_app_status(wg.admin_port(), "s");
  REQUIRE(st);
  REQUIRE(st->find(second.id));
  CHECK(st->find(second.id)->outdated);
}

TEST_CASE("SIGHUP that reverts a backend change keeps the instances that run it", "[integration][signals]") {
  auto marker = unique_marker();
  auto config = [&](const std::string& delay) {
    config_yaml c;
    c.apps.push_back(app_yaml("s", {"s.test"}, marker).set("min_instances", "1").env_var("STARTUP_DELAY_MS", delay));
    return c.str();
  };
  wakegate_process wg(config("0"), wakegate_options::cleaning({marker}));
  app_status last;
  REQUIRE(wait_one_ready(wg.admin_port(), "s", 15s, &last));
  const auto old = last.instances.front();

  // A deploy whose instance takes 30 s to start; the running instance is outdated meanwhile.
  wg.write_config(config("30000"));
  wg.signal(SIGHUP);
  REQUIRE(wait_app(
      wg.admin_port(), "s",
      [&](const app_status& a) { return a.find(old.id) && a.find(old.id)->outdated && a.count("starting") == 1; }, 10s,
      &last));
  const auto deploying = last.ids("starting").front();

  // Reverted: the running instance runs the app's backend again, and the one starting is stopped.
  wg.write_config(config("0"));
  wg.signal(SIGHUP);
  REQUIRE(wait_until([&] { return wg.records_with_msg("reloaded").size() >= 2; }, 5s, 20ms));
  CHECK(wait_app(
      wg.admin_port(), "s", [&](const app_status& a) { return a.live() == 1 && a.find(old.id) != nullptr; }, 10s, &last));
  INFO("instances: " << last.ids().size());
  REQUIRE(last.find(old.id));
  CHECK(last.find(old.id)->state == "ready");
  CHECK_FALSE(last.find(old.id)->outdated);
  CHECK((last.find(deploying) == nullptr || !last.find(deploying)->live()));
  auto r = http_get(wg.http_port(), "s.test", "/");
  CHECK(r.body == "ok " + std::to_string(old.pid));
}

TEST_CASE("SIGHUP to a backend that crashes soon after it gets ready leaves the old instance serving",
          "[integration][signals]") {
  auto marker = unique_marker();
  auto config = [&](const std::string& exit_after) {
    config_yaml c;
    c.apps.push_back(app_yaml("s", {"s.test"}, marker).set("min_instances", "1").env_var("EXIT_AFTER_MS", exit_after));
    return c.str();
  };
  wakegate_process wg(config("0"), wakegate_options::cleaning({marker}));
  app_status last;
  REQUIRE(wait_one_ready(wg.admin_port(), "s", 15s, &last));
  const auto old = last.instances.front();
  wg.write_config(config("500"));
  wg.signal(SIGHUP);
  // The new instance gets ready, then exits 0.5 s later: twice, with backoff.
  REQUIRE(wait_until([&] { return wg.records_with_msg("instance failed", "s").size() >= 2; }, 15s, 50ms));
  auto r = http_get(wg.http_port(), "s.test", "/");
  INFO(describe(r));
  CHECK(r.status == 200);
  CHECK(r.body == "ok " + std::to_string(old.pid));
}

TEST_CASE("SIGTERM: in-flight requests complete while new connections are refused then instances stop and exit is 0",
          "[integration][signals]") {
  auto marker = unique_marker();
  wakegate_process wg(one_app_config(marker, "5s"), wakegate_options::cleaning({marker}));
  wait_ready(wg);
  auto port = wg.http_port();

  http_response slow;
  std::atomic<bool> done{false};
  std::thread client([&] {
    slow = http_get(port, "s.test", "/sleep?ms=1500");
    done = true;
  });
  wait_in_flight(wg);

  wg.signal(SIGTERM);
  bool refused = wait_until([&] { return !can_connect(port, 200ms); }, 1000ms);
  bool still_in_flight = !done.load();
  client.join();

  INFO("slow request: " << describe(slow));
  CHECK(refused);
  CHECK(still_in_flight);  // refusal was seen while the request was still running
  CHECK(slow.status == 200);
  CHECK(slow.body == "slept 1500");

  auto status = wg.wait_exit(10s);
  REQUIRE(status);
  CHECK(*status == 0);
  CHECK(count_processes(marker) == 0);
  CHECK_FALSE(wg.records_with_msg("instance stopped", "s").empty());
}

TEST_CASE("SIGTERM: a request still running at shutdown_timeout is cut off, and wakegate exits 0 with its instances stopped",
          "[integration][signals]") {
  auto marker = unique_marker();
  wakegate_process wg(one_app_config(marker, "300ms"), wakegate_options::cleaning({marker}));
  wait_ready(wg);
  auto port = wg.http_port();

  http_response slow;
  std::thread client([&] { slow = http_get(port, "s.test", "/sleep?ms=20000"); });
  wait_in_flight(wg);

  wg.signal(SIGTERM);
  // The request's coroutine is destroyed with the stopped thread, after the control plane it
  // took capacity from (server::detach): the exit must still be clean.
  auto status = wg.wait_exit(10s);
  client.join();
  INFO("slow request: " << describe(slow));
  CHECK(slow.status != 200);  // cut off, long before the 20 s
  REQUIRE(status);
  CHECK(*status == 0);
  CHECK(count_processes(marker) == 0);
}

TEST_CASE("SIGTERM twice: instances that ignore their stop signal are killed at once, not after stop_timeout",
          "[integration][signals]") {
  auto marker = unique_marker();
  config_yaml c;
  auto app = app_yaml("s", {"s.test"}, marker).set("min_instances", "1").env_var("IGNORE_SIGTERM", "1");
  app.stop_timeout = "60s";
  c.apps.push_back(app);
  wakegate_process wg(c.str(), wakegate_options::cleaning({marker}));
  wait_ready(wg);
  wg.signal(SIGTERM);
  REQUIRE(wg.wait_for_record([](const auto& x) { return json_string(x, "msg") == "shutting down: draining connections"; },
                             5s));
  // No connection open: the instances are being stopped now, and this one ignores SIGTERM.
  REQUIRE(wg.wait_for_record([](const auto& x) { return json_string(x, "msg") == "stopping instances"; }, 5s));
  wg.signal(SIGTERM);
  auto status = wg.wait_exit(15s);  // not after the 60 s stop_timeout
  REQUIRE(status);
  CHECK(*status == 0);
  CHECK(wg.records_with_msg("second signal: killing instances now").size() == 1);
  CHECK(count_processes(marker) == 0);
}

TEST_CASE("SIGTERM: at shutdown_timeout, or at a second signal, a request still waiting for its response gets 504 "
          "at once, not at exit",
          "[integration][signals]") {
  auto marker = unique_marker();
  // connecting: the instance stops accepting, so the request is cut while its connect hangs.
  const int variant = GENERATE(0, 1, 2);
  constexpr int by_signal_waiting = 1, connecting = 2;  // 0: waiting for the response, cut at the timeout
  const bool by_signal = variant == by_signal_waiting;
  config_yaml c;
  c.shutdown_timeout = by_signal ? "60s" : "300ms";
  auto app = app_yaml("s", {"s.test"}, marker).set("min_instances", "1").env_var("IGNORE_SIGTERM", "1");
  app.stop_timeout = "30s";  // the instance outlives the deadline by far
  c.apps.push_back(app);
  wakegate_process wg(c.str(), wakegate_options::cleaning({marker}));
  wait_ready(wg);
  const auto port = wg.http_port();
  if (variant == connecting) {
    const auto r = http_get(port, "s.test", "/hang-connects");
    INFO(describe(r));
    REQUIRE(r.status == 200);
    app_status st;
    REQUIRE(wait_one_ready(wg.admin_port(), "s", 5s, &st));
    REQUIRE(wait_until([&] { return !can_connect(static_cast<std::uint16_t>(st.instances.front().port), 300ms); }, 5s));
  }
  http_response slow;
  std::thread client([&] { slow = http_get(port, "s.test", variant == connecting ? "/" : "/sleep?ms=25000"); });
  wait_in_flight(wg);
  wg.signal(SIGTERM);
  if (by_signal) {
    REQUIRE(wg.wait_for_record(
        [](const auto& x) { return json_string(x, "msg") == "shutting down: draining connections"; }, 5s));
    wg.signal(SIGTERM);
  }
  client.join();
  INFO(describe(slow));
  CHECK(slow.status == 504);
  // Cut by wakegate, and said so (found by black-box testing: the instance was blamed).
  CHECK(contains(slow.body, "wakegate is shutting down: the request was cut before instance s-1 answered"));
  CHECK(wg.records_with_msg(by_signal ? "second signal: closing connections still open"
                                      : "shutdown timeout: closing connections still open")
            .size() == 1);
  CHECK(wg.running());  // answered while the instance is still being stopped
  wg.signal(SIGTERM);   // then no waiting for its stop_timeout
  CHECK(wg.wait_exit(10s) == std::optional<int>(0));
}

TEST_CASE("SIGHUP during the SIGTERM drain is ignored: no instance is started", "[integration][signals]") {
  auto marker = unique_marker();
  wakegate_process wg(one_app_config(marker, "10s"), wakegate_options::cleaning({marker}));
  wait_ready(wg);
  std::thread client([&] { http_get(wg.http_port(), "s.test", "/sleep?ms=1500"); });
  wait_in_flight(wg);
  wg.signal(SIGTERM);
  REQUIRE(wg.wait_for_record([](const auto& x) { return json_string(x, "msg") == "shutting down: draining connections"; },
                             5s));
  config_yaml c;  // two instances wanted now
  c.shutdown_timeout = "10s";
  c.apps.push_back(app_yaml("s", {"s.test"}, marker).set("min_instances", "2"));
  wg.write_config(c.str());
  wg.signal(SIGHUP);
  CHECK(wg.wait_for_record([](const auto& x) { return json_string(x, "msg") == "reload ignored: shutting down"; }, 5s));
  client.join();
  CHECK(wg.wait_exit(15s) == std::optional<int>(0));
  CHECK(wg.records_with_msg("instance starting", "s").size() == 1);  // the first one only
  CHECK(count_processes(marker) == 0);
}

TEST_CASE("SIGKILL of wakegate leaves no instance and no child of an instance", "[integration][signals]") {
  auto marker = unique_marker();
  config_yaml c;
  std::string script = "sleep 300 & exec /usr/bin/python3 '" + test_app_path() + "' \"${PORT}\" --marker=" + marker;
  c.apps.push_back(app_yaml("k", {"k.test"}, marker).with_command({"/bin/sh", "-c", script}).set("min_instances", "1"));
  wakegate_process wg(c.str(), wakegate_options::cleaning({marker}));
  app_status last;
  REQUIRE(wait_one_ready(wg.admin_port(), "k", 15s, &last));
  pid_t instance_pid = last.instances.front().pid;
  REQUIRE(instance_pid > 0);

  // The instance runs in its own process group, with the `sleep 300` grandchild in it.
  auto group = process_group_of(instance_pid);
  REQUIRE(group);
  CHECK(*group == instance_pid);
  CHECK(*group != wg.pid());
  std::vector<pid_t> members;
  REQUIRE(wait_until(
      [&] {
        members = processes_in_group(*group);
        return std::any_of(members.begin(), members.end(), [](pid_t p) { return process_cmdline(p) == "sleep 300"; });
      },
      5s));
  CHECK(members.size() >= 2);
  CHECK(count_processes(marker) == 1);

  wg.signal(SIGKILL);
  auto status = wg.wait_exit(5s);
  REQUIRE(status);
  CHECK(*status == 128 + SIGKILL);

  bool all_gone = wait_until(
      [&] {
        if (count_processes(marker) != 0) return false;
        return std::none_of(members.begin(), members.end(), [](pid_t p) { return process_alive(p); });
      },
      10s);
  INFO("left: " << count_processes(marker) << " with the marker; group members alive: " << [&] {
    std::string s;
    for (pid_t p : members)
      if (process_alive(p)) s += std::to_string(p) + " (" + process_cmdline(p) + ") ";
    return s;
  }());
  CHECK(all_gone);
}

// Found by black-box testing: the process ended before the held requests' 503s were written (of
// 3000, most got a bare close) and their log lines were lost.
TEST_CASE("SIGTERM: every request held at shutdown_timeout gets its 503 and its log line before exit",
          "[integration][signals]") {
  auto marker = unique_marker();
  constexpr int held = 200;
  config_yaml c;
  c.shutdown_timeout = "300ms";
  c.apps.push_back(app_yaml("s", {"s.test"}, marker).set("queue_size", "1000").set("queue_timeout", "60s").env_var(
      "STARTUP_DELAY_MS", "20000"));
  wakegate_process wg(c.str(), wakegate_options::cleaning({marker}));
  std::vector<std::future<http_response>> clients;
  for (int i = 0; i < held; ++i)
    clients.push_back(std::async(std::launch::async, [&, i] {
      return http_get(wg.http_port(), "s.test", "/held-" + std::to_string(i));
    }));
  REQUIRE(wait_metric(wg.admin_port(), "wakegate_queued_requests", {{"app", "s"}}, held, 10s));
  wg.signal(SIGTERM);
  int answered = 0;
  for (auto& f : clients) {
    auto r = f.get();
    if (r.status == 503 && contains(r.body, "wakegate is shutting down")) ++answered;
    else UNSCOPED_INFO(describe(r));
  }
  CHECK(answered == held);
  CHECK(wg.wait_exit(10s) == std::optional<int>(0));
  int logged = 0;
  for (const auto& x : wg.access_records())
    if (json_number(x, "status").value_or(0) == 503 && json_string(x, "path").starts_with("/held-")) ++logged;
  CHECK(logged == held);
}

// README "apps removed stop routing (404), their held requests get 503": a request held for an
// instance still starting (3 s) when a reload removes its app is answered at once with the reason,
// and logged so; the app's host is then unknown.
TEST_CASE("SIGHUP that removes an app: its held request gets 503 with the reason at once, then its host is 404",
          "[integration][signals]") {
  auto ma = unique_marker(), mb = unique_marker();
  config_yaml v1;
  v1.apps.push_back(app_yaml("a", {"a.test"}, ma).set("min_instances", "1"));
  v1.apps.push_back(app_yaml("b", {"b.test"}, mb).env_var("STARTUP_DELAY_MS", "3000"));
  wakegate_process wg(v1.str(), wakegate_options::cleaning({ma, mb}));
  REQUIRE(wait_one_ready(wg.admin_port(), "a"));

  auto held = std::async(std::launch::async, [&] { return http_get(wg.http_port(), "b.test", "/held"); });
  REQUIRE(wait_app(
      wg.admin_port(), "b", [](const app_status& a) { return a.queue_length == 1 && a.count("starting") == 1; }, 5s));
  config_yaml v2;
  v2.apps.push_back(app_yaml("a", {"a.test"}, ma).set("min_instances", "1"));
  wg.write_config(v2.str());
  wg.signal(SIGHUP);

  auto r = held.get();
  INFO(describe(r));
  CHECK(r.status == 503);
  CHECK(r.body == "app b was removed from the configuration\n");
  CHECK(r.header("Retry-After") == "1");
  CHECK(r.elapsed < 2500ms);  // not served by the instance once it started (3 s)
  CHECK(wg.wait_for_record(
      [](const auto& x) {
        return json_string(x, "type") == "access" && json_string(x, "app") == "b" && json_string(x, "path") == "/held" &&
               json_number(x, "status").value_or(0) == 503 && json_bool(x, "held") == std::optional<bool>(true) &&
               json_string(x, "error") == "app b was removed from the configuration";
      },
      5s));
  auto after = http_get(wg.http_port(), "b.test", "/");
  INFO(describe(after));
  CHECK(after.status == 404);
  CHECK(after.body == "no app for host b.test\n");
  CHECK(http_get(wg.http_port(), "a.test", "/").status == 200);
  CHECK(wait_until([&] { return count_processes(mb) == 0; }, 10s));
}

// README "/readyz ... 503 while shutting down": once SIGTERM starts the drain (a request still in
// flight keeps it going), /readyz says not ready, so a load balancer stops sending; /healthz, the
// liveness check, still answers 200.
TEST_CASE("SIGTERM: /readyz answers 503 during the drain while /healthz still answers 200", "[integration][signals]") {
  auto marker = unique_marker();
  wakegate_process wg(one_app_config(marker, "10s"), wakegate_options::cleaning({marker}));
  wait_ready(wg);
  const auto admin = wg.admin_port();
  REQUIRE(http_get(admin, "127.0.0.1", "/readyz").status == 200);
  auto slow = std::async(std::launch::async, [&] { return http_get(wg.http_port(), "s.test", "/sleep?ms=3000"); });
  wait_in_flight(wg);
  wg.signal(SIGTERM);
  REQUIRE(wg.wait_for_record([](const auto& x) { return json_string(x, "msg") == "shutting down: draining connections"; },
                             5s));
  auto ready = http_get(admin, "127.0.0.1", "/readyz");
  INFO("readyz: " << describe(ready));
  CHECK(ready.status == 503);
  CHECK(ready.body == "not ready\n");
  auto health = http_get(admin, "127.0.0.1", "/healthz");
  INFO("healthz: " << describe(health));
  CHECK(health.status == 200);
  CHECK(health.body == "ok\n");
  CHECK(wg.running());
  CHECK(wait_app(admin, "s", [](const app_status& a) { return a.in_flight == 1; }, 1s));  // still draining
  auto r = slow.get();
  INFO(describe(r));
  CHECK(r.status == 200);
  CHECK(wg.wait_exit(15s) == std::optional<int>(0));
}

// README "Listen addresses, workers and tls.acme change only on restart (a warning says so)": a
// reload that changes listen.http or workers warns, keeps the running listener (the new address is
// not bound) and applies the rest (here a new app).
TEST_CASE("SIGHUP that changes listen.http or workers warns and keeps the running listener", "[integration][signals]") {
  const bool change_http = GENERATE(true, false);
  INFO((change_http ? "listen.http changed" : "workers changed"));
  auto ma = unique_marker(), mb = unique_marker();
  config_yaml v1;
  v1.extra.push_back("workers: 1");
  v1.apps.push_back(app_yaml("a", {"a.test"}, ma));
  wakegate_process wg(v1.str(), wakegate_options::cleaning({ma, mb}));
  const auto port = wg.http_port();
  REQUIRE(http_get(port, "a.test", "/").status == 200);

  config_yaml v2 = v1;
  const std::uint16_t new_port = free_port();
  if (change_http) v2.http = "127.0.0.1:" + std::to_string(new_port);
  else v2.extra = {"workers: 2"};
  v2.apps.push_back(app_yaml("b", {"b.test"}, mb));
  wg.write_config(v2.str());
  wg.signal(SIGHUP);
  CHECK(wg.wait_for_record(
      [](const auto& x) {
        return json_string(x, "level") == "warn" &&
               json_string(x, "msg") == "listen addresses and workers change only on restart";
      },
      5s));
  REQUIRE(wg.wait_for_record(
      [](const auto& x) { return json_string(x, "msg") == "app added" && json_string(x, "app") == "b"; }, 5s));
  // The old listener serves, the new app included.
  CHECK(http_get(port, "a.test", "/").status == 200);
  auto b = http_get(port, "b.test", "/");
  INFO(describe(b));
  CHECK(b.status == 200);
  if (change_http) CHECK_FALSE(can_connect(new_port, 300ms));
  CHECK(wg.records_with_msg("reload refused: keeping the running config").empty());
}
