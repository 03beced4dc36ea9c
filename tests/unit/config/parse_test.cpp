// parse_duration, parse_endpoint and endpoint::text: the scalar parsers behind the loader.
#include <catch2/catch.hpp>

#include "config/loader.hpp"

using namespace wakegate::config;
using namespace std::chrono_literals;

TEST_CASE("parse_duration accepts descending unit parts", "[config][duration]") {
  const std::vector<std::pair<std::string_view, duration>> cases{
      {"250ms", 250ms},
      {"30s", 30s},
      {"5m", 5min},
      {"1h", 1h},
      {"2d", 48h},
      {"1m30s", 90s},
      {"1h2m3s4ms", 1h + 2min + 3s + 4ms},
      {"1d1ms", 24h + 1ms},
      {"0s", 0ms},
      {"0ms", 0ms},
      {"007s", 7s},
      {"1500ms", 1500ms},
  };
  for (const auto& [text, expected] : cases) {
    INFO("text: " << text);
    const auto parsed = parse_duration(text);
    REQUIRE(parsed.has_value());
    CHECK(parsed->count() == expected.count());
  }
}

TEST_CASE("parse_duration rejects malformed text", "[config][duration]") {
  const std::vector<std::string_view> cases{
      "",
      "30",
      "s",
      "ms",
      "1.5s",
      "-1s",
      "+1s",
      "1m1m",
      "30s1m",
      "1ms1s",
      "1s1s",
      "1 s",
      " 1s",
      "1s ",
      "1S",
      "1M",
      "1us",
      "1w",
      "1sec",
      "1m30",
      "1mss",
      "1hm",
      "h1",
  };
  for (const auto text : cases) {
    INFO("text: '" << text << "'");
    CHECK_FALSE(parse_duration(text).has_value());
  }
}

TEST_CASE("parse_duration gives duration::max() for well-formed values beyond 64 bits", "[config][duration]") {
  CHECK(parse_duration("200000000000d") == duration::max());
  CHECK(parse_duration("99999999999999999999ms") == duration::max());
  CHECK(parse_duration("106751991168d") == duration::max());
  CHECK(parse_duration("106751991167d") == std::chrono::days(106751991167));
  CHECK_FALSE(parse_duration("99999999999999999999").has_value());  // still malformed: no unit
}

TEST_CASE("parse_endpoint accepts listen addresses", "[config][endpoint]") {
  struct valid_case {
    std::string_view text;
    std::string host;
    std::uint16_t port;
  };
  const std::vector<valid_case> cases{
      {"0.0.0.0:8080", "0.0.0.0", 8080},
      {"127.0.0.1:1", "127.0.0.1", 1},
      {"10.1.2.3:65535", "10.1.2.3", 65535},
      {"127.0.0.1:0", "127.0.0.1", 0},  // the OS picks a free port
      {"localhost:9090", "localhost", 9090},
      {"[::1]:9090", "::1", 9090},
      {"[::]:0", "::", 0},
      {"[fe80::1:2]:443", "fe80::1:2", 443},
      {"*:80", "0.0.0.0", 80},
      {":80", "0.0.0.0", 80},
  };
  for (const auto& c : cases) {
    INFO("text: " << c.text);
    const auto parsed = parse_endpoint(c.text);
    REQUIRE(parsed.has_value());
    CHECK(parsed->host == c.host);
    CHECK(parsed->port == c.port);
  }
}

TEST_CASE("parse_endpoint rejects malformed addresses", "[config][endpoint]") {
  const std::vector<std::string_view> cases{
      "",
      "8080",
      "127.0.0.1",
      "127.0.0.1:",
      "127.0.0.1:65536",
      "127.0.0.1:123456",
      "127.0.0.1:-1",
      "127.0.0.1:+80",
      "127.0.0.1:http",
      "127.0.0.1:80 ",
      " 127.0.0.1:80",
      "256.0.0.1:80",
      "1.2.3:80",
      "01.2.3.4:80",
      "example.com:80",
      "LOCALHOST:80",
      "::1:80",
      "[::1]80",
      "[::1]",
      "[::1]:",
      "[zz]:80",
      "[127.0.0.1]:80",
      "[::1:80",
      "localhost:1:2",
      "**:80",
  };
  for (const auto text : cases) {
    INFO("text: '" << text << "'");
    CHECK_FALSE(parse_endpoint(text).has_value());
  }
}

TEST_CASE("endpoint::text brackets IPv6 literals", "[config][endpoint]") {
  CHECK(endpoint{"0.0.0.0", 8080}.text() == "0.0.0.0:8080");
  CHECK(endpoint{"localhost", 0}.text() == "localhost:0");
  CHECK(endpoint{"::1", 9090}.text() == "[::1]:9090");
  CHECK(endpoint{"fe80::1", 65535}.text() == "[fe80::1]:65535");
}

TEST_CASE("parse_endpoint and endpoint::text round-trip", "[config][endpoint]") {
  for (const std::string_view text : {"0.0.0.0:8080", "127.0.0.1:0", "localhost:1", "[::1]:9090"}) {
    INFO("text: " << text);
    const auto parsed = parse_endpoint(text);
    REQUIRE(parsed.has_value());
    CHECK(parsed->text() == text);
  }
}
