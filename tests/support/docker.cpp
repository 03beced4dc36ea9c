#include "tests/support/docker.hpp"

#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <random>
#include <stdexcept>

#include "tests/support/wait.hpp"

namespace wakegate::test {

namespace {

std::string find_on_path(const std::string& name) {
  const char* path = std::getenv("PATH");
  std::string dirs = path != nullptr ? path : "/usr/local/bin:/usr/bin:/bin";
  std::size_t start = 0;
  while (start <= dirs.size()) {
    auto colon = dirs.find(':', start);
    if (colon == std::string::npos) colon = dirs.size();
    std::string candidate = dirs.substr(start, colon - start) + "/" + name;
    if (colon > start && ::access(candidate.c_str(), X_OK) == 0) return candidate;
    start = colon + 1;
  }
  return {};
}

const std::string& docker_path() {
  static const std::string path = find_on_path("docker");
  return path;
}

std::string first_line(const std::string& text) { return text.substr(0, text.find('\n')); }

}  // namespace

command_result docker_cli(const std::vector<std::string>& args, std::chrono::milliseconds timeout) {
  std::vector<std::string> argv{docker_path()};
  argv.insert(argv.end(), args.begin(), args.end());
  return run_command(argv, {}, timeout);
}

const std::string& docker_unusable() {
  static const std::string reason = [] () -> std::string {
    if (docker_path().empty()) return "the docker CLI is not installed (scripts/deps.sh installs docker.io)";
    auto version = docker_cli({"version", "--format", "{{.Server.APIVersion}}"}, 20s);
    if (version.exit_code != 0)
      return "no Docker daemon answers (scripts/docker-up.sh starts one): " + first_line(version.err);
    auto image = docker_cli({"image", "inspect", "--format", "{{.Id}}", docker_test_image}, 20s);
    if (image.exit_code != 0) return "the test image " + docker_test_image + " is missing (scripts/docker-up.sh builds it)";
    return "";
  }();
  return reason;
}

void require_docker() {
  if (docker_unusable().empty()) return;
  std::printf("SKIPPED: %s\n", docker_unusable().c_str());
  std::fflush(stdout);
  std::_Exit(77);
}

std::vector<std::string> containers_of_app(const std::string& app) {
  auto r = docker_cli({"ps", "-aq", "--no-trunc", "--filter", "label=wakegate.app=" + app});
  return r.exit_code == 0 ? split_lines(r.out) : std::vector<std::string>{"(docker ps failed: " + r.err + ")"};
}

std::string container_of_instance(const std::string& instance) {
  auto r = docker_cli({"ps", "-aq", "--no-trunc", "--filter", "label=wakegate.instance=" + instance});
  auto ids = split_lines(r.out);
  return ids.empty() ? std::string() : ids.front();
}

std::string unique_app_name(const std::string& prefix) {
  std::random_device rd;
  char suffix[16];
  std::snprintf(suffix, sizeof suffix, "%06x", static_cast<unsigned>(rd()) & 0xffffffu);
  return prefix + "-" + std::to_string(::getpid()) + "-" + suffix;
}

container_sweeper::~container_sweeper() {
  for (const auto& id : containers_of_app(app_))
    if (!id.empty() && id[0] != '(') docker_cli({"rm", "-f", id});
}

local_registry::local_registry() {
  const std::string binary = "/usr/bin/docker-registry";
  if (::access(binary.c_str(), X_OK) != 0) throw std::runtime_error(binary + " is not installed (docker-registry)");
  host_ = "127.0.0.1:" + std::to_string(free_port());
  const auto config = dir_.write("config.yml", "version: 0.1\nlog:\n  level: warn\nstorage:\n  filesystem:\n"
                                               "    rootdirectory: " + dir_.path() + "/data\nhttp:\n  addr: " + host_ + "\n");
  pid_ = spawn_logged({binary, "serve", config}, dir_.path() + "/registry.log");
  bool up = wait_until(
      [&] { return run_command({"/usr/bin/curl", "-sf", "--max-time", "2", "http://" + host_ + "/v2/"}, "", 5s).exit_code == 0; },
      20s, 50ms);
  if (!up) {
    kill_group(pid_);
    throw std::runtime_error("docker-registry did not answer: " + read_file(dir_.path() + "/registry.log"));
  }
}

local_registry::~local_registry() { kill_group(pid_); }

std::string local_registry::push(const std::string& image, const std::string& name) {
  const std::string ref = host_ + "/" + name;
  for (const auto& args : std::vector<std::vector<std::string>>{{"tag", image, ref}, {"push", ref}, {"rmi", ref}}) {
    auto r = docker_cli(args);
    if (r.exit_code != 0) throw std::runtime_error("docker " + args[0] + " " + ref + ": " + r.out + r.err);
  }
  return ref;
}

}  // namespace wakegate::test
