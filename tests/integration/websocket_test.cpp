// WebSocket (Upgrade) through wakegate: the handshake and the frames tunnelled both ways, counted
// in flight while open, and ended on drain.
#include <signal.h>

#include <catch2/catch.hpp>
#include <string>

#include <boost/asio/connect.hpp>
#include <boost/asio/read_until.hpp>
#include <boost/asio/write.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/beast/core/buffers_to_string.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/beast/ssl/ssl_stream.hpp>
#include <boost/beast/websocket.hpp>
#include <boost/beast/websocket/ssl.hpp>

#include "tests/support/integration.hpp"
#include "tests/support/tls.hpp"

using namespace wakegate::test;
namespace asio = boost::asio;
namespace beast = boost::beast;
namespace websocket = beast::websocket;
using asio::ip::tcp;

namespace {

// A WebSocket client connected through wakegate to `host` /ws (handshake done).
struct ws_client {
  asio::io_context ioc;
  websocket::stream<tcp::socket> ws{ioc};

  ws_client(std::uint16_t port, const std::string& host) {
    ws.next_layer().connect(tcp::endpoint(asio::ip::make_address("127.0.0.1"), port));
    ws.handshake(host, "/ws");
  }

  std::string echo(const std::string& text, bool binary = false) {
    ws.binary(binary);
    ws.write(asio::buffer(text));
    beast::flat_buffer b;
    ws.read(b);
    return beast::buffers_to_string(b.data());
  }
};

}  // namespace

TEST_CASE("websocket: handshake through a cold start, messages echo, in flight while open", "[integration][websocket]") {
  auto marker = unique_marker();
  config_yaml c;
  c.apps.push_back(app_yaml("w", {"w.test"}, marker));  // min_instances 0: the handshake starts one
  wakegate_process wg(c.str(), wakegate_options::cleaning({marker}));
  REQUIRE(wait_app(
      wg.admin_port(), "w", [](const app_status& a) { return a.instances.empty(); }, 5s));

  {
    ws_client client(wg.http_port(), "w.test");
    CHECK(client.echo("hello") == "hello");
    CHECK(client.echo(std::string(70000, 'x'), true) == std::string(70000, 'x'));  // 64-bit length, many reads
    CHECK(client.echo("third") == "third");

    app_status last;
    CHECK(wait_app(
        wg.admin_port(), "w", [](const app_status& a) { return a.in_flight == 1; }, 3s, &last));
    INFO("in flight: " << last.in_flight);
    CHECK(scrape_value(wg.admin_port(), "wakegate_in_flight_requests", {{"app", "w"}}).value_or(-1) == 1);
    CHECK(scrape_value(wg.admin_port(), "wakegate_open_tunnels", {}).value_or(-1) == 1);

    client.ws.close(websocket::close_code::normal);
    // After the close handshake the server ends the connection: the client reads EOF.
    beast::flat_buffer b;
    beast::error_code ec;
    client.ws.read(b, ec);
    CHECK(ec);
  }
  app_status last;
  CHECK(wait_app(
      wg.admin_port(), "w", [](const app_status& a) { return a.in_flight == 0; }, 5s, &last));
  INFO("in flight after close: " << last.in_flight);
  CHECK(wait_metric(wg.admin_port(), "wakegate_open_tunnels", {}, 0, 3s, nullptr, 0.0));
  CHECK(wg.wait_for_record(
      [](const auto& x) {
        return json_string(x, "type") == "access" && json_string(x, "path") == "/ws" &&
               json_number(x, "status").value_or(0) == 101;
      },
      3s));

  // Plain requests still work afterwards.
  auto r = http_get(wg.http_port(), "w.test", "/");
  INFO(describe(r));
  CHECK(r.status == 200);
}

TEST_CASE("websocket: SIGTERM ends an open tunnel and wakegate exits 0 before shutdown_timeout", "[integration][websocket]") {
  auto marker = unique_marker();
  config_yaml c;
  c.shutdown_timeout = "20s";
  c.apps.push_back(app_yaml("w", {"w.test"}, marker).set("min_instances", "1"));
  wakegate_process wg(c.str(), wakegate_options::cleaning({marker}));
  REQUIRE(wait_one_ready(wg.admin_port(), "w"));

  ws_client client(wg.http_port(), "w.test");
  REQUIRE(client.echo("before drain") == "before drain");
  REQUIRE(wait_app(
      wg.admin_port(), "w", [](const app_status& a) { return a.in_flight == 1; }, 3s));

  auto t0 = std::chrono::steady_clock::now();
  wg.signal(SIGTERM);
  auto status = wg.wait_exit(5s);
  auto took = std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - t0);
  INFO("exit after " << took.count() << " ms");
  REQUIRE(status);
  CHECK(*status == 0);

  // The client sees its connection closed (EOF or reset), not a hang.
  beast::flat_buffer b;
  beast::error_code ec;
  client.ws.read(b, ec);
  INFO("read after drain: " << ec.message());
  CHECK(ec);
  CHECK(wait_until([&] { return count_processes(marker) == 0; }, 5s));
}

TEST_CASE("websocket: over https the handshake and messages pass through the TLS listener", "[integration][websocket][https]") {
  temp_dir certs;
  auto ca = make_test_ca(certs.path());
  auto leaf = make_test_cert(certs.path(), "w", {"w.test"}, ca);
  auto marker = unique_marker();
  config_yaml c;
  c.https = "127.0.0.1:0";
  c.extra.push_back("tls:");
  c.extra.push_back("  certificates:");
  c.extra.push_back("    - { cert: " + yaml_quote(leaf.cert) + ", key: " + yaml_quote(leaf.key) + " }");
  c.apps.push_back(app_yaml("w", {"w.test"}, marker));
  wakegate_process wg(c.str(), wakegate_options::cleaning({marker}));
  REQUIRE(wg.https_port() != 0);

  asio::io_context ioc;
  asio::ssl::context ctx(asio::ssl::context::tls_client);
  ctx.load_verify_file(ca.cert);
  ctx.set_verify_mode(asio::ssl::verify_peer);
  websocket::stream<beast::ssl_stream<tcp::socket>> ws(ioc, ctx);
  REQUIRE(SSL_set_tlsext_host_name(ws.next_layer().native_handle(), "w.test"));
  beast::get_lowest_layer(ws).connect(tcp::endpoint(asio::ip::make_address("127.0.0.1"), wg.https_port()));
  ws.next_layer().handshake(asio::ssl::stream_base::client);
  ws.handshake("w.test", "/ws");
  for (std::string text : {"one", "two", "three"}) {
    ws.write(asio::buffer(text));
    beast::flat_buffer b;
    ws.read(b);
    CHECK(beast::buffers_to_string(b.data()) == text);
  }
  CHECK(wait_app(
      wg.admin_port(), "w", [](const app_status& a) { return a.in_flight == 1; }, 3s));
  beast::error_code ec;
  ws.close(websocket::close_code::normal, ec);
  INFO("close: " << ec.message());
  CHECK((!ec || ec == asio::error::eof || ec == asio::ssl::error::stream_truncated));
  CHECK(wait_app(
      wg.admin_port(), "w", [](const app_status& a) { return a.in_flight == 0; }, 5s));
}

TEST_CASE("websocket: a client that half-closes after its last frame still gets the reply", "[integration][websocket]") {
  auto marker = unique_marker();
  config_yaml c;
  c.apps.push_back(app_yaml("w", {"w.test"}, marker).set("min_instances", "1"));
  wakegate_process wg(c.str(), wakegate_options::cleaning({marker}));
  REQUIRE(wait_one_ready(wg.admin_port(), "w"));

  asio::io_context ioc;
  tcp::socket s(ioc);
  s.connect(tcp::endpoint(asio::ip::make_address("127.0.0.1"), wg.http_port()));
  asio::write(s, asio::buffer(std::string("GET /ws HTTP/1.1\r\nHost: w.test\r\nUpgrade: websocket\r\n"
                                          "Connection: Upgrade\r\nSec-WebSocket-Version: 13\r\n"
                                          "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n")));
  std::string in;
  auto head_end = asio::read_until(s, asio::dynamic_buffer(in), "\r\n\r\n");
  REQUIRE(in.substr(0, 12) == "HTTP/1.1 101");
  in.erase(0, head_end);
  // A masked text frame "last" (mask 0), then the client's FIN.
  const std::string frame("\x81\x84\0\0\0\0last", 10);
  asio::write(s, asio::buffer(frame));
  s.shutdown(tcp::socket::shutdown_send);
  // The instance echoes the frame, then sees EOF and closes: the echo reaches the client.
  beast::error_code ec;
  char buf[4096];
  for (int reads = 0; reads < 100 && !ec; ++reads) {
    auto n = s.read_some(asio::buffer(buf), ec);
    in.append(buf, n);
  }
  CHECK(ec == asio::error::eof);
  CHECK(in == "\x81\x04last");
  CHECK(wait_app(
      wg.admin_port(), "w", [](const app_status& a) { return a.in_flight == 0; }, 5s));
}

TEST_CASE("websocket: a tunnel idle for limits.io_timeout is closed and leaves flight", "[integration][websocket]") {
  auto marker = unique_marker();
  config_yaml c;
  c.extra.push_back("limits:");
  c.extra.push_back("  io_timeout: 700ms");
  c.apps.push_back(app_yaml("w", {"w.test"}, marker).set("min_instances", "1"));
  wakegate_process wg(c.str(), wakegate_options::cleaning({marker}));
  REQUIRE(wait_one_ready(wg.admin_port(), "w"));

  ws_client client(wg.http_port(), "w.test");
  REQUIRE(client.echo("ping") == "ping");
  auto t0 = std::chrono::steady_clock::now();
  // Nothing passes either way: wakegate ends the tunnel, the client reads the close.
  beast::flat_buffer b;
  beast::error_code ec;
  client.ws.read(b, ec);
  auto waited = std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - t0);
  INFO("read: " << ec.message() << " after " << waited.count() << " ms");
  CHECK(ec);
  CHECK(waited >= 500ms);
  CHECK(waited < 5s);
  CHECK(wait_app(
      wg.admin_port(), "w", [](const app_status& a) { return a.in_flight == 0; }, 3s));
  CHECK(wait_until(
      [&] {
        return scrape_value(wg.admin_port(), "wakegate_limit_hits_total", {{"limit", "io_timeout"}}) ==
               std::optional<double>(1);
      },
      3s));
}

// README "A 101 to a request that did not ask to upgrade is a 502": the instance switches
// protocols unasked (GET /raw writes the 101 as given); wakegate must not relay it, nor start a
// tunnel, and the instance is not failed for it.
TEST_CASE("websocket: a 101 to a request that did not ask to upgrade is answered 502", "[integration][websocket]") {
  // No Upgrade at all, and an Upgrade without the upgrade token in Connection (a hop-by-hop
  // field then, removed): neither asked to switch.
  const bool with_upgrade_field = GENERATE(false, true);
  INFO((with_upgrade_field ? "Upgrade: websocket, Connection: keep-alive" : "no Upgrade"));
  auto marker = unique_marker();
  config_yaml c;
  c.apps.push_back(app_yaml("u", {"u.test"}, marker).set("min_instances", "1"));
  wakegate_process wg(c.str(), wakegate_options::cleaning({marker}));
  app_status st;
  REQUIRE(wait_one_ready(wg.admin_port(), "u", 15s, &st));
  const std::string switching = raw_target(
      "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
      "Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n\r\n");
  header_list headers;
  if (with_upgrade_field) headers = {{"Upgrade", "websocket"}, {"Connection", "keep-alive"}};
  client_options quick;
  quick.io_timeout = 10s;
  auto r = http_get(wg.http_port(), "u.test", switching, headers, quick);
  INFO(describe(r));
  CHECK(r.status == 502);
  CHECK(r.ok());
  CHECK(contains(r.body, "unexpected 101 Switching Protocols"));
  CHECK(wg.wait_for_record(
      [](const auto& x) {
        return json_string(x, "type") == "access" && starts_with(json_string(x, "path"), "/raw") &&
               json_number(x, "status").value_or(0) == 502;
      },
      5s));
  // The request left flight (no tunnel holds it), and the instance serves on.
  CHECK(wait_app(wg.admin_port(), "u", [](const app_status& a) { return a.in_flight == 0; }, 3s));
  auto next = http_get(wg.http_port(), "u.test", "/pid");
  INFO(describe(next));
  CHECK(next.status == 200);
  CHECK(next.body == std::to_string(st.instances.front().pid));
}

// README: a tunnel is timed out by io_timeout (no byte either way), and the app's request_timeout
// "does not apply to it": that bounds the handshake's request only. Echoes for five times the
// request_timeout: a tunnel cut at the request's deadline fails the next one (the read throws).
TEST_CASE("websocket: an app's request_timeout does not end an open tunnel", "[integration][websocket]") {
  auto marker = unique_marker();
  config_yaml c;
  c.apps.push_back(app_yaml("w", {"w.test"}, marker).set("min_instances", "1").set("request_timeout", "300ms"));
  wakegate_process wg(c.str(), wakegate_options::cleaning({marker}));
  REQUIRE(wait_one_ready(wg.admin_port(), "w"));

  ws_client client(wg.http_port(), "w.test");
  int sent = 0;
  auto echoes = [&] {
    const std::string m = "m" + std::to_string(sent++);
    try {
      return client.echo(m) == m;
    } catch (const std::exception& e) {
      UNSCOPED_INFO("echo " << sent << ": " << e.what());
      return false;
    }
  };
  CHECK(holds_for(echoes, 1500ms, 100ms));
  CHECK(sent >= 5);
}
