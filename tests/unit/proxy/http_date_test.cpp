#include "proxy/http_date.hpp"

#include <chrono>
#include <ctime>
#include <string>

#include <catch2/catch.hpp>

using wakegate::proxy::format_http_date;
using wakegate::proxy::http_date_now;
using wakegate::proxy::http_date_size;

namespace {

std::string formatted(std::time_t t) {
  char out[http_date_size];
  format_http_date(t, out);
  return std::string(out, http_date_size);
}

// The IMF-fixdate back to seconds since the epoch (strptime is locale-free for %a/%b in "C").
std::time_t parsed(std::string_view s) {
  std::tm tm{};
  std::string text(s);
  const char* end = strptime(text.c_str(), "%a, %d %b %Y %H:%M:%S GMT", &tm);
  REQUIRE(end == text.c_str() + text.size());
  return timegm(&tm);
}

}  // namespace

TEST_CASE("http date: IMF-fixdate of known instants", "[http_date]") {
  CHECK(formatted(784111777) == "Sun, 06 Nov 1994 08:49:37 GMT");  // RFC 9110 5.6.7's example
  CHECK(formatted(0) == "Thu, 01 Jan 1970 00:00:00 GMT");
  CHECK(formatted(951782400) == "Tue, 29 Feb 2000 00:00:00 GMT");  // a leap day
  CHECK(formatted(1798761599) == "Thu, 31 Dec 2026 23:59:59 GMT");
  CHECK(formatted(253402300799) == "Fri, 31 Dec 9999 23:59:59 GMT");
}

TEST_CASE("http date: every day of a year reads back to the instant it was made from", "[http_date]") {
  for (std::time_t t = 1767225600; t < 1767225600 + 366 * 86400; t += 86400 + 3661)
    CHECK(parsed(formatted(t)) == t);
}

TEST_CASE("http date: now is the current second, and follows the clock", "[http_date]") {
  auto now = [] { return std::chrono::system_clock::to_time_t(std::chrono::system_clock::now()); };
  const std::time_t before = now();
  const std::time_t got = parsed(http_date_now());
  const std::time_t after = now();
  // CLOCK_REALTIME_COARSE lags the precise clock by at most a tick (a few ms): one second early
  // at a second's boundary.
  CHECK(got >= before - 1);
  CHECK(got <= after);
  CHECK(http_date_now().size() == http_date_size);
}
