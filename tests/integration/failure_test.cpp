// Instances that die: replaced; requests in flight on them get 502, or go to another instance
// when nothing was answered and they are safe to send again.
#include <signal.h>

#include <catch2/catch.hpp>
#include <filesystem>
#include <future>
#include <string>

#include "tests/support/integration.hpp"

using namespace wakegate::test;

TEST_CASE("a killed instance is replaced and counted as a failure", "[integration][failure]") {
  auto marker = unique_marker();
  config_yaml c;
  c.apps.push_back(app_yaml("t", {"t.test"}, marker).set("min_instances", "1"));
  wakegate_process wg(c.str(), wakegate_options::cleaning({marker}));
  app_status last;
  REQUIRE(wait_one_ready(wg.admin_port(), "t", 15s, &last));
  auto old = last.instances.front();
  REQUIRE(old.pid > 0);
  REQUIRE(process_cmdline(old.pid).find(marker) != std::string::npos);
  CHECK(old.container.empty());  // a process, not a container
  CHECK(scrape_value(wg.admin_port(), "wakegate_instance_failures_total", {{"app", "t"}}).value_or(0) == 0);

  REQUIRE(::kill(old.pid, SIGKILL) == 0);

  bool replaced = wait_app(
      wg.admin_port(), "t",
      [&](const app_status& a) {
        for (const auto& i : a.instances)
          if (i.state == "ready" && i.id != old.id && i.pid != old.pid) return true;
        return false;
      },
      15s, &last);
  INFO("instances: " << [&] {
    std::string s;
    for (const auto& i : last.instances) s += i.id + "(" + i.state + ") ";
    return s;
  }());
  CHECK(replaced);
  std::optional<double> failures;
  CHECK(wait_metric(wg.admin_port(), "wakegate_instance_failures_total", {{"app", "t"}}, 1, 3s, &failures));
  INFO("failures: " << failures.value_or(-1));
  CHECK(wg.wait_for_record(
      [&](const auto& x) { return json_string(x, "msg") == "instance failed" && json_string(x, "instance") == old.id; },
      3s));
  CHECK_FALSE(process_alive(old.pid));
  CHECK(wait_until([&] { return count_processes(marker) == 1; }, 5s));

  for (int i = 0; i < 5; ++i) {
    auto r = http_get(wg.http_port(), "t.test", "/");
    INFO(describe(r));
    CHECK(r.status == 200);
    CHECK(r.body != "ok " + std::to_string(old.pid));
  }
}

TEST_CASE("a POST in flight when its instance dies gets 502 and the next request succeeds", "[integration][failure]") {
  auto marker = unique_marker();
  config_yaml c;
  c.apps.push_back(app_yaml("t", {"t.test"}, marker).set("min_instances", "1"));
  wakegate_process wg(c.str(), wakegate_options::cleaning({marker}));
  app_status last;
  REQUIRE(wait_one_ready(wg.admin_port(), "t", 15s, &last));
  auto old = last.instances.front();

  http_request post;  // not idempotent: never sent twice
  post.method = "POST";
  post.target = "/exit";
  post.host = "t.test";
  auto crash = http_send(wg.http_port(), post);
  INFO(describe(crash));
  CHECK(crash.status == 502);
  CHECK(wait_until([&] { return !process_alive(old.pid); }, 5s));

  for (int i = 0; i < 3; ++i) {
    auto r = http_get(wg.http_port(), "t.test", "/");
    INFO("after the crash, request " << i << ": " << describe(r));
    CHECK(r.status == 200);
  }
  CHECK(wait_until(
      [&] {
        return scrape_value(wg.admin_port(), "wakegate_instance_failures_total", {{"app", "t"}}).value_or(0) >= 1;
      },
      3s));
  CHECK(wg.wait_for_record(
      [](const auto& x) {
        return json_string(x, "type") == "access" && json_string(x, "path") == "/exit" &&
               json_number(x, "status").value_or(0) == 502;
      },
      3s));
}

TEST_CASE("an instance refused first and killed after: its exit is logged and named in last_error", "[integration][failure]") {
  // The proxy sees the failure (connect refused) before the process ends: the stop it then sends
  // finds it alive, ignoring SIGTERM, and a SIGKILL not of wakegate's ends it. That exit is the
  // cause, and is reported as such (found by black-box testing: only the symptom was).
  auto marker = unique_marker();
  config_yaml c;
  auto app = app_yaml("u", {"u.test"}, marker).set("min_instances", "1").env_var("IGNORE_SIGTERM", "1");
  app.stop_timeout = "10s";  // the stop's own SIGKILL must not come before the app's (3 s)
  c.apps.push_back(app);
  wakegate_process wg(c.str(), wakegate_options::cleaning({marker}));
  app_status last;
  REQUIRE(wait_one_ready(wg.admin_port(), "u", 15s, &last));
  const auto old = last.instances.front();

  auto r = http_get(wg.http_port(), "u.test", "/unlisten?ms=3000");  // the refusal must come first: room for a slow CI
  INFO(describe(r));
  REQUIRE(r.status == 200);
  REQUIRE(wait_until([&] { return !can_connect(static_cast<std::uint16_t>(old.port), 200ms); }, 5s));
  REQUIRE(process_alive(old.pid));

  r = http_get(wg.http_port(), "u.test", "/");  // refused by the old one: held for its replacement
  INFO(describe(r));
  CHECK(r.status == 200);
  CHECK(r.body != "ok " + std::to_string(old.pid));
  CHECK(wg.wait_for_record(
      [&](const auto& x) {
        return json_string(x, "msg") == "instance failed" && json_string(x, "instance") == old.id &&
               json_string(x, "error") == "connect: Connection refused";
      },
      3s));
  CHECK(wg.wait_for_record(
      [&](const auto& x) {
        return json_string(x, "msg") == "instance exited" && json_string(x, "instance") == old.id &&
               json_string(x, "error") == "killed by signal SIGKILL";
      },
      10s));
  CHECK(wait_app(
      wg.admin_port(), "u",
      [&](const app_status& a) {
        return a.last_error == old.id + ": killed by signal SIGKILL (seen first as: connect: Connection refused)";
      },
      3s, &last));
  INFO("last_error: " << last.last_error);
  CHECK_FALSE(process_alive(old.pid));
}

TEST_CASE("a GET in flight when its instance is killed is answered by another instance", "[integration][failure]") {
  auto marker = unique_marker();
  config_yaml c;
  c.apps.push_back(app_yaml("k", {"k.test"}, marker).set("min_instances", "1"));
  wakegate_process wg(c.str(), wakegate_options::cleaning({marker}));
  app_status last;
  REQUIRE(wait_one_ready(wg.admin_port(), "k", 15s, &last));
  const auto old = last.instances.front();

  auto pending = std::async(std::launch::async, [&] { return http_get(wg.http_port(), "k.test", "/sleep?ms=1500"); });
  REQUIRE(wait_until(
      [&] { return scrape_value(wg.admin_port(), "wakegate_in_flight_requests", {{"app", "k"}}).value_or(0) == 1; }, 5s));
  REQUIRE(::kill(old.pid, SIGKILL) == 0);
  auto r = pending.get();
  INFO(describe(r));
  CHECK(r.status == 200);  // sent again, to the instance started in the killed one's place
  CHECK(r.body == "slept 1500");
  CHECK(wg.wait_for_record(
      [&](const auto& x) {
        return json_string(x, "msg") == "instance dropped the connection before answering, request held for another" &&
               json_string(x, "instance") == old.id;
      },
      3s));
  CHECK(wait_app(
      wg.admin_port(), "k", [&](const app_status& a) { return a.instances.size() == 1 && a.instances[0].id != old.id; },
      5s, &last));
}

TEST_CASE("a GET that kills every instance it reaches is sent to two of them, then answered 502",
          "[integration][failure]") {
  auto marker = unique_marker();
  config_yaml c;
  c.apps.push_back(app_yaml("q", {"q.test"}, marker).set("min_instances", "1"));
  wakegate_process wg(c.str(), wakegate_options::cleaning({marker}));
  REQUIRE(wait_one_ready(wg.admin_port(), "q", 15s));

  // Dying with nothing written, or after part of a status line (found by black-box testing: that
  // one was answered 502 at once, not sent to another instance).
  const auto [method, target] = GENERATE(std::pair<std::string, std::string>{"GET", "/exit"},
                                         std::pair<std::string, std::string>{"GET", "/crashhead"},
                                         std::pair<std::string, std::string>{"HEAD", "/crashhead"});
  http_request req;
  req.method = method;
  req.target = target;
  req.host = "q.test";
  auto r = http_send(wg.http_port(), req);
  INFO(describe(r));
  CHECK(r.status == 502);
  CHECK(wg.records_with_msg("instance dropped the connection before answering, request held for another").size() == 1);
  // Two instances died of it, and no third was tried: the next one serves.
  app_status last;
  CHECK(wait_app(
      wg.admin_port(), "q", [](const app_status& a) { return a.ids("ready") == std::vector<std::string>{"q-3"}; }, 15s,
      &last));
  CHECK(scrape_value(wg.admin_port(), "wakegate_instance_failures_total", {{"app", "q"}}).value_or(0) == 2);
  CHECK(http_get(wg.http_port(), "q.test", "/").status == 200);
}

TEST_CASE("a GET an instance drops unanswered is sent once more to another instance, not the same one",
          "[integration][failure]") {
  auto marker = unique_marker();
  config_yaml c;
  c.apps.push_back(app_yaml("d", {"d.test"}, marker).set("min_instances", "2"));
  wakegate_process wg(c.str(), wakegate_options::cleaning({marker}));
  REQUIRE(wait_app(wg.admin_port(), "d", [](const app_status& a) { return a.count("ready") == 2; }, 15s));
  // Each instance drops it (and lives on): the second attempt must go to the other one. Before,
  // it went to either, the first one half the time (found by CI: one that was dying).
  constexpr int requests = 6;
  for (int i = 0; i < requests; ++i) {
    auto r = http_get(wg.http_port(), "d.test", "/drop");
    INFO(describe(r));
    CHECK(r.status == 502);
  }
  std::vector<boost::json::object> first, second;
  REQUIRE(wait_until(
      [&] {
        first = wg.records_with_msg("instance dropped the connection before answering, request held for another", "d");
        second = wg.records_with_msg("upstream failed", "d");
        return first.size() >= requests && second.size() >= requests;
      },
      5s, 20ms));
  REQUIRE(first.size() == requests);
  REQUIRE(second.size() == requests);
  for (int i = 0; i < requests; ++i) {
    INFO("request " << i);
    CHECK(json_string(first[i], "instance") != json_string(second[i], "instance"));
  }
}

TEST_CASE("a GET dropped by an app's only instance goes back to it once the 1 s avoid is over, not when overdue",
          "[integration][failure]") {
  auto marker = unique_marker();
  config_yaml c;
  c.apps.push_back(app_yaml("d", {"d.test"}, marker).set("min_instances", "1"));  // queue_timeout 30s
  wakegate_process wg(c.str(), wakegate_options::cleaning({marker}));
  REQUIRE(wait_one_ready(wg.admin_port(), "d", 15s));
  auto r = http_get(wg.http_port(), "d.test", "/drop");
  INFO(describe(r));
  CHECK(r.status == 502);
  // The bound that matters: well before the request would be overdue (half of queue_timeout, 15 s).
  CHECK(r.elapsed < 10s);
  CHECK(wg.records_with_msg("instance dropped the connection before answering, request held for another", "d").size() == 1);
}

TEST_CASE("a GET dropped by an app's only instance, after a cold start took most of its queue_timeout, goes back to it",
          "[integration][failure]") {
  auto marker = unique_marker();
  config_yaml c;
  c.apps.push_back(app_yaml("d", {"d.test"}, marker).env_var("STARTUP_DELAY_MS", "1200").set("queue_timeout", "2s"));
  wakegate_process wg(c.str(), wakegate_options::cleaning({marker}));
  // Held 1.2 s of its 2 s, then dropped by the instance, which lives on: the retry goes back to it
  // (the request is overdue) rather than waiting for another instance until its budget runs out
  // (found in review: it was answered "queue timeout").
  auto r = http_get(wg.http_port(), "d.test", "/drop");
  INFO(describe(r));
  CHECK(r.status == 502);
  CHECK_FALSE(contains(r.body, "queue timeout"));
  std::vector<boost::json::object> dropped, failed;
  CHECK(wait_until(
      [&] {
        dropped = wg.records_with_msg("instance dropped the connection before answering, request held for another", "d");
        failed = wg.records_with_msg("upstream failed", "d");
        return dropped.size() == 1 && failed.size() == 1;
      },
      5s, 20ms));
  if (dropped.size() == 1 && failed.size() == 1)
    CHECK(json_string(dropped[0], "instance") == json_string(failed[0], "instance"));
}

TEST_CASE("an instance that dies mid-response: that client's connection closes short, others are served",
          "[integration][failure]") {
  auto marker = unique_marker();
  config_yaml c;
  c.apps.push_back(app_yaml("m", {"m.test"}, marker).set("min_instances", "1"));
  wakegate_process wg(c.str(), wakegate_options::cleaning({marker}));
  REQUIRE(wait_one_ready(wg.admin_port(), "m"));

  // The response has started (200 and 1000 bytes of the body went out): only closing early can
  // tell the client, so it gets a body shorter than its Content-Length and a closed connection.
  // With together=1 the last bytes and the FIN arrive in one segment: the read that returns the
  // bytes also consumes the FIN and epoll reports nothing more, so the next read must still be
  // tried (a proxy that waited for epoll there would hold the client until io_timeout, 300 s).
  const std::string target = GENERATE(as<std::string>{}, "/partial", "/partial?together=1");
  INFO("GET " << target);
  client_options quick;
  quick.io_timeout = 10s;
  http_connection conn(wg.http_port(), quick);
  auto cut = conn.send(http_request{"GET", target, "m.test", {}, {}, {}, {}});
  INFO("the cut response: " << describe(cut));
  CHECK(cut.status == 200);
  CHECK_FALSE(cut.ok());  // the read ended before the promised length
  CHECK(cut.body_bytes == 1000);
  CHECK_FALSE(conn.is_open());
  CHECK(wg.wait_for_record(
      [&](const auto& x) {
        return json_string(x, "type") == "access" && json_string(x, "path") == target &&
               json_number(x, "status").value_or(0) == 502;
      },
      5s));
  CHECK(wg.wait_for_record([](const auto& x) { return json_string(x, "msg") == "instance failed"; }, 5s));
  // Other requests are served by the replacement.
  for (int i = 0; i < 3; ++i) {
    auto r = http_get(wg.http_port(), "m.test", "/");
    INFO("after the crash, request " << i << ": " << describe(r));
    CHECK(r.status == 200);
  }
}

TEST_CASE("an instance that fails before a small response is complete: the client gets a whole 502",
          "[integration][failure]") {
  auto marker = unique_marker();
  temp_dir tmp;
  const std::string record = tmp.path() + "/record";  // every byte the instances read
  config_yaml c;
  c.apps.push_back(app_yaml("m", {"m.test"}, marker).set("min_instances", "1").env_var("RECORD_FILE", record));
  wakegate_process wg(c.str(), wakegate_options::cleaning({marker}));
  REQUIRE(wait_one_ready(wg.admin_port(), "m"));

  // 200 with Content-Length 2000, 1000 bytes of it, then the instance closes the connection (and
  // stays up: the failure wakegate reports is its own finding, not the process's exit). A response
  // this small is read whole before any of it is sent, so nothing had reached the client: it gets
  // a complete 502 on a connection that stays open, and the request is not sent again.
  const std::string target =
      GENERATE(as<std::string>{}, "/partial?length=2000&close=1", "/partial?length=2000&close=1&together=1");
  INFO("GET " << target);
  http_connection conn(wg.http_port());
  // A first request leaves an idle connection to the instance, which the second one reuses: a
  // reused connection that fails before any answer is retried once, this one must not be.
  auto warm = conn.send(http_request{"GET", "/", "m.test", {}, {}, {}, {}});
  REQUIRE(warm.status == 200);
  auto r = conn.send(http_request{"GET", target, "m.test", {}, {}, {}, {}});
  INFO(describe(r));
  CHECK(r.status == 502);
  CHECK(r.ok());
  CHECK(r.body.find("partial message") != std::string::npos);
  // Counted just after the answer is written: waited for (a scrape at once could come first).
  CHECK(wait_metric(wg.admin_port(), "wakegate_requests_total", {{"app", "m"}, {"code", "502"}}, 1, 5s));
  // Sent to the instance once: a retry would show a second request line.
  const std::string seen = read_file(record);
  const std::string line = "GET " + target + " HTTP/1.1";
  const auto first = seen.find(line);
  CHECK(first != std::string::npos);
  CHECK(seen.find(line, first + 1) == std::string::npos);
  // One dropped connection does not fail the instance (scaler/instance.hpp: io_failure_limit):
  // the same connection is served by the same instance.
  auto next = conn.send(http_request{"GET", "/", "m.test", {}, {}, {}, {}});
  INFO("after the dropped connection: " << describe(next));
  CHECK(next.status == 200);
  CHECK(next.body == warm.body);  // "ok <pid>": the same process
  auto st = fetch_app_status(wg.admin_port(), "m");  // /status comes after any failure report posted
  REQUIRE(st);
  CHECK(st->ids("ready") == std::vector<std::string>{"m-1"});
  CHECK(scrape_value(wg.admin_port(), "wakegate_instance_failures_total", {{"app", "m"}}).value_or(0) == 0);
}

// Found by black-box testing: one request whose connection the instance dropped (a handler that
// closes instead of answering) restarted the instance and cut every other request on it. Now it
// takes io_failure_limit (3) such exchanges in a row; any that completes resets the count.
TEST_CASE("an instance that drops connections three times in a row is failed and replaced, not before",
          "[integration][failure]") {
  auto marker = unique_marker();
  config_yaml c;
  c.apps.push_back(app_yaml("m", {"m.test"}, marker).set("min_instances", "1"));
  wakegate_process wg(c.str(), wakegate_options::cleaning({marker}));
  REQUIRE(wait_one_ready(wg.admin_port(), "m"));
  auto dropped = [&] { return http_get(wg.http_port(), "m.test", "/partial?length=2000&close=1").status == 502; };

  // Two dropped, one completed, two dropped: never three in a row.
  CHECK(dropped());
  CHECK(dropped());
  CHECK(http_get(wg.http_port(), "m.test", "/").status == 200);
  CHECK(dropped());
  CHECK(dropped());
  auto st = fetch_app_status(wg.admin_port(), "m");
  REQUIRE(st);
  CHECK(st->ids("ready") == std::vector<std::string>{"m-1"});

  CHECK(dropped());  // the third in a row
  CHECK(wg.wait_for_record(
      [](const auto& x) {
        return json_string(x, "msg") == "instance failed" && json_string(x, "instance") == "m-1" &&
               json_string(x, "error") == "connection lost mid-response, 3 times in a row";
      },
      5s));
  app_status last;
  CHECK(wait_app(
      wg.admin_port(), "m",
      [](const app_status& a) { return a.ids("ready") == std::vector<std::string>{"m-2"}; }, 15s, &last));
  CHECK(scrape_value(wg.admin_port(), "wakegate_instance_failures_total", {{"app", "m"}}).value_or(0) == 1);
}

TEST_CASE("an instance that stops sending a small response's body: 504 after io_timeout", "[integration][failure]") {
  auto marker = unique_marker();
  config_yaml c;
  c.extra.push_back("limits: { io_timeout: 1s }");
  c.apps.push_back(app_yaml("m", {"m.test"}, marker).set("min_instances", "1"));
  wakegate_process wg(c.str(), wakegate_options::cleaning({marker}));
  REQUIRE(wait_one_ready(wg.admin_port(), "m"));

  // The head comes at once, the 100-byte body 5 s later: the held response is given up after
  // io_timeout (1 s) without a byte the client could not use, and answered with a whole 504.
  http_connection conn(wg.http_port());
  auto r = conn.send(http_request{"GET", "/split?n=100&ms=5000", "m.test", {}, {}, {}, {}});
  INFO(describe(r));
  CHECK(r.status == 504);
  CHECK(r.ok());
  CHECK(r.body.find("stopped sending its response") != std::string::npos);
  // Not a response-header timeout: the instance did answer. Its body stalled for io_timeout.
  CHECK(scrape_value(wg.admin_port(), "wakegate_limit_hits_total", {{"limit", "response_header_timeout"}}).value_or(-1) == 0);
  CHECK(scrape_value(wg.admin_port(), "wakegate_limit_hits_total", {{"limit", "io_timeout"}}).value_or(-1) == 1);
}

// An instance that sends something on an idle keep-alive connection (an extra response; a 408 and
// a close when its keep-alive timeout ends): none of it is a response to a request of ours. A
// proxy that reused the connection would hand it to the next request, and every later response
// on it to the request after (a desync). Found by black-box testing.
TEST_CASE("what an instance sends on an idle pooled connection is never taken for the next response",
          "[integration][failure]") {
  const bool close = GENERATE(false, true);
  INFO((close ? "408 and close" : "an extra response"));
  auto marker = unique_marker();
  temp_dir dir;
  const std::string sent = dir.path() + "/sent";
  config_yaml c;
  c.extra = {"workers: 1"};  // one pool: the next request takes the connection of the first
  c.apps.push_back(app_yaml("t", {"t.test"}, marker).set("min_instances", "1"));
  wakegate_process wg(c.str(), wakegate_options::cleaning({marker}));
  app_status last;
  REQUIRE(wait_one_ready(wg.admin_port(), "t", 15s, &last));
  const auto pid = last.instances.front().pid;

  auto first = http_get(wg.http_port(), "t.test", "/extra?ms=20&done=" + sent + (close ? "&close=1" : ""));
  INFO(describe(first));
  REQUIRE(first.status == 200);
  REQUIRE(first.body == "ok");
  REQUIRE(wait_until([&] { return std::filesystem::exists(sent); }, 5s, 10ms));

  for (int i = 0; i < 3; ++i) {  // each gets its own answer: no response one request late
    auto r = http_get(wg.http_port(), "t.test", "/pid");
    INFO("request " << i << ": " << describe(r));
    CHECK(r.status == 200);
    CHECK(r.body == std::to_string(pid));
  }
}

// Bytes after a streamed body, in the same segment as its end: read with the body, they make the
// connection not reusable. (Found by a second read of the idle-input fix: a last read sized to what
// was left of the body let them stay in the socket, their readiness event spent.)
TEST_CASE("bytes an instance sends after a streamed body are never taken for the next response",
          "[integration][failure]") {
  auto marker = unique_marker();
  config_yaml c;
  c.extra = {"workers: 1"};
  c.apps.push_back(app_yaml("t", {"t.test"}, marker).set("min_instances", "1"));
  wakegate_process wg(c.str(), wakegate_options::cleaning({marker}));
  app_status last;
  REQUIRE(wait_one_ready(wg.admin_port(), "t", 15s, &last));
  const auto pid = last.instances.front().pid;

  auto first = http_get(wg.http_port(), "t.test", "/overrun?n=1000");
  INFO(describe(first));
  REQUIRE(first.status == 200);
  CHECK(first.body.size() == 1000);
  for (int i = 0; i < 3; ++i) {
    auto r = http_get(wg.http_port(), "t.test", "/pid");
    INFO("request " << i << ": " << describe(r));
    CHECK(r.status == 200);
    CHECK(r.body == std::to_string(pid));
  }
}
