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

}  // namespace wakegate::test
