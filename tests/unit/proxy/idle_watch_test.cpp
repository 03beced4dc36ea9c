// proxy/idle_watch: input on a parked connection (bytes, a FIN, a reset) is seen once the
// reactor has had its event; silence is not taken for input, even when the connection's last
// data was read at once, before the reactor heard of it.
#include "proxy/idle_watch.hpp"

#include <poll.h>

#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/read.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/write.hpp>
#include <catch2/catch.hpp>
#include <chrono>
#include <string>

namespace asio = boost::asio;
using tcp = asio::ip::tcp;
namespace idle_watch = wakegate::proxy::idle_watch;
using namespace std::chrono_literals;

namespace {

// The io_context as a proxy worker runs it: its reactor (epoll_wait) handles whatever events
// come, for `d`.
void run_reactor(asio::io_context& ioc, std::chrono::milliseconds d) {
  asio::steady_timer t(ioc, d);
  t.async_wait([](boost::system::error_code) {});
  ioc.restart();
  ioc.run();
}

// Blocks until `s` is readable in the kernel (poll), at most 2 s.
bool readable(tcp::socket& s) {
  pollfd p{s.native_handle(), POLLIN, 0};
  return ::poll(&p, 1, 2000) == 1;
}

struct connected_pair {
  asio::io_context ioc{BOOST_ASIO_CONCURRENCY_HINT_UNSAFE_IO};  // as a worker's
  tcp::socket proxy{ioc}, instance{ioc};
  connected_pair() {
    tcp::acceptor acceptor(ioc, {asio::ip::make_address("127.0.0.1"), 0});
    proxy.connect(acceptor.local_endpoint());
    acceptor.accept(instance);
  }
  // A response the proxy reads the way sessions do (async_read_some), already there when the
  // read starts: Asio's first try reads it, before epoll reported it.
  void exchange() {
    asio::write(instance, asio::buffer(std::string("HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")));
    REQUIRE(readable(proxy));
    char buf[256];
    std::size_t got = 0;
    proxy.async_read_some(asio::buffer(buf), [&](boost::system::error_code ec, std::size_t n) {
      REQUIRE_FALSE(ec);
      got = n;
    });
    ioc.restart();
    ioc.poll();
    REQUIRE(got == 38);
  }
};

}  // namespace

TEST_CASE("idle_watch: Asio's own readiness flag is used here, no system call per reuse", "[proxy][idle_watch]") {
  CHECK(idle_watch::uses_reactor_flag());  // Debian 12: Boost 1.81, epoll
}

TEST_CASE("idle_watch: a parked connection nothing came on is not taken for input", "[proxy][idle_watch]") {
  connected_pair p;
  p.exchange();
  idle_watch::park(p.proxy);
  run_reactor(p.ioc, 30ms);  // the edge of the data read at once comes to nothing: it is gone
  CHECK_FALSE(idle_watch::input_since_park(p.proxy));

  // Reused: reads behave as before (the answer already there is read at once).
  idle_watch::reuse(p.proxy);
  p.exchange();
}

TEST_CASE("idle_watch: bytes, a FIN or a reset on a parked connection are seen", "[proxy][idle_watch]") {
  connected_pair p;
  p.exchange();
  idle_watch::park(p.proxy);
  run_reactor(p.ioc, 5ms);
  REQUIRE_FALSE(idle_watch::input_since_park(p.proxy));

  SECTION("bytes (an extra response)") {
    asio::write(p.instance, asio::buffer(std::string("HTTP/1.1 200 OK\r\nContent-Length: 8\r\n\r\nSMUGGLED")));
  }
  SECTION("a FIN (the instance closed it)") { p.instance.shutdown(tcp::socket::shutdown_send); }
  SECTION("a reset") {
    p.instance.set_option(asio::socket_base::linger(true, 0));
    p.instance.close();
  }
  REQUIRE(readable(p.proxy));
  bool seen = false;
  for (int i = 0; i < 200 && !seen; ++i) {  // at most 2 s
    run_reactor(p.ioc, 10ms);
    seen = idle_watch::input_since_park(p.proxy);
  }
  CHECK(seen);
}
