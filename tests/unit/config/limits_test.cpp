// The `limits:` section and the per-app limits (max_body, request_timeout): values, defaults,
// and FILE:LINE:COLUMN diagnostics.
#include <catch2/catch.hpp>

#include "config/loader.hpp"
#include "tests/support/config_load.hpp"

using namespace wakegate::config;
using namespace std::chrono_literals;

namespace {

load_result load(std::string_view yaml) { return wakegate::test::load_yaml(yaml); }
std::vector<std::string> errors_of(std::string_view yaml) { return wakegate::test::yaml_errors(yaml); }

}  // namespace

TEST_CASE("limits: defaults when absent", "[config][limits]") {
  auto r = load(R"(
apps: []
)");
  REQUIRE(r.ok());
  const auto& l = r.cfg->limits;
  CHECK(l.max_header_bytes == 64 * 1024);
  CHECK(l.max_header_count == 100);
  CHECK(l.max_connections == 16384);
  CHECK(l.max_pipelined == 16);
  CHECK(l.header_timeout == 60s);
  CHECK(l.idle_timeout == 60s);
  CHECK(l.upstream_connect_timeout == 5s);
  CHECK(l.upstream_header_timeout == 300s);
  CHECK(l.io_timeout == 300s);
}

TEST_CASE("limits: every key is read", "[config][limits]") {
  auto r = load(R"(
limits:
  max_header_bytes: 16KiB
  max_headers: 32
  max_connections: 500
  max_pipelined: 4
  header_timeout: 2s
  idle_timeout: 3s
  io_timeout: 4s
  upstream_connect_timeout: 250ms
  response_header_timeout: 1m
  upstream_idle_timeout: 10s
  upstream_idle_per_instance: 8
defaults:
  max_body: 1MiB
  request_timeout: 30s
apps:
  - name: a
    hosts: [a.test]
    max_body: 100
    backend: {process: {command: [sh]}}
  - name: b
    hosts: [b.test]
    request_timeout: 0s
    backend: {process: {command: [sh]}}
)");
  INFO((r.errors.empty() ? "" : r.errors.front().str()));
  REQUIRE(r.ok());
  const auto& l = r.cfg->limits;
  CHECK(l.max_header_bytes == 16 * 1024);
  CHECK(l.max_header_count == 32);
  CHECK(l.max_connections == 500);
  CHECK(l.max_pipelined == 4);
  CHECK(l.header_timeout == 2s);
  CHECK(l.idle_timeout == 3s);
  CHECK(l.io_timeout == 4s);
  CHECK(l.upstream_connect_timeout == 250ms);
  CHECK(l.upstream_header_timeout == 60s);
  CHECK(l.upstream_idle_timeout == 10s);
  CHECK(l.upstream_idle_per_instance == 8);
  REQUIRE(r.cfg->apps.size() == 2);
  CHECK(r.cfg->apps[0].settings.max_body == 100);
  CHECK(r.cfg->apps[0].settings.request_timeout == 30s);
  CHECK(r.cfg->apps[1].settings.max_body == 1024 * 1024);
  CHECK(r.cfg->apps[1].settings.request_timeout == 0s);
}

TEST_CASE("limits: errors point at the value", "[config][limits]") {
  CHECK(errors_of(R"(
apps: []
limits:
  max_header_bytes: 64k
)") == std::vector<std::string>{"t.yaml:3:21: expected a size like 65536, 64KiB or 10MiB"});
  CHECK(errors_of(R"(
apps: []
limits:
  max_header_bytes: 100
)") == std::vector<std::string>{"t.yaml:3:21: max_header_bytes must be between 1024 and 1048576 bytes"});
  CHECK(errors_of(R"(
apps: []
limits:
  max_headers: 0
  header_timeout: 0s
  idle_timeout: 5
)") == std::vector<std::string>{"t.yaml:3:16: max_headers must be between 1 and 10000",
                                "t.yaml:4:19: header_timeout must be greater than 0",
                                "t.yaml:5:17: expected a duration like 250ms, 30s or 5m"});
  CHECK(errors_of(R"(
apps: []
limits:
  max_conections: 10
)") == std::vector<std::string>{"t.yaml:3:3: unknown key 'max_conections' in limits (did you mean 'max_connections'?)"});
  CHECK(errors_of(R"(
apps: []
limits: 5
)") == std::vector<std::string>{"t.yaml:2:9: expected a mapping"});
  CHECK(errors_of(R"(
defaults:
  max_body: -1
apps: []
)") == std::vector<std::string>{"t.yaml:2:13: expected a size like 65536, 64KiB or 10MiB"});
  // Sizes past 64 bits are out of range, not wrapped (2^64 bytes was taken as 0: no limit).
  CHECK(errors_of(R"(
defaults:
  max_body: 17179869184GiB
apps: []
limits:
  max_header_bytes: 17592186044417MiB
)") == std::vector<std::string>{"t.yaml:2:13: max_body must be between 0 and 1125899906842624 bytes",
                                "t.yaml:5:21: max_header_bytes must be between 1024 and 1048576 bytes"});
}

TEST_CASE("parse_size", "[config][limits]") {
  CHECK(parse_size("0") == 0u);
  CHECK(parse_size("65536") == 65536u);
  CHECK(parse_size("64KiB") == 65536u);
  CHECK(parse_size("10MiB") == 10u * 1024 * 1024);
  CHECK(parse_size("2GiB") == 2ull << 30);
  CHECK(parse_size("12B") == 12u);
  CHECK_FALSE(parse_size(""));
  CHECK_FALSE(parse_size("KiB"));
  CHECK_FALSE(parse_size("1.5MiB"));
  // Past 64 bits: the largest count (refused by every range), never a wrapped value.
  CHECK(parse_size("17179869183GiB") == 17179869183ull << 30);
  CHECK(parse_size("17179869184GiB") == UINT64_MAX);
  CHECK(parse_size("17592186044417MiB") == UINT64_MAX);
  CHECK(parse_size("999999999999999KiB") == 999999999999999ull << 10);
  CHECK(parse_size("999999999999999GiB") == UINT64_MAX);
  CHECK_FALSE(parse_size("1 MiB"));
  CHECK_FALSE(parse_size("1kb"));
  CHECK_FALSE(parse_size("-1"));
  CHECK_FALSE(parse_size("9999999999999999"));
}

TEST_CASE("control characters are refused before YAML parsing", "[config][limits]") {
  CHECK(errors_of("LN\f:") == std::vector<std::string>{"t.yaml:1:3: control character U+000C is not allowed in YAML"});
  CHECK(errors_of("apps: []\nworkers: 1\x01\n") ==
        std::vector<std::string>{"t.yaml:2:11: control character U+0001 is not allowed in YAML"});
}

TEST_CASE("a line starting with ',' is refused before YAML parsing (yaml-cpp 0.7 hangs on it)", "[config][limits]") {
  CHECK(errors_of("apps: []\n  ,access_log: true\n") ==
        std::vector<std::string>{"t.yaml:2:3: a line may not start with ',' (put it at the end of the previous line)"});
  CHECK(load("apps: [\n]\naccess_log: false\n").ok());  // commas elsewhere are fine
}

TEST_CASE("admin.token: read, validated, and an open admin listener without one warned about", "[config][admin]") {
  auto r = load(R"(
admin:
  token: 0123456789abcdef0123
apps: []
)");
  REQUIRE(r.ok());
  CHECK(r.cfg->admin_token == "0123456789abcdef0123");
  CHECK(errors_of(R"(
admin: {token: short}
apps: []
)") == std::vector<std::string>{"t.yaml:1:16: admin token must be at least 16 visible ASCII characters (no spaces)"});
  auto warned = load(R"(
listen: {admin: "0.0.0.0:9090"}
apps: []
)");
  REQUIRE(warned.ok());
  bool found = false;
  for (const auto& w : warned.warnings)
    found = found || w.str() == "t.yaml:1:17: admin listener 0.0.0.0:9090 is not on loopback and admin.token is not set: "
                                "/status is open to that network";
  CHECK(found);
  auto quiet = load(R"(
listen: {admin: "0.0.0.0:9090"}
admin: {token: 0123456789abcdef0123}
apps: []
)");
  REQUIRE(quiet.ok());
  CHECK(quiet.warnings.size() == 1);  // only "no apps configured"
}
