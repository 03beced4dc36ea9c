#include <catch2/catch.hpp>

#include <boost/beast/http.hpp>

#include "proxy/headers.hpp"
#include "proxy/request_check.hpp"

namespace http = boost::beast::http;
using namespace wakegate;

TEST_CASE("headers: hop-by-hop headers and those named in Connection are removed", "[headers]") {
  http::fields f;
  f.set(http::field::host, "a.test");
  f.set(http::field::connection, "keep-alive, X-Secret, Host, content-length");
  f.set("X-Secret", "s");
  f.set(http::field::keep_alive, "timeout=5");
  f.set(http::field::proxy_connection, "keep-alive");
  f.set(http::field::te, "trailers");
  f.set(http::field::trailer, "X-T");
  f.set(http::field::upgrade, "websocket");
  f.set(http::field::content_length, "3");
  f.set("X-Keep", "k");
  proxy::strip_hop_by_hop(f);
  CHECK(f.count(http::field::connection) == 0);
  CHECK(f.count("X-Secret") == 0);
  CHECK(f.count(http::field::keep_alive) == 0);
  CHECK(f.count(http::field::proxy_connection) == 0);
  CHECK(f.count(http::field::te) == 0);
  CHECK(f.count(http::field::trailer) == 0);
  CHECK(f.count(http::field::upgrade) == 0);
  // Framing headers are governed by the message, not by Connection.
  CHECK(f[http::field::host] == "a.test");
  CHECK(f[http::field::content_length] == "3");
  CHECK(f["X-Keep"] == "k");
}

TEST_CASE("headers: X-Forwarded-* set, X-Forwarded-For appended, request id added or kept", "[headers]") {
  http::fields f;
  f.set(http::field::host, "a.test:8080");
  auto id = std::string(proxy::rewrite_request(f, {"10.1.2.3", "http"}));
  CHECK(f["X-Forwarded-For"] == "10.1.2.3");
  CHECK(f["X-Forwarded-Proto"] == "http");
  CHECK(f["X-Forwarded-Host"] == "a.test:8080");
  CHECK(id.size() == 32);
  CHECK(f["X-Request-Id"] == id);

  http::fields g;
  g.set(http::field::host, "a.test");
  g.set("X-Forwarded-For", "192.0.2.1");
  g.set("X-Forwarded-Proto", "https");
  g.set("X-Request-Id", "abc");
  auto kept = std::string(proxy::rewrite_request(g, {"127.0.0.1", "http"}));
  CHECK(g["X-Forwarded-For"] == "192.0.2.1, 127.0.0.1");
  CHECK(g["X-Forwarded-Proto"] == "http");  // the client cannot claim https
  CHECK(kept == "abc");

  http::fields h;
  CHECK(std::string(proxy::rewrite_request(h, {"127.0.0.1", "http"})) != id);
}

namespace {

proxy::check_result check(std::string_view raw) {
  http::request_parser<http::buffer_body> p;
  boost::beast::error_code ec;
  p.put(boost::asio::buffer(raw.data(), raw.size()), ec);
  // Beast itself refuses some of these; either way the request is answered 400 and not forwarded.
  if (ec && ec != http::error::need_buffer && ec != http::error::need_more) return {400, "parser"};
  REQUIRE(p.is_header_done());
  return proxy::check_request(p, proxy::check_head(raw, 100));
}

}  // namespace

TEST_CASE("request check: framing that readers could disagree on is refused", "[request_check]") {
  struct row {
    std::string_view raw;
    unsigned status;
  };
  const row rows[] = {
      {"GET / HTTP/1.1\r\nHost: a\r\n\r\n", 0},
      {"GET / HTTP/1.0\r\n\r\n", 0},
      {"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\n\r\n", 0},
      {"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n", 0},
      {"GET / HTTP/1.1\r\n\r\n", 400},                                   // no Host
      {"GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", 400},             // two Hosts
      {"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n", 400},
      {"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip\r\n\r\n", 400},
      {"POST / HTTP/1.0\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n", 400},
      {"GET x HTTP/1.1\r\nHost: a\r\n\r\n", 400},
  };
  for (const auto& r : rows) {
    INFO(r.raw);
    CHECK(check(r.raw).status == r.status);
  }
}

TEST_CASE("headers: wants_upgrade needs an upgrade token in Connection and an Upgrade header", "[headers][upgrade]") {
  http::fields f;
  CHECK_FALSE(proxy::wants_upgrade(f));
  f.set(http::field::upgrade, "websocket");
  CHECK_FALSE(proxy::wants_upgrade(f));  // no Connection: upgrade
  f.set(http::field::connection, "keep-alive");
  CHECK_FALSE(proxy::wants_upgrade(f));
  f.set(http::field::connection, "keep-alive, Upgrade");
  CHECK(proxy::wants_upgrade(f));
  f.set(http::field::connection, "upgrade");
  CHECK(proxy::wants_upgrade(f));
  f.set(http::field::connection, "upgrades, x-upgrade");
  CHECK_FALSE(proxy::wants_upgrade(f));
  f.set(http::field::connection, "UPGRADE");
  f.set(http::field::upgrade, "  ");
  CHECK_FALSE(proxy::wants_upgrade(f));  // empty Upgrade
  f.erase(http::field::upgrade);
  CHECK_FALSE(proxy::wants_upgrade(f));
}

TEST_CASE("headers: an upgrade request keeps Upgrade and Connection upgrade, other Connection names dropped", "[headers][upgrade]") {
  http::request<http::buffer_body> req{http::verb::get, "/ws", 11};
  req.set(http::field::host, "a.test");
  req.set(http::field::connection, "Upgrade, X-Secret, keep-alive");
  req.set(http::field::upgrade, "websocket");
  req.set("X-Secret", "s");
  req.set(http::field::keep_alive, "timeout=5");
  req.set("Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ==");
  REQUIRE(proxy::wants_upgrade(req));
  auto id = std::string(proxy::prepare_forward(req, {"10.0.0.1", "http"}, false, true));
  CHECK(id.size() == 32);
  CHECK(req[http::field::connection] == "upgrade");
  CHECK(req.count(http::field::connection) == 1);
  CHECK(req[http::field::upgrade] == "websocket");
  CHECK(req.count("X-Secret") == 0);
  CHECK(req.count(http::field::keep_alive) == 0);
  CHECK(req["Sec-WebSocket-Key"] == "dGhlIHNhbXBsZSBub25jZQ==");
  CHECK(req["X-Request-Id"] == id);

  // Not an upgrade: Upgrade is dropped as before.
  http::request<http::buffer_body> plain{http::verb::get, "/", 11};
  plain.set(http::field::connection, "upgrade");
  plain.set(http::field::upgrade, "websocket");
  proxy::prepare_forward(plain, {"10.0.0.1", "http"}, false);
  CHECK(plain.count(http::field::upgrade) == 0);
  CHECK(plain[http::field::connection] != "upgrade");
}
