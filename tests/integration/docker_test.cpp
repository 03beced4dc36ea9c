// The Docker backend against the real daemon: cold start, burst, scale to zero, a killed
// container, failures that must answer 503 at once, leftovers. Every test uses its own app name
// (so -j2 runs do not meet), stops wakegate with SIGTERM and then checks that no container with
// its labels remains. Without a usable daemon each test exits 77 (ctest: SKIPPED) with the reason.
#include <signal.h>

#include <algorithm>

#include <boost/json/serialize.hpp>
#include <catch2/catch.hpp>
#include <set>
#include <string>
#include <thread>

#include "tests/support/docker.hpp"
#include "tests/support/integration.hpp"
#include "tests/support/unix_relay.hpp"

using namespace wakegate::test;

namespace {

std::string docker_backend_yaml(const std::string& image, const std::vector<std::string>& extra = {},
                                const std::string& pull = "never") {
  std::string y = "      docker:\n        image: " + yaml_quote(image) + "\n        port: 8080\n        pull: " + pull +
                  "\n        stop_timeout: 2s\n";
  for (const auto& line : extra) y += "        " + line + "\n";
  return y;
}

app_yaml docker_app(const std::string& name, const std::vector<std::string>& extra = {},
                    const std::string& image = docker_test_image, const std::string& pull = "never") {
  app_yaml a(name, {name + ".test"}, "");
  a.raw_backend = docker_backend_yaml(image, extra, pull);
  return a;
}

// Removes the images a test made or pulled (by reference), whatever happened.
struct image_remover {
  std::vector<std::string> refs;
  ~image_remover() {
    for (const auto& ref : refs) docker_cli({"rmi", "-f", ref});
  }
};

bool daemon_has_image(const std::string& ref) { return docker_cli({"image", "inspect", ref}).exit_code == 0; }

// The daemon behind a relay the test can cut (tests/support/unix_relay.hpp).
struct relayed_daemon {
  temp_dir dir;
  unix_relay relay{dir.path() + "/docker.sock", docker_socket_path()};
  // wakegate's options to reach the daemon through the relay.
  wakegate_options options() const {
    wakegate_options o;
    o.env.emplace_back("DOCKER_HOST", "unix://" + relay.path());
    return o;
  }
};

// SIGTERM, a clean exit, and no container of the app left.
void stop_and_check_no_leftovers(wakegate_process& wg, const std::string& app) {
  wg.signal(SIGTERM);
  auto status = wg.wait_exit(30s);
  CHECK(status == std::optional<int>(0));
  auto left = containers_of_app(app);
  INFO("containers left: " << left.size());
  CHECK(left.empty());
}

std::string instance_list(const app_status& a) {
  std::string s;
  for (const auto& i : a.instances) s += i.id + "(" + i.state + " " + i.address + ") ";
  return s;
}

// After its container was killed: the instance is failed with Docker's exit code 137 (SIGKILL)
// within `within`, then replaced by a ready one. `last`: the last /status seen.
void check_killed_then_replaced(const wakegate_process& wg, const std::string& app, const std::string& old_id,
                                std::chrono::seconds within, app_status& last) {
  CHECK(wg.wait_for_record(
      [&](const auto& x) {
        return json_string(x, "msg") == "instance failed" && json_string(x, "instance") == old_id &&
               contains(json_string(x, "error"), "exited with code 137");
      },
      within));
  bool replaced = wait_app(
      wg.admin_port(), app,
      [&](const app_status& a) {
        return a.instances.size() == 1 && a.instances[0].id != old_id && a.instances[0].state == "ready";
      },
      30s, &last);
  INFO("instances: " << instance_list(last) << " last_error: " << last.last_error);
  CHECK(replaced);
}

}  // namespace

TEST_CASE("docker: a cold start from zero goes through a container with the configured env and labels",
          "[integration][docker]") {
  require_docker();
  const auto app = unique_app_name("dkcold");
  container_sweeper sweep(app);
  config_yaml c;
  c.apps.push_back(docker_app(app, {"env: {GREETING: secret-greeting-7f3}", "labels: {team: edge}"}));
  wakegate_process wg(c.str());
  REQUIRE(containers_of_app(app).empty());

  auto r = http_get(wg.http_port(), app + ".test", "/cgi-bin/whoami");
  INFO(describe(r));
  REQUIRE(r.status == 200);
  CHECK(contains(r.body, "secret-greeting-7f3"));  // the container got its env

  auto ids = containers_of_app(app);
  REQUIRE(ids.size() == 1);
  CHECK(starts_with(r.body, ids.front().substr(0, 12)));  // served by that container
  auto inspect = docker_cli({"inspect", "--format",
                             "{{.Name}} {{index .Config.Labels \"wakegate.instance\"}} {{index .Config.Labels \"team\"}}",
                             ids.front()});
  CHECK(split_lines(inspect.out) == std::vector<std::string>{"/wakegate-" + app + "-1 " + app + "-1 edge"});

  auto status = fetch_app_status(wg.admin_port(), app);
  REQUIRE(status);
  REQUIRE(status->instances.size() == 1);
  CHECK(status->instances[0].state == "ready");
  CHECK(starts_with(status->instances[0].address, "127.0.0.1:"));
  CHECK(status->instances[0].pid == 0);
  CHECK(status->instances[0].container.size() == 64);  // the full id
  CHECK(starts_with(status->instances[0].container, ids.front().substr(0, 12)));
  auto status_text = fetch_status_json(wg.admin_port());
  REQUIRE(status_text);
  CHECK_FALSE(contains(boost::json::serialize(*status_text), "secret-greeting-7f3"));

  auto metrics = fetch_metrics(wg.admin_port());
  REQUIRE(metrics);
  CHECK_FALSE(contains(*metrics, "secret-greeting-7f3"));
  CHECK(metric_value(*metrics, "wakegate_container_start_seconds_count", {{"app", app}, {"phase", "create_start"}}) == 1);
  CHECK(metric_value(*metrics, "wakegate_container_start_seconds_count", {{"app", app}, {"phase", "readiness"}}) == 1);
  CHECK(metric_sum(*metrics, "wakegate_docker_api_errors_total") == 0);
  auto promtool = promtool_check_metrics(*metrics);
  if (promtool.ran) {
    INFO(promtool.output);
    CHECK(promtool.exit_code == 0);
  }
  CHECK(wg.wait_for_record([&](const auto& x) { return json_string(x, "msg") == "container running"; }, 1s));

  stop_and_check_no_leftovers(wg, app);
}

TEST_CASE("docker: scale to zero removes the container", "[integration][docker]") {
  require_docker();
  const auto app = unique_app_name("dkzero");
  container_sweeper sweep(app);
  config_yaml c;
  c.set_default("scale_to_zero_after", "1s");
  c.apps.push_back(docker_app(app));
  wakegate_process wg(c.str());

  auto r = http_get(wg.http_port(), app + ".test", "/");
  INFO(describe(r));
  REQUIRE(r.status == 200);
  CHECK(r.body == "ok\n");
  REQUIRE(containers_of_app(app).size() == 1);

  app_status last;
  CHECK(wait_app(wg.admin_port(), app, [](const app_status& a) { return a.instances.empty(); }, 20s, &last));
  INFO("instances: " << instance_list(last));
  CHECK(wait_until([&] { return containers_of_app(app).empty(); }, 10s, 100ms));

  // And it wakes again.
  auto again = http_get(wg.http_port(), app + ".test", "/");
  INFO(describe(again));
  CHECK(again.status == 200);
  CHECK(containers_of_app(app).size() == 1);
  stop_and_check_no_leftovers(wg, app);
}

TEST_CASE("docker: a burst on a cold app scales across containers, within max_instances", "[integration][docker]") {
  require_docker();
  const auto app = unique_app_name("dkburst");
  container_sweeper sweep(app);
  config_yaml c;
  c.apps.push_back(docker_app(app).set("target_concurrency", "2").set("max_instances", "3"));
  wakegate_process wg(c.str());

  std::atomic<int> max_live{0};
  background_sampler sampler(
      [&] {
        if (auto s = fetch_app_status(wg.admin_port(), app)) {
          int live = s->live();
          int cur = max_live.load();
          while (live > cur && !max_live.compare_exchange_weak(cur, live)) {
          }
        }
      },
      20ms);
  // 12 clients, each with 4 sequential slow requests on its own connection: bounded, and long
  // enough for the scaler to see the concurrency.
  auto responses = run_concurrently(12, [&](int) {
    http_connection conn(wg.http_port());
    http_request req;
    req.host = app + ".test";
    req.target = "/cgi-bin/sleep?0.3";
    http_response last_response;
    for (int n = 0; n < 4; ++n) {
      last_response = conn.send(req);
      if (last_response.status != 200) break;
    }
    return last_response;
  });
  sampler.stop();

  INFO("responses: " << summarize(responses));
  CHECK(count_status(responses, 200) == 12);
  CHECK(max_live > 1);
  CHECK(max_live <= 3);
  std::set<std::string> hosts;
  for (const auto& r : responses)
    if (starts_with(r.body, "slept 0.3 in ")) hosts.insert(r.body.substr(13));
  // The last round ran on more than one container.
  CHECK(hosts.size() > 1);
  stop_and_check_no_leftovers(wg, app);
}

TEST_CASE("docker: a killed container is noticed from the event stream and replaced", "[integration][docker]") {
  require_docker();
  const auto app = unique_app_name("dkkill");
  container_sweeper sweep(app);
  config_yaml c;
  c.apps.push_back(docker_app(app).set("min_instances", "1"));
  wakegate_process wg(c.str());

  app_status last;
  REQUIRE(wait_one_ready(wg.admin_port(), app, 30s, &last));
  const auto old_id = last.instances.front().id;
  const auto old_container = container_of_instance(old_id);
  REQUIRE_FALSE(old_container.empty());

  auto killed = docker_cli({"kill", old_container});
  REQUIRE(killed.exit_code == 0);

  check_killed_then_replaced(wg, app, old_id, 10s, last);  // the reason from the die event
  CHECK(contains(last.last_error, "exited with code 137"));
  CHECK(wait_until([&] { return containers_of_app(app).size() == 1; }, 10s, 100ms));  // the dead one removed
  CHECK(scrape_value(wg.admin_port(), "wakegate_instance_failures_total", {{"app", app}}).value_or(0) == 1);

  auto r = http_get(wg.http_port(), app + ".test", "/");
  INFO(describe(r));
  CHECK(r.status == 200);
  stop_and_check_no_leftovers(wg, app);
}

// The event stream is wakegate's only news of a death. A daemon that goes away and comes back
// (restarted, upgraded) is taken away here with a relay on its socket: the die event is sent while
// nothing listens, so only the inspection after the reconnect can find the dead container.
TEST_CASE("docker: a container that dies while the event stream is down is found after the reconnect",
          "[integration][docker]") {
  require_docker();
  const auto app = unique_app_name("dkreconn");
  container_sweeper sweep(app);
  relayed_daemon daemon;
  auto& relay = daemon.relay;
  config_yaml c;
  c.apps.push_back(docker_app(app).set("min_instances", "1"));
  wakegate_process wg(c.str(), daemon.options());

  app_status last;
  REQUIRE(wait_one_ready(wg.admin_port(), app, 30s, &last));
  const auto old_id = last.instances.front().id;
  const auto old_container = container_of_instance(old_id);
  REQUIRE_FALSE(old_container.empty());

  relay.cut();
  REQUIRE(wg.wait_for_record(
      [](const auto& x) { return json_string(x, "msg") == "docker event stream lost: reconnecting with backoff"; },
      10s));
  const auto relayed_before = relay.relayed();
  REQUIRE(docker_cli({"kill", old_container}).exit_code == 0);  // its die event reaches no one
  REQUIRE(wait_until(
      [&] {
        auto st = docker_cli({"inspect", "-f", "{{.State.Running}}", old_container});
        return st.exit_code == 0 && contains(st.out, "false");
      },
      10s, 100ms));
  relay.restore();

  // Found by the inspection after the reconnect, with the exit code Docker recorded.
  check_killed_then_replaced(wg, app, old_id, 20s, last);
  CHECK(relay.relayed() > relayed_before);  // the event stream and the inspection came back through it
  CHECK(scrape_value(wg.admin_port(), "wakegate_docker_api_errors_total", {{"operation", "events"}}).value_or(0) >= 1);
  auto r = http_get(wg.http_port(), app + ".test", "/");
  INFO(describe(r));
  CHECK(r.status == 200);
  stop_and_check_no_leftovers(wg, app);
}

TEST_CASE("docker: a container whose removal fails while the daemon is away is removed once it is back",
          "[integration][docker]") {
  require_docker();
  const auto app = unique_app_name("dkunrm");
  container_sweeper sweep(app);
  relayed_daemon daemon;
  auto& relay = daemon.relay;
  config_yaml c;
  c.set_default("scale_to_zero_after", "1s");
  c.apps.push_back(docker_app(app));
  wakegate_process wg(c.str(), daemon.options());

  auto r = http_get(wg.http_port(), app + ".test", "/");
  INFO(describe(r));
  REQUIRE(r.status == 200);
  const auto containers = containers_of_app(app);
  REQUIRE(containers.size() == 1);

  // The daemon goes away; the idle app scales to zero: its container cannot be stopped.
  relay.cut();
  REQUIRE(wait_app(wg.admin_port(), app, [](const app_status& a) { return a.instances.empty(); }, 20s));
  REQUIRE(wg.wait_for_record(
      [](const auto& x) { return json_string(x, "msg") == "cannot remove container: retrying in the background"; },
      10s));
  CHECK(containers_of_app(app).size() == 1);  // still there, and wakegate knows it
  CHECK(scrape_value(wg.admin_port(), "wakegate_docker_containers_unremoved") == std::optional<double>(1));

  // Back: the retry removes it without any new request or stop.
  relay.restore();
  CHECK(wg.wait_for_record(
      [](const auto& x) { return json_string(x, "msg") == "container removed after an earlier failure"; }, 60s));
  CHECK(wait_until([&] { return containers_of_app(app).empty(); }, 10s, 100ms));
  CHECK(scrape_value(wg.admin_port(), "wakegate_docker_containers_unremoved") == std::optional<double>(0));
  stop_and_check_no_leftovers(wg, app);
}

TEST_CASE("docker: at SIGTERM with the daemon away, wakegate exits and names the containers it could not remove",
          "[integration][docker]") {
  require_docker();
  const auto app = unique_app_name("dkexit");
  container_sweeper sweep(app);
  relayed_daemon daemon;
  auto& relay = daemon.relay;
  config_yaml c;
  c.apps.push_back(docker_app(app).set("min_instances", "1"));
  wakegate_process wg(c.str(), daemon.options());
  REQUIRE(wait_one_ready(wg.admin_port(), app, 30s));
  const auto containers = containers_of_app(app);
  REQUIRE(containers.size() == 1);

  relay.cut();
  wg.signal(SIGTERM);
  CHECK(wg.wait_exit(60s) == std::optional<int>(0));
  auto left = wg.records_with_msg("containers not removed: remove them with docker rm -f, or the next start of their app does");
  REQUIRE(left.size() == 1);
  CHECK(json_string(left[0], "containers") == containers[0].substr(0, 12));
  CHECK(containers_of_app(app).size() == 1);  // the sweeper removes it
}

TEST_CASE("docker: a leftover sweep after one that failed spares this run's own containers", "[integration][docker]") {
  require_docker();
  const auto app = unique_app_name("dksweep");
  container_sweeper sweep(app);
  relayed_daemon daemon;
  daemon.relay.fail_next("/containers/json?all=1", 1);  // the first sweep's list call fails
  config_yaml c;
  c.apps.push_back(docker_app(app).set("min_instances", "1"));
  wakegate_process wg(c.str(), daemon.options());
  REQUIRE(wg.wait_for_record(
      [](const auto& x) { return json_string(x, "msg") == "cannot look for leftover containers"; }, 30s));
  app_status last;
  REQUIRE(wait_one_ready(wg.admin_port(), app, 30s, &last));
  const auto first = last.instances.front().id;

  // A second start sweeps again: the serving container is this run's, not a leftover.
  c.apps[0].set("min_instances", "2");
  wg.write_config(c.str());
  wg.signal(SIGHUP);
  CHECK(wait_app(
      wg.admin_port(), app, [](const app_status& a) { return a.ids("ready").size() == 2; }, 30s, &last));
  INFO("instances: " << instance_list(last));
  const auto ready = last.ids("ready");
  CHECK(std::find(ready.begin(), ready.end(), first) != ready.end());
  CHECK(wg.records_with_msg("removing a container left over from an earlier run").empty());
  CHECK(scrape_value(wg.admin_port(), "wakegate_instance_failures_total", {{"app", app}}).value_or(0) == 0);
  stop_and_check_no_leftovers(wg, app);
}

TEST_CASE("docker: a pull that hangs fails the start at startup_timeout, and SIGTERM does not wait for it",
          "[integration][docker]") {
  require_docker();
  const auto app = unique_app_name("dkhang");
  container_sweeper sweep(app);
  // A "registry" that accepts connections and never answers.
  temp_dir dir;
  const auto port = free_port();
  const pid_t registry = spawn_logged(
      {"/usr/bin/python3", "-c",
       "import socket, time\n"
       "s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)\n"
       "s.bind(('127.0.0.1', " + std::to_string(port) + ")); s.listen(16); held = []\n"
       "deadline = time.time() + 120\n"
       "s.settimeout(1)\n"
       "while time.time() < deadline:\n"
       "    try: held.append(s.accept()[0])\n"
       "    except socket.timeout: pass\n"},
      dir.path() + "/registry.log");
  struct reaper {
    pid_t pid;
    ~reaper() { kill_group(pid); }
  } reap{registry};
  REQUIRE(wait_until([&] { return can_connect(port); }, 10s, 50ms));

  config_yaml c;
  c.shutdown_timeout = "2s";
  c.set_default("queue_timeout", "30s");
  c.apps.push_back(docker_app(app, {}, "127.0.0.1:" + std::to_string(port) + "/hang/img:1", "always")
                       .set("startup_timeout", "2s"));
  wakegate_process wg(c.str());
  auto r = http_get(wg.http_port(), app + ".test", "/");
  INFO(describe(r));
  CHECK(r.status == 503);
  CHECK(contains(r.body, "not started after startup_timeout (2000ms)"));
  CHECK(r.elapsed < 15s);  // the daemon's own pull timeout is far longer

  // The next start hangs in its pull too: SIGTERM does not wait for it.
  const auto http_port = wg.http_port();
  std::thread held([&] { http_get(http_port, app + ".test", "/", {}, {.io_timeout = 5s}); });
  CHECK(wait_app(wg.admin_port(), app, [](const app_status& a) { return !a.instances.empty(); }, 10s));
  wg.signal(SIGTERM);
  CHECK(wg.wait_exit(10s) == std::optional<int>(0));
  held.join();
  CHECK(wg.records_with_msg("instance failed").size() >= 1);
  CHECK(containers_of_app(app).empty());
}

TEST_CASE("docker: SIGTERM while a container is being created waits for the daemon's answer and removes it",
          "[integration][docker]") {
  require_docker();
  const auto app = unique_app_name("dkcreate");
  container_sweeper sweep(app);
  relayed_daemon daemon;
  daemon.relay.hold_answer("/containers/create");
  config_yaml c;
  c.apps.push_back(docker_app(app).set("min_instances", "1"));
  wakegate_process wg(c.str(), daemon.options());
  // The daemon has made the container; its answer is held: wakegate does not know its id yet.
  REQUIRE(wait_until([&] { return containers_of_app(app).size() == 1; }, 30s, 50ms));
  wg.signal(SIGTERM);
  REQUIRE(wg.wait_for_record([](const auto& x) { return json_string(x, "msg") == "stopping instances"; }, 10s));
  // Before, the start was abandoned at SIGTERM and the container outlived wakegate.
  SECTION("the answer comes: the container is removed") {
    daemon.relay.release_answers();
    CHECK(wg.wait_exit(30s) == std::optional<int>(0));
    auto left = containers_of_app(app);
    INFO("containers left: " << left.size());
    CHECK(left.empty());
  }
  SECTION("a second signal: wakegate no longer waits") {
    wg.signal(SIGTERM);
    CHECK(wg.wait_exit(10s) == std::optional<int>(0));
    daemon.relay.release_answers();  // the container is the next start's leftover (the sweeper's here)
  }
}

TEST_CASE("docker: a container that dies as it is being stopped has its output logged once", "[integration][docker]") {
  require_docker();
  const auto app = unique_app_name("dkonce");
  container_sweeper sweep(app);
  relayed_daemon daemon;
  config_yaml c;
  c.apps.push_back(docker_app(app, {R"(command: [/bin/sh, -c, "echo said-once-7c1; exec /bin/httpd -f -p 8080 -h /www"])"})
                       .set("min_instances", "1"));
  wakegate_process wg(c.str(), daemon.options());
  app_status last;
  REQUIRE(wait_one_ready(wg.admin_port(), app, 30s, &last));
  const auto container = container_of_instance(last.instances.front().id);
  REQUIRE_FALSE(container.empty());

  // It dies, and the daemon's answer to the read of its output is held; meanwhile its app is
  // removed, so a stop comes while the read is in flight.
  daemon.relay.hold_answer("/logs");
  REQUIRE(docker_cli({"kill", container}).exit_code == 0);
  REQUIRE(wait_until([&] { return daemon.relay.answers_held() == 1; }, 10s, 20ms));
  config_yaml without;
  without.apps.push_back(docker_app(unique_app_name("dkother")));
  wg.write_config(without.str());
  wg.signal(SIGHUP);
  REQUIRE(wg.wait_for_record([](const auto& x) { return json_string(x, "msg") == "app removed: draining"; }, 10s));
  daemon.relay.release_answers();
  CHECK(wait_until([&] { return containers_of_app(app).empty(); }, 30s, 50ms));
  // Before, the stop read it again: two "container output" records.
  auto said = wg.records_with_msg("container output", app);
  CHECK(said.size() == 1);
  for (const auto& r : said) CHECK(contains(json_string(r, "output"), "said-once-7c1"));
}

// The process backend's "refused first, exit after" case (failure_test.cpp) for containers: the
// proxy sees the dead container (connect refused) before its die event comes. The event is kept
// from wakegate here by failing every reconnect of the event stream (so no inspection round
// runs either); before the fix, the stop that followed the failure ignored the death, and only
// the symptom was reported.
TEST_CASE("docker: a container found dead when its stop begins has its exit reported as the cause",
          "[integration][docker]") {
  require_docker();
  const auto app = unique_app_name("dkfirst");
  container_sweeper sweep(app);
  relayed_daemon daemon;
  auto& relay = daemon.relay;
  config_yaml c;
  c.apps.push_back(docker_app(app, {R"(command: [/bin/sh, -c, "echo last-words-4e1; exec /bin/httpd -f -p 8080 -h /www"])"})
                       .set("min_instances", "1"));
  wakegate_process wg(c.str(), daemon.options());
  app_status last;
  REQUIRE(wait_one_ready(wg.admin_port(), app, 30s, &last));
  const auto old = last.instances.front();
  const auto container = container_of_instance(old.id);
  REQUIRE_FALSE(container.empty());
  REQUIRE(can_connect(static_cast<std::uint16_t>(old.port)));

  // The event stream is cut, and each reconnect of it is refused (500): no die event comes, and
  // no inspection round after a reconnect. Other calls pass.
  relay.fail_next("/events", 100000);
  relay.cut();
  REQUIRE(wg.wait_for_record(
      [](const auto& x) { return json_string(x, "msg") == "docker event stream lost: reconnecting with backoff"; },
      10s));
  relay.restore();

  REQUIRE(docker_cli({"kill", container}).exit_code == 0);
  REQUIRE(wait_until([&] { return !can_connect(static_cast<std::uint16_t>(old.port), 200ms); }, 5s, 20ms));
  auto r = http_get(wg.http_port(), app + ".test", "/");  // refused: held for a replacement
  INFO(describe(r));
  CHECK(r.status == 200);
  CHECK(wg.wait_for_record(
      [&](const auto& x) {
        return json_string(x, "msg") == "instance failed" && json_string(x, "instance") == old.id &&
               json_string(x, "error") == "connect: Connection refused";
      },
      3s));
  CHECK(wg.wait_for_record(
      [&](const auto& x) {
        return json_string(x, "msg") == "instance exited" && json_string(x, "instance") == old.id &&
               contains(json_string(x, "error"), "exited with code 137 (its last output: last-words-4e1)");
      },
      5s));
  // The replacement starts while the event stream's reconnects fail (found in CI: one of those
  // failures made the replacement's inspect a 404, and its failure took last_error).
  const bool named = wait_app(
      wg.admin_port(), app,
      [&](const app_status& a) {
        return contains(a.last_error, old.id + ": container ") &&
               contains(a.last_error, "exited with code 137 (its last output: last-words-4e1) (seen first as: connect: Connection refused)");
      },
      3s, &last);
  INFO("last_error: " << last.last_error);
  CHECK(named);
  CHECK(wg.records_with_msg("instance failed", app).size() == 1);  // the replacement did not fail
  stop_and_check_no_leftovers(wg, app);
}

TEST_CASE("docker: a second SIGTERM kills containers being stopped instead of waiting for stop_timeout",
          "[integration][docker]") {
  require_docker();
  const auto app = unique_app_name("dkhurry");
  container_sweeper sweep(app);
  config_yaml c;
  // A container that ignores SIGTERM (ignored dispositions survive exec): docker stop would
  // wait the whole stop_timeout.
  auto a = docker_app(app, {R"(command: [/bin/sh, -c, "trap '' TERM; exec /bin/httpd -f -p 8080 -h /www"])"})
               .set("min_instances", "1");
  a.raw_backend.replace(a.raw_backend.find("stop_timeout: 2s"), 16, "stop_timeout: 60s");
  c.apps.push_back(a);
  wakegate_process wg(c.str());
  REQUIRE(wait_one_ready(wg.admin_port(), app, 30s));
  wg.signal(SIGTERM);
  REQUIRE(wg.wait_for_record([](const auto& x) { return json_string(x, "msg") == "stopping instances"; }, 10s));
  wg.signal(SIGTERM);
  CHECK(wg.wait_exit(20s) == std::optional<int>(0));  // not after the 60 s stop_timeout
  CHECK(containers_of_app(app).empty());
}

TEST_CASE("docker: a missing image answers held requests 503 with the reason at once", "[integration][docker]") {
  require_docker();
  const auto app = unique_app_name("dknoimg");
  container_sweeper sweep(app);
  config_yaml c;
  c.set_default("queue_timeout", "20s");
  c.apps.push_back(docker_app(app, {}, "wakegate-test/absent:" + app));
  wakegate_process wg(c.str());

  auto r = http_get(wg.http_port(), app + ".test", "/");
  INFO(describe(r));
  CHECK(r.status == 503);
  CHECK(contains(r.body, "image 'wakegate-test/absent:" + app + "' not found (pull: never)"));
  CHECK(r.elapsed < 20s);  // the failure answered it, not the queue timeout

  app_status last;
  CHECK(wait_app(wg.admin_port(), app, [](const app_status& a) { return !a.last_error.empty(); }, 5s, &last));
  CHECK(contains(last.last_error, "not found (pull: never)"));
  CHECK(wait_until(
      [&] {
        return scrape_value(wg.admin_port(), "wakegate_docker_api_errors_total", {{"operation", "create"}}).value_or(0) >= 1;
      },
      5s));
  CHECK(containers_of_app(app).empty());
  stop_and_check_no_leftovers(wg, app);
}

TEST_CASE("docker: an unreachable daemon answers held requests 503 with the reason at once", "[integration][docker]") {
  require_docker();
  const auto app = unique_app_name("dknodaemon");
  temp_dir dir;
  const std::string socket = dir.path() + "/nothing-listens.sock";
  config_yaml c;
  c.set_default("queue_timeout", "20s");
  c.apps.push_back(docker_app(app));
  wakegate_options options;
  options.env.emplace_back("DOCKER_HOST", "unix://" + socket);
  wakegate_process wg(c.str(), options);

  auto r = http_get(wg.http_port(), app + ".test", "/");
  INFO(describe(r));
  CHECK(r.status == 503);
  CHECK(contains(r.body, "cannot reach the Docker daemon at " + socket));
  CHECK(r.elapsed < 20s);

  auto second = http_get(wg.http_port(), app + ".test", "/");  // retried with backoff: still a quick 503
  INFO(describe(second));
  CHECK(second.status == 503);

  app_status last;
  CHECK(wait_app(wg.admin_port(), app, [](const app_status& a) { return !a.last_error.empty(); }, 5s, &last));
  CHECK(contains(last.last_error, "cannot reach the Docker daemon"));
  CHECK(scrape_value(wg.admin_port(), "wakegate_docker_api_errors_total", {{"operation", "version"}}).value_or(0) >= 1);
  wg.signal(SIGTERM);
  CHECK(wg.wait_exit(30s) == std::optional<int>(0));
}

// Pulls, from a registry of the test's own (tests/support/docker.hpp: Debian's docker-registry on
// loopback; no other registry is reachable here).
TEST_CASE("docker: with pull: missing, a cold start pulls an image the daemon lacks", "[integration][docker]") {
  require_docker();
  const auto app = unique_app_name("dkpull");
  local_registry registry;
  const auto image = registry.push(docker_test_image, "wakegate-test/" + app + ":1");
  image_remover images{{image}};
  REQUIRE_FALSE(daemon_has_image(image));
  container_sweeper sweep(app);
  config_yaml c;
  c.apps.push_back(docker_app(app, {}, image, "missing"));
  wakegate_process wg(c.str());

  auto r = http_get(wg.http_port(), app + ".test", "/");
  INFO(describe(r));
  CHECK(r.status == 200);
  CHECK(wg.wait_for_record(
      [&](const auto& x) { return json_string(x, "msg") == "pulling image" && json_string(x, "image") == image; }, 5s));
  CHECK(wg.wait_for_record(
      [&](const auto& x) { return json_string(x, "msg") == "image pulled" && json_string(x, "image") == image; }, 5s));
  CHECK(daemon_has_image(image));
  CHECK(scrape_value(wg.admin_port(), "wakegate_docker_api_errors_total", {{"operation", "pull"}}).value_or(0) == 0);
  stop_and_check_no_leftovers(wg, app);
}

TEST_CASE("docker: an image its registry does not have fails the start with the registry's reason at once",
          "[integration][docker]") {
  require_docker();
  const std::string pull = GENERATE(as<std::string>{}, "missing", "always");
  INFO("pull: " << pull);
  const auto app = unique_app_name("dkpullmiss");
  local_registry registry;
  const auto image = registry.host() + "/wakegate-test/" + app + ":1";  // never pushed
  container_sweeper sweep(app);
  config_yaml c;
  c.set_default("queue_timeout", "20s");
  c.apps.push_back(docker_app(app, {}, image, pull));
  wakegate_process wg(c.str());

  auto r = http_get(wg.http_port(), app + ".test", "/");
  INFO(describe(r));
  CHECK(r.status == 503);
  CHECK(contains(r.body, pull == "missing" ? "image '" + image + "' is missing and could not be pulled: "
                                           : "cannot pull image '" + image + "': "));
  CHECK(contains(r.body, "manifest unknown"));  // the registry's own words, through the daemon
  CHECK(r.elapsed < 20s);
  app_status last;
  CHECK(wait_app(wg.admin_port(), app, [](const app_status& a) { return contains(a.last_error, "manifest unknown"); },
                 5s, &last));
  CHECK(scrape_value(wg.admin_port(), "wakegate_docker_api_errors_total", {{"operation", "pull"}}).value_or(0) >= 1);
  CHECK(containers_of_app(app).empty());
  stop_and_check_no_leftovers(wg, app);
}

// `always`: the daemon has an image under the name, but the registry has another (it set
// GREETING, which /cgi-bin/whoami prints): the container must run the registry's.
TEST_CASE("docker: with pull: always, a start runs the registry's image, not the one the daemon has",
          "[integration][docker]") {
  require_docker();
  const auto app = unique_app_name("dkpullalw");
  local_registry registry;
  temp_dir build;
  build.write("Dockerfile", "FROM " + docker_test_image + "\nENV GREETING=registry-" + app + "\n");
  const std::string variant = "wakegate-test/variant-" + app + ":1";
  image_remover images{{variant}};
  auto built = docker_cli({"build", "-q", "-t", variant, build.path()});
  REQUIRE(built.exit_code == 0);
  const auto image = registry.push(variant, "wakegate-test/" + app + ":1");
  images.refs.push_back(image);
  REQUIRE(docker_cli({"tag", docker_test_image, image}).exit_code == 0);  // the daemon's, without GREETING
  container_sweeper sweep(app);
  config_yaml c;
  c.apps.push_back(docker_app(app, {}, image, "always"));
  wakegate_process wg(c.str());

  auto r = http_get(wg.http_port(), app + ".test", "/cgi-bin/whoami");
  INFO(describe(r));
  CHECK(r.status == 200);
  CHECK(contains(r.body, "registry-" + app));
  CHECK(wg.wait_for_record(
      [&](const auto& x) { return json_string(x, "msg") == "image pulled" && json_string(x, "image") == image; }, 5s));
  stop_and_check_no_leftovers(wg, app);
}

TEST_CASE("docker: a container that exits at start fails the start with its exit code and its last output",
          "[integration][docker]") {
  require_docker();
  const auto app = unique_app_name("dkexit");
  container_sweeper sweep(app);
  config_yaml c;
  c.set_default("queue_timeout", "20s");
  c.apps.push_back(docker_app(app, {R"(command: [/bin/sh, -c, "echo starting >&2; echo FATAL no DB_URL >&2; exit 3"])"}));
  wakegate_process wg(c.str());

  auto r = http_get(wg.http_port(), app + ".test", "/");
  INFO(describe(r));
  CHECK(r.status == 503);
  CHECK(contains(r.body, "with code 3"));
  CHECK(contains(r.body, "(its last output: FATAL no DB_URL)"));  // read before the container is removed
  auto said = wg.records_with_msg("container output");
  REQUIRE_FALSE(said.empty());
  // (One stream: Docker orders stdout against stderr only by their timestamps.)
  CHECK(json_string(said[0], "output") == "starting\nFATAL no DB_URL");
  CHECK(r.elapsed < 20s);
  CHECK(wait_until([&] { return containers_of_app(app).empty(); }, 10s, 100ms));
  stop_and_check_no_leftovers(wg, app);
}

TEST_CASE("docker: containers left over from an earlier run are removed at start", "[integration][docker]") {
  require_docker();
  const auto app = unique_app_name("dkleft");
  container_sweeper sweep(app);
  auto run = docker_cli({"run", "-d", "--name", "wakegate-" + app + "-1", "--label", "wakegate.app=" + app, "--label",
                         "wakegate.instance=" + app + "-1", docker_test_image});
  INFO(run.err);
  REQUIRE(run.exit_code == 0);
  REQUIRE(containers_of_app(app).size() == 1);

  config_yaml c;
  c.apps.push_back(docker_app(app));
  wakegate_process wg(c.str());
  CHECK(wait_until([&] { return containers_of_app(app).empty(); }, 15s, 100ms));
  CHECK(wg.wait_for_record(
      [&](const auto& x) {
        return json_string(x, "msg") == "removing a container left over from an earlier run" && json_string(x, "app") == app;
      },
      5s));

  auto r = http_get(wg.http_port(), app + ".test", "/");  // same name as the leftover: no conflict
  INFO(describe(r));
  CHECK(r.status == 200);
  stop_and_check_no_leftovers(wg, app);
}

TEST_CASE("docker: with a network, wakegate reaches the container at its address there", "[integration][docker]") {
  require_docker();
  const auto app = unique_app_name("dknet");
  const auto network = "wakegate-test-" + app;
  auto created = docker_cli({"network", "create", network});
  INFO(created.err);
  REQUIRE(created.exit_code == 0);
  struct network_remover {
    std::string name;
    ~network_remover() { docker_cli({"network", "rm", name}); }
  } remove_network{network};
  container_sweeper sweep(app);
  config_yaml c;
  c.apps.push_back(docker_app(app, {"network: " + network}));
  wakegate_process wg(c.str());

  auto r = http_get(wg.http_port(), app + ".test", "/");
  INFO(describe(r));
  CHECK(r.status == 200);
  auto status = fetch_app_status(wg.admin_port(), app);
  REQUIRE(status);
  REQUIRE(status->instances.size() == 1);
  const auto& address = status->instances[0].address;
  auto ip = docker_cli({"inspect", "--format", "{{(index .NetworkSettings.Networks \"" + network + "\").IPAddress}}",
                        container_of_instance(status->instances[0].id)});
  INFO("address " << address << ", docker says " << ip.out);
  CHECK(address == split_lines(ip.out).at(0) + ":8080");
  CHECK_FALSE(starts_with(address, "127.0.0.1:"));
  stop_and_check_no_leftovers(wg, app);
}

TEST_CASE("docker: a reload that changes the container replaces it, one that changes only stop_timeout does not",
          "[integration][docker]") {
  require_docker();
  const auto app = unique_app_name("dkreload");
  container_sweeper sweep(app);
  auto config_with = [&](const std::string& greeting, const std::string& stop_timeout) {
    config_yaml c;
    auto a = docker_app(app, {"env: {GREETING: " + greeting + "}"}).set("min_instances", "1");
    auto at = a.raw_backend.find("stop_timeout: 2s");
    a.raw_backend.replace(at, 16, "stop_timeout: " + stop_timeout);
    c.apps.push_back(a);
    return c.str();
  };
  wakegate_process wg(config_with("first", "2s"));
  app_status last;
  REQUIRE(wait_one_ready(wg.admin_port(), app, 30s, &last));
  const auto first_id = last.instances.front().id;

  wg.write_config(config_with("second", "2s"));
  wg.signal(SIGHUP);
  bool replaced = wait_app(
      wg.admin_port(), app,
      [&](const app_status& a) { return a.instances.size() == 1 && a.instances[0].id != first_id && a.instances[0].state == "ready"; },
      30s, &last);
  INFO("instances: " << instance_list(last));
  CHECK(replaced);
  auto r = http_get(wg.http_port(), app + ".test", "/cgi-bin/whoami");
  INFO(describe(r));
  CHECK(contains(r.body, "second"));
  CHECK(wait_until([&] { return containers_of_app(app).size() == 1; }, 10s, 100ms));
  const auto second_id = last.instances.front().id;

  wg.write_config(config_with("second", "1s"));
  wg.signal(SIGHUP);
  CHECK(wg.wait_for_record([](const auto& x) { return json_string(x, "msg") == "reloaded"; }, 5s));
  CHECK(holds_for(
      [&] {
        auto s = fetch_app_status(wg.admin_port(), app);
        return s && s->instances.size() == 1 && s->instances[0].id == second_id;
      },
      1s));
  stop_and_check_no_leftovers(wg, app);
}
