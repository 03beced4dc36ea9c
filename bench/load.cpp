// wakegate_load: the benchmark harness's own load tool, for what no packaged tool does.
//
//   wakegate_load rate  --target 127.0.0.1:8080 --rate 10000 --duration 10 [--connections 64]
//                       [--host app.test] [--path /] [--warmup 1]
//     Open-loop load: request i is *scheduled* at start + i/rate, whatever happened to earlier ones,
//     and its latency is measured from that scheduled time (so a stalled server is charged for the
//     requests it delayed: no coordinated omission). Requests go out on whichever keep-alive
//     connection is free; when none is, the request waits and that wait counts.
//     Prints one line of key=value: sent, errors, late, achieved rate, p50/p90/p99/p999/max in us.
//
//   wakegate_load hold  --target 127.0.0.1:8080 --connections 1000 [--host app.test] [--path /]
//                       [--request-first] --seconds 30
//     Opens N connections and keeps them open for S seconds. With --request-first each connection
//     first completes one keep-alive request (an idle keep-alive connection); without it each sends
//     a request and never reads (a held request when the app is cold). Prints "ready N" on stdout
//     once all are in place, so a script can measure the server's memory meanwhile.
#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <iostream>
#include <string>
#include <string_view>
#include <vector>

#include <boost/asio.hpp>
#include <boost/asio/experimental/awaitable_operators.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using tcp = asio::ip::tcp;
using clock_type = std::chrono::steady_clock;
constexpr auto tok = asio::as_tuple(asio::use_awaitable);

namespace {

struct options {
  std::string mode;
  tcp::endpoint target;
  std::string host = "localhost";
  std::string path = "/";
  double rate = 1000;
  double duration = 10;
  double warmup = 1;
  int connections = 64;
  double seconds = 30;
  bool request_first = false;
};

[[noreturn]] void usage(const std::string& why) {
  std::cerr << "wakegate_load: " << why
            << "\nusage: wakegate_load rate --target HOST:PORT --rate R --duration S [--connections N]"
               " [--host H] [--path P] [--warmup S]\n"
               "       wakegate_load hold --target HOST:PORT --connections N --seconds S"
               " [--request-first] [--host H] [--path P]\n";
  std::exit(2);
}

tcp::endpoint parse_endpoint(const std::string& s) {
  auto colon = s.rfind(':');
  if (colon == std::string::npos) usage("--target must be HOST:PORT");
  return {asio::ip::make_address(s.substr(0, colon)),
          static_cast<std::uint16_t>(std::stoi(s.substr(colon + 1)))};
}

options parse(int argc, char** argv) {
  if (argc < 2) usage("missing mode");
  options o;
  o.mode = argv[1];
  if (o.mode != "rate" && o.mode != "hold") usage("unknown mode " + o.mode);
  bool have_target = false;
  for (int i = 2; i < argc; ++i) {
    std::string_view a = argv[i];
    auto value = [&]() -> std::string {
      if (i + 1 >= argc) usage(std::string(a) + " needs a value");
      return argv[++i];
    };
    if (a == "--target") o.target = parse_endpoint(value()), have_target = true;
    else if (a == "--host") o.host = value();
    else if (a == "--path") o.path = value();
    else if (a == "--rate") o.rate = std::stod(value());
    else if (a == "--duration") o.duration = std::stod(value());
    else if (a == "--warmup") o.warmup = std::stod(value());
    else if (a == "--connections") o.connections = std::stoi(value());
    else if (a == "--seconds") o.seconds = std::stod(value());
    else if (a == "--request-first") o.request_first = true;
    else usage("unknown option " + std::string(a));
  }
  if (!have_target) usage("--target is required");
  if (o.rate <= 0 || o.duration <= 0 || o.connections <= 0) usage("rate, duration, connections must be > 0");
  // Bounded: every latency is kept in memory until the end.
  if (o.rate * (o.duration + o.warmup) > 50e6) usage("rate x duration above 50 million requests");
  return o;
}

http::request<http::empty_body> make_request(const options& o) {
  http::request<http::empty_body> req{http::verb::get, o.path, 11};
  req.set(http::field::host, o.host);
  req.set(http::field::user_agent, "wakegate_load");
  return req;
}

// --- rate ---------------------------------------------------------------------------------

struct rate_run {
  const options& o;
  clock_type::time_point start{};
  clock_type::time_point end{};               // no request is scheduled at or after this
  clock_type::duration interval{};
  std::uint64_t next = 0;                      // index of the next request to schedule
  std::uint64_t warmup_count = 0;              // the first requests are not measured
  std::vector<std::uint32_t> latencies_us{};   // measured requests only
  std::uint64_t errors = 0, late = 0, sent = 0;
};

asio::awaitable<void> rate_connection(rate_run& run) {
  auto ex = co_await asio::this_coro::executor;
  const auto req = make_request(run.o);
  asio::steady_timer timer(ex);
  beast::flat_buffer buffer;
  std::optional<tcp::socket> sock;
  for (;;) {
    std::uint64_t i = run.next++;
    auto scheduled = run.start + run.interval * static_cast<std::int64_t>(i);
    if (scheduled >= run.end) co_return;
    if (clock_type::now() < scheduled) {
      timer.expires_at(scheduled);
      co_await timer.async_wait(tok);
    } else if (clock_type::now() - scheduled > std::chrono::milliseconds(1)) {
      ++run.late;  // no free connection when it was due
    }
    if (!sock) {
      sock.emplace(ex);
      auto [ec] = co_await sock->async_connect(run.o.target, tok);
      if (ec) {
        ++run.errors, sock.reset();
        continue;
      }
      sock->set_option(tcp::no_delay(true));
      buffer.clear();
    }
    ++run.sent;
    auto [wec, wn] = co_await http::async_write(*sock, req, tok);
    http::response<http::string_body> res;
    boost::system::error_code rec;
    if (!wec) std::tie(rec, std::ignore) = co_await http::async_read(*sock, buffer, res, tok);
    auto done = clock_type::now();
    if (wec || rec || res.result_int() >= 300) {
      ++run.errors;
      if (wec || rec || !res.keep_alive()) sock.reset();
      continue;
    }
    if (!res.keep_alive()) sock.reset();
    if (i >= run.warmup_count) {
      auto us = std::chrono::duration_cast<std::chrono::microseconds>(done - scheduled).count();
      run.latencies_us.push_back(static_cast<std::uint32_t>(std::min<std::int64_t>(us, UINT32_MAX)));
    }
  }
}

int run_rate(const options& o) {
  asio::io_context ioc(1);
  rate_run run{o};
  run.interval = std::chrono::duration_cast<clock_type::duration>(std::chrono::duration<double>(1.0 / o.rate));
  run.warmup_count = static_cast<std::uint64_t>(o.rate * o.warmup);
  run.latencies_us.reserve(static_cast<std::size_t>(o.rate * o.duration) + 16);
  run.start = clock_type::now() + std::chrono::milliseconds(50);
  run.end = run.start + std::chrono::duration_cast<clock_type::duration>(
                            std::chrono::duration<double>(o.warmup + o.duration));
  for (int c = 0; c < o.connections; ++c) asio::co_spawn(ioc, rate_connection(run), asio::detached);
  ioc.run();
  auto& l = run.latencies_us;
  std::sort(l.begin(), l.end());
  auto q = [&](double p) -> std::uint32_t {
    if (l.empty()) return 0;
    return l[std::min(l.size() - 1, static_cast<std::size_t>(p * static_cast<double>(l.size())))];
  };
  double measured_secs = o.duration;
  std::printf("sent=%llu measured=%zu errors=%llu late=%llu target_rps=%.0f achieved_rps=%.0f "
              "p50_us=%u p90_us=%u p99_us=%u p999_us=%u max_us=%u\n",
              static_cast<unsigned long long>(run.sent), l.size(),
              static_cast<unsigned long long>(run.errors), static_cast<unsigned long long>(run.late),
              o.rate, static_cast<double>(l.size()) / measured_secs, q(0.5), q(0.9), q(0.99), q(0.999),
              l.empty() ? 0u : l.back());
  return run.errors == 0 ? 0 : 1;
}

// --- hold ---------------------------------------------------------------------------------

struct hold_run {
  const options& o;
  int in_place = 0;
  int failed = 0;
  std::vector<tcp::socket> sockets{};
};

asio::awaitable<void> hold_connection(hold_run& run, std::size_t slot) {
  auto& sock = run.sockets[slot];
  auto [ec] = co_await sock.async_connect(run.o.target, tok);
  if (!ec) {
    const auto req = make_request(run.o);
    std::tie(ec, std::ignore) = co_await http::async_write(sock, req, tok);
  }
  if (!ec && run.o.request_first) {
    beast::flat_buffer buffer;
    http::response<http::string_body> res;
    std::tie(ec, std::ignore) = co_await http::async_read(sock, buffer, res, tok);
  }
  if (ec) ++run.failed;
  else ++run.in_place;
  if (run.in_place + run.failed == run.o.connections) {
    std::printf("ready %d failed %d\n", run.in_place, run.failed);
    std::fflush(stdout);
  }
}

int run_hold(const options& o) {
  asio::io_context ioc(1);
  hold_run run{o};
  run.sockets.reserve(static_cast<std::size_t>(o.connections));
  for (int c = 0; c < o.connections; ++c) {
    run.sockets.emplace_back(ioc);
    asio::co_spawn(ioc, hold_connection(run, static_cast<std::size_t>(c)), asio::detached);
  }
  asio::steady_timer stop(ioc, std::chrono::duration_cast<clock_type::duration>(std::chrono::duration<double>(o.seconds)));
  stop.async_wait([&](auto) { ioc.stop(); });
  ioc.run();
  return run.failed == 0 ? 0 : 1;
}

}  // namespace

int main(int argc, char** argv) {
  try {
    auto o = parse(argc, argv);
    return o.mode == "rate" ? run_rate(o) : run_hold(o);
  } catch (const std::exception& e) {
    std::cerr << "wakegate_load: " << e.what() << "\n";
    return 2;
  }
}
