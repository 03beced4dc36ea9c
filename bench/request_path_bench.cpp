// Micro-benchmarks of the per-request code paths (run briefly in CI for breakage, not timing).
#include <benchmark/benchmark.h>

#include <boost/beast/http.hpp>

#include "common/metrics.hpp"
#include "proxy/framing.hpp"
#include "proxy/headers.hpp"
#include "proxy/request_check.hpp"
#include "proxy/response_head.hpp"
#include "proxy/wire.hpp"
#include "proxy/router.hpp"
#include "scaler/concurrency.hpp"

namespace http = boost::beast::http;
using namespace wakegate;

namespace {

constexpr std::string_view request =
    "GET /api/items?id=42 HTTP/1.1\r\n"
    "Host: Hello.Example.com:8080\r\n"
    "User-Agent: bench/1.0\r\n"
    "Accept: */*\r\n"
    "Connection: keep-alive\r\n"
    "X-Forwarded-For: 192.0.2.1\r\n"
    "\r\n";

std::vector<scaler::app_ptr> make_apps(int n) {
  std::vector<scaler::app_ptr> apps;
  for (int i = 0; i < n; ++i) {
    config::app_config c;
    c.name = "app" + std::to_string(i);
    c.hosts = {c.name + ".example.com", "*." + c.name + ".example.com"};
    apps.push_back(std::make_shared<scaler::app>(c));
  }
  config::app_config hello;
  hello.name = "hello";
  hello.hosts = {"hello.example.com"};
  apps.push_back(std::make_shared<scaler::app>(hello));
  return apps;
}

void parse_and_check(benchmark::State& state) {
  for (auto _ : state) {
    http::request_parser<http::buffer_body> p;
    boost::beast::error_code ec;
    auto v = proxy::check_head(request, 100);  // the raw header check, then Beast, as the session does
    p.put(boost::asio::buffer(request.data(), request.size()), ec);
    auto r = proxy::check_request(p, v);
    benchmark::DoNotOptimize(r);
  }
}
BENCHMARK(parse_and_check);

void route_exact(benchmark::State& state) {
  proxy::router r(make_apps(static_cast<int>(state.range(0))));
  for (auto _ : state) benchmark::DoNotOptimize(r.find("Hello.Example.com:8080"));
}
BENCHMARK(route_exact)->Arg(10)->Arg(1000);

void route_wildcard(benchmark::State& state) {
  proxy::router r(make_apps(100));
  for (auto _ : state) benchmark::DoNotOptimize(r.find("x.app7.example.com"));
}
BENCHMARK(route_wildcard);

void rewrite_headers(benchmark::State& state) {
  http::request_parser<http::buffer_body> p;
  boost::beast::error_code ec;
  p.put(boost::asio::buffer(request.data(), request.size()), ec);
  const auto& req = p.get();
  std::string out;
  for (auto _ : state) {
    out.clear();
    char id_buf[32];
    proxy::append_forward_request(req, {"127.0.0.1", "http"}, proxy::request_id_of(req, id_buf), false, false, out);
    benchmark::DoNotOptimize(out.data());
  }
}
BENCHMARK(rewrite_headers);

// A typical nginx response head, relayed to an HTTP/1.1 keep-alive client.
constexpr std::string_view response =
    "HTTP/1.1 200 OK\r\n"
    "Server: nginx/1.25.3\r\n"
    "Date: Mon, 01 Jan 2024 00:00:00 GMT\r\n"
    "Content-Type: text/html\r\n"
    "Content-Length: 615\r\n"
    "Last-Modified: Tue, 24 Oct 2023 13:46:47 GMT\r\n"
    "Connection: keep-alive\r\n"
    "ETag: \"6537cac7-267\"\r\n"
    "Accept-Ranges: bytes\r\n"
    "\r\n";

// The Beast path of session.cpp relay_response: parse, strip hop-by-hop, re-serialise.
void response_head_beast(benchmark::State& state) {
  std::string out;
  for (auto _ : state) {
    http::response_parser<http::buffer_body> p;
    p.header_limit(8192);
    p.body_limit(boost::none);
    boost::beast::error_code ec;
    p.put(boost::asio::buffer(response.data(), response.size()), ec);
    auto& resp = p.get();
    benchmark::DoNotOptimize(resp.keep_alive());
    proxy::strip_hop_by_hop(resp);
    resp.version(11);
    resp.keep_alive(true);
    out.clear();
    proxy::wire::append_response_head(resp, out);
    benchmark::DoNotOptimize(out.data());
  }
}
BENCHMARK(response_head_beast);

// The fast path for the same head: find its end, scan it, write the client's head.
void response_head_plain(benchmark::State& state) {
  std::string out;
  for (auto _ : state) {
    auto end = proxy::find_head_end(response);
    proxy::plain_response r;
    bool plain = proxy::scan_plain_response(response.substr(0, end), r);
    benchmark::DoNotOptimize(plain);
    out.clear();
    proxy::append_plain_response(response.substr(0, end), r, true, 11, {}, {}, out);
    benchmark::DoNotOptimize(out.data());
  }
}
BENCHMARK(response_head_plain);

void count_in_flight(benchmark::State& state) {
  static scaler::concurrency_meter meter;
  std::int64_t t = 0;
  for (auto _ : state) {
    meter.add(+1, ++t);
    meter.add(-1, ++t);
  }
}
BENCHMARK(count_in_flight);

void count_request_metrics(benchmark::State& state) {
  static metrics::counter c;
  static metrics::histogram h(metrics::latency_buckets());
  for (auto _ : state) {
    c.add();
    h.observe(0.0042);
  }
}
BENCHMARK(count_request_metrics);

}  // namespace
