// The hold queue: full -> 503, timeout -> 503, clients that hang up while held, bodies sent while held.
#include <catch2/catch.hpp>
#include <string>

#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/write.hpp>

#include "tests/support/integration.hpp"

using namespace wakegate::test;

TEST_CASE("queue full: 503 with Retry-After and the rejection counted as full", "[integration][queue]") {
  auto marker = unique_marker();
  config_yaml c;
  c.apps.push_back(app_yaml("t", {"t.test"}, marker)
                       .set("min_instances", "1")
                       .set("max_instances", "1")
                       .set("max_concurrency", "1")
                       .set("queue_size", "2"));
  wakegate_process wg(c.str(), wakegate_options::cleaning({marker}));
  REQUIRE(wait_one_ready(wg.admin_port(), "t"));

  // 1 in flight on the only instance + 2 held; the other 7 find the queue full. All are sent well
  // within the 1.5 s that the first one takes.
  auto responses = run_concurrently(10, [&](int) {
    http_request req;
    req.host = "t.test";
    req.target = "/sleep?ms=1500";
    return http_send(wg.http_port(), req);
  });
  INFO("responses: " << summarize(responses));
  CHECK(count_status(responses, 200) == 3);
  CHECK(count_status(responses, 503) == 7);
  int rejected = 0;
  for (const auto& r : responses) {
    if (r.status != 503) continue;
    ++rejected;
    INFO(describe(r));
    CHECK(r.header("Retry-After") == "1");
    CHECK(contains(to_lower(r.body), "full"));
    CHECK(r.elapsed < 1000ms);  // rejected at once, not after waiting
  }

  std::optional<double> full;
  CHECK(wait_metric(wg.admin_port(), "wakegate_queue_rejections_total", {{"app", "t"}, {"reason", "full"}}, rejected,
                    3s, &full));
  INFO("reason=full: " << full.value_or(-1));
  CHECK(scrape_value(wg.admin_port(), "wakegate_queue_rejections_total", {{"app", "t"}, {"reason", "timeout"}})
            .value_or(0) == 0);
  CHECK(wait_metric(wg.admin_port(), "wakegate_queued_requests", {{"app", "t"}}, 0, 3s));
  CHECK(wait_metric(wg.admin_port(), "wakegate_requests_total", {{"app", "t"}, {"code", "503"}}, rejected, 3s));
}

TEST_CASE("queue timeout: 503 with Retry-After and the rejection counted as timeout", "[integration][queue]") {
  auto marker = unique_marker();
  config_yaml c;
  c.set_default("scale_to_zero_after", "30s");  // idle after the rejections, but the start must go on
  c.apps.push_back(app_yaml("t", {"t.test"}, marker).set("queue_timeout", "300ms").env_var("STARTUP_DELAY_MS", "3000"));
  wakegate_process wg(c.str(), wakegate_options::cleaning({marker}));

  auto responses = run_concurrently(3, [&](int) { return http_get(wg.http_port(), "t.test", "/"); });
  INFO("responses: " << summarize(responses));
  CHECK(count_status(responses, 503) == 3);
  for (const auto& r : responses) {
    INFO(describe(r));
    CHECK(r.header("Retry-After") == "1");
    CHECK(contains(to_lower(r.body), "timeout"));
    CHECK(r.elapsed >= 250ms);
    CHECK(r.elapsed < 2500ms);  // well before the instance is up
  }

  std::optional<double> timeouts;
  CHECK(wait_metric(wg.admin_port(), "wakegate_queue_rejections_total", {{"app", "t"}, {"reason", "timeout"}}, 3, 3s,
                    &timeouts));
  INFO("reason=timeout: " << timeouts.value_or(-1));
  CHECK(scrape_value(wg.admin_port(), "wakegate_queue_rejections_total", {{"app", "t"}, {"reason", "full"}})
            .value_or(0) == 0);

  // The start goes on: once the instance is ready, requests succeed.
  CHECK(wait_one_ready(wg.admin_port(), "t"));
  auto ok = http_get(wg.http_port(), "t.test", "/");
  INFO(describe(ok));
  CHECK(ok.status == 200);
}

// Found by black-box testing: a hold ended by the app's request_timeout was answered and counted
// as a queue timeout, naming queue_timeout's value.
TEST_CASE("a hold ended by request_timeout is answered and counted as a request timeout", "[integration][queue]") {
  auto marker = unique_marker();
  config_yaml c;
  c.apps.push_back(app_yaml("t", {"t.test"}, marker)
                       .set("request_timeout", "300ms")
                       .set("queue_timeout", "30s")
                       .env_var("STARTUP_DELAY_MS", "3000"));
  wakegate_process wg(c.str(), wakegate_options::cleaning({marker}));
  auto r = http_get(wg.http_port(), "t.test", "/");
  INFO(describe(r));
  CHECK(r.status == 503);
  CHECK(contains(r.body, "request timeout: no instance of app t could take the request within its request_timeout (300ms)"));
  CHECK(wait_metric(wg.admin_port(), "wakegate_limit_hits_total", {{"limit", "request_timeout"}}, 1, 3s));
  CHECK(scrape_value(wg.admin_port(), "wakegate_queue_rejections_total", {{"app", "t"}, {"reason", "timeout"}})
            .value_or(-1) == 0);
}

TEST_CASE("a client that hangs up while held leaves the queue and in-flight gauges at 0", "[integration][queue]") {
  auto marker = unique_marker();
  config_yaml c;
  c.apps.push_back(
      app_yaml("t", {"t.test"}, marker).set("startup_timeout", "60s").env_var("STARTUP_DELAY_MS", "10000"));
  wakegate_process wg(c.str(), wakegate_options::cleaning({marker}));

  http_connection conn(wg.http_port());
  http_request req;
  req.host = "t.test";
  req.target = "/";
  REQUIRE(conn.write_request(req).empty());

  app_status last;
  REQUIRE(wait_app(
      wg.admin_port(), "t", [](const app_status& a) { return a.queue_length == 1; }, 5s, &last));
  CHECK(scrape_value(wg.admin_port(), "wakegate_queued_requests", {{"app", "t"}}).value_or(-1) == 1);

  conn.close();

  // Noticed while the instance is still starting (it binds only after 10 s).
  // The queue and the in-flight count are released by different threads a moment apart.
  bool drained = wait_app(
      wg.admin_port(), "t", [](const app_status& a) { return a.queue_length == 0 && a.in_flight == 0; }, 3s, &last);
  INFO("queue_length " << last.queue_length << ", in_flight " << last.in_flight);
  CHECK(drained);
  CHECK(last.count("ready") == 0);
  CHECK(last.in_flight == 0);
  CHECK(wait_metric(wg.admin_port(), "wakegate_queued_requests", {{"app", "t"}}, 0, 3s));
  CHECK(wait_metric(wg.admin_port(), "wakegate_in_flight_requests", {{"app", "t"}}, 0, 3s, nullptr, 0.0));
}

TEST_CASE("a body sent while held, more than wakegate buffers, is forwarded whole after the cold start",
          "[integration][queue]") {
  auto marker = unique_marker();
  config_yaml c;
  c.apps.push_back(app_yaml("t", {"t.test"}, marker).env_var("STARTUP_DELAY_MS", "1500"));
  wakegate_process wg(c.str(), wakegate_options::cleaning({marker}));

  // 1 MiB: far past the client buffer (max_header_bytes + 16 KiB), so the held request stops
  // reading and waits with its buffer full until the instance is ready.
  std::string body(1 << 20, '\0');
  for (std::size_t i = 0; i < body.size(); ++i) body[i] = static_cast<char>('a' + (i * 7 + i / 4096) % 26);
  http_request req;
  req.method = "POST";
  req.host = "t.test";
  req.target = "/echo";
  req.body = body;
  auto r = http_send(wg.http_port(), req);
  INFO(describe(r));
  REQUIRE(r.status == 200);
  CHECK(r.body.size() == body.size());
  CHECK(r.body == body);
  // It was held: the request was the cold start.
  CHECK(wait_metric(wg.admin_port(), "wakegate_cold_start_seconds_count", {{"app", "t"}}, 1, 3s));
}

TEST_CASE("a held client that resets its connection with the buffer full leaves the queue at once",
          "[integration][queue]") {
  auto marker = unique_marker();
  config_yaml c;
  c.apps.push_back(
      app_yaml("t", {"t.test"}, marker).set("startup_timeout", "60s").env_var("STARTUP_DELAY_MS", "10000"));
  wakegate_process wg(c.str(), wakegate_options::cleaning({marker}));

  boost::asio::io_context ioc;
  boost::asio::ip::tcp::socket s(ioc);
  s.connect({boost::asio::ip::make_address("127.0.0.1"), wg.http_port()});
  std::string head = "POST /echo HTTP/1.1\r\nHost: t.test\r\nContent-Length: 4194304\r\n\r\n";
  boost::asio::write(s, boost::asio::buffer(head));
  // Past wakegate's buffer, and little enough that the socket buffers take it without blocking.
  std::string part(256 * 1024, 'x');
  boost::asio::write(s, boost::asio::buffer(part));

  app_status last;
  REQUIRE(wait_app(
      wg.admin_port(), "t", [](const app_status& a) { return a.queue_length == 1; }, 5s, &last));
  s.set_option(boost::asio::socket_base::linger(true, 0));  // close with a reset
  s.close();

  bool drained = wait_app(
      wg.admin_port(), "t", [](const app_status& a) { return a.queue_length == 0 && a.in_flight == 0; }, 3s, &last);
  INFO("queue_length " << last.queue_length << ", in_flight " << last.in_flight);
  CHECK(drained);
  CHECK(last.count("ready") == 0);  // noticed long before the instance is up
}
