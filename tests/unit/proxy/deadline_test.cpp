// The per-thread deadline sweeper (proxy/deadline.hpp) on real loopback sockets: a read past its
// deadline is cancelled and reported as timed out; one within it is left alone.
#include <catch2/catch.hpp>

#include <chrono>
#include <optional>

#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/read.hpp>
#include <boost/asio/write.hpp>

#include "proxy/deadline.hpp"
#include "tests/support/asio_run.hpp"

namespace asio = boost::asio;
using asio::ip::tcp;
using namespace std::chrono_literals;
using wakegate::test::run_until;
using wakegate::test::stays_pending;
using wakegate::proxy::deadline_guard;
using wakegate::proxy::deadline_slot;
using wakegate::proxy::deadline_sweeper;

namespace {

// A connected loopback pair on `ioc`.
struct socket_pair {
  explicit socket_pair(asio::io_context& ioc) : a(ioc), b(ioc) {
    tcp::acceptor acc(ioc, tcp::endpoint(asio::ip::address_v4::loopback(), 0));
    a.connect(acc.local_endpoint());
    b = acc.accept();
  }
  tcp::socket a, b;
};

}  // namespace

TEST_CASE("deadline: a read past its deadline is cancelled and reported as timed out", "[deadline]") {
  asio::io_context ioc;
  deadline_sweeper sweeper(ioc);
  socket_pair p(ioc);
  deadline_slot slot;
  deadline_guard guard(sweeper, slot, &p.a);

  char c;
  std::optional<boost::system::error_code> result;
  sweeper.arm_after(slot, 50ms);
  p.a.async_read_some(asio::buffer(&c, 1), [&](boost::system::error_code ec, std::size_t) { result = ec; });
  REQUIRE(run_until(ioc, [&] { return result.has_value(); }));
  CHECK(*result == asio::error::operation_aborted);
  CHECK(slot.timed_out(*result));

  // Arming again clears the verdict: the next read within its deadline completes normally.
  result.reset();
  sweeper.arm_after(slot, 10s);
  CHECK_FALSE(slot.expired);
  p.a.async_read_some(asio::buffer(&c, 1), [&](boost::system::error_code ec, std::size_t) { result = ec; });
  asio::write(p.b, asio::buffer("x", 1));
  REQUIRE(run_until(ioc, [&] { return result.has_value(); }));
  CHECK_FALSE(*result);
  CHECK_FALSE(slot.timed_out(*result));
}

TEST_CASE("deadline: an earlier deadline than the scheduled sweep is honoured, a later one waits", "[deadline]") {
  asio::io_context ioc;
  deadline_sweeper sweeper(ioc);
  socket_pair far_pair(ioc), near_pair(ioc);
  deadline_slot far_slot, near_slot;
  deadline_guard far_guard(sweeper, far_slot, &far_pair.a);
  deadline_guard near_guard(sweeper, near_slot, &near_pair.a);

  char c1, c2;
  std::optional<boost::system::error_code> far_result, near_result;
  sweeper.arm_after(far_slot, 1500ms);  // schedules a sweep (at most a second ahead)
  sweeper.arm_after(near_slot, 40ms);   // earlier: reschedules it
  auto start = std::chrono::steady_clock::now();
  far_pair.a.async_read_some(asio::buffer(&c1, 1), [&](boost::system::error_code ec, std::size_t) { far_result = ec; });
  near_pair.a.async_read_some(asio::buffer(&c2, 1), [&](boost::system::error_code ec, std::size_t) { near_result = ec; });
  REQUIRE(run_until(ioc, [&] { return near_result.has_value(); }));
  CHECK(near_slot.timed_out(*near_result));
  CHECK_FALSE(far_result.has_value());  // not past its deadline: untouched by the sweep
  CHECK_FALSE(far_slot.expired);

  // The far deadline fires too, through the sweeps at most a second apart, and not before it.
  REQUIRE(run_until(ioc, [&] { return far_result.has_value(); }));
  CHECK(far_slot.timed_out(*far_result));
  CHECK(std::chrono::steady_clock::now() - start >= 1500ms);
}

TEST_CASE("deadline: a disarmed slot is never cancelled, an expired one cancels what starts after", "[deadline]") {
  asio::io_context ioc;
  deadline_sweeper sweeper(ioc);
  socket_pair quiet(ioc), other(ioc), late(ioc);
  deadline_slot quiet_slot, other_slot, late_slot;
  deadline_guard g1(sweeper, quiet_slot, &quiet.a);
  deadline_guard g2(sweeper, other_slot, &other.a);
  deadline_guard g3(sweeper, late_slot, &late.a);

  char c1, c2, c3;
  std::optional<boost::system::error_code> quiet_result, other_result, late_result;
  sweeper.arm_after(quiet_slot, 30ms);
  deadline_sweeper::disarm(quiet_slot);  // before it passes
  sweeper.arm_after(other_slot, 60ms);   // a sweep after the quiet slot's old deadline
  sweeper.arm_after(late_slot, 20ms);    // passes with nothing pending
  quiet.a.async_read_some(asio::buffer(&c1, 1), [&](boost::system::error_code ec, std::size_t) { quiet_result = ec; });
  other.a.async_read_some(asio::buffer(&c2, 1), [&](boost::system::error_code ec, std::size_t) { other_result = ec; });
  REQUIRE(run_until(ioc, [&] { return other_result.has_value() && late_slot.expired; }));
  CHECK(other_slot.timed_out(*other_result));
  CHECK_FALSE(quiet_result.has_value());

  // A read started on the expired slot without arming it again is cancelled by a later sweep.
  late.a.async_read_some(asio::buffer(&c3, 1), [&](boost::system::error_code ec, std::size_t) { late_result = ec; });
  REQUIRE(run_until(ioc, [&] { return late_result.has_value(); }));
  CHECK(late_slot.timed_out(*late_result));

  // The disarmed slot's read completes when data comes.
  CHECK_FALSE(quiet_result.has_value());
  asio::write(quiet.b, asio::buffer("y", 1));
  REQUIRE(run_until(ioc, [&] { return quiet_result.has_value(); }));
  CHECK_FALSE(*quiet_result);
}

TEST_CASE("deadline: a slot removed from the sweeper is no longer watched", "[deadline]") {
  asio::io_context ioc;
  deadline_sweeper sweeper(ioc);
  socket_pair p(ioc), q(ioc);
  deadline_slot kept, removed;
  deadline_guard kept_guard(sweeper, kept, &q.a);
  std::optional<boost::system::error_code> removed_result, kept_result;
  char c1, c2;
  {
    deadline_guard g(sweeper, removed, &p.a);
    sweeper.arm_after(removed, 20ms);
  }  // unregistered before its deadline
  sweeper.arm_after(kept, 60ms);
  p.a.async_read_some(asio::buffer(&c1, 1), [&](boost::system::error_code ec, std::size_t) { removed_result = ec; });
  q.a.async_read_some(asio::buffer(&c2, 1), [&](boost::system::error_code ec, std::size_t) { kept_result = ec; });
  REQUIRE(run_until(ioc, [&] { return kept_result.has_value(); }));
  CHECK(kept.timed_out(*kept_result));
  CHECK_FALSE(removed_result.has_value());
  CHECK_FALSE(removed.expired);
}

TEST_CASE("deadline: a watched client that hangs up cancels the slot's socket, input alone does not", "[deadline]") {
  asio::io_context ioc;
  deadline_sweeper sweeper(ioc);
  socket_pair client(ioc), upstream(ioc);  // client.a: wakegate's side of the client connection
  deadline_slot slot;
  deadline_guard guard(sweeper, slot, &upstream.a);
  sweeper.arm_after(slot, 60s);  // far: only the hang-up can end the read
  sweeper.watch_hangup(slot, client.a.native_handle());

  char c;
  std::optional<boost::system::error_code> result;
  upstream.a.async_read_some(asio::buffer(&c, 1), [&](boost::system::error_code ec, std::size_t) { result = ec; });

  // A next request (bytes, unread) is not a hang-up: still waiting after more than one poll.
  asio::write(client.b, asio::buffer("GET / HTTP/1.1\r\n", 16));
  CHECK(stays_pending(ioc, [&] { return !result.has_value() && !slot.hung_up; }, 1300ms));

  SECTION("the client closes (its unread bytes do not hide it)") { client.b.close(); }
  SECTION("the client shuts down its sending side") { client.b.shutdown(tcp::socket::shutdown_send); }
  // Noticed by a sweep well before the 60 s deadline (run_until gives up after 5 s).
  REQUIRE(run_until(ioc, [&] { return result.has_value(); }));
  CHECK(*result == asio::error::operation_aborted);
  CHECK(slot.hung_up);
  CHECK_FALSE(slot.timed_out(*result));        // not a timeout

  // A read started after the verdict is cancelled too, until the watch ends.
  result.reset();
  upstream.a.async_read_some(asio::buffer(&c, 1), [&](boost::system::error_code ec, std::size_t) { result = ec; });
  REQUIRE(run_until(ioc, [&] { return result.has_value(); }));
  CHECK(*result == asio::error::operation_aborted);

  deadline_sweeper::unwatch_hangup(slot);
  CHECK_FALSE(slot.hung_up);
  result.reset();
  upstream.a.async_read_some(asio::buffer(&c, 1), [&](boost::system::error_code ec, std::size_t) { result = ec; });
  asio::write(upstream.b, asio::buffer("z", 1));
  REQUIRE(run_until(ioc, [&] { return result.has_value(); }));
  CHECK_FALSE(*result);
}
