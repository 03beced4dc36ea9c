// The access log's `error`: why wakegate answered a request itself or cut its response, so that
// a log line alone tells a queue timeout from a full queue, a failed start, a timeout or a crash.
#include <catch2/catch.hpp>

#include <boost/json/serialize.hpp>
#include <future>
#include <thread>
#include <string>

#include "tests/support/integration.hpp"

using namespace wakegate::test;

namespace {

// The access record of `path` (the first one), waited for: records lag behind answers.
boost::json::object access_record(const wakegate_process& wg, const std::string& path) {
  auto found = wg.access_record(path);
  INFO("access record of " << path << ": " << boost::json::serialize(found));
  REQUIRE_FALSE(found.empty());
  return found;
}

}  // namespace

TEST_CASE("access log: wakegate's own answers say why in `error`, a queue-full 503 is not a held request",
          "[integration][access_log]") {
  auto marker = unique_marker();
  config_yaml c;
  c.extra.push_back("limits: { response_header_timeout: 2s }");
  c.apps.push_back(app_yaml("t", {"t.test"}, marker).set("min_instances", "1").set("max_body", "100"));
  c.apps.push_back(app_yaml("full", {"full.test"}, marker)
                       .set("min_instances", "1")
                       .set("max_instances", "1")
                       .set("max_concurrency", "1")
                       .set("queue_size", "0"));
  c.apps.push_back(
      app_yaml("slow", {"slow.test"}, marker).set("queue_timeout", "300ms").env_var("STARTUP_DELAY_MS", "3000"));
  wakegate_process wg(c.str(), wakegate_options::cleaning({marker}));
  REQUIRE(wait_one_ready(wg.admin_port(), "t"));
  REQUIRE(wait_one_ready(wg.admin_port(), "full"));

  SECTION("queue full: 503, not held, no queue-wait sample") {
    auto busy = std::async(std::launch::async, [&] { return http_get(wg.http_port(), "full.test", "/sleep?ms=1500"); });
    REQUIRE(wait_app(wg.admin_port(), "full", [](const app_status& a) { return a.in_flight == 1; }, 3s));
    auto r = http_get(wg.http_port(), "full.test", "/full-refused");
    INFO(describe(r));
    CHECK(r.status == 503);
    auto x = access_record(wg, "/full-refused");
    CHECK(json_number(x, "status").value_or(0) == 503);
    CHECK(json_string(x, "error") == "app full: queue full");
    CHECK(json_bool(x, "held") == std::optional<bool>(false));
    CHECK(busy.get().status == 200);
    CHECK(wait_metric(wg.admin_port(), "wakegate_requests_total", {{"app", "full"}, {"code", "200"}}, 1, 3s));
    CHECK(scrape_value(wg.admin_port(), "wakegate_queue_wait_seconds_count", {{"app", "full"}}).value_or(-1) == 0);
  }
  SECTION("queue timeout: 503 with its reason") {
    auto r = http_get(wg.http_port(), "slow.test", "/timed-out");
    INFO(describe(r));
    CHECK(r.status == 503);
    auto x = access_record(wg, "/timed-out");
    CHECK(json_bool(x, "held") == std::optional<bool>(true));
    CHECK(json_string(x, "error") ==
          "queue timeout: no instance of app slow could take the request within its queue_timeout (300ms)");
  }
  SECTION("response_header_timeout: 504 with its reason") {
    auto r = http_get(wg.http_port(), "t.test", "/sleep?ms=3000");
    INFO(describe(r));
    CHECK(r.status == 504);
    auto x = access_record(wg, "/sleep?ms=3000");
    CHECK(json_string(x, "error") == "instance t-1 did not answer in time");
  }
  SECTION("413 from Content-Length: its reason and the client's request id") {
    http_request big{.method = "POST", .target = "/big", .host = "t.test", .headers = {{"X-Request-Id", "rid-413"}},
                     .body = std::string(1000, 'x')};
    auto r = http_send(wg.http_port(), big);
    INFO(describe(r));
    CHECK(r.status == 413);
    auto x = access_record(wg, "/big");
    CHECK(json_string(x, "error") == "request body larger than 100 bytes");
    CHECK(json_string(x, "request_id") == "rid-413");
  }
  SECTION("unknown host: 404 with its reason and the client's request id") {
    http_request odd{.target = "/nowhere", .host = "nowhere.test", .headers = {{"X-Request-Id", "rid-404"}}};
    auto r = http_send(wg.http_port(), odd);
    CHECK(r.status == 404);
    auto x = access_record(wg, "/nowhere");
    CHECK(json_string(x, "error") == "no app for host nowhere.test");
    CHECK(json_string(x, "request_id") == "rid-404");
  }
}

TEST_CASE("access log: a response cut after its head says why, a streamed body's stall is not a response_header_timeout",
          "[integration][access_log]") {
  auto marker = unique_marker();
  config_yaml c;
  c.extra.push_back("limits: { io_timeout: 500ms, response_header_timeout: 10s }");
  c.apps.push_back(app_yaml("t", {"t.test"}, marker).set("min_instances", "1"));
  wakegate_process wg(c.str(), wakegate_options::cleaning({marker}));
  REQUIRE(wait_one_ready(wg.admin_port(), "t"));

  // The head streams at once (X-Accel-Buffering: no), then nothing for 3 s.
  auto r = http_get(wg.http_port(), "t.test", "/split?n=100000&ms=3000&nobuffer=1");
  INFO(describe(r));
  CHECK(r.status == 200);
  CHECK_FALSE(r.ok());  // cut short
  auto x = access_record(wg, "/split?n=100000&ms=3000&nobuffer=1");
  CHECK(json_number(x, "status").value_or(0) == 502);
  CHECK(json_string(x, "error") == "response cut after the instance's 200 head: the instance sent nothing for io_timeout");
  CHECK(scrape_value(wg.admin_port(), "wakegate_limit_hits_total", {{"limit", "response_header_timeout"}}).value_or(-1) == 0);

  // The instance closes after 1000 of 100000 bytes.
  r = http_get(wg.http_port(), "t.test", "/partial?close=1");
  INFO(describe(r));
  CHECK(r.status == 200);
  CHECK_FALSE(r.ok());
  x = access_record(wg, "/partial?close=1");
  CHECK(json_number(x, "status").value_or(0) == 502);
  CHECK(json_string(x, "error").starts_with("response cut after the instance's 200 head: instance t-1: "));
}

// Found in review: when the download failed first and stopped a concurrent upload, the cut was
// taken for the client's doing (logged with the instance's status, no error); and a body cut by
// request_timeout was called an io_timeout and not counted.
TEST_CASE("access log: a response cut while the request body is still coming says why", "[integration][access_log]") {
  auto marker = unique_marker();
  config_yaml c;
  c.extra.push_back("limits: { io_timeout: 1s }");
  c.apps.push_back(app_yaml("t", {"t.test"}, marker).set("min_instances", "1"));
  c.apps.push_back(app_yaml("r", {"r.test"}, marker).set("min_instances", "1").set("request_timeout", "500ms"));
  wakegate_process wg(c.str(), wakegate_options::cleaning({marker}));
  REQUIRE(wait_one_ready(wg.admin_port(), "t"));
  REQUIRE(wait_one_ready(wg.admin_port(), "r"));

  SECTION("the instance sends nothing for io_timeout while the client still sends") {
    // The test app answers /echo's head at once and echoes a Content-Length body only once it
    // has all of it: one byte every 400 ms keeps the client side alive, not the instance's.
    int sent = 0;
    http_request echo{.method = "POST", .target = "/echo?slow", .host = "t.test"};
    echo.content_length = 10;
    echo.source = [&](char* buf, std::size_t cap) -> std::size_t {
      if (sent == 10 || cap == 0) return 0;
      if (sent++ > 0) std::this_thread::sleep_for(400ms);  // the client's pace: what is under test
      buf[0] = 'x';
      return 1;
    };
    auto r = http_send(wg.http_port(), echo);
    INFO(describe(r));
    CHECK(r.status == 200);
    CHECK_FALSE(r.ok());
    auto x = access_record(wg, "/echo?slow");
    CHECK(json_number(x, "status").value_or(0) == 502);
    CHECK(json_string(x, "error") == "response cut after the instance's 200 head: the instance sent nothing for io_timeout");
  }
  SECTION("request_timeout passes while the body is still coming") {
    bool first = true;
    http_request echo{.method = "POST", .target = "/echo?stalled", .host = "r.test"};  // chunked
    echo.source = [&](char* buf, std::size_t cap) -> std::size_t {
      if (first && cap > 0) {
        first = false;
        buf[0] = 'x';
        return 1;
      }
      // The body stalls until wakegate has cut the exchange (its access line is out).
      wait_until(
          [&] {
            for (const auto& x : wg.access_records())
              if (json_string(x, "path") == "/echo?stalled") return true;
            return false;
          },
          10s);
      return 0;
    };
    auto r = http_send(wg.http_port(), echo);
    INFO(describe(r));
    CHECK(r.status == 200);
    CHECK_FALSE(r.ok());
    auto x = access_record(wg, "/echo?stalled");
    INFO(boost::json::serialize(x));
    CHECK(json_string(x, "error").starts_with("response cut after the instance's 200 head: request_timeout passed"));
    CHECK(wait_metric(wg.admin_port(), "wakegate_limit_hits_total", {{"limit", "request_timeout"}}, 1, 3s));
  }
}

// README: wakegate_unrouted_requests_total counts requests for a host no app serves (404), and
// "access_log: false turns it off": with it set, requests are served and no access record is
// written (the other log lines still are). With the default, the same requests are logged, which
// is what makes the check able to fail.
TEST_CASE("access log: access_log false writes no access record, and unknown hosts count in wakegate_unrouted_requests_total",
          "[integration][access_log]") {
  const bool logged = GENERATE(false, true);
  INFO("access_log: " << (logged ? "true (default)" : "false"));
  auto marker = unique_marker();
  config_yaml c;
  if (!logged) c.extra.push_back("access_log: false");
  c.apps.push_back(app_yaml("t", {"t.test"}, marker).set("min_instances", "1"));
  wakegate_process wg(c.str(), wakegate_options::cleaning({marker}));
  REQUIRE(wait_one_ready(wg.admin_port(), "t"));
  CHECK(scrape_value(wg.admin_port(), "wakegate_unrouted_requests_total") == std::optional<double>(0));

  for (int i = 0; i < 3; ++i) {
    auto r = http_get(wg.http_port(), "t.test", "/");
    INFO(describe(r));
    CHECK(r.status == 200);
  }
  auto own_404 = http_get(wg.http_port(), "t.test", "/no-such-path");  // the instance's own 404
  CHECK(own_404.status == 404);
  for (const std::string host : {"nope.test", "other.test:8080"}) {
    auto r = http_get(wg.http_port(), host, "/unrouted");
    INFO(describe(r));
    CHECK(r.status == 404);
  }
  // Counted when answered: the two unknown hosts, not the instance's 404.
  std::optional<double> unrouted;
  CHECK(wait_metric(wg.admin_port(), "wakegate_unrouted_requests_total", {}, 2, 3s, &unrouted));
  INFO("unrouted: " << unrouted.value_or(-1));
  CHECK(wait_metric(wg.admin_port(), "wakegate_requests_total", {{"app", "t"}, {"code", "200"}}, 3, 3s));
  if (logged) {
    CHECK(wait_until([&] { return wg.access_records().size() == 6; }, 5s));
  } else {
    // Access records would have been written when the requests were answered, before the
    // metrics above were read; a last one more is given the time a slow line could take.
    CHECK(holds_for([&] { return wg.access_records().empty(); }, 500ms));
    CHECK_FALSE(wg.records_with_msg("instance ready", "t").empty());  // other lines are still logged
  }
}
