// The Docker side of the Docker backend's tests: is a daemon usable, which containers carry an
// app's labels, the docker CLI for what the test does to containers (kill, run a leftover).
#pragma once

#include <string>
#include <vector>

#include "tests/support/process.hpp"

namespace wakegate::test {

// The image scripts/docker-up.sh builds: busybox httpd on $PORT (8080), /, /cgi-bin/sleep?SECONDS,
// /cgi-bin/whoami (hostname and $GREETING).
inline const std::string docker_test_image = "wakegate-test/httpd:1";

// Why the Docker tests cannot run here ("" when they can): no docker CLI, no daemon, no image.
const std::string& docker_unusable();

// Exits the test process with 77 (ctest: SKIPPED) after printing why, when Docker is unusable.
void require_docker();

// `docker ARGS...` through the CLI found on PATH.
command_result docker_cli(const std::vector<std::string>& args, std::chrono::milliseconds timeout = 60s);

// Ids of the containers (any state) labelled wakegate.app=<app>.
std::vector<std::string> containers_of_app(const std::string& app);
// Id of the container labelled wakegate.instance=<instance> ("" if none).
std::string container_of_instance(const std::string& instance);

// An app name unique to this test run: "<prefix>-<pid>-<random>".
std::string unique_app_name(const std::string& prefix);

// On destruction, force-removes every container of the app (after a failed test), so nothing
// is left behind whatever happened. Declare it before the wakegate_process.
class container_sweeper {
 public:
  explicit container_sweeper(std::string app) : app_(std::move(app)) {}
  ~container_sweeper();
  container_sweeper(const container_sweeper&) = delete;
  container_sweeper& operator=(const container_sweeper&) = delete;

 private:
  std::string app_;
};

// A Docker registry of the test's own: Debian's docker-registry on 127.0.0.1 at a free port,
// storage in a temporary directory, stopped on destruction. The daemon pulls from it with no
// network (it trusts plain-HTTP registries on 127.0.0.0/8). Throws std::runtime_error when the
// registry is not installed or does not answer /v2/ within 20 s.
class local_registry {
 public:
  local_registry();
  ~local_registry();
  local_registry(const local_registry&) = delete;
  local_registry& operator=(const local_registry&) = delete;

  // "127.0.0.1:<port>"
  const std::string& host() const { return host_; }
  // Pushes the local image `image` as <host>/<name> and removes that reference from the daemon
  // again (the layers may stay), so a container of it must be pulled first. Returns the reference;
  // throws std::runtime_error with the CLI's output when a step fails.
  std::string push(const std::string& image, const std::string& name);

 private:
  temp_dir dir_;
  std::string host_;
  pid_t pid_ = -1;
};

}  // namespace wakegate::test
