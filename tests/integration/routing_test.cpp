// Routing by Host and the headers wakegate adds and removes.
#include <boost/json/parse.hpp>
#include <catch2/catch.hpp>
#include <string>

#include "tests/support/integration.hpp"

using namespace wakegate::test;

namespace {

// The headers the test app received, from GET /headers (lower-case names).
boost::json::object headers_seen(const http_response& r) {
  boost::system::error_code ec;
  auto v = boost::json::parse(r.body, ec);
  if (ec || !v.is_object()) return {};
  return v.as_object();
}

bool pid_of(const std::optional<app_status>& app, pid_t pid) {
  if (!app) return false;
  for (const auto& i : app->instances)
    if (i.pid == pid) return true;
  return false;
}

pid_t body_pid(const http_response& r) {
  if (!starts_with(r.body, "ok ")) return 0;
  return static_cast<pid_t>(std::atoi(r.body.c_str() + 3));
}

}  // namespace

TEST_CASE("unknown host: 404 with a short plain-text body and no instance started", "[integration][routing]") {
  auto marker = unique_marker();
  config_yaml c;
  c.apps.push_back(app_yaml("t", {"t.test"}, marker));
  wakegate_process wg(c.str(), wakegate_options::cleaning({marker}));

  auto r = http_get(wg.http_port(), "nope.test", "/x");
  INFO(describe(r));
  CHECK(r.status == 404);
  CHECK(starts_with(r.header("Content-Type"), "text/plain"));
  CHECK(r.body == "no app for host nope.test\n");

  auto with_port = http_get(wg.http_port(), "nope.test:8080", "/");
  INFO(describe(with_port));
  CHECK(with_port.status == 404);
  CHECK(with_port.body.size() < 200);

  CHECK(wg.wait_for_record(
      [](const auto& x) {
        return json_string(x, "type") == "access" && json_number(x, "status").value_or(0) == 404 &&
               json_string(x, "path") == "/x" && json_string(x, "app").empty() && json_string(x, "instance").empty();
      },
      5s));
  CHECK(count_processes(marker) == 0);
}

TEST_CASE("Host matching ignores case and port and a wildcard host matches subdomains only", "[integration][routing]") {
  auto ma = unique_marker(), mw = unique_marker();
  config_yaml c;
  c.apps.push_back(app_yaml("a", {"a.test"}, ma).set("min_instances", "1"));
  c.apps.push_back(app_yaml("w", {"*.w.test"}, mw).set("min_instances", "1"));
  wakegate_process wg(c.str(), wakegate_options::cleaning({ma, mw}));
  REQUIRE(wait_app(
      wg.admin_port(), "a", [](const app_status& s) { return s.count("ready") == 1; }, 15s));
  REQUIRE(wait_app(
      wg.admin_port(), "w", [](const app_status& s) { return s.count("ready") == 1; }, 15s));
  auto a = fetch_app_status(wg.admin_port(), "a");
  auto w = fetch_app_status(wg.admin_port(), "w");

  for (std::string host : {"a.test", "A.TEST", "a.test:8080", "A.Test:1"}) {
    auto r = http_get(wg.http_port(), host, "/");
    INFO("Host: " << host << " -> " << describe(r));
    CHECK(r.status == 200);
    CHECK(pid_of(a, body_pid(r)));
  }
  for (std::string host : {"x.w.test", "X.W.TEST", "y.w.test:9999"}) {
    auto r = http_get(wg.http_port(), host, "/");
    INFO("Host: " << host << " -> " << describe(r));
    CHECK(r.status == 200);
    CHECK(pid_of(w, body_pid(r)));
  }
  for (std::string host : {"w.test", "xw.test", "a.test.example", "b.test", "w.test.x"}) {
    auto r = http_get(wg.http_port(), host, "/");
    INFO("Host: " << host << " -> " << describe(r));
    CHECK(r.status == 404);
  }
}

TEST_CASE("X-Forwarded headers and X-Request-Id are set and hop-by-hop headers are not forwarded", "[integration][routing]") {
  auto marker = unique_marker();
  config_yaml c;
  c.apps.push_back(app_yaml("h", {"h.test"}, marker));
  wakegate_process wg(c.str(), wakegate_options::cleaning({marker}));

  http_connection conn(wg.http_port());
  http_request req;
  req.host = "h.test";
  req.target = "/headers";
  req.headers = {{"Connection", "keep-alive, X-Secret"},
                 {"X-Secret", "must not pass"},
                 {"Keep-Alive", "timeout=5"},
                 {"Proxy-Connection", "keep-alive"},
                 {"TE", "trailers"},
                 {"X-Custom", "passes"}};
  auto r = conn.send(req);
  INFO(describe(r));
  REQUIRE(r.status == 200);
  auto seen = headers_seen(r);
  REQUIRE_FALSE(seen.empty());
  CHECK(json_string(seen, "x-forwarded-for") == "127.0.0.1");
  CHECK(json_string(seen, "x-forwarded-proto") == "http");
  CHECK(json_string(seen, "x-forwarded-host") == "h.test");
  auto request_id = json_string(seen, "x-request-id");
  CHECK_FALSE(request_id.empty());
  CHECK(json_string(seen, "x-custom") == "passes");
  CHECK_FALSE(seen.contains("x-secret"));
  CHECK_FALSE(seen.contains("keep-alive"));
  CHECK_FALSE(seen.contains("proxy-connection"));
  CHECK_FALSE(seen.contains("te"));
  CHECK_FALSE(contains(to_lower(json_string(seen, "connection")), "x-secret"));

  // The access log carries the id the instance saw.
  CHECK(wg.wait_for_record(
      [&](const auto& x) {
        return json_string(x, "type") == "access" && json_string(x, "path") == "/headers" &&
               json_string(x, "request_id") == request_id;
      },
      5s));

  // A client's X-Request-Id is kept; ids differ between requests.
  http_request with_id;
  with_id.host = "h.test";
  with_id.target = "/headers";
  with_id.headers = {{"X-Request-Id", "test-id-0123456789"}};
  auto r2 = conn.send(with_id);
  INFO(describe(r2));
  REQUIRE(r2.status == 200);
  CHECK(json_string(headers_seen(r2), "x-request-id") == "test-id-0123456789");

  http_request plain;
  plain.host = "h.test";
  plain.target = "/headers";
  auto r3 = conn.send(plain);
  REQUIRE(r3.status == 200);
  auto id3 = json_string(headers_seen(r3), "x-request-id");
  CHECK_FALSE(id3.empty());
  CHECK(id3 != request_id);
  CHECK(conn.connects() == 1);  // the client connection was kept alive across the three requests
}
