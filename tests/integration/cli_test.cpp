// The command line: --version, --help, unknown arguments, `check` and `run` with invalid configs.
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <csignal>
#include <cstddef>
#include <cstring>
#include <thread>
#include <regex>
#include <string>
#include <vector>

#include "tests/support/integration.hpp"

using namespace wakegate::test;

namespace {

// A config with two problems at known places (positions are those of the values):
//   line 2, column 17: `soon` is not a duration
//   line 6, column 20: max_instances must be at least 1
std::string invalid_config() {
  return "listen: { http: 127.0.0.1:0, admin: 127.0.0.1:0 }\n"  // 1
         "scale_interval: soon\n"                               // 2
         "apps:\n"                                              // 3
         "  - name: t\n"                                        // 4
         "    hosts: [t.test]\n"                                // 5
         "    max_instances: -3\n"                              // 6
         "    backend:\n"                                       // 7
         "      process:\n"                                     // 8
         "        command: " +
         yaml_flow_list(test_app_command("cli-unused")) + "\n";  // 9
}

std::string valid_config() {
  config_yaml c;
  c.apps.push_back(app_yaml("t", {"t.test"}, "cli-unused"));
  return c.str();
}

// Lines that are problems (not warnings).
std::vector<std::string> problem_lines(const std::string& text) {
  std::vector<std::string> out;
  for (auto& l : split_lines(text))
    if (!l.empty() && !contains(l, ": warning: ")) out.push_back(l);
  return out;
}

}  // namespace

TEST_CASE("wakegate --version and --help exit 0", "[integration][cli]") {
  auto v = run_wakegate({"--version"});
  INFO("stdout: " << v.out << "\nstderr: " << v.err);
  CHECK(v.exit_code == 0);
  CHECK(std::regex_match(v.out, std::regex(R"(wakegate \d+\.\d+\.\d+\n?)")));

  auto h = run_wakegate({"--help"});
  INFO("stdout: " << h.out << "\nstderr: " << h.err);
  CHECK(h.exit_code == 0);
  CHECK(contains(to_lower(h.out), "usage"));
  CHECK(contains(h.out, "run"));
  CHECK(contains(h.out, "check"));
}

TEST_CASE("wakegate with an unknown argument prints usage on stderr and exits 2", "[integration][cli]") {
  auto r = run_wakegate({"--no-such-option"});
  INFO("stdout: " << r.out << "\nstderr: " << r.err);
  CHECK(r.exit_code == 2);
  CHECK(contains(to_lower(r.err), "usage"));
}

TEST_CASE("wakegate check accepts a valid config: prints FILE: ok and exits 0", "[integration][cli]") {
  temp_dir dir;
  auto path = dir.write("good.yaml", valid_config());
  auto r = run_wakegate({"check", "--config", path});
  INFO("stdout: " << r.out << "\nstderr: " << r.err);
  CHECK(r.exit_code == 0);
  auto lines = split_lines(r.out);
  REQUIRE_FALSE(lines.empty());
  CHECK(lines.back() == path + ": ok");
  CHECK(problem_lines(r.out).size() == 1);  // only the `ok` line besides warnings
}

TEST_CASE("wakegate check reports each problem as FILE:LINE:COLUMN: message and exits 1", "[integration][cli]") {
  temp_dir dir;
  auto path = dir.write("bad.yaml", invalid_config());
  auto r = run_wakegate({"check", "--config", path});
  INFO("stdout: " << r.out << "\nstderr: " << r.err);
  CHECK(r.exit_code == 1);
  auto lines = problem_lines(r.out);
  REQUIRE(lines.size() == 2);  // in file order
  CHECK(lines[0] == path + ":2:17: expected a duration like 250ms, 30s or 5m");
  CHECK(lines[1] == path + ":6:20: max_instances must be at least 1");
  CHECK_FALSE(contains(r.out, ": ok"));
}

TEST_CASE("wakegate check prints warnings and errors together in file order", "[integration][cli]") {
  temp_dir dir;
  auto path = dir.write("mixed.yaml",
                        "workers: many\n"                                    // 1: error
                        "listen: { http: 127.0.0.1:0, admin: 0.0.0.0:0 }\n"  // 2: warning (open admin)
                        "scale_interval: 0s\n"                               // 3: error
                        "apps: []\n");                                       // 4: warning (no apps)
  auto r = run_wakegate({"check", "--config", path});
  INFO("stdout: " << r.out << "\nstderr: " << r.err);
  CHECK(r.exit_code == 1);
  CHECK(split_lines(r.out) ==
        std::vector<std::string>{path + ":1:10: expected an integer",
                                 path + ":2:37: warning: admin listener 0.0.0.0:0 is not on loopback and admin.token "
                                        "is not set: /status is open to that network",
                                 path + ":3:17: scale_interval must be greater than 0",
                                 path + ":4:1: warning: no apps configured"});
}

TEST_CASE("wakegate check reports a YAML syntax error with its position", "[integration][cli]") {
  temp_dir dir;
  auto path = dir.write("syntax.yaml", "listen: { http: 127.0.0.1:0, admin: 127.0.0.1:0 }\napps: [\n  - name: t\n");
  auto r = run_wakegate({"check", "--config", path});
  INFO("stdout: " << r.out << "\nstderr: " << r.err);
  CHECK(r.exit_code == 1);
  auto lines = problem_lines(r.out);
  REQUIRE_FALSE(lines.empty());
  std::regex form("^" + std::regex_replace(path, std::regex(R"([.^$|()\[\]{}*+?\\])"), R"(\$&)") +
                  R"(:[1-9]\d*:[1-9]\d*: .+$)");
  for (const auto& l : lines) CHECK(std::regex_match(l, form));
}

TEST_CASE("wakegate check with a missing file exits 1 naming the file", "[integration][cli]") {
  temp_dir dir;
  auto path = dir.path() + "/does-not-exist.yaml";
  auto r = run_wakegate({"check", "--config", path});
  INFO("stdout: " << r.out << "\nstderr: " << r.err);
  CHECK(r.exit_code == 1);
  CHECK(contains(r.out + r.err, path));
}

TEST_CASE("wakegate run with an invalid config prints the same problems on stderr and exits 1", "[integration][cli]") {
  temp_dir dir;
  auto path = dir.write("bad.yaml", invalid_config());
  auto check = run_wakegate({"check", "--config", path});
  auto run = run_wakegate({"run", "--config", path}, 20s);
  INFO("check stdout: " << check.out << "\nrun stdout: " << run.out << "\nrun stderr: " << run.err);
  CHECK_FALSE(run.timed_out);
  CHECK(run.exit_code == 1);
  auto expected = problem_lines(check.out);
  REQUIRE(expected.size() == 2);
  auto err_lines = split_lines(run.err);
  for (const auto& e : expected) {
    INFO("expected on stderr: " << e);
    CHECK(std::find(err_lines.begin(), err_lines.end(), e) != err_lines.end());
  }
}

TEST_CASE("wakegate run refuses an http address another wakegate listens on, naming the listener", "[integration][cli]") {
  config_yaml c;
  c.apps.push_back(app_yaml("t", {"t.test"}, "cli-unused"));
  wakegate_process first(c.str());
  // Found by black-box testing: the second bound too (SO_REUSEPORT) and took part of the traffic.
  config_yaml second;
  second.http = "127.0.0.1:" + std::to_string(first.http_port());
  second.apps.push_back(app_yaml("u", {"u.test"}, "cli-unused"));
  temp_dir dir;
  auto run = run_wakegate({"run", "--config", dir.write("second.yaml", second.str())}, 20s);
  INFO("run stderr: " << run.err);
  CHECK_FALSE(run.timed_out);
  CHECK(run.exit_code == 1);
  CHECK(contains(run.err, "\"msg\":\"cannot listen\""));
  CHECK(contains(run.err, "http listener 127.0.0.1:" + std::to_string(first.http_port()) + ": Address already in use"));
  CHECK_FALSE(contains(run.err, ".hpp:"));  // no Boost source location
  auto r = http_get(first.http_port(), "t.test", "/");
  CHECK(r.status == 200);
}

// Two wakegates starting at the same instant both pass the probe bind: the address's lock (an
// abstract Unix socket, "wakegate-listen <address>") lets only one listen. Held here by the test,
// as the other wakegate would hold it.
TEST_CASE("wakegate run refuses an address whose listen lock another wakegate holds", "[integration][cli]") {
  const auto port = free_port();
  const int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  REQUIRE(fd >= 0);
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  const std::string name = "wakegate-listen 127.0.0.1:" + std::to_string(port);
  std::memcpy(addr.sun_path + 1, name.data(), name.size());
  REQUIRE(::bind(fd, reinterpret_cast<const sockaddr*>(&addr),
                 static_cast<socklen_t>(offsetof(sockaddr_un, sun_path) + 1 + name.size())) == 0);
  config_yaml c;
  c.http = "127.0.0.1:" + std::to_string(port);
  c.apps.push_back(app_yaml("t", {"t.test"}, "cli-unused"));
  temp_dir dir;
  auto run = run_wakegate({"run", "--config", dir.write("wakegate.yaml", c.str())}, 20s);
  ::close(fd);
  INFO("run stderr: " << run.err);
  CHECK(run.exit_code == 1);
  CHECK(contains(run.err, "\"msg\":\"cannot listen\""));
  CHECK(contains(run.err, "http listener 127.0.0.1:" + std::to_string(port) +
                              ": another wakegate listens there (it started at the same time as this one)"));
}

TEST_CASE("a new wakegate can listen on the address of one that is draining (SIGTERM)", "[integration][cli]") {
  auto marker = unique_marker();
  const auto port = free_port();
  config_yaml c;
  c.http = "127.0.0.1:" + std::to_string(port);
  c.shutdown_timeout = "20s";
  c.apps.push_back(app_yaml("t", {"t.test"}, marker).set("min_instances", "1"));
  wakegate_process old(c.str(), wakegate_options::cleaning({marker}));
  REQUIRE(wait_one_ready(old.admin_port(), "t"));
  std::thread slow([&] { http_get(port, "t.test", "/sleep?ms=3000"); });
  REQUIRE(wait_app(old.admin_port(), "t", [](const app_status& a) { return a.in_flight == 1; }, 3s));
  old.signal(SIGTERM);
  REQUIRE(old.wait_for_record([](const auto& x) { return json_string(x, "msg") == "shutting down: draining connections"; },
                              5s));
  REQUIRE(old.running());  // still draining its request
  wakegate_process next(c.str(), wakegate_options::cleaning({marker}));
  REQUIRE(wait_one_ready(next.admin_port(), "t"));
  auto r = http_get(port, "t.test", "/pid");
  INFO(describe(r));
  CHECK(r.status == 200);
  slow.join();
}

TEST_CASE("wakegate run logs the warnings of a valid config as JSON lines, like a reload does", "[integration][cli]") {
  config_yaml c;  // no apps: a warning
  wakegate_process wg(c.str());
  // Found by black-box testing: they were plain FILE:LINE:COL text amid the JSON log.
  for (const auto& line : wg.stderr_lines()) {
    INFO(line);
    CHECK((line.empty() || line.front() == '{'));
  }
  auto warned = wg.records_with_msg("config warning");
  REQUIRE(warned.size() == 1);
  CHECK(starts_with(json_string(warned.front(), "problem"), wg.config_path() + ":"));
  CHECK(contains(json_string(warned.front(), "problem"), ": no apps configured"));
}
