#include <catch2/catch.hpp>

#include <string>

#include <boost/asio/buffer.hpp>
#include <boost/beast/core/buffers_to_string.hpp>
#include <boost/beast/http.hpp>

#include "proxy/wire.hpp"

namespace http = boost::beast::http;
using namespace wakegate::proxy;

namespace {

// What Beast's own serializer writes for a message: the reference the wire code must match.
template <bool isRequest>
std::string beast_bytes(http::message<isRequest, http::string_body>& m) {
  http::serializer<isRequest, http::string_body> sr{m};
  std::string out;
  boost::beast::error_code ec;
  while (!sr.is_done()) {
    sr.next(ec, [&](boost::beast::error_code&, const auto& buffers) {
      out += boost::beast::buffers_to_string(buffers);
      sr.consume(boost::asio::buffer_size(buffers));
    });
    REQUIRE(!ec);
  }
  return out;
}

std::string gathered(const wire::gather& g) {
  std::string out;
  for (const auto& b : g.buffers()) out.append(static_cast<const char*>(b.data()), b.size());
  CHECK(out.size() == g.size());
  return out;
}

}  // namespace

TEST_CASE("wire: a response head with its Content-Length body is byte for byte what Beast writes", "[wire]") {
  http::response<http::string_body> res{http::status::ok, 11};
  res.set(http::field::server, "app");
  res.set("X-Custom", "v 1");
  res.set(http::field::content_type, "text/plain");
  res.body() = "hello";
  res.prepare_payload();
  auto reference = beast_bytes(res);
  std::string head;
  wire::append_response_head(res, head);
  CHECK(gathered(wire::gather(head, "hello", 5, false, true)) == reference);
}

TEST_CASE("wire: an HTTP/1.0 status line keeps its version", "[wire]") {
  http::response<http::string_body> res{http::status::ok, 10};
  res.set(http::field::server, "a");
  std::string head;
  wire::append_response_head(res, head);
  CHECK(head == "HTTP/1.0 200 OK\r\nServer: a\r\n\r\n");
}

TEST_CASE("wire: a response keeps the instance's reason phrase, else the standard one", "[wire]") {
  http::response<http::string_body> res{http::status::not_found, 11};
  res.set(http::field::server, "x");
  std::string head;
  wire::append_response_head(res, head);
  CHECK(head == "HTTP/1.1 404 Not Found\r\nServer: x\r\n\r\n");
  res.reason("Nope");
  res.prepare_payload();
  head.clear();
  wire::append_response_head(res, head);
  CHECK(head == beast_bytes(res).substr(0, head.size()));
  CHECK(head.starts_with("HTTP/1.1 404 Nope\r\n"));
  http::response<http::string_body> odd{static_cast<http::status>(599), 11};
  head.clear();
  wire::append_response_head(odd, head);
  CHECK(head.starts_with("HTTP/1.1 599 "));
}

TEST_CASE("wire: chunked bodies are framed as Beast frames them", "[wire]") {
  http::response<http::string_body> res{http::status::ok, 11};
  res.chunked(true);
  std::string head;
  wire::append_response_head(res, head);
  std::string body(300, 'x');
  std::string ours = gathered(wire::gather(head, body.data(), 44, true, false)) +
                     gathered(wire::gather({}, body.data() + 44, 256, true, false)) +
                     gathered(wire::gather({}, nullptr, 0, true, true));
  CHECK(ours == head + "2c\r\n" + body.substr(0, 44) + "\r\n100\r\n" + body.substr(44) + "\r\n0\r\n\r\n");
  // Data and the last chunk in the same write.
  CHECK(gathered(wire::gather({}, "abc", 3, true, true)) == "3\r\nabc\r\n0\r\n\r\n");
}

TEST_CASE("wire: nothing to send is an empty gather", "[wire]") {
  wire::gather g({}, nullptr, 0, false, true);
  CHECK(g.size() == 0);
  wire::gather c({}, nullptr, 0, true, false);
  CHECK(c.size() == 0);
}
