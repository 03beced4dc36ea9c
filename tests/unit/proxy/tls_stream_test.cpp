// proxy/tls_stream.hpp on real loopback sockets, against Asio's own TLS client: the handshake, data
// both ways (larger than a record), and each way a connection ends as the session reads it: the
// peer's close_notify (eof), a close without it (stream_truncated), a cancel (operation_aborted),
// and our close_notify seen by the client.
#include <catch2/catch.hpp>

#include <array>
#include <chrono>
#include <csignal>
#include <optional>
#include <string>

#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/read.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/asio/write.hpp>

#include "proxy/tls_stream.hpp"
#include "tests/support/asio_run.hpp"

namespace asio = boost::asio;
using asio::ip::tcp;
using namespace std::chrono_literals;
using wakegate::test::run_until;
using wakegate::test::stays_pending;
using wakegate::proxy::tls_stream;

namespace {

const std::string certs = std::string(WAKEGATE_SOURCE_DIR) + "/config/examples/certs/";

// A server tls_stream and an Asio TLS client over loopback, handshaken.
struct tls_pair {
  asio::io_context ioc;
  asio::ssl::context server_ctx{asio::ssl::context::tls_server};
  asio::ssl::context client_ctx{asio::ssl::context::tls_client};
  std::optional<tls_stream> server;
  std::optional<asio::ssl::stream<tcp::socket>> client;

  tls_pair() {
    server_ctx.use_certificate_chain_file(certs + "localhost.pem");
    server_ctx.use_private_key_file(certs + "localhost.key", asio::ssl::context::pem);
    client_ctx.set_verify_mode(asio::ssl::verify_none);
    tcp::acceptor acc(ioc, tcp::endpoint(asio::ip::address_v4::loopback(), 0));
    client.emplace(ioc, client_ctx);
    client->next_layer().connect(acc.local_endpoint());
    server.emplace(acc.accept(), server_ctx);
    std::optional<boost::system::error_code> s_ec, c_ec;
    server->async_handshake(asio::ssl::stream_base::server, [&](boost::system::error_code ec) { s_ec = ec; });
    client->async_handshake(asio::ssl::stream_base::client, [&](boost::system::error_code ec) { c_ec = ec; });
    REQUIRE(run_until(ioc, [&] { return s_ec && c_ec; }));
    REQUIRE_FALSE(*s_ec);
    REQUIRE_FALSE(*c_ec);
  }

  // One server read's outcome.
  std::pair<boost::system::error_code, std::string> server_read(std::size_t room = 100000) {
    std::string buf(room, '\0');
    std::optional<std::pair<boost::system::error_code, std::size_t>> r;
    server->async_read_some(asio::buffer(buf), [&](boost::system::error_code ec, std::size_t n) { r.emplace(ec, n); });
    REQUIRE(run_until(ioc, [&] { return r.has_value(); }));
    buf.resize(r->second);
    return {r->first, buf};
  }
};

std::string pattern(std::size_t n) {
  std::string s(n, '\0');
  for (std::size_t i = 0; i < n; ++i) s[i] = static_cast<char>('a' + (i * 7 + i / 1000) % 26);
  return s;
}

}  // namespace

TEST_CASE("tls_stream: data both ways, larger than a TLS record, through Asio's composed write", "[tls_stream]") {
  tls_pair p;
  const std::string up = pattern(100000), down = pattern(300000);

  // Client -> server: the server reads it all, record by record.
  std::optional<boost::system::error_code> wrote;
  asio::async_write(*p.client, asio::buffer(up), [&](boost::system::error_code ec, std::size_t) { wrote = ec; });
  std::string got;
  while (got.size() < up.size()) {
    auto [ec, part] = p.server_read(7000);
    REQUIRE_FALSE(ec);
    got += part;
  }
  REQUIRE(run_until(p.ioc, [&] { return wrote.has_value(); }));
  CHECK(got == up);

  // Server -> client, in one composed write of two buffers (each call takes one record).
  std::optional<boost::system::error_code> sent;
  std::array<asio::const_buffer, 2> two{asio::buffer(down.data(), 10), asio::buffer(down.data() + 10, down.size() - 10)};
  asio::async_write(*p.server, two, [&](boost::system::error_code ec, std::size_t) { sent = ec; });
  std::string back(down.size(), '\0');
  std::optional<boost::system::error_code> read_back;
  asio::async_read(*p.client, asio::buffer(back), [&](boost::system::error_code ec, std::size_t) { read_back = ec; });
  REQUIRE(run_until(p.ioc, [&] { return sent.has_value() && read_back.has_value(); }));
  CHECK_FALSE(*sent);
  CHECK_FALSE(*read_back);
  CHECK(back == down);
}

TEST_CASE("tls_stream: how a connection ends reads as with asio::ssl::stream", "[tls_stream]") {
  tls_pair p;
  SECTION("the client's close_notify is the end of the stream") {
    std::optional<boost::system::error_code> done;
    p.client->async_shutdown([&](boost::system::error_code ec) { done = ec; });
    auto [ec, data] = p.server_read();
    CHECK(ec == asio::error::eof);
    CHECK(data.empty());
    // Ours in answer: the client's shutdown completes.
    std::optional<boost::system::error_code> ours;
    p.server->async_shutdown([&](boost::system::error_code e) { ours = e; });
    REQUIRE(run_until(p.ioc, [&] { return done.has_value() && ours.has_value(); }));
    CHECK_FALSE(*done);
    CHECK_FALSE(*ours);
  }
  SECTION("an end of the connection without close_notify is a truncated stream") {
    // A FIN alone (a close could reset: the client has not read the server's session tickets).
    p.client->next_layer().shutdown(tcp::socket::shutdown_send);
    auto [ec, data] = p.server_read();
    CHECK(ec == asio::ssl::error::stream_truncated);
  }
  SECTION("a reset is the socket's error") {
    p.client->next_layer().set_option(asio::socket_base::linger(true, 0));
    p.client->next_layer().close();
    auto [ec, data] = p.server_read();
    CHECK(ec == asio::error::connection_reset);
  }
  SECTION("a cancel of the socket ends a waiting read") {
    std::optional<std::pair<boost::system::error_code, std::size_t>> r;
    char c;
    p.server->async_read_some(asio::buffer(&c, 1), [&](boost::system::error_code ec, std::size_t n) { r.emplace(ec, n); });
    REQUIRE(stays_pending(p.ioc, [&] { return !r.has_value(); }, 50ms));  // the read is waiting
    p.server->lowest_layer().cancel();
    REQUIRE(run_until(p.ioc, [&] { return r.has_value(); }));
    CHECK(r->first == asio::error::operation_aborted);
    CHECK(r->second == 0);
  }
  SECTION("a read that finds data waiting completes through the executor, not inside the call") {
    asio::write(*p.client, asio::buffer("hello", 5));
    REQUIRE(run_until(p.ioc, [&] { return p.server->lowest_layer().available() > 0; }));  // the record is here
    std::string buf(16, '\0');
    bool completed = false;
    std::size_t got = 0;
    p.server->async_read_some(asio::buffer(buf), [&](boost::system::error_code ec, std::size_t n) {
      completed = !ec;
      got = n;
    });
    CHECK_FALSE(completed);  // not yet: it was posted
    REQUIRE(run_until(p.ioc, [&] { return completed; }));
    CHECK(buf.substr(0, got) == "hello");
  }
}

TEST_CASE("tls_stream: small leading buffers go out as one record, in one call", "[tls_stream]") {
  tls_pair p;
  const std::string head = "HTTP/1.1 200 OK\r\n\r\n", body = pattern(3000);
  std::array<asio::const_buffer, 2> two{asio::buffer(head), asio::buffer(body)};
  std::optional<std::pair<boost::system::error_code, std::size_t>> r;
  p.server->async_write_some(two, [&](boost::system::error_code ec, std::size_t n) { r.emplace(ec, n); });
  REQUIRE(run_until(p.ioc, [&] { return r.has_value(); }));
  CHECK_FALSE(r->first);
  CHECK(r->second == head.size() + body.size());  // both buffers in the one call
  std::string got(head.size() + body.size(), '\0');
  asio::read(*p.client, asio::buffer(got));
  CHECK(got == head + body);
}

TEST_CASE("tls_stream: a read and a write outstanding at once both complete", "[tls_stream]") {
  tls_pair p;
  const std::string down = pattern(400000);
  std::string one(1, '\0');
  std::optional<std::pair<boost::system::error_code, std::size_t>> read;
  p.server->async_read_some(asio::buffer(one), [&](boost::system::error_code ec, std::size_t n) { read.emplace(ec, n); });
  std::optional<boost::system::error_code> sent;
  asio::async_write(*p.server, asio::buffer(down), [&](boost::system::error_code ec, std::size_t) { sent = ec; });
  std::string back(down.size(), '\0');
  std::optional<boost::system::error_code> got;
  asio::async_read(*p.client, asio::buffer(back), [&](boost::system::error_code ec, std::size_t) { got = ec; });
  // Nothing sent yet: the read waits while the write goes on.
  CHECK(stays_pending(p.ioc, [&] { return !read.has_value(); }, 50ms));
  asio::async_write(*p.client, asio::buffer("q", 1), [](boost::system::error_code, std::size_t) {});
  REQUIRE(run_until(p.ioc, [&] { return read.has_value() && sent.has_value() && got.has_value(); }));
  CHECK_FALSE(read->first);
  CHECK(one == "q");
  CHECK_FALSE(*sent);
  CHECK_FALSE(*got);
  CHECK(back == down);
}

TEST_CASE("tls_stream: after a write cut mid-record, writes and shutdown fail at once", "[tls_stream]") {
  std::signal(SIGPIPE, SIG_IGN);  // as wakegate runs: OpenSSL writes the socket itself
  tls_pair p;
  // The client reads nothing: the write fills the socket buffers and waits.
  const std::string big = pattern(16 << 20);
  std::optional<boost::system::error_code> sent;
  asio::async_write(*p.server, asio::buffer(big), [&](boost::system::error_code ec, std::size_t) { sent = ec; });
  REQUIRE(stays_pending(p.ioc, [&] { return !sent.has_value(); }, 100ms));
  p.server->lowest_layer().cancel();  // as the deadline sweep does
  REQUIRE(run_until(p.ioc, [&] { return sent.has_value(); }));
  CHECK(*sent == asio::error::operation_aborted);

  // A record may be left half-sent in OpenSSL: other bytes must not follow it.
  std::optional<std::pair<boost::system::error_code, std::size_t>> again;
  p.server->async_write_some(asio::buffer("HTTP/1.1 408", 12),
                             [&](boost::system::error_code ec, std::size_t n) { again.emplace(ec, n); });
  REQUIRE(run_until(p.ioc, [&] { return again.has_value(); }));
  CHECK(again->first == asio::error::broken_pipe);
  CHECK(again->second == 0);
  std::optional<boost::system::error_code> shut;
  p.server->async_shutdown([&](boost::system::error_code ec) { shut = ec; });
  REQUIRE(run_until(p.ioc, [&] { return shut.has_value(); }));
  CHECK(*shut == asio::error::broken_pipe);
}
