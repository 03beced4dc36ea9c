// A switched connection (101 Switching Protocols, e.g. WebSocket): bytes copied both ways between
// the client and the instance until either side closes, the tunnel is idle too long, or the
// server drains.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <list>
#include <memory>
#include <type_traits>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/awaitable.hpp>
#include <boost/asio/buffer.hpp>
#include <boost/asio/experimental/awaitable_operators.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>
#include <boost/asio/ip/tcp.hpp>

namespace wakegate::proxy {

struct tunnel_result {
  std::uint64_t bytes_in = 0;   // client -> instance
  std::uint64_t bytes_out = 0;  // instance -> client
  bool idle_timeout = false;    // ended because no byte went either way for `idle`
};

// Open tunnels of one proxy thread: each entry ends its tunnel (server::begin_drain calls them).
using tunnel_registry = std::list<std::function<void()>>;

// Copies bytes both ways between `client` (read and written through it; `client_tcp` is its TCP
// layer, for cancel and half-close) and the instance connection `up`. What is already buffered
// goes first: `client_buf` (bytes the client sent after its request head) to the instance,
// `up_buf` (bytes after the 101 head) to the client. A side that ends its sending (a FIN, or a
// TLS client's close_notify) half-closes: the other side's send is shut down, and the other
// direction goes on until it ends too, as HAProxy keeps half-closed tunnels (found by black-box
// testing: the first FIN ended both directions, losing the replies to a client's last bytes).
// An instance's FIN to a TLS client ends the tunnel (the session then sends close_notify); an
// error either way ends it. `idle`: no byte either way for this long ends it. The caller closes
// both connections afterwards; neither is reusable.
template <class ClientStream, class ClientBuffer, class UpBuffer>
boost::asio::awaitable<tunnel_result> run_tunnel(ClientStream& client, boost::asio::ip::tcp::socket& client_tcp,
                                                 ClientBuffer& client_buf, boost::asio::ip::tcp::socket& up,
                                                 UpBuffer& up_buf, std::chrono::steady_clock::duration idle,
                                                 tunnel_registry& registry) {
  namespace asio = boost::asio;
  using namespace asio::experimental::awaitable_operators;
  using clock = std::chrono::steady_clock;
  constexpr auto tok = asio::as_tuple(asio::use_awaitable);
  constexpr std::size_t chunk = 16 * 1024;
  constexpr bool plain = std::is_same_v<ClientStream, boost::asio::ip::tcp::socket>;

  tunnel_result result;
  bool done = false;
  auto last = clock::now();
  asio::steady_timer watchdog(client_tcp.get_executor());

  auto finish = [&] {
    if (done) return;
    done = true;
    boost::system::error_code ignored;
    client_tcp.cancel(ignored);
    up.cancel(ignored);
    watchdog.cancel();
  };
  int ended = 0;  // directions over: the tunnel ends with the second
  auto direction_over = [&] {
    if (++ended == 2) finish();
  };
  auto reg = registry.insert(registry.end(), finish);
  struct unregister {
    tunnel_registry& r;
    tunnel_registry::iterator it;
    ~unregister() { r.erase(it); }
  } ur{registry, reg};

  // client -> instance
  auto upload = [&]() -> asio::awaitable<void> {
    if (client_buf.size() > 0) {
      auto [ec, n] = co_await asio::async_write(up, client_buf.data(), tok);
      if (ec) {
        finish();
        co_return;
      }
      result.bytes_in += n;
      client_buf.consume(n);
    }
    std::unique_ptr<char[]> b(new char[chunk]);
    while (!done) {
      auto [ec, n] = co_await client.async_read_some(asio::buffer(b.get(), chunk), tok);
      if (done) break;
      if (ec == asio::error::eof) {  // the client is done sending: so is the instance's side
        boost::system::error_code ignored;
        up.shutdown(asio::ip::tcp::socket::shutdown_send, ignored);
        direction_over();
        co_return;
      }
      if (ec) break;
      last = clock::now();
      auto [wec, wn] = co_await asio::async_write(up, asio::buffer(b.get(), n), tok);
      if (wec) break;
      result.bytes_in += wn;
      last = clock::now();
    }
    finish();
  };
  // instance -> client
  auto download = [&]() -> asio::awaitable<void> {
    if (up_buf.size() > 0) {
      auto [ec, n] = co_await asio::async_write(client, up_buf.data(), tok);
      if (ec) {
        finish();
        co_return;
      }
      result.bytes_out += n;
      up_buf.consume(n);
    }
    std::unique_ptr<char[]> b(new char[chunk]);
    while (!done) {
      auto [ec, n] = co_await up.async_read_some(asio::buffer(b.get(), chunk), tok);
      if (done) break;
      if (ec == asio::error::eof) {  // the instance is done sending: so is the client's side
        if constexpr (plain) {
          boost::system::error_code ignored;
          client_tcp.shutdown(asio::ip::tcp::socket::shutdown_send, ignored);
          direction_over();
          co_return;
        }
        break;  // a TLS stream cannot half-close here: the tunnel ends
      }
      if (ec) break;
      last = clock::now();
      auto [wec, wn] = co_await asio::async_write(client, asio::buffer(b.get(), n), tok);
      if (wec) break;
      result.bytes_out += wn;
      last = clock::now();
    }
    finish();
  };
  auto watch = [&]() -> asio::awaitable<void> {
    while (!done) {
      watchdog.expires_at(last + idle);
      co_await watchdog.async_wait(tok);
      if (done) break;
      if (clock::now() - last >= idle) {
        result.idle_timeout = true;
        finish();
      }
    }
  };
  co_await (upload() && download() && watch());
  co_return result;
}

}  // namespace wakegate::proxy
