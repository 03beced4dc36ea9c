// A client that hangs up while its request is at the instance: wakegate notices (within a second),
// closes the instance connection, and the request leaves the counts (499), as nginx does by
// default. Found by black-box testing: the request held its instance's capacity and the scaler's
// concurrency until response_header_timeout, and was then logged as the instance's 504.
#include <catch2/catch.hpp>

#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/read.hpp>
#include <boost/asio/write.hpp>
#include <boost/json/serialize.hpp>
#include <filesystem>
#include <string>

#include "tests/support/integration.hpp"

using namespace wakegate::test;
namespace asio = boost::asio;

namespace {

boost::json::object access_record(const wakegate_process& wg, const std::string& path) {
  auto found = wg.access_record(path);
  INFO("access record of " << path << ": " << boost::json::serialize(found));
  REQUIRE_FALSE(found.empty());
  return found;
}

}  // namespace

TEST_CASE("a client that hangs up while the instance works on its request: 499, the instance connection closed",
          "[integration][client_gone]") {
  auto marker = unique_marker();
  temp_dir dir;
  config_yaml c;
  c.apps.push_back(app_yaml("t", {"t.test"}, marker).set("min_instances", "1").set("max_instances", "1").set("max_concurrency", "1"));
  wakegate_process wg(c.str(), wakegate_options::cleaning({marker}));
  REQUIRE(wait_one_ready(wg.admin_port(), "t"));

  const std::string closed_file = dir.path() + "/closed";
  const std::string query = "/await-close?file=" + closed_file;
  asio::io_context ioc;
  asio::ip::tcp::socket s(ioc);
  s.connect({asio::ip::make_address("127.0.0.1"), wg.http_port()});

  std::string target;
  std::string expected_error = "the client closed the connection while the instance was answering";
  int expected_status = 499;
  enum class how { close, half_close } way = how::close;
  SECTION("GET, the client closes") {
    target = query + "&case=get";
    asio::write(s, asio::buffer("GET " + target + " HTTP/1.1\r\nHost: t.test\r\n\r\n"));
  }
  SECTION("GET, the client only shuts down its sending side (as in nginx: gone)") {
    target = query + "&case=half";
    asio::write(s, asio::buffer("GET " + target + " HTTP/1.1\r\nHost: t.test\r\n\r\n"));
    way = how::half_close;
  }
  SECTION("POST with a body (the request went out through the upload)") {
    target = query + "&case=post";
    asio::write(s, asio::buffer("POST " + target + " HTTP/1.1\r\nHost: t.test\r\nContent-Length: 5\r\n\r\nhello"));
  }
  SECTION("the response had started: its head and a first chunk reached the client") {
    target = query + "&case=started&head=1";
    asio::write(s, asio::buffer("GET " + target + " HTTP/1.1\r\nHost: t.test\r\n\r\n"));
    std::string got(256, '\0');
    std::size_t n = 0;
    while (got.substr(0, n).find("first\n") == std::string::npos && n < got.size())
      n += s.read_some(asio::buffer(got.data() + n, got.size() - n));
    REQUIRE(got.substr(0, n).starts_with("HTTP/1.1 200"));
    expected_status = 200;  // what the client saw; the error says it was cut
    expected_error = "response cut after the instance's 200 head: the client closed the connection";
  }

  app_status last;
  REQUIRE(wait_app(wg.admin_port(), "t", [](const app_status& a) { return a.in_flight == 1; }, 5s, &last));
  if (way == how::close) {
    s.close();
  } else {
    s.shutdown(asio::ip::tcp::socket::shutdown_send);
  }

  // Noticed by the sweep within a second; the deadlines leave room for a loaded machine.
  bool released = wait_app(wg.admin_port(), "t", [](const app_status& a) { return a.in_flight == 0; }, 5s, &last);
  INFO("in_flight " << last.in_flight);
  CHECK(released);
  // The instance saw its connection close: it learns that nobody waits for the answer.
  CHECK(wait_until([&] { return std::filesystem::exists(closed_file); }, 5s));

  auto x = access_record(wg, target);
  CHECK(json_number(x, "status").value_or(0) == expected_status);
  CHECK(json_string(x, "error") == expected_error);
  if (expected_status == 499)
    CHECK(wait_metric(wg.admin_port(), "wakegate_requests_total", {{"app", "t"}, {"code", "499"}}, 1, 3s));
  // Not the instance's fault: it stays ready and unblamed, and no limit ran out.
  auto after = fetch_app_status(wg.admin_port(), "t");
  REQUIRE(after);
  CHECK(after->count("ready") == 1);
  CHECK(after->last_error.empty());
  CHECK(scrape_value(wg.admin_port(), "wakegate_limit_hits_total", {{"limit", "response_header_timeout"}})
            .value_or(0) == 0);
  // The capacity is free again: the next request is served by the same instance at once.
  auto r = http_get(wg.http_port(), "t.test", "/");
  CHECK(r.status == 200);
  if (way == how::half_close) s.close();
}

TEST_CASE("a client with a next request already sent is not taken for gone while the first is answered",
          "[integration][client_gone]") {
  auto marker = unique_marker();
  config_yaml c;
  c.apps.push_back(app_yaml("t", {"t.test"}, marker).set("min_instances", "1"));
  wakegate_process wg(c.str(), wakegate_options::cleaning({marker}));
  REQUIRE(wait_one_ready(wg.admin_port(), "t"));

  http_connection conn(wg.http_port());
  // Pipelined: the second request waits, unread, in the socket while the first takes 1.5 s, over
  // more than one of the sweep's polls.
  REQUIRE(conn.write_raw("GET /sleep?ms=1500 HTTP/1.1\r\nHost: t.test\r\n\r\n"
                         "GET /pid HTTP/1.1\r\nHost: t.test\r\n\r\n")
              .empty());
  auto first = conn.read_response();
  INFO(describe(first));
  CHECK(first.status == 200);
  CHECK(first.body == "slept 1500");
  auto second = conn.read_response();
  INFO(describe(second));
  CHECK(second.status == 200);
  CHECK(scrape_value(wg.admin_port(), "wakegate_requests_total", {{"app", "t"}, {"code", "499"}}).value_or(0) == 0);
}

TEST_CASE("a client that hangs up while sending its request body: 499, and the log says why", "[integration][client_gone]") {
  auto marker = unique_marker();
  temp_dir dir;
  config_yaml c;
  c.apps.push_back(app_yaml("t", {"t.test"}, marker).set("min_instances", "1"));
  wakegate_process wg(c.str(), wakegate_options::cleaning({marker}));
  REQUIRE(wait_one_ready(wg.admin_port(), "t"));

  const std::string target = "/await-close?file=" + dir.path() + "/closed&case=upload";
  asio::io_context ioc;
  asio::ip::tcp::socket s(ioc);
  s.connect({asio::ip::make_address("127.0.0.1"), wg.http_port()});
  asio::write(s, asio::buffer("POST " + target + " HTTP/1.1\r\nHost: t.test\r\nContent-Length: 100000\r\n\r\n" +
                              std::string(1000, 'x')));
  app_status last;
  REQUIRE(wait_app(wg.admin_port(), "t", [](const app_status& a) { return a.in_flight == 1; }, 5s, &last));
  s.close();

  auto x = access_record(wg, target);
  CHECK(json_number(x, "status").value_or(0) == 499);
  // Found by black-box testing: this 499 alone had no `error`.
  CHECK(json_string(x, "error") == "the client closed the connection before its request body was all sent");
  CHECK(wait_app(wg.admin_port(), "t", [](const app_status& a) { return a.in_flight == 0; }, 5s, &last));
}
