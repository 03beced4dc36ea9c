// Micro-benchmarks of the per-request code paths (run briefly in CI for breakage, not timing).
#include <benchmark/benchmark.h>

#include <boost/beast/http.hpp>

#include "common/metrics.hpp"
#include "proxy/headers.hpp"
#include "proxy/request_check.hpp"
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
  const auto original = p.get().base();
  for (auto _ : state) {
    http::fields f = original;
    benchmark::DoNotOptimize(proxy::rewrite_request(f, {"127.0.0.1", "http"}));
  }
}
BENCHMARK(rewrite_headers);

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
