#include "scaler/backends/docker_backend.hpp"

// GCC 12 misreads Asio's coroutine frame allocator as a new/delete mismatch (a false positive).
#pragma GCC diagnostic ignored "-Wmismatched-new-delete"

#include <cstdio>
#include <cstdlib>
#include <random>
#include <utility>
#include <vector>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/use_awaitable.hpp>

#include "common/log.hpp"
#include "common/time.hpp"

namespace wakegate::scaler {

namespace asio = boost::asio;
namespace http = boost::beast::http;
using namespace std::chrono_literals;

namespace {

constexpr auto tok = asio::as_tuple(asio::use_awaitable);
// GCC 12 may destroy temporaries of a co_await full-expression twice: arguments of awaited calls
// are always named objects here.
const std::string no_body;
constexpr std::chrono::milliseconds call_timeout = 30s;    // create, start, inspect, list, remove
constexpr std::chrono::milliseconds version_timeout = 5s;
constexpr std::chrono::milliseconds pull_timeout = 10min;  // a large image over a slow link
constexpr std::chrono::milliseconds events_backoff_first = 100ms;
constexpr std::chrono::milliseconds events_backoff_max = 5s;
constexpr std::chrono::milliseconds removal_backoff_first = 1s;
constexpr std::chrono::milliseconds removal_backoff_max = 30s;

constexpr const char* op_names[] = {"version", "create", "start", "inspect", "stop", "remove", "list", "events", "pull", "kill"};

// The last non-empty line of `text`.
std::string last_line(const std::string& text) {
  auto end = text.find_last_not_of("\r\n");
  if (end == std::string::npos) return {};
  auto begin = text.rfind('\n', end);
  return text.substr(begin == std::string::npos ? 0 : begin + 1, end + 1 - (begin == std::string::npos ? 0 : begin + 1));
}

std::string describe(const docker::api_response& r) {
  if (!r.error.empty()) return r.error;
  return "status " + std::to_string(r.status) + ": " + docker::error_message(r.body);
}

// Docker's stop timeout is whole seconds.
long stop_seconds(std::chrono::milliseconds t) { return static_cast<long>((t.count() + 999) / 1000); }

}  // namespace

struct docker_backend::instance {
  std::string id;
  std::string app;
  std::string container;  // the container's id once created
  std::chrono::milliseconds stop_timeout{};
  bool started = false;   // `done` reported it running: deaths now go to on_exit
  bool died = false;      // a death was seen (reported once)
  std::string died_reason;
  bool stopping = false;
  bool pulling = false;   // in an image pull, which may take minutes
  bool readiness_seen = false;
  bool output_read = false;  // its last output was read and logged (once it died)
  // Set while exited() reads that output: a stop waits for it (cancelled when done) rather than
  // read and log it a second time.
  std::shared_ptr<asio::steady_timer> output_reading;
  clock_time running_at{};
  std::vector<std::function<void()>> stop_waiters;
};

struct docker_backend::cleanup_gate {
  explicit cleanup_gate(asio::io_context& ctx) : signal(ctx) { signal.expires_at(clock_time::max()); }
  bool done = false;
  bool ok = false;
  asio::steady_timer signal;  // cancelled when done: waiters wake up
};

docker_backend::docker_backend(asio::io_context& ctx, std::string socket_path)
    : ctx_(ctx), api_(ctx.get_executor(), std::string()) {
  std::random_device rd;
  char id[17];
  std::snprintf(id, sizeof id, "%08x%08x", rd(), rd());
  run_id_ = id;
  if (socket_path.empty()) {
    auto address = docker::socket_from_docker_host(std::getenv("DOCKER_HOST"));
    config_error_ = address.error;
    socket_path = address.path;
  }
  api_ = docker::api_client(ctx.get_executor(), socket_path);
}

docker_backend::~docker_backend() {
  *alive_ = false;
  alive_.reset();
  if (events_stream_) events_stream_->close();
}

// ---------------------------------------------------------------------------------------------
// Configuration and leftovers

void docker_backend::configure(const config::config& cfg) {
  for (const auto& app : cfg.apps) {
    if (!std::holds_alternative<config::docker_backend>(app.backend)) continue;
    if (!start_times_.count(app.name)) start_times_.emplace(app.name, std::make_unique<app_histograms>());
    if (!cleanup_.count(app.name)) {
      // The gate exists before any start of this app can look for it.
      auto gate = std::make_shared<cleanup_gate>(ctx_);
      cleanup_[app.name] = gate;
      asio::co_spawn(ctx_, sweep(app.name, gate), asio::detached);
    }
    start_events();
  }
}

asio::awaitable<std::string> docker_backend::ensure_version() {
  if (!config_error_.empty()) co_return config_error_;
  if (!api_.version().empty()) co_return std::string();
  std::weak_ptr<bool> alive = alive_;
  auto err = co_await api_.negotiate(version_timeout);
  if (alive.expired()) co_return std::string("shutting down");
  if (!err.empty()) {
    count_error(op::version);
  } else if (logged_version_ != api_.version()) {  // concurrent first calls all negotiate: log once
    logged_version_ = api_.version();
    log::info("docker daemon", {{"socket", api_.socket_path()}, {"api_version", api_.version()}});
  }
  co_return err;
}

asio::awaitable<void> docker_backend::ensure_clean(std::string app) {
  if (auto it = cleanup_.find(app); it != cleanup_.end()) {
    auto gate = it->second;
    if (gate->done && gate->ok) co_return;
    if (!gate->done) {
      co_await gate->signal.async_wait(tok);
      co_return;
    }
  }
  // Never swept, or the last sweep failed (daemon unreachable then): sweep now.
  auto gate = std::make_shared<cleanup_gate>(ctx_);
  cleanup_[app] = gate;
  co_await sweep(std::move(app), gate);
}

asio::awaitable<void> docker_backend::sweep(std::string app, std::shared_ptr<cleanup_gate> gate) {
  std::weak_ptr<bool> alive = alive_;
  auto err = co_await ensure_version();
  if (alive.expired()) co_return;
  if (err.empty()) {
    const std::string filters = R"({"label":[")" + std::string(docker::app_label) + "=" + app + R"("]})";
    const std::string target = "/containers/json?all=1&filters=" + docker::url_encode(filters);
    auto r = co_await api_.request(http::verb::get, target, no_body, call_timeout);
    if (alive.expired()) co_return;
    if (r.ok()) {
      for (const auto& c : docker::parse_container_list(r.body)) {
        // Made by this run (a sweep again after one that failed): not a leftover (found by
        // black-box testing: a serving container was removed). Instance ids repeat across runs,
        // so the run label tells (found in review); a create still under way has no container
        // in the list yet, or is this run's.
        if (c.run == run_id_) continue;
        log::warn("removing a container left over from an earlier run", {{"app", app}, {"container", c.id.substr(0, 12)}});
        co_await remove_or_retry(c.id, false, 0ms);
        if (alive.expired()) co_return;
      }
      gate->ok = true;
    } else {
      count_error(op::list);
      err = describe(r);
    }
  }
  if (!gate->ok) log::warn("cannot look for leftover containers", {{"app", app}, {"error", err}});
  gate->done = true;
  gate->signal.cancel();
}

// ---------------------------------------------------------------------------------------------
// Start

void docker_backend::start(const instance_spec& spec, std::function<void(start_result)> done) {
  const auto* cfg = spec.backend != nullptr ? std::get_if<config::docker_backend>(spec.backend) : nullptr;
  if (cfg == nullptr || instances_.count(spec.id) != 0) {
    start_result r;
    r.error = cfg == nullptr ? "instance '" + spec.id + "': not a docker backend" : "instance '" + spec.id + "' already exists";
    asio::post(ctx_, [done = std::move(done), r] { done(r); });
    return;
  }
  auto inst = std::make_shared<instance>();
  inst->id = spec.id;
  inst->app = spec.app;
  inst->stop_timeout = cfg->stop_timeout;
  instances_.emplace(spec.id, inst);
  if (!start_times_.count(spec.app)) start_times_.emplace(spec.app, std::make_unique<app_histograms>());
  start_events();
  asio::co_spawn(ctx_, run_start(inst, *cfg, std::move(done)), asio::detached);
}

asio::awaitable<void> docker_backend::run_start(std::shared_ptr<instance> inst, config::docker_backend cfg,
                                                std::function<void(start_result)> done) {
  std::weak_ptr<bool> alive = alive_;
  const auto began = steady::now();
  std::string err = co_await ensure_version();
  if (alive.expired()) co_return;
  if (err.empty()) co_await ensure_clean(inst->app);
  if (alive.expired()) co_return;
  if (err.empty() && !inst->stopping) err = co_await create_container(*inst, cfg);
  if (alive.expired()) co_return;
  const std::string name = docker::container_name(inst->id);

  if (err.empty() && !inst->stopping) {
    const std::string target = "/containers/" + inst->container + "/start";
    auto r = co_await api_.request(http::verb::post, target, no_body, call_timeout);
    if (alive.expired()) co_return;
    if (!r.ok() && r.status != 304) {
      count_error(op::start);
      err = r.error.empty() ? "cannot start container " + name + ": " + docker::error_message(r.body)
                            : docker::unreachable(api_.socket_path(), r.error);
    }
  }
  docker::inspect_result info;
  if (err.empty() && !inst->stopping) {
    const std::string target = "/containers/" + inst->container + "/json";
    auto r = co_await api_.request(http::verb::get, target, no_body, call_timeout);
    if (alive.expired()) co_return;
    if (!r.ok()) {
      count_error(op::inspect);
      err = "cannot inspect container " + name + ": " + describe(r);
    } else {
      info = docker::parse_inspect(r.body, cfg.port, cfg.network);
      if (inst->died) {
        err = inst->died_reason;
      } else if (info.parsed && !info.running) {
        err = "container " + name + " exited at start with code " + std::to_string(info.exit_code) +
              (info.state_error.empty() ? "" : ": " + info.state_error);
      } else if (!info.problem.empty()) {
        err = "container " + name + ": " + info.problem;
      }
      if (inst->died || (info.parsed && !info.running)) {
        // Its own words, before the container is removed (found by black-box testing: they were lost).
        const std::string said = co_await output_tail(*inst);
        if (alive.expired()) co_return;
        inst->output_read = true;
        if (!said.empty()) err += " (its last output: " + last_line(said) + ")";
      }
    }
  }

  if (inst->stopping) {
    // stop() came while starting: the control plane no longer waits for this instance.
    start_result r;
    r.ok = true;
    r.host = "127.0.0.1";
    done(r);
    if (!inst->container.empty()) co_await remove_or_retry(inst->container, false, 0ms);
    if (!alive.expired()) finish_stop(inst);
    co_return;
  }
  if (!err.empty()) {
    // Forget the instance before reporting: the control plane's stop() then completes at once.
    instances_.erase(inst->id);
    start_result r;
    r.error = err;
    done(r);
    if (!inst->container.empty()) co_await remove_or_retry(inst->container, false, 0ms);
    co_return;
  }
  inst->started = true;
  inst->running_at = steady::now();
  if (auto it = start_times_.find(inst->app); it != start_times_.end())
    it->second->create_start.observe(seconds_between(began, inst->running_at));
  log::info("container running", {{"app", inst->app}, {"instance", inst->id}, {"container", inst->container.substr(0, 12)},
                                  {"address", info.host + ":" + std::to_string(info.port)}});
  start_result r;
  r.ok = true;
  r.host = info.host;
  r.port = info.port;
  r.container = inst->container;
  done(r);
}

asio::awaitable<std::string> docker_backend::create_container(instance& inst, const config::docker_backend& cfg) {
  std::weak_ptr<bool> alive = alive_;
  const std::string name = docker::container_name(inst.id);
  const std::string target = "/containers/create?name=" + docker::url_encode(name);
  const std::string body = docker::create_body(cfg, inst.app, inst.id, run_id_);
  bool pulled = false;
  if (cfg.pull == config::pull_policy::always) {
    inst.pulling = true;
    auto err = co_await pull(cfg.image);
    if (alive.expired()) co_return std::string("shutting down");
    inst.pulling = false;
    if (!err.empty()) co_return "cannot pull image '" + cfg.image + "': " + err;
    pulled = true;
  }
  if (inst.stopping) co_return std::string("stopped while starting");
  for (int attempt = 0;; ++attempt) {
    auto r = co_await api_.request(http::verb::post, target, body, call_timeout);
    if (alive.expired()) co_return std::string("shutting down");
    if (r.ok()) {
      inst.container = docker::parse_created_id(r.body);
      if (inst.container.empty()) co_return "cannot create container " + name + ": no id in the daemon's answer";
      co_return std::string();
    }
    if (!r.error.empty()) {
      count_error(op::create);
      co_return docker::unreachable(api_.socket_path(), r.error);
    }
    const std::string message = docker::error_message(r.body);
    if (r.status == 404 && message.find("image") != std::string::npos) {
      if (cfg.pull == config::pull_policy::missing && !pulled) {
        if (inst.stopping) co_return std::string("stopped while starting");
        log::info("pulling image", {{"app", inst.app}, {"image", cfg.image}});
        inst.pulling = true;
        auto err = co_await pull(cfg.image);
        if (alive.expired()) co_return std::string("shutting down");
        inst.pulling = false;
        if (!err.empty()) co_return "image '" + cfg.image + "' is missing and could not be pulled: " + err;
        if (inst.stopping) co_return std::string("stopped while starting");
        pulled = true;
        continue;
      }
      count_error(op::create);
      co_return "image '" + cfg.image + "' not found" +
          (cfg.pull == config::pull_policy::never ? std::string(" (pull: never)") : std::string()) + ": " + message;
    }
    if (r.status == 409 && attempt == 0) {
      // The name is taken: a container of an earlier run that the leftover sweep did not see.
      log::warn("removing a container left over from an earlier run", {{"app", inst.app}, {"container", name}});
      co_await remove_or_retry(name, false, 0ms);
      if (alive.expired()) co_return std::string("shutting down");
      continue;
    }
    count_error(op::create);
    co_return "cannot create container " + name + ": " + message;
  }
}

asio::awaitable<std::string> docker_backend::pull(const std::string& image) {
  std::weak_ptr<bool> alive = alive_;
  const auto ref = docker::split_image(image);
  std::string target = "/images/create?fromImage=" + docker::url_encode(ref.from_image);
  if (!ref.tag.empty()) target += "&tag=" + docker::url_encode(ref.tag);
  auto r = co_await api_.request(http::verb::post, target, no_body, pull_timeout);
  if (alive.expired()) co_return std::string("shutting down");
  std::string err;
  if (!r.ok()) {
    err = r.error.empty() ? docker::error_message(r.body) : docker::unreachable(api_.socket_path(), r.error);
  } else {
    err = docker::pull_error(r.body);
  }
  if (!err.empty()) {
    count_error(op::pull);
  } else {
    log::info("image pulled", {{"image", image}});
  }
  co_return err;
}

void docker_backend::instance_ready(const std::string& id) {
  auto it = instances_.find(id);
  if (it == instances_.end() || !it->second->started || it->second->readiness_seen) return;
  auto& inst = *it->second;
  inst.readiness_seen = true;
  if (auto h = start_times_.find(inst.app); h != start_times_.end())
    h->second->readiness.observe(seconds_between(inst.running_at, steady::now()));
}

// ---------------------------------------------------------------------------------------------
// Stop

void docker_backend::stop(const std::string& id, std::function<void()> done) {
  auto it = instances_.find(id);
  if (it == instances_.end()) {
    if (done) asio::post(ctx_, std::move(done));
    return;
  }
  auto inst = it->second;
  if (done) inst->stop_waiters.push_back(std::move(done));
  if (!inst->started && stopping_all_ && inst->pulling) {
    // At shutdown a pull in progress is not waited for: it may take minutes (found by black-box
    // testing: SIGTERM waited for it). run_start makes no container after it. Other steps of a
    // start are API calls bounded by call_timeout: waited for, so that what they create is
    // removed before exit rather than left running.
    inst->stopping = true;
    finish_stop(inst);
    return;
  }
  if (inst->stopping) return;
  inst->stopping = true;
  if (!inst->started) return;  // run_start sees `stopping` and removes what it created
  asio::co_spawn(ctx_, run_stop(inst), asio::detached);
}

asio::awaitable<void> docker_backend::run_stop(std::shared_ptr<instance> inst) {
  std::weak_ptr<bool> alive = alive_;
  if (auto reading = inst->output_reading) {
    co_await reading->async_wait(tok);  // exited() reads and logs it: removed after that
    if (alive.expired()) co_return;
  }
  // A stop that comes after the proxy saw the instance fail (connect refused) often finds its
  // container already dead, its die event not here yet (and ignored once the stop began): that
  // exit, not the stop, says why it failed, and is reported as the process backend reports one.
  // Not at shutdown, where no one is left to read it.
  bool ended_first = false;
  if (!inst->died && !stopping_all_) {
    const std::string target = "/containers/" + inst->container + "/json";
    auto r = co_await api_.request(http::verb::get, target, no_body, call_timeout);
    if (alive.expired()) co_return;
    if (r.status == 404) {  // removed by someone else: nothing to read or remove (as reconcile says)
      ended_first = inst->died = inst->output_read = true;
      inst->died_reason = "container " + docker::container_name(inst->id) + " was removed";
    } else if (r.ok()) {
      const auto info = docker::parse_inspect(r.body, 0, {});
      if (info.parsed && !info.running) {
        ended_first = inst->died = true;
        inst->died_reason = "container " + docker::container_name(inst->id) + " exited with code " +
                            std::to_string(info.exit_code);
      }
    } else {
      count_error(op::inspect);  // stopped and removed as before; the remove reports what fails
    }
    if (stopping_all_) ended_first = false;  // SIGTERM came meanwhile: not reported at shutdown
  }
  std::string said;
  if (inst->died && !inst->output_read) {
    said = co_await output_tail(*inst);  // logged: what it said before it died, before it is removed
    if (alive.expired()) co_return;
    inst->output_read = true;
  }
  if (ended_first && !stopping_all_ && on_exit) {
    const auto callback = on_exit;  // the callback may destroy the backend
    callback(inst->id, said.empty() ? inst->died_reason : inst->died_reason + " (its last output: " + last_line(said) + ")");
    if (alive.expired()) co_return;
  }
  co_await remove_or_retry(inst->container, !inst->died, inst->stop_timeout);
  if (!alive.expired()) finish_stop(inst);
}

// The container's last lines of output (stdout and stderr, at most 20 lines and 4 KiB), logged as
// "container output"; "" when there is none or the daemon does not give it.
asio::awaitable<std::string> docker_backend::output_tail(const instance& inst) {
  std::weak_ptr<bool> alive = alive_;
  const std::string target = "/containers/" + inst.container + "/logs?stdout=1&stderr=1&tail=20";
  auto r = co_await api_.request(http::verb::get, target, no_body, call_timeout);
  if (alive.expired() || !r.ok()) co_return std::string();
  std::string text = docker::demux_logs(r.body);
  if (text.size() > 4096) text.erase(0, text.size() - 4096);
  while (!text.empty() && (text.back() == '\n' || text.back() == '\r')) text.pop_back();
  if (!text.empty())
    log::warn("container output", {{"app", inst.app}, {"instance", inst.id}, {"output", text}});
  co_return text;
}

asio::awaitable<std::string> docker_backend::remove_container(const std::string& container, bool stop_first,
                                                              std::chrono::milliseconds stop_timeout) {
  std::weak_ptr<bool> alive = alive_;
  if (stop_first) {
    const long t = stop_seconds(stop_timeout);
    const std::string target = "/containers/" + container + "/stop?t=" + std::to_string(t);
    const auto timeout = stop_timeout + call_timeout;
    auto r = co_await api_.request(http::verb::post, target, no_body, timeout);
    if (alive.expired()) co_return std::string("shutting down");
    if (!r.ok() && r.status != 304 && r.status != 404) {
      count_error(op::stop);
      log::warn("cannot stop container", {{"container", container.substr(0, 12)}, {"error", describe(r)}});
    }
  }
  const std::string target = "/containers/" + container + "?force=1";
  auto r = co_await api_.request(http::verb::delete_, target, no_body, call_timeout);
  if (alive.expired()) co_return std::string("shutting down");
  // 404: already gone; 409: its removal is already in progress.
  if (r.ok() || r.status == 404 || r.status == 409) co_return std::string();
  count_error(op::remove);
  co_return describe(r);
}

asio::awaitable<void> docker_backend::remove_or_retry(std::string container, bool stop_first,
                                                      std::chrono::milliseconds stop_timeout) {
  std::weak_ptr<bool> alive = alive_;
  auto err = co_await remove_container(container, stop_first, stop_timeout);
  if (alive.expired() || err.empty()) co_return;
  log::warn("cannot remove container: retrying in the background",
            {{"container", container.substr(0, 12)}, {"error", err}});
  unremoved_.insert(container);
  if (retrying_removals_ || stopping_all_) co_return;  // stop_all's last round tries it
  retrying_removals_ = true;
  asio::co_spawn(ctx_, retry_removals(), asio::detached);
}

asio::awaitable<void> docker_backend::retry_removals() {
  std::weak_ptr<bool> alive = alive_;
  asio::steady_timer wait(ctx_);
  auto backoff = removal_backoff_first;
  while (!unremoved_.empty() && !stopping_all_) {
    wait.expires_after(backoff);
    co_await wait.async_wait(tok);
    if (alive.expired()) co_return;
    backoff = std::min(backoff * 2, removal_backoff_max);
    const std::vector<std::string> containers(unremoved_.begin(), unremoved_.end());
    for (const auto& container : containers) {
      if (stopping_all_) break;
      auto err = co_await remove_container(container, false, 0ms);
      if (alive.expired()) co_return;
      if (!err.empty()) break;  // the daemon still fails: wait, then try them all again
      unremoved_.erase(container);
      log::info("container removed after an earlier failure", {{"container", container.substr(0, 12)}});
    }
  }
  retrying_removals_ = false;
}

// At shutdown: one more try for each container whose removal failed, then the log says which are
// left (the next run's leftover sweep removes them).
asio::awaitable<void> docker_backend::last_removals(std::function<void()> done) {
  std::weak_ptr<bool> alive = alive_;
  const std::vector<std::string> containers(unremoved_.begin(), unremoved_.end());
  std::string left, err;
  for (const auto& container : containers) {
    if (err.empty()) err = co_await remove_container(container, false, 0ms);  // after one failure, skip the rest
    if (alive.expired()) co_return;
    if (err.empty()) {
      unremoved_.erase(container);
    } else {
      left += (left.empty() ? "" : " ") + container.substr(0, 12);
    }
  }
  if (!left.empty())
    log::error("containers not removed: remove them with docker rm -f, or the next start of their app does",
               {{"containers", left}, {"error", err}});
  if (done) done();
}

void docker_backend::finish_stop(const std::shared_ptr<instance>& inst) {
  if (auto it = instances_.find(inst->id); it != instances_.end() && it->second == inst) instances_.erase(it);
  auto waiters = std::move(inst->stop_waiters);
  inst->stop_waiters.clear();
  for (auto& w : waiters) w();
}

// A second shutdown signal: containers being stopped are killed now (SIGKILL through the Engine
// API) instead of being given their stop_timeout; their stop then completes as usual. Starts in
// progress are no longer waited for (what they create is left to the next run's sweep).
void docker_backend::hurry() {
  std::vector<std::shared_ptr<instance>> starting;
  for (const auto& [id, inst] : instances_)
    if (!inst->started && inst->stopping) starting.push_back(inst);
  for (const auto& inst : starting) finish_stop(inst);
  for (const auto& [id, inst] : instances_) {
    if (!inst->started || !inst->stopping || inst->container.empty()) continue;
    asio::co_spawn(
        ctx_,
        [this, alive = std::weak_ptr<bool>(alive_), container = inst->container]() -> asio::awaitable<void> {
          const std::string target = "/containers/" + container + "/kill";
          auto r = co_await api_.request(http::verb::post, target, no_body, call_timeout);
          if (alive.expired()) co_return;
          if (!r.ok() && r.status != 404 && r.status != 409) count_error(op::kill);  // 409: not running
        },
        asio::detached);
  }
}

void docker_backend::stop_all(std::function<void()> done) {
  stopping_all_ = true;
  if (events_stream_) events_stream_->close();
  auto finish = [this, done = std::move(done)]() mutable {
    if (unremoved_.empty()) {
      if (done) done();
      return;
    }
    asio::co_spawn(ctx_, last_removals(std::move(done)), asio::detached);
  };
  if (instances_.empty()) {
    asio::post(ctx_, std::move(finish));
    return;
  }
  auto left = std::make_shared<std::size_t>(instances_.size());
  auto all_done = std::make_shared<std::function<void()>>(std::move(finish));
  std::vector<std::string> ids;
  for (const auto& entry : instances_) ids.push_back(entry.first);
  for (const auto& id : ids) {
    stop(id, [left, all_done] {
      if (--*left == 0) (*all_done)();
    });
  }
}

// ---------------------------------------------------------------------------------------------
// Deaths: the event stream, and one inspection round after each (re)connect

void docker_backend::start_events() {
  if (events_running_ || stopping_all_) return;
  events_running_ = true;
  asio::co_spawn(ctx_, run_events(), asio::detached);
}

asio::awaitable<void> docker_backend::run_events() {
  std::weak_ptr<bool> alive = alive_;
  auto backoff = events_backoff_first;
  asio::steady_timer wait(ctx_);
  const std::string filters =
      R"({"type":["container"],"event":["die"],"label":[")" + std::string(docker::app_label) + R"("]})";
  bool was_connected = true;  // log the first failure of each outage only
  while (!stopping_all_) {
    auto err = co_await ensure_version();
    if (alive.expired()) co_return;
    if (err.empty() && !stopping_all_) {
      events_stream_ = std::make_shared<docker::local_stream>(ctx_);
      docker::event_splitter splitter;
      const std::string target = "/events?filters=" + docker::url_encode(filters);
      std::function<void()> on_open = [this, alive, &backoff, &was_connected] {
        if (alive.expired()) return;
        backoff = events_backoff_first;
        was_connected = true;
        asio::co_spawn(ctx_, reconcile(), asio::detached);
      };
      std::function<void(std::string_view)> on_bytes = [this, alive, &splitter](std::string_view bytes) {
        if (alive.expired()) return;
        for (const auto& e : splitter.feed(bytes)) on_event(e);
      };
      auto stream = events_stream_;
      err = co_await api_.stream(stream, target, on_open, on_bytes, version_timeout);
      if (alive.expired()) co_return;
    }
    if (stopping_all_) break;
    count_error(op::events);
    api_.forget();  // the daemon may have been replaced: negotiate again
    if (was_connected) log::warn("docker event stream lost: reconnecting with backoff", {{"error", err}});
    was_connected = false;
    wait.expires_after(backoff);
    co_await wait.async_wait(tok);
    if (alive.expired()) co_return;
    backoff = std::min(backoff * 2, events_backoff_max);
  }
  events_running_ = false;
}

asio::awaitable<void> docker_backend::reconcile() {
  std::weak_ptr<bool> alive = alive_;
  std::vector<std::shared_ptr<instance>> running;
  for (const auto& [id, inst] : instances_)
    if (inst->started && !inst->stopping && !inst->died) running.push_back(inst);
  for (const auto& inst : running) {
    const std::string target = "/containers/" + inst->container + "/json";
    auto r = co_await api_.request(http::verb::get, target, no_body, call_timeout);
    if (alive.expired()) co_return;
    if (r.status == 404) {
      exited(inst, "container " + docker::container_name(inst->id) + " was removed");
    } else if (r.ok()) {
      auto info = docker::parse_inspect(r.body, 0, {});
      if (info.parsed && !info.running)
        exited(inst, "container " + docker::container_name(inst->id) + " exited with code " + std::to_string(info.exit_code));
    }
  }
}

void docker_backend::on_event(const docker::event& e) {
  if (e.action != "die" || e.instance.empty()) return;
  auto it = instances_.find(e.instance);
  if (it == instances_.end() || it->second->container != e.id) return;  // not ours (another run's)
  exited(it->second, "container " + docker::container_name(e.instance) + " exited with code " +
                         (e.exit_code.empty() ? std::string("?") : e.exit_code));
}

void docker_backend::exited(const std::shared_ptr<instance>& inst, const std::string& reason) {
  if (inst->died || inst->stopping) return;
  inst->died = true;
  inst->died_reason = reason;
  if (!inst->started) return;  // run_start reports it when its inspection is done
  // Reported with its last words, read before anything removes the container.
  inst->output_reading = std::make_shared<asio::steady_timer>(ctx_, clock_time::max());
  asio::co_spawn(
      ctx_,
      [this, alive = std::weak_ptr<bool>(alive_), inst, reason]() -> asio::awaitable<void> {
        const std::string said = co_await output_tail(*inst);
        if (alive.expired()) co_return;
        inst->output_read = true;
        inst->output_reading->cancel();
        inst->output_reading.reset();
        if (on_exit) {
          const auto callback = on_exit;
          callback(inst->id, said.empty() ? reason : reason + " (its last output: " + last_line(said) + ")");
        }
      },
      asio::detached);
}

// ---------------------------------------------------------------------------------------------
// Metrics

void docker_backend::write_metrics(metrics::text_writer& w) const {
  if (start_times_.empty()) return;  // no docker app configured: no docker metrics
  using metrics::label;
  w.family("wakegate_container_start_seconds", "histogram",
           "Container starts by phase: create_start (create and start through the Engine API until the container "
           "runs with its address known), readiness (from then to the first successful readiness probe).");
  for (const auto& [app, h] : start_times_) {
    label create_start[] = {{"app", app}, {"phase", "create_start"}};
    w.histogram("wakegate_container_start_seconds", create_start, h->create_start.snapshot());
    label readiness[] = {{"app", app}, {"phase", "readiness"}};
    w.histogram("wakegate_container_start_seconds", readiness, h->readiness.snapshot());
  }
  w.family("wakegate_docker_api_errors_total", "counter",
           "Docker Engine API calls that failed (daemon unreachable or an error status), by operation.");
  for (int i = 0; i < static_cast<int>(op::count); ++i)
    w.sample("wakegate_docker_api_errors_total", {label{"operation", op_names[i]}}, static_cast<double>(api_errors_[i]));
  w.family("wakegate_docker_containers_unremoved", "gauge",
           "Containers of stopped instances whose removal failed, retried with backoff until the daemon answers.");
  w.sample("wakegate_docker_containers_unremoved", {}, static_cast<double>(unremoved_.size()));
}

}  // namespace wakegate::scaler
