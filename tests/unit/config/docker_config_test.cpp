// backend.docker: values, defaults and exact FILE:LINE:COLUMN diagnostics.
#include <catch2/catch.hpp>

#include "config/loader.hpp"
#include "tests/support/config_load.hpp"

using namespace wakegate::config;
using namespace std::chrono_literals;

namespace {

load_result load(std::string_view yaml) { return wakegate::test::load_yaml(yaml); }
std::vector<std::string> errors_of(std::string_view yaml) { return wakegate::test::yaml_errors(yaml); }

}  // namespace

TEST_CASE("docker backend: every key", "[config][docker]") {
  auto r = load(R"(
apps:
  - name: web
    hosts: [web.localhost]
    backend:
      docker:
        image: registry.example.com:5000/team/web:v2
        port: 8080
        command: [/bin/httpd, -f, -p, "8080"]
        env: {GREETING: hello, EMPTY: , NUM: 1}
        labels: {team: web, tier: ""}
        network: backend-net
        memory: 256m
        cpus: 1.5
        pull: never
        stop_timeout: 3s
)");
  INFO((r.errors.empty() ? std::string() : r.errors.front().str()));
  REQUIRE(r.ok());
  const auto& d = std::get<docker_backend>(r.cfg->apps.at(0).backend);
  CHECK(d.image == "registry.example.com:5000/team/web:v2");
  CHECK(d.port == 8080);
  CHECK(d.command == std::vector<std::string>{"/bin/httpd", "-f", "-p", "8080"});
  CHECK(d.env == std::vector<std::pair<std::string, std::string>>{{"GREETING", "hello"}, {"EMPTY", ""}, {"NUM", "1"}});
  CHECK(d.labels == std::vector<std::pair<std::string, std::string>>{{"team", "web"}, {"tier", ""}});
  CHECK(d.network == "backend-net");
  CHECK(d.memory == 256LL * 1024 * 1024);
  CHECK(d.nano_cpus == 1'500'000'000);
  CHECK(d.pull == pull_policy::never);
  CHECK(d.stop_timeout == 3s);
}

TEST_CASE("docker backend: defaults", "[config][docker]") {
  auto r = load(R"(
apps:
  - name: web
    hosts: [web.localhost]
    backend:
      docker: {image: nginx, port: 80}
)");
  REQUIRE(r.ok());
  const auto& d = std::get<docker_backend>(r.cfg->apps.at(0).backend);
  CHECK(d.command.empty());
  CHECK(d.env.empty());
  CHECK(d.labels.empty());
  CHECK(d.network.empty());
  CHECK(d.memory == 0);
  CHECK(d.nano_cpus == 0);
  CHECK(d.pull == pull_policy::missing);
  CHECK(d.stop_timeout == 10s);
}

TEST_CASE("docker backend: sizes and CPUs", "[config][docker]") {
  auto memory_of = [](const std::string& value) {
    auto r = load("apps:\n  - name: a\n    hosts: [a.localhost]\n    backend:\n      docker: {image: x, port: 1, memory: " +
                  value + "}\n");
    return r.ok() ? std::get<docker_backend>(r.cfg->apps.at(0).backend).memory : -1;
  };
  CHECK(memory_of("6m") == 6 * 1024 * 1024);
  CHECK(memory_of("1G") == 1024LL * 1024 * 1024);
  CHECK(memory_of("8192k") == 8 * 1024 * 1024);
  CHECK(memory_of("10485760") == 10 * 1024 * 1024);
  CHECK(memory_of("5m") == -1);
  CHECK(memory_of("1.5g") == -1);
  auto cpus_of = [](const std::string& value) {
    auto r = load("apps:\n  - name: a\n    hosts: [a.localhost]\n    backend:\n      docker: {image: x, port: 1, cpus: " +
                  value + "}\n");
    return r.ok() ? std::get<docker_backend>(r.cfg->apps.at(0).backend).nano_cpus : -1;
  };
  CHECK(cpus_of("2") == 2'000'000'000);
  CHECK(cpus_of("0.25") == 250'000'000);
  CHECK(cpus_of("0.000000001") == 1);
  CHECK(cpus_of("0") == -1);
  CHECK(cpus_of("-1") == -1);
  CHECK(cpus_of("1.") == -1);
  CHECK(cpus_of("\"1\"") == -1);  // quoted numbers are rejected, as for integers
}

TEST_CASE("docker backend: diagnostics", "[config][docker]") {
  CHECK(errors_of(R"(
apps:
  - name: a
    hosts: [a.localhost]
    backend:
      docker: {command: []}
)") == std::vector<std::string>{"t.yaml:5:7: missing required key 'image' in docker backend of app 'a'",
                                "t.yaml:5:7: missing required key 'port' in docker backend of app 'a'",
                                "t.yaml:5:25: command must not be empty (leave it out to run the image's own command)"});

  CHECK(errors_of(R"(
apps:
  - name: a
    hosts: [a.localhost]
    backend:
      docker:
        image: "bad image"
        port: 70000
        pull: sometimes
        memory: lots
        cpus: many
        network: ""
        imgae: x
        env: {1BAD: x}
        labels: {wakegate.app: x, ok: [1]}
        stop_timeout: 10
)") == std::vector<std::string>{
             "t.yaml:6:16: invalid image 'bad image' (expected a reference like nginx:1.25)",
             "t.yaml:7:15: port must be between 1 and 65535",
             "t.yaml:8:15: unknown pull policy 'sometimes' (known: never, missing, always)",
             "t.yaml:9:17: expected a memory size like 256m, 1g or a number of bytes",
             "t.yaml:10:15: expected a number of CPUs like 0.5 or 2",
             "t.yaml:11:18: network must not be empty (leave it out to publish the port on 127.0.0.1)",
             "t.yaml:12:9: unknown key 'imgae' in docker backend of app 'a' (did you mean 'image'?)",
             "t.yaml:13:15: invalid environment variable name '1BAD'",
             "t.yaml:14:18: label 'wakegate.app' is reserved (wakegate sets the 'wakegate.' labels itself)",
             "t.yaml:14:39: expected a string",
             "t.yaml:15:23: expected a duration like 250ms, 30s or 5m"});

  CHECK(errors_of(R"(
apps:
  - name: a
    hosts: [a.localhost]
    backend:
      docker: {image: x, port: 1}
      process: {command: [sh]}
)") == std::vector<std::string>{"t.yaml:6:7: only one backend kind per app ('docker' is set already)"});
}
