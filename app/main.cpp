// wakegate: wires config -> control plane -> proxy, and handles the command line and signals.
#include <algorithm>
#include <chrono>
#include <csignal>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <iostream>
#include <string>
#include <string_view>
#include <thread>

#include <boost/asio/io_context.hpp>
#include <boost/asio/signal_set.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/json.hpp>

#include "common/closable_context.hpp"
#include "common/log.hpp"
#include "common/metrics.hpp"
#include "common/shard.hpp"
#include "config/loader.hpp"
#include "proxy/admin.hpp"
#include "proxy/listen.hpp"
#include "proxy/server.hpp"
#include "scaler/backends/backend_set.hpp"
#include "scaler/backends/docker_backend.hpp"
#include "scaler/backends/process_backend.hpp"
#include "scaler/control.hpp"
#include "tls/acme.hpp"
#include "tls/cert_store.hpp"

namespace asio = boost::asio;
using namespace wakegate;

namespace {

constexpr std::string_view usage =
    "usage: wakegate run --config FILE     run the edge in the foreground (logs on stderr)\n"
    "       wakegate check --config FILE   validate a config; problems as FILE:LINE:COLUMN: message\n"
    "       wakegate --version | --help\n"
    "\n"
    "signals: SIGHUP reloads the config (an invalid one is refused and the old one keeps serving);\n"
    "         SIGTERM/SIGINT drain in-flight requests, stop every instance and exit.\n";

using proxy::endpoint_text;

std::int64_t unix_seconds() {
  return std::chrono::duration_cast<std::chrono::seconds>(std::chrono::system_clock::now().time_since_epoch()).count();
}

// The running configuration's file and the reloads (SIGHUP) of this process.
struct config_history {
  std::int64_t loaded_at = 0;     // Unix time the running configuration was loaded
  std::int64_t last_attempt = 0;  // of the last reload; 0: none yet
  bool last_ok = true;
  std::uint64_t applied = 0, refused = 0;
  std::string last_error;  // the last refused reload's first problem, FILE:LINE:COL: message
  std::size_t last_errors = 0;

  void write_metrics(metrics::text_writer& w) const {
    w.family("wakegate_config_last_reload_successful", "gauge",
             "1 if the last reload (SIGHUP) was applied or there was none, 0 if it was refused (the "
             "previous configuration keeps running).");
    w.sample("wakegate_config_last_reload_successful", {}, last_ok ? 1 : 0);
    w.family("wakegate_config_last_reload_success_timestamp_seconds", "gauge",
             "Unix time the running configuration was loaded: at start, or by the last applied reload.");
    w.sample("wakegate_config_last_reload_success_timestamp_seconds", {}, static_cast<double>(loaded_at));
    w.family("wakegate_config_reloads_total", "counter", "Reloads (SIGHUP) by result: applied or refused.");
    w.sample("wakegate_config_reloads_total", {{"result", "applied"}}, static_cast<double>(applied));
    w.sample("wakegate_config_reloads_total", {{"result", "refused"}}, static_cast<double>(refused));
  }

  boost::json::object status(const std::string& file) const {
    boost::json::object o{{"file", file}, {"loaded_at", loaded_at}};
    if (last_attempt != 0) {
      boost::json::object r{{"at", last_attempt}, {"ok", last_ok}};
      if (!last_ok) {
        r["error"] = last_error;
        r["errors"] = last_errors;
      }
      o["last_reload"] = std::move(r);
    }
    return o;
  }
};

void print_diagnostics(std::FILE* out, const config::load_result& r) {
  for (const auto& [d, warning] : config::in_file_order(r)) {
    std::fprintf(out, "%s:%d:%d: %s%s\n", d->file.c_str(), d->line, d->column, warning ? "warning: " : "",
                 d->message.c_str());
  }
}

int check(const std::string& path) {
  auto r = config::load_file(path);
  print_diagnostics(stdout, r);
  if (!r.ok()) return 1;
  std::printf("%s: ok\n", path.c_str());
  return 0;
}

// Drains on SIGTERM/SIGINT: stop accepting, wait for open connections to finish (up to
// shutdown_timeout), then stop every instance and leave the event loop.
class shutdown_sequence {
 public:
  shutdown_sequence(asio::io_context& ctx, proxy::server& srv, proxy::admin_server& admin,
                    scaler::control_plane& control)
      : ctx_(ctx), srv_(srv), admin_(admin), control_(control), timer_(ctx) {}

  bool started() const { return started_; }

  void begin(config::duration timeout) {
    if (finishing_) {  // another signal while the instances stop: now (found by black-box testing)
      log::warn("second signal: killing instances now");
      control_.hurry_shutdown();
      return;
    }
    if (started_) {  // a second signal: stop waiting for connections
      finish("second signal: closing connections still open");
      return;
    }
    started_ = true;
    log::info("shutting down: draining connections", {{"timeout_ms", timeout.count()}});
    admin_.set_ready(false);
    srv_.begin_drain();
    deadline_ = steady::now() + timeout;
    poll();
  }

 private:
  void poll() {
    if (srv_.open_connections() <= 0 || steady::now() >= deadline_) {
      finish("shutdown timeout: closing connections still open");
      return;
    }
    timer_.expires_after(std::chrono::milliseconds(10));
    timer_.async_wait([this](boost::system::error_code ec) {
      if (!ec) poll();
    });
  }

  // `why_cut`: the log line if connections are still open.
  void finish(const char* why_cut) {
    if (finishing_) return;
    finishing_ = true;
    timer_.cancel();
    auto left = srv_.open_connections();
    if (left > 0) log::warn(why_cut, {{"connections", left}});
    // Requests still running are cut now (found by black-box testing: a stream went on until its
    // instance was killed, past shutdown_timeout); held ones get 503 from control_.shutdown.
    if (left > 0) srv_.cut_all();
    log::info("stopping instances");
    control_.shutdown([this] {
      // The answers of the last requests (held ones get 503 now) go out before the process ends:
      // up to a second more for them (found by black-box testing: of 3000 held requests most got
      // a bare close, and their log lines were lost).
      last_answers_deadline_ = steady::now() + std::chrono::seconds(1);
      wait_last_answers();
    });
  }

  void wait_last_answers() {
    if (srv_.open_connections() <= 0 || steady::now() >= last_answers_deadline_) {
      log::info("stopped");
      admin_.stop();
      ctx_.stop();
      return;
    }
    timer_.expires_after(std::chrono::milliseconds(10));
    timer_.async_wait([this](boost::system::error_code ec) {
      if (!ec) wait_last_answers();
    });
  }

  asio::io_context& ctx_;
  proxy::server& srv_;
  proxy::admin_server& admin_;
  scaler::control_plane& control_;
  asio::steady_timer timer_;
  clock_time deadline_{};
  clock_time last_answers_deadline_{};
  bool started_ = false;
  bool finishing_ = false;
};

// A loaded file's problems in the log (at start and at each reload): every line on stderr is JSON
// once the file is valid (found by black-box testing: warnings at start were plain text).
void log_diagnostics(const config::load_result& r) {
  for (const auto& [d, warning] : config::in_file_order(r)) {
    if (warning)
      log::warn("config warning", {{"problem", d->str()}});
    else
      log::error("config error", {{"problem", d->str()}});
  }
}

int run(const std::string& path) {
  auto loaded = config::load_file(path);
  if (!loaded.ok()) {
    print_diagnostics(stderr, loaded);  // as `check` prints them: the process never started
    return 1;
  }
  log_diagnostics(loaded);
  config::config cfg = std::move(*loaded.cfg);

  std::signal(SIGPIPE, SIG_IGN);
  // One shard per worker and one for the control thread: at most max_shards (64 workers), also
  // on a machine with more cores (found in review: its counters would have been indexed past their end).
  std::size_t workers = cfg.workers > 0 ? static_cast<std::size_t>(cfg.workers)
                                        : std::clamp<std::size_t>(std::thread::hardware_concurrency(), 1, max_shards - 1);
  shard_count = workers + 1;
  this_shard = workers;  // this thread is the control thread

  closable_context control_ctx(1);
  proxy::server srv(cfg);
  scaler::control_plane control(control_ctx, srv.executors(),
                                std::make_unique<scaler::backend_set>(
                                    std::make_unique<scaler::process_backend>(control_ctx),
                                    std::make_unique<scaler::docker_backend>(control_ctx)));
  srv.attach(control);
  control.on_apps_changed = [&srv](const std::vector<scaler::app_ptr>& apps) { srv.set_apps(apps); };

  // HTTPS: certificates (files and ACME) and ticket keys, published to the proxy threads.
  std::optional<tls::cert_store> certs;
  if (cfg.https) {
    certs.emplace(control_ctx, tls::cert_store::callbacks{
                                   [&srv](auto set) { srv.set_certificates(std::move(set)); },
                                   [&srv](auto keys) { srv.set_ticket_keys(std::move(keys)); },
                               });
    certs->apply(cfg.tls);
  }
  // ACME: certificates for the app hosts that no certificate file covers.
  std::optional<tls::acme_client> acme;
  auto acme_hosts = [&certs](const config::config& c) {
    std::vector<std::string> hosts;
    for (const auto& app : c.apps)
      for (const auto& h : app.hosts) {
        if (certs->file_covers(h)) continue;
        if (h.starts_with("*.")) {
          log::warn("acme: wildcard hosts need DNS-01, which wakegate does not do", {{"host", h}});
          continue;
        }
        hosts.push_back(h);
      }
    return hosts;
  };
  if (cfg.https && cfg.tls.acme) {
    acme.emplace(control_ctx, *cfg.tls.acme,
                 tls::acme_client::callbacks{
                     [&certs](const std::string& host, tls::certificate_source src) {
                       certs->set_acme_certificate(host, std::move(src));
                     },
                     [&srv](auto answers) { srv.set_challenges(std::move(answers)); },
                 });
  }

  // What SIGHUP did, for /status and /metrics (found by black-box testing: a refused reload was
  // only in the log, so a failed deploy could not be alerted on).
  config_history history;
  history.loaded_at = unix_seconds();

  proxy::admin_server admin(control_ctx, {
                                             [&] {
                                               metrics::text_writer w;
                                               control.write_metrics(w);
                                               srv.write_metrics(w);
                                               if (certs) certs->write_metrics(w);
                                               if (acme) acme->write_metrics(w);
                                               history.write_metrics(w);
                                               return w.take();
                                             },
                                             [&] {
                                               auto status = boost::json::parse(control.status_json());
                                               status.as_object()["config"] = history.status(path);
                                               if (certs) {
                                                 // HTTPS state next to the apps: certificates, ACME hosts.
                                                 boost::json::object tls{{"certificates", certs->status()}};
                                                 if (acme) tls["acme"] = acme->status();
                                                 status.as_object()["tls"] = std::move(tls);
                                               }
                                               return boost::json::serialize(status);
                                             },
                                         });

  asio::ip::tcp::endpoint http_ep, admin_ep;
  try {
    http_ep = srv.start();
    admin.set_token(cfg.admin_token);
    admin_ep = admin.start(cfg.admin);
  } catch (const std::exception& e) {
    log::error("cannot listen", {{"error", e.what()}});
    return 1;
  }
  log::info("listening", {{"listener", "http"}, {"address", endpoint_text(http_ep)}});
  if (auto https_ep = srv.https_endpoint())
    log::info("listening", {{"listener", "https"}, {"address", endpoint_text(*https_ep)}});
  log::info("listening", {{"listener", "admin"}, {"address", endpoint_text(admin_ep)}});
  control.apply(cfg);
  if (acme) acme->set_hosts(acme_hosts(cfg));
  admin.set_ready(true);
  log::info("ready", {{"workers", workers}, {"apps", cfg.apps.size()}});

  shutdown_sequence shutdown(control_ctx, srv, admin, control);
  asio::signal_set signals(control_ctx, SIGHUP, SIGTERM, SIGINT);
  std::function<void()> wait_signal = [&] {
    signals.async_wait([&](boost::system::error_code ec, int sig) {
      if (ec) return;
      if (sig == SIGHUP && shutdown.started()) {
        // Found by black-box testing: a reload during the drain started new instances.
        log::warn("reload ignored: shutting down");
      } else if (sig == SIGHUP) {
        log::info("reloading", {{"file", path}});
        auto next = config::load_file(path);
        log_diagnostics(next);
        history.last_attempt = unix_seconds();
        history.last_ok = next.ok();
        if (!next.ok()) {
          ++history.refused;
          history.last_error = next.errors.front().str();
          history.last_errors = next.errors.size();
          log::error("reload refused: keeping the running config", {{"errors", next.errors.size()}});
        } else {
          ++history.applied;
          history.loaded_at = history.last_attempt;
          history.last_error.clear();
          history.last_errors = 0;
          auto& n = *next.cfg;
          if (n.http.text() != cfg.http.text() || n.admin.text() != cfg.admin.text() || n.workers != cfg.workers ||
              n.https.has_value() != cfg.https.has_value() || (n.https && n.https->text() != cfg.https->text()))
            log::warn("listen addresses and workers change only on restart");
          // The ACME client is made once, at start (found by black-box testing: a changed
          // directory or retry_after was dropped without a word). Its hosts follow the apps.
          if (n.tls.acme != cfg.tls.acme) log::warn("tls.acme changes only on restart: keeping the running ACME settings");
          n.tls.acme = cfg.tls.acme;
          if (cfg.https && !n.https) {
            // The https listener stays until the restart, and serves as it did (found by
            // black-box testing: its certificates went with the tls section, and every handshake failed).
            log::warn("listen.https removed: the https listener keeps its TLS settings until restart");
            n.tls = cfg.tls;
          }
          n.https = cfg.https;
          n.http = cfg.http;
          n.admin = cfg.admin;
          n.workers = cfg.workers;
          cfg = std::move(n);
          srv.set_options(cfg);
          if (certs) certs->apply(cfg.tls);
          if (acme) acme->set_hosts(acme_hosts(cfg));
          admin.set_token(cfg.admin_token);
          control.apply(cfg);
          log::info("reloaded", {{"apps", cfg.apps.size()}});
        }
      } else {
        shutdown.begin(cfg.shutdown_timeout);
      }
      wait_signal();
    });
  };
  wait_signal();

  control_ctx.run();
  srv.stop();
  // What is still queued for the control thread goes now, while everything it may hold (an
  // instance with the proxy threads' idle connections) can still be destroyed (closable_context).
  control_ctx.destroy_handlers();
  // Requests still open at the shutdown deadline are destroyed with srv, after `control`
  // (declared later): their capacity must not be given back to it then.
  srv.detach();
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  std::vector<std::string_view> args(argv + 1, argv + argc);
  if (args.empty()) {
    std::fputs(usage.data(), stderr);
    return 2;
  }
  if (args[0] == "--version" || args[0] == "version") {
    std::printf("wakegate %s\n", WAKEGATE_VERSION);
    return 0;
  }
  if (args[0] == "--help" || args[0] == "-h" || args[0] == "help") {
    std::fputs(usage.data(), stdout);
    return 0;
  }
  if ((args[0] == "run" || args[0] == "check") && args.size() == 3 && (args[1] == "--config" || args[1] == "-c")) {
    std::string path(args[2]);
    return args[0] == "run" ? run(path) : check(path);
  }
  if ((args[0] == "run" || args[0] == "check") && args.size() == 2 && args[1].starts_with("--config=")) {
    std::string path(args[1].substr(9));
    return args[0] == "run" ? run(path) : check(path);
  }
  std::fputs(usage.data(), stderr);
  return 2;
}
