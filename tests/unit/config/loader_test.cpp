// load_string/load_file: exact diagnostics for every class of problem, and the values of valid
// configurations. Snippets are raw strings whose first line is line 1 of the "file".
#include "config/loader.hpp"

#include <unistd.h>

#include <catch2/catch.hpp>
#include <csignal>
#include <filesystem>
#include <fstream>

using namespace wakegate::config;
using namespace std::chrono_literals;
namespace fs = std::filesystem;

namespace {

const std::string source_dir = WAKEGATE_SOURCE_DIR;

load_result load(std::string_view yaml, const std::string& base_dir = source_dir) {
  if (yaml.starts_with('\n')) yaml.remove_prefix(1);  // the newline right after R"(
  return load_string(yaml, "t.yaml", base_dir);
}

std::vector<std::string> lines(const std::vector<diagnostic>& diagnostics) {
  std::vector<std::string> out;
  for (const auto& d : diagnostics) out.push_back(d.str());
  return out;
}

std::vector<std::string> errors_of(std::string_view yaml) { return lines(load(yaml).errors); }

const process_backend& process_of(const app_config& app) {
  return std::get<process_backend>(app.backend);
}

struct error_case {
  std::string_view what;
  std::string_view yaml;
  std::vector<std::string> errors;
};

void check_cases(const std::vector<error_case>& cases) {
  for (const auto& c : cases) {
    INFO(c.what << ":\n" << c.yaml);
    const load_result result = load(c.yaml);
    CHECK(lines(result.errors) == c.errors);
    CHECK(result.cfg.has_value() == c.errors.empty());
  }
}

const std::string name_rule =
    " (lower-case letters, digits and '-', at most 63 characters, starting and ending with a "
    "letter or digit)";
const std::string host_rule = " (expected a name like app.example.com or *.example.com)";
const std::string signal_list =
    " (known: SIGTERM, SIGINT, SIGQUIT, SIGHUP, SIGKILL, SIGUSR1, SIGUSR2)";

}  // namespace

TEST_CASE("diagnostic::str is file:line:column: message", "[config][loader]") {
  CHECK(diagnostic{"a/b.yaml", 3, 7, "boom"}.str() == "a/b.yaml:3:7: boom");
}

TEST_CASE("unknown keys are reported with a suggestion when one is close", "[config][loader]") {
  check_cases({
      {"app key",
       R"(
apps:
  - name: hello
    hots: [hello.localhost]
    backend: {process: {command: [sh]}}
)",
       {"t.yaml:2:5: missing required key 'hosts' in app 'hello'",
        "t.yaml:3:5: unknown key 'hots' in app 'hello' (did you mean 'hosts'?)"}},
      {"top-level key",
       R"(
lisen: {http: "127.0.0.1:8000"}
apps: []
)",
       {"t.yaml:1:1: unknown key 'lisen' (did you mean 'listen'?)"}},
      {"no close key",
       R"(
apps: []
colour: blue
)",
       {"t.yaml:2:1: unknown key 'colour'"}},
      {"short key is not a typo of a longer one",
       R"(
apps: []
x: 1
)",
       {"t.yaml:2:1: unknown key 'x'"}},
      {"transposition",
       R"(
apps: []
wokrers: 2
)",
       {"t.yaml:2:1: unknown key 'wokrers' (did you mean 'workers'?)"}},
      {"listen key",
       R"(
listen:
  htp: 127.0.0.1:8000
apps: []
)",
       {"t.yaml:2:3: unknown key 'htp' in listen (did you mean 'http'?)"}},
      {"defaults key",
       R"(
defaults:
  min_instance: 1
apps: []
)",
       {"t.yaml:2:3: unknown key 'min_instance' in defaults (did you mean 'min_instances'?)"}},
      {"app-only key in defaults",
       R"(
defaults:
  hosts: [a.localhost]
apps: []
)",
       {"t.yaml:2:3: unknown key 'hosts' in defaults"}},
      {"readiness key in defaults",
       R"(
defaults:
  readiness: {pth: /healthz}
apps: []
)",
       {"t.yaml:2:15: unknown key 'pth' in readiness of defaults (did you mean 'path'?)"}},
      {"readiness key in an app",
       R"(
apps:
  - name: a
    hosts: [a.localhost]
    readiness:
      intervall: 1s
    backend: {process: {command: [sh]}}
)",
       {"t.yaml:5:7: unknown key 'intervall' in readiness of app 'a' (did you mean 'interval'?)"}},
      {"process key",
       R"(
apps:
  - name: a
    hosts: [a.localhost]
    backend:
      process:
        command: [sh]
        workdir: /tmp
)",
       {"t.yaml:7:9: unknown key 'workdir' in process backend of app 'a'"}},
      {"misspelt required key",
       R"(
apps:
  - name: a
    hosts: [a.localhost]
    backend:
      process:
        comand: [sh]
)",
       {"t.yaml:5:7: missing required key 'command' in process backend of app 'a'",
        "t.yaml:6:9: unknown key 'comand' in process backend of app 'a' (did you mean "
        "'command'?)"}},
      {"unnamed app",
       R"(
apps:
  - hosts: [a.localhost]
    nmae: a
    backend: {process: {command: [sh]}}
)",
       {"t.yaml:2:5: missing required key 'name' in app #1",
        "t.yaml:3:5: unknown key 'nmae' in app #1 (did you mean 'name'?)"}},
  });
}

TEST_CASE("duplicate keys are reported at the second", "[config][loader]") {
  check_cases({
      {"top level",
       R"(
workers: 1
workers: 2
apps: []
)",
       {"t.yaml:2:1: duplicate key 'workers' (first at line 1)"}},
      {"in an app",
       R"(
apps:
  - name: a
    hosts: [a.localhost]
    hosts: [b.localhost]
    backend: {process: {command: [sh]}}
)",
       {"t.yaml:4:5: duplicate key 'hosts' (first at line 3)"}},
      {"in env",
       R"(
apps:
  - name: a
    hosts: [a.localhost]
    backend:
      process:
        command: [sh]
        env:
          A: 1
          B: 2
          A: 3
)",
       {"t.yaml:10:11: duplicate key 'A' (first at line 8)"}},
  });
}

TEST_CASE("wrong types say what was expected", "[config][loader]") {
  check_cases({
      {"integer",
       R"(
workers: many
apps: []
)",
       {"t.yaml:1:10: expected an integer"}},
      {"quoted integer",
       R"(
workers: "4"
apps: []
)",
       {"t.yaml:1:10: expected an integer"}},
      {"fractional integer",
       R"(
workers: 1.5
apps: []
)",
       {"t.yaml:1:10: expected an integer"}},
      {"null integer",
       R"(
workers:
apps: []
)",
       {"t.yaml:1:1: expected an integer"}},
      {"boolean",
       R"(
access_log: yes
apps: []
)",
       {"t.yaml:1:13: expected true or false"}},
      {"quoted boolean",
       R"(
access_log: "true"
apps: []
)",
       {"t.yaml:1:13: expected true or false"}},
      {"mapping",
       R"(
listen: 8080
apps: []
)",
       {"t.yaml:1:9: expected a mapping"}},
      {"root mapping",
       R"(
- apps
)",
       {"t.yaml:1:1: expected a mapping"}},
      {"address",
       R"(
listen: {http: 8080}
apps: []
)",
       {"t.yaml:1:16: expected an address host:port"}},
      {"address with a host name",
       R"(
listen:
  admin: example.com:80
apps: []
)",
       {"t.yaml:2:10: expected an address host:port"}},
      {"address with a bad port",
       R"(
listen:
  admin: 127.0.0.1:65536
apps: []
)",
       {"t.yaml:2:10: expected an address host:port"}},
      {"duration without unit",
       R"(
shutdown_timeout: 30
apps: []
)",
       {"t.yaml:1:19: expected a duration like 250ms, 30s or 5m"}},
      {"list of strings",
       R"(
apps:
  - name: a
    hosts: a.localhost
    backend: {process: {command: [sh]}}
)",
       {"t.yaml:3:12: expected a list of strings"}},
      {"nested list",
       R"(
apps:
  - name: a
    hosts: [a.localhost, [b.localhost]]
    backend: {process: {command: [sh]}}
)",
       {"t.yaml:3:26: expected a list of strings"}},
      {"string",
       R"(
apps:
  - name: [a]
    hosts: [a.localhost]
    backend: {process: {command: [sh]}}
)",
       {"t.yaml:2:11: expected a string"}},
      {"list of apps",
       R"(
apps: hello
)",
       {"t.yaml:1:7: expected a list of apps"}},
      {"app entry",
       R"(
apps:
  - hello
)",
       {"t.yaml:2:5: expected a mapping"}},
  });
}

TEST_CASE("durations must be positive where zero makes no sense", "[config][loader]") {
  check_cases({
      {"scale_interval",
       R"(
scale_interval: 0s
apps: []
)",
       {"t.yaml:1:17: scale_interval must be greater than 0"}},
      {"zero allowed",
       R"(
shutdown_timeout: 0s
defaults:
  scale_down_delay: 0ms
  scale_to_zero_after: 0s
apps: []
)",
       {}},
      {"defaults",
       R"(
defaults:
  queue_timeout: 0s
  scale_down_delay: 0s
  stable_window: 1.5s
  startup_timeout: 10
apps: []
)",
       {"t.yaml:2:18: queue_timeout must be greater than 0",
        "t.yaml:4:18: expected a duration like 250ms, 30s or 5m",
        "t.yaml:5:20: expected a duration like 250ms, 30s or 5m"}},
      {"readiness",
       R"(
defaults:
  readiness:
    path: healthz
    interval: 0ms
    timeout: 0s
apps: []
)",
       {"t.yaml:3:11: readiness path must start with '/'",
        "t.yaml:4:15: interval must be greater than 0",
        "t.yaml:5:14: timeout must be greater than 0"}},
      // Found by black-box testing: sent as they were in the probe's request line.
      {"readiness path characters",
       R"(
apps:
  - {name: a, hosts: [a.test], readiness: {path: "/ready\r\nX-Injected: yes"}, backend: {process: {command: [/bin/true]}}}
  - {name: b, hosts: [b.test], readiness: {path: "/a b"}, backend: {process: {command: [/bin/true]}}}
  - {name: c, hosts: [c.test], readiness: {path: "/a#frag"}, backend: {process: {command: [/bin/true]}}}
  - {name: d, hosts: [d.test], readiness: {path: "/h%20z?x=1&y=[2]:@!$'()*+,;="}, backend: {process: {command: [/bin/true]}}}
)",
       {"t.yaml:2:50: readiness path must be a URL path and query: no spaces, control characters, '#' or \"<>\\^`{|}; percent-encode them (%20)",
        "t.yaml:3:50: readiness path must be a URL path and query: no spaces, control characters, '#' or \"<>\\^`{|}; percent-encode them (%20)",
        "t.yaml:4:50: readiness path must be a URL path and query: no spaces, control characters, '#' or \"<>\\^`{|}; percent-encode them (%20)"}},
  });
}

TEST_CASE("durations are at most 3650d (run-time code adds them to clocks in nanoseconds)", "[config][loader]") {
  check_cases({
      {"at the maximum",
       R"(
shutdown_timeout: 3650d
defaults:
  queue_timeout: 3649d23h59m59s999ms
apps: []
)",
       {}},
      {"above it",
       R"(
shutdown_timeout: 3650d1ms
defaults:
  queue_timeout: 107000d
  scale_to_zero_after: 99999999999999999999d
apps: []
)",
       {"t.yaml:1:19: duration too large (at most 3650d)",
        "t.yaml:3:18: duration too large (at most 3650d)",
        "t.yaml:4:24: duration too large (at most 3650d)"}},
  });
}

TEST_CASE("http and admin listeners must differ unless on port 0", "[config][loader]") {
  check_cases({
      {"same address",
       R"(
listen:
  http: 127.0.0.1:9000
  admin: 127.0.0.1:9000
apps: []
)",
       {"t.yaml:3:10: admin address 127.0.0.1:9000 must differ from http address 127.0.0.1:9000"}},
      {"default admin",
       R"(
listen:
  http: 127.0.0.1:9090
apps: []
)",
       {"t.yaml:2:9: admin address 127.0.0.1:9090 must differ from http address 127.0.0.1:9090"}},
      {"wildcard overlaps",
       R"(
listen: {http: "*:8000", admin: "localhost:8000"}
apps: []
)",
       {"t.yaml:1:33: admin address localhost:8000 must differ from http address 0.0.0.0:8000"}},
      {"port 0 twice",
       R"(
listen: {http: "127.0.0.1:0", admin: "127.0.0.1:0"}
apps: []
)",
       {}},
      {"different ports",
       R"(
listen: {http: ":8000", admin: "localhost:8001"}
apps: []
)",
       {}},
      {"different hosts",
       R"(
listen: {http: "127.0.0.1:8000", admin: "[::1]:8000"}
apps: []
)",
       {}},
      // Found by black-box testing: both bound (SO_REUSEPORT), and the https one never saw a connection.
      {"IPv4-mapped IPv6 is the IPv4 address",
       R"(
listen: {http: "127.0.0.1:8000", admin: "[::ffff:127.0.0.1]:8000"}
apps: []
)",
       {"t.yaml:1:41: admin address [::ffff:127.0.0.1]:8000 must differ from http address 127.0.0.1:8000"}},
      {"one IPv6 address spelled two ways",
       R"(
listen: {http: "[::1]:8000", admin: "[0:0:0:0:0:0:0:1]:8000"}
apps: []
)",
       {"t.yaml:1:37: admin address [0:0:0:0:0:0:0:1]:8000 must differ from http address [::1]:8000"}},
  });
}

// docs/config.md listen.https: "Must not collide with listen.http or listen.admin" (port 0 excepted,
// as for http and admin). The acme section keeps the config otherwise valid.
TEST_CASE("the https listener must differ from the http and admin listeners unless on port 0", "[config][loader]") {
  check_cases({
      {"same as http",
       R"(
listen: {http: "127.0.0.1:8000", admin: "127.0.0.1:9090", https: "127.0.0.1:8000"}
tls: {acme: {directory: "https://ca.test/dir", storage: /tmp/wakegate-unit-acme}}
apps: []
)",
       {"t.yaml:1:66: https address 127.0.0.1:8000 must differ from the http and admin addresses"}},
      {"same as admin",
       R"(
listen: {http: "127.0.0.1:8000", admin: "127.0.0.1:9090", https: "localhost:9090"}
tls: {acme: {directory: "https://ca.test/dir", storage: /tmp/wakegate-unit-acme}}
apps: []
)",
       {"t.yaml:1:66: https address localhost:9090 must differ from the http and admin addresses"}},
      {"wildcard overlaps the default admin",
       R"(
listen:
  http: 127.0.0.1:8000
  https: "*:9090"
tls: {acme: {directory: "https://ca.test/dir", storage: /tmp/wakegate-unit-acme}}
apps: []
)",
       {"t.yaml:3:10: https address 0.0.0.0:9090 must differ from the http and admin addresses"}},
      {"port 0 with port 0",
       R"(
listen: {http: "127.0.0.1:0", admin: "127.0.0.1:0", https: "127.0.0.1:0"}
tls: {acme: {directory: "https://ca.test/dir", storage: /tmp/wakegate-unit-acme}}
apps: []
)",
       {}},
      {"a port of its own",
       R"(
listen: {http: "127.0.0.1:8000", admin: "127.0.0.1:9090", https: "127.0.0.1:8443"}
tls: {acme: {directory: "https://ca.test/dir", storage: /tmp/wakegate-unit-acme}}
apps: []
)",
       {}},
  });
}

TEST_CASE("integers are range checked", "[config][loader]") {
  check_cases({
      {"ranges",
       R"(
defaults:
  min_instances: -1
  max_instances: 0
  target_concurrency: 0
  max_concurrency: -1
  queue_size: 99999999999
workers: 65
apps: []
)",
       {"t.yaml:2:18: min_instances must be at least 0",
        "t.yaml:3:18: max_instances must be at least 1",
        "t.yaml:4:23: target_concurrency must be at least 1",
        "t.yaml:5:20: max_concurrency must be at least 0",
        "t.yaml:6:15: queue_size must be at most 2147483647",
        "t.yaml:7:10: workers must be between 0 and 64"}},
      {"negative workers",
       R"(
workers: -1
apps: []
)",
       {"t.yaml:1:10: workers must be between 0 and 64"}},
      {"min > max in an app",
       R"(
apps:
  - name: a
    hosts: [a.localhost]
    min_instances: 3
    max_instances: 2
    backend: {process: {command: [sh]}}
)",
       {"t.yaml:4:5: min_instances (3) is greater than max_instances (2)"}},
      {"min > max with min inherited: at the app's own max_instances",
       R"(
defaults:
  min_instances: 3
apps:
  - name: a
    hosts: [a.localhost]
    max_instances: 2
    backend: {process: {command: [sh]}}
)",
       {"t.yaml:6:5: min_instances (3) is greater than max_instances (2)"}},
      {"min > max in defaults, once",
       R"(
defaults:
  min_instances: 12
apps:
  - {name: a, hosts: [a.localhost], backend: {process: {command: [sh]}}}
  - {name: b, hosts: [b.localhost], backend: {process: {command: [sh]}}}
)",
       {"t.yaml:2:3: min_instances (12) is greater than max_instances (10)"}},
      {"app fixes the defaults' max",
       R"(
defaults:
  max_instances: 1
apps:
  - {name: a, hosts: [a.localhost], min_instances: 2, max_instances: 2, backend: {process: {command: [sh]}}}
)",
       {}},
  });
}

TEST_CASE("apps and their names", "[config][loader]") {
  check_cases({
      {"apps missing",
       R"(
workers: 2
)",
       {"t.yaml:1:1: missing required key 'apps'"}},
      {"name invalid",
       R"(
apps:
  - name: Hello
    hosts: [a.localhost]
    backend: {process: {command: [sh]}}
)",
       {"t.yaml:2:11: invalid app name 'Hello'" + name_rule}},
      {"duplicate name",
       R"(
apps:
  - {name: a, hosts: [a.localhost], backend: {process: {command: [sh]}}}
  - {name: a, hosts: [b.localhost], backend: {process: {command: [sh]}}}
)",
       {"t.yaml:3:12: duplicate app name 'a' (first at line 2)"}},
      {"backend missing",
       R"(
apps:
  - name: a
    hosts: [a.localhost]
)",
       {"t.yaml:2:5: missing required key 'backend' in app 'a'"}},
      {"nothing but a name",
       R"(
apps:
  - name: a
)",
       {"t.yaml:2:5: missing required key 'hosts' in app 'a'",
        "t.yaml:2:5: missing required key 'backend' in app 'a'"}},
  });

  const std::vector<std::string> valid{"a", "0", "a-b", "a--b", "abc123", std::string(63, 'a')};
  const std::vector<std::string> invalid{"-a",  "a-",  "A", "a_b",
                                         "a.b", "a b", "",  std::string(64, 'a')};
  auto yaml = [](const std::string& name) {
    return "apps:\n  - name: \"" + name +
           "\"\n    hosts: [a.localhost]\n"
           "    backend: {process: {command: [sh]}}\n";
  };
  for (const auto& name : valid) {
    INFO("name: '" << name << "'");
    const load_result result = load(yaml(name));
    CHECK(lines(result.errors).empty());
    REQUIRE(result.cfg);
    CHECK(result.cfg->apps.at(0).name == name);
  }
  for (const auto& name : invalid) {
    INFO("name: '" << name << "'");
    CHECK(errors_of(yaml(name)) ==
          std::vector<std::string>{"t.yaml:2:11: invalid app name '" + name + "'" + name_rule});
  }
}

TEST_CASE("hosts", "[config][loader]") {
  check_cases({
      {"empty list",
       R"(
apps:
  - name: a
    hosts: []
    backend: {process: {command: [sh]}}
)",
       {"t.yaml:3:12: hosts must not be empty"}},
      {"invalid hosts",
       R"(
apps:
  - name: a
    hosts:
      - a.b:80
      - a_b.localhost
      - ""
      - "*."
      - a.*.b
      - "**.a"
      - a..b
      - .a
      - a.
      - "*"
      - ok.localhost
    backend: {process: {command: [sh]}}
)",
       {"t.yaml:4:9: host 'a.b:80' must not include a port",
        "t.yaml:5:9: invalid host 'a_b.localhost'" + host_rule,
        "t.yaml:6:9: host must not be empty", "t.yaml:7:9: invalid host '*.'" + host_rule,
        "t.yaml:8:9: invalid host 'a.*.b'" + host_rule,
        "t.yaml:9:9: invalid host '**.a'" + host_rule,
        "t.yaml:10:9: invalid host 'a..b'" + host_rule,
        "t.yaml:11:9: invalid host '.a'" + host_rule, "t.yaml:12:9: invalid host 'a.'" + host_rule,
        "t.yaml:13:9: invalid host '*'" + host_rule}},
      {"duplicate across apps, case-insensitive",
       R"(
apps:
  - name: a
    hosts: [a.localhost, "*.a.localhost"]
    backend: {process: {command: [sh]}}
  - name: b
    hosts: [b.localhost, A.Localhost]
    backend: {process: {command: [sh]}}
)",
       {"t.yaml:6:26: host 'a.localhost' is already used by app 'a' (line 3)"}},
      {"duplicate within an app",
       R"(
apps:
  - name: a
    hosts: [a.localhost, a.localhost]
    backend: {process: {command: [sh]}}
)",
       {"t.yaml:3:26: host 'a.localhost' is already used by app 'a' (line 3)"}},
      {"a label starting or ending with '-' (RFC 1123)",
       R"(
apps:
  - name: a
    hosts: [-lead.localhost, trail-.localhost, a.-b.localhost, "*.c-.localhost", a--b.localhost]
    backend: {process: {command: [sh]}}
)",
       {"t.yaml:3:13: invalid host '-lead.localhost' (a label must not start or end with '-')",
        "t.yaml:3:30: invalid host 'trail-.localhost' (a label must not start or end with '-')",
        "t.yaml:3:48: invalid host 'a.-b.localhost' (a label must not start or end with '-')",
        "t.yaml:3:64: invalid host '*.c-.localhost' (a label must not start or end with '-')"}},
      {"unquoted wildcard is a YAML alias",
       R"(
apps:
  - name: a
    hosts: [*.a.localhost]
    backend: {process: {command: [sh]}}
)",
       {"t.yaml:3:13: invalid YAML: the referenced anchor is not defined (values starting with '*' "
        "must be quoted, e.g. \"*.example.com\")"}},
  });

  // yaml-cpp stops at 2000 levels with the message "bad file"; the error says what is wrong.
  const load_result deep = load("apps: " + std::string(3000, '[') + std::string(3000, ']') + "\n");
  REQUIRE(lines(deep.errors).size() == 1);
  CHECK(lines(deep.errors)[0].starts_with("t.yaml:1:"));
  CHECK(lines(deep.errors)[0].ends_with("invalid YAML: nested too deeply (yaml-cpp's limit is 2000 levels)"));

  const load_result result = load(R"(
apps:
  - name: a
    hosts: [Hello.LocalHost, "*.Example.COM", x-1.y-2.z, 127.0.0.1, localhost]
    backend: {process: {command: [sh]}}
)");
  REQUIRE(lines(result.errors).empty());
  CHECK(result.cfg->apps.at(0).hosts == std::vector<std::string>{"hello.localhost", "*.example.com",
                                                                 "x-1.y-2.z", "127.0.0.1",
                                                                 "localhost"});
}

TEST_CASE("backends", "[config][loader]") {
  const std::string missing_dir = source_dir + "/no-such-dir";
  check_cases({
      {"unknown kind",
       R"(
apps:
  - name: a
    hosts: [a.localhost]
    backend:
      dockr: {image: x}
)",
       {"t.yaml:5:7: unknown backend 'dockr' (known: process, docker)"}},
      {"no kind",
       R"(
apps:
  - name: a
    hosts: [a.localhost]
    backend: {}
)",
       {"t.yaml:4:5: missing backend kind (known: process, docker)"}},
      {"not a mapping",
       R"(
apps:
  - name: a
    hosts: [a.localhost]
    backend: process
)",
       {"t.yaml:4:14: expected a mapping"}},
      {"empty command",
       R"(
apps:
  - name: a
    hosts: [a.localhost]
    backend:
      process:
        command: []
)",
       {"t.yaml:6:18: command must not be empty"}},
      {"command as a string",
       R"(
apps:
  - name: a
    hosts: [a.localhost]
    backend:
      process:
        command: sh -c true
)",
       {"t.yaml:6:18: expected a list of strings"}},
      {"absolute command missing",
       R"(
apps:
  - name: a
    hosts: [a.localhost]
    backend:
      process:
        command: [/nonexistent/bin/server, --port, "${PORT}"]
)",
       {"t.yaml:6:19: command '/nonexistent/bin/server' not found or not executable"}},
      {"absolute command not executable",
       R"(
apps:
  - name: a
    hosts: [a.localhost]
    backend:
      process:
        command: [/etc/passwd]
)",
       {"t.yaml:6:19: command '/etc/passwd' not found or not executable"}},
      {"command is a directory",
       R"(
apps:
  - name: a
    hosts: [a.localhost]
    backend:
      process:
        command: [/usr/bin]
)",
       {"t.yaml:6:19: command '/usr/bin' not found or not executable"}},
      {"command not on PATH",
       R"(
apps:
  - name: a
    hosts: [a.localhost]
    backend:
      process:
        command: [no-such-command-wakegate]
)",
       {"t.yaml:6:19: command 'no-such-command-wakegate' not found or not executable"}},
      {"relative command missing in cwd",
       R"(
apps:
  - name: a
    hosts: [a.localhost]
    backend:
      process:
        command: [./sh]
)",
       {"t.yaml:6:19: command './sh' not found or not executable"}},
      {"cwd missing (command not checked then)",
       R"(
apps:
  - name: a
    hosts: [a.localhost]
    backend:
      process:
        command: [./server]
        cwd: ./no-such-dir
)",
       {"t.yaml:7:14: cwd '" + missing_dir + "' is not an existing directory"}},
      {"cwd is a file",
       R"(
apps:
  - name: a
    hosts: [a.localhost]
    backend:
      process:
        command: [sh]
        cwd: CMakeLists.txt
)",
       {"t.yaml:7:14: cwd '" + source_dir + "/CMakeLists.txt' is not an existing directory"}},
      {"env names and values",
       R"(
apps:
  - name: a
    hosts: [a.localhost]
    backend:
      process:
        command: [sh]
        env: {1X: a, GOOD: [1], A-B: c, ok_2: x}
)",
       {"t.yaml:7:15: invalid environment variable name '1X'", "t.yaml:7:28: expected a string",
        "t.yaml:7:33: invalid environment variable name 'A-B'"}},
      {"env as a list",
       R"(
apps:
  - name: a
    hosts: [a.localhost]
    backend:
      process:
        command: [sh]
        env: [A=1]
)",
       {"t.yaml:7:14: expected a mapping"}},
      {"unknown signal",
       R"(
apps:
  - name: a
    hosts: [a.localhost]
    backend:
      process:
        command: [sh]
        stop_signal: SIGFOO
)",
       {"t.yaml:7:22: unknown signal 'SIGFOO'" + signal_list}},
      {"signal number",
       R"(
apps:
  - name: a
    hosts: [a.localhost]
    backend:
      process:
        command: [sh]
        stop_signal: 15
)",
       {"t.yaml:7:22: unknown signal '15'" + signal_list}},
      {"stop_timeout",
       R"(
apps:
  - name: a
    hosts: [a.localhost]
    backend:
      process:
        command: [sh]
        stop_timeout: 10
)",
       {"t.yaml:7:23: expected a duration like 250ms, 30s or 5m"}},
  });
}

TEST_CASE("empty files, YAML errors and extra documents", "[config][loader]") {
  check_cases({
      {"empty", "", {"t.yaml:1:1: configuration is empty"}},
      {"only comments", "# nothing\n# here\n", {"t.yaml:1:1: configuration is empty"}},
      {"only a document marker", "---\n", {"t.yaml:1:1: configuration is empty"}},
      {"unclosed flow list",
       R"(
apps:
  - name: a
    hosts: [a.localhost
    backend: {process: {command: [sh]}}
)",
       {"t.yaml:4:12: invalid YAML: end of sequence flow not found"}},
      {"bad indentation",
       R"(
listen:
  http: 127.0.0.1:8000
 admin: 127.0.0.1:8001
apps: []
)",
       {"t.yaml:3:2: invalid YAML: end of map not found"}},
      {"second document",
       R"(
apps: []
---
workers: 2
)",
       {"t.yaml:3:1: only one YAML document is allowed"}},
      {"a second document that is empty", "apps: []\n---\n", {}},
      // yaml-cpp 0.7's LoadAll never returns on these (a ',' after the top-level value).
      {"a tag with a comma as the whole document", "!'a,b'", {"t.yaml:1:4: unexpected ',' after the top-level value"}},
      {"a quoted value and a comma", "\"x\" ,", {"t.yaml:1:5: unexpected ',' after the top-level value"}},
      {"a flow list and a comma", "[a] ,", {"t.yaml:1:5: unexpected ',' after the top-level value"}},
      {"an anchor and a comma", "&x ,b", {"t.yaml:1:4: unexpected ',' after the top-level value"}},
      {"a tag and a comma in a second document", "apps: []\n---\n!a,", {"t.yaml:3:1: only one YAML document is allowed"}},
  });
}

TEST_CASE("null list items are reported at their own position", "[config][loader]") {
  check_cases({
      {"hosts: an empty item and ~",
       R"(
apps:
  - name: a
    hosts:
      - a.localhost
      -
      - ~
    backend: {process: {command: [sh]}}
)",
       {"t.yaml:5:7: expected a list of strings", "t.yaml:6:9: expected a list of strings"}},
      {"an empty item with a comment, last in its list",
       R"(
apps:
  - name: a
    backend: {process: {command: [sh]}}
    hosts:
      - a.localhost
      -   # nothing

workers: 1
)",
       {"t.yaml:6:7: expected a list of strings"}},
      {"command: a null item in a flow list",
       R"(
apps:
  - name: a
    hosts: [a.localhost]
    backend: {process: {command: [sh, null]}}
)",
       {"t.yaml:4:39: expected a list of strings"}},
      {"an empty app entry",
       R"(
apps:
  - name: a
    hosts: [a.localhost]
    backend: {process: {command: [sh]}}
  -
workers: 1
)",
       {"t.yaml:5:3: expected a mapping"}},
  });
}

TEST_CASE("columns count bytes, as yaml-cpp does", "[config][loader]") {
  CHECK(errors_of("listen: {\"\xC3\xA9\": 1, http: x}\napps: []\n") ==
        std::vector<std::string>{"t.yaml:1:10: unknown key '\xC3\xA9' in listen",
                                 "t.yaml:1:25: expected an address host:port"});
  CHECK(errors_of("apps: [] # \xC3\xA9\x01\n") ==
        std::vector<std::string>{"t.yaml:1:14: control character U+0001 is not allowed in YAML"});
}

TEST_CASE("every problem is reported, in file order", "[config][loader]") {
  // `defaults:` and `listen:` come after `apps:` here but are validated first.
  CHECK(errors_of(R"(
apps:
  - name: a
    hots: [a.localhost]
    backend: {process: {command: [sh]}}
  - name: a
    hosts: [b.localhost]
    min_instances: x
    backend: {dockr: {}}
workers: 100
defaults:
  queue_size: -1
listen: {http: nowhere}
)") == std::vector<std::string>{
           "t.yaml:2:5: missing required key 'hosts' in app 'a'",
           "t.yaml:3:5: unknown key 'hots' in app 'a' (did you mean 'hosts'?)",
           "t.yaml:5:11: duplicate app name 'a' (first at line 2)",
           "t.yaml:7:20: expected an integer",
           "t.yaml:8:15: unknown backend 'dockr' (known: process, docker)",
           "t.yaml:9:10: workers must be between 0 and 64",
           "t.yaml:11:15: queue_size must be at least 0",
           "t.yaml:12:16: expected an address host:port",
       });
}

TEST_CASE("in_file_order merges errors and warnings by position", "[config][loader]") {
  const load_result result = load(R"(
workers: many
listen: {admin: "0.0.0.0:9090"}
scale_interval: 0s
apps: []
)");
  std::vector<std::string> merged;
  for (const auto& [d, warning] : in_file_order(result))
    merged.push_back((warning ? "warning: " : "") + d->str());
  CHECK(merged == std::vector<std::string>{
                      "t.yaml:1:10: expected an integer",
                      "warning: t.yaml:2:17: admin listener 0.0.0.0:9090 is not on loopback and admin.token "
                      "is not set: /status is open to that network",
                      "t.yaml:3:17: scale_interval must be greater than 0",
                      "warning: t.yaml:4:1: no apps configured",
                  });
  CHECK(in_file_order(load_result{}).empty());
}

TEST_CASE("env PORT of a process backend is warned about: it replaces the instance's port", "[config][loader]") {
  const std::string port_warning =
      "env PORT replaces the port wakegate sets for each instance, but wakegate still connects to "
      "that port (use ${PORT} to pass it under another name)";
  const load_result result = load(R"(
apps:
  - name: a
    hosts: [a.localhost]
    backend: {process: {command: [sh], env: {PORT: "9"}}}
  - name: b
    hosts: [b.localhost]
    backend: {process: {command: [sh], env: {PORT: "${PORT}", APP_PORT: "${PORT}"}}}
)");
  REQUIRE(result.ok());
  CHECK(lines(result.warnings) == std::vector<std::string>{"t.yaml:4:46: " + port_warning});
  CHECK(process_of(result.cfg->apps.at(0)).env ==
        std::vector<std::pair<std::string, std::string>>{{"PORT", "9"}});
}

TEST_CASE("target_concurrency above max_concurrency is warned about where the layer sets either", "[config][loader]") {
  const load_result result = load(R"(
defaults:
  target_concurrency: 20
  max_concurrency: 5
apps:
  - name: a
    hosts: [a.localhost]
    backend: {process: {command: [sh]}}
  - name: b
    hosts: [b.localhost]
    max_concurrency: 8
    backend: {process: {command: [sh]}}
  - name: c
    hosts: [c.localhost]
    max_concurrency: 0
    backend: {process: {command: [sh]}}
  - name: d
    hosts: [d.localhost]
    target_concurrency: 5
    backend: {process: {command: [sh]}}
)");
  REQUIRE(result.ok());
  CHECK(lines(result.warnings) ==
        std::vector<std::string>{
            "t.yaml:2:3: target_concurrency 20 is above max_concurrency 5: the scaler aims at 5 per instance",
            "t.yaml:10:5: target_concurrency 20 is above max_concurrency 8: the scaler aims at 8 per instance"});
}

TEST_CASE("listen's keys at the top level get a hint", "[config][loader]") {
  check_cases({
      {"admin address at the top level",
       R"(
admin: 127.0.0.1:9090
apps: []
)",
       {"t.yaml:1:8: expected a mapping (did you mean listen.admin?)"}},
      {"http and https at the top level",
       R"(
http: 127.0.0.1:8080
https: 127.0.0.1:8443
apps: []
)",
       {"t.yaml:1:1: unknown key 'http' (did you mean listen.http?)",
        "t.yaml:2:1: unknown key 'https' (did you mean listen.https?)"}},
  });
}

TEST_CASE("no apps is valid with a warning", "[config][loader]") {
  for (const std::string_view yaml : {"apps: []\n", "apps:\n"}) {
    INFO(yaml);
    const load_result result = load(yaml);
    CHECK(result.ok());
    REQUIRE(result.cfg);
    CHECK(result.cfg->apps.empty());
    CHECK(lines(result.warnings) == std::vector<std::string>{"t.yaml:1:1: no apps configured"});
  }
}

TEST_CASE("a minimal config gets the built-in defaults", "[config][loader]") {
  const load_result result = load(R"(
apps:
  - name: a
    hosts: [a.localhost]
    backend: {process: {command: [sh]}}
)");
  REQUIRE(lines(result.errors).empty());
  CHECK(result.warnings.empty());
  REQUIRE(result.cfg);
  const config& cfg = *result.cfg;
  CHECK(cfg.file == "t.yaml");
  CHECK(cfg.http.text() == "0.0.0.0:8080");
  CHECK(cfg.admin.text() == "127.0.0.1:9090");
  CHECK(cfg.shutdown_timeout == 30s);
  CHECK(cfg.scale_interval == 1s);
  CHECK(cfg.workers == 0);
  CHECK(cfg.access_log);
  REQUIRE(cfg.apps.size() == 1);
  const app_config& app = cfg.apps[0];
  CHECK(app.name == "a");
  CHECK(app.hosts == std::vector<std::string>{"a.localhost"});
  CHECK(app.pos.line == 2);
  CHECK(app.pos.column == 5);
  const app_settings& s = app.settings;
  const app_settings builtin;
  CHECK(s.min_instances == builtin.min_instances);
  CHECK(s.max_instances == builtin.max_instances);
  CHECK(s.target_concurrency == builtin.target_concurrency);
  CHECK(s.max_concurrency == builtin.max_concurrency);
  CHECK(s.scale_to_zero_after == builtin.scale_to_zero_after);
  CHECK(s.scale_down_delay == builtin.scale_down_delay);
  CHECK(s.stable_window == builtin.stable_window);
  CHECK(s.queue_size == builtin.queue_size);
  CHECK(s.queue_timeout == builtin.queue_timeout);
  CHECK(s.startup_timeout == builtin.startup_timeout);
  CHECK(s.readiness.path == "/");
  CHECK(s.readiness.interval == 25ms);
  CHECK(s.readiness.timeout == 1s);
  const process_backend& p = process_of(app);
  CHECK(p.command == std::vector<std::string>{"sh"});
  CHECK(p.cwd == source_dir);  // the config file's directory
  CHECK(p.env.empty());
  CHECK(p.stop_signal == SIGTERM);
  CHECK(p.stop_timeout == 10s);
}

TEST_CASE("a full config: precedence, readiness merge, paths, env, signals", "[config][loader]") {
  const load_result result = load(R"(
listen:
  http: "*:8000"
  admin: "[::1]:0"
shutdown_timeout: 0s
scale_interval: 500ms
workers: 4
access_log: false
defaults:
  min_instances: 0
  max_instances: 5
  target_concurrency: 20
  max_concurrency: 50
  scale_to_zero_after: 10m
  scale_down_delay: 0s
  stable_window: 30s
  queue_size: 100
  queue_timeout: 15s
  startup_timeout: 2m
  readiness: { path: /healthz, interval: 50ms, timeout: 2s }
apps:
  - name: hello
    hosts: [Hello.Localhost, "*.hello.example.com"]
    min_instances: 1
    queue_size: 0
    readiness: { interval: 100ms }
    backend:
      process:
        command: [/bin/sh, -c, "exec server --port ${PORT}", "${PORT}"]
        cwd: ./config/
        env: { GREETING: hi, COUNT: 3, DEBUG: true, RATIO: 1.5, EMPTY: , QUOTED: "${PORT}" }
        stop_signal: INT
        stop_timeout: 1m30s
  - name: other-2
    hosts: [other.localhost]
    max_instances: 1
    backend: {process: {command: [./sh], cwd: /usr/bin, stop_signal: sigkill}}
)");
  REQUIRE(lines(result.errors).empty());
  CHECK(result.warnings.empty());
  REQUIRE(result.cfg);
  const config& cfg = *result.cfg;
  CHECK(cfg.http.host == "0.0.0.0");
  CHECK(cfg.http.port == 8000);
  CHECK(cfg.admin.host == "::1");
  CHECK(cfg.admin.port == 0);
  CHECK(cfg.shutdown_timeout == 0s);
  CHECK(cfg.scale_interval == 500ms);
  CHECK(cfg.workers == 4);
  CHECK_FALSE(cfg.access_log);
  REQUIRE(cfg.apps.size() == 2);

  const app_config& hello = cfg.apps[0];
  CHECK(hello.name == "hello");
  CHECK(hello.hosts == std::vector<std::string>{"hello.localhost", "*.hello.example.com"});
  CHECK(hello.pos.line == 21);
  CHECK(hello.settings.min_instances == 1);  // app
  CHECK(hello.settings.max_instances == 5);  // defaults
  CHECK(hello.settings.target_concurrency == 20);
  CHECK(hello.settings.max_concurrency == 50);
  CHECK(hello.settings.scale_to_zero_after == 10min);
  CHECK(hello.settings.scale_down_delay == 0s);
  CHECK(hello.settings.stable_window == 30s);
  CHECK(hello.settings.queue_size == 0);
  CHECK(hello.settings.queue_timeout == 15s);
  CHECK(hello.settings.startup_timeout == 2min);
  CHECK(hello.settings.readiness.path == "/healthz");
  CHECK(hello.settings.readiness.interval == 100ms);
  CHECK(hello.settings.readiness.timeout == 2s);
  const process_backend& hp = process_of(hello);
  CHECK(hp.command ==
        std::vector<std::string>{"/bin/sh", "-c", "exec server --port ${PORT}", "${PORT}"});
  CHECK(hp.cwd == source_dir + "/config");
  CHECK(hp.env == std::vector<std::pair<std::string, std::string>>{{"GREETING", "hi"},
                                                                   {"COUNT", "3"},
                                                                   {"DEBUG", "true"},
                                                                   {"RATIO", "1.5"},
                                                                   {"EMPTY", ""},
                                                                   {"QUOTED", "${PORT}"}});
  CHECK(hp.stop_signal == SIGINT);
  CHECK(hp.stop_timeout == 90s);

  const app_config& other = cfg.apps[1];
  CHECK(other.settings.min_instances == 0);
  CHECK(other.settings.max_instances == 1);
  CHECK(other.settings.queue_size == 100);
  CHECK(other.settings.readiness.path == "/healthz");
  CHECK(other.settings.readiness.interval == 50ms);
  CHECK(other.settings.readiness.timeout == 2s);
  const process_backend& op = process_of(other);
  CHECK(op.command == std::vector<std::string>{"./sh"});
  CHECK(op.cwd == "/usr/bin");
  CHECK(op.stop_signal == SIGKILL);
  CHECK(op.stop_timeout == 10s);
}

TEST_CASE("stop signals by name", "[config][loader]") {
  const std::vector<std::pair<std::string, int>> cases{
      {"SIGTERM", SIGTERM}, {"TERM", SIGTERM}, {"sigint", SIGINT},   {"Quit", SIGQUIT},
      {"SIGHUP", SIGHUP},   {"KILL", SIGKILL}, {"SIGUSR1", SIGUSR1}, {"usr2", SIGUSR2},
  };
  for (const auto& [name, number] : cases) {
    INFO("stop_signal: " << name);
    const load_result result = load(
        "apps:\n  - {name: a, hosts: [a.localhost], backend: {process: {command: [sh], "
        "stop_signal: " +
        name + "}}}\n");
    REQUIRE(lines(result.errors).empty());
    CHECK(process_of(result.cfg->apps.at(0)).stop_signal == number);
  }
}

TEST_CASE("relative base directories are made absolute", "[config][loader]") {
  const std::string yaml =
      "apps:\n  - {name: a, hosts: [a.localhost], backend: {process: {command: [sh]}}}\n";
  const fs::path cwd = fs::current_path();
  for (const auto& [base_dir, expected] : std::vector<std::pair<std::string, fs::path>>{
           {"", cwd}, {".", cwd}, {"sub/dir", cwd / "sub/dir"}, {"sub/../x/", cwd / "x"}}) {
    INFO("base_dir: '" << base_dir << "'");
    const load_result result = load(yaml, base_dir);
    REQUIRE(lines(result.errors).empty());
    CHECK(process_of(result.cfg->apps.at(0)).cwd == expected.string());
  }
}

TEST_CASE("load_file reports unreadable files at 1:1", "[config][loader]") {
  const std::string missing = source_dir + "/config/examples/does-not-exist.yaml";
  const load_result result = load_file(missing);
  CHECK_FALSE(result.cfg);
  CHECK(lines(result.errors) ==
        std::vector<std::string>{missing + ":1:1: cannot read file: No such file or directory"});

  const std::string directory = source_dir + "/config";
  CHECK(lines(load_file(directory).errors) ==
        std::vector<std::string>{directory + ":1:1: cannot read file: Is a directory"});
}

TEST_CASE("load_file names the file as given and resolves against its directory",
          "[config][loader]") {
  const fs::path dir =
      fs::temp_directory_path() / ("wakegate-config-test-" + std::to_string(::getpid()));
  fs::create_directories(dir / "site");
  const std::string path = (dir / "app.yaml").string();
  {
    std::ofstream out(path);
    out << "apps:\n  - name: a\n    hosts: [a.localhost]\n"
           "    backend: {process: {command: [sh], cwd: site}}\n";
  }
  const load_result good = load_file(path);
  {
    std::ofstream out(path);
    out << "apps:\n  - name: a\n    hosts: [a.localhost]\n    min_instances: -2\n";
  }
  const load_result bad = load_file(path);
  fs::remove_all(dir);

  REQUIRE(lines(good.errors).empty());
  CHECK(good.cfg->file == path);
  CHECK(process_of(good.cfg->apps.at(0)).cwd == (dir / "site").string());
  CHECK(lines(bad.errors) == std::vector<std::string>{
                                 path + ":2:5: missing required key 'backend' in app 'a'",
                                 path + ":4:20: min_instances must be at least 0",
                             });
}
