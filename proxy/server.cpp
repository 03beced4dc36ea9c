#include "proxy/server.hpp"

#include <pthread.h>
#include <sys/resource.h>

#include <string>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>

#include "common/log.hpp"
#include "proxy/idle_watch.hpp"
#include "proxy/listen.hpp"
#include "proxy/session.hpp"

namespace wakegate::proxy {

namespace asio = boost::asio;
using asio::ip::tcp;

namespace {

// Every client connection and every upstream connection is a descriptor: use all we may have.
void raise_open_file_limit() {
  rlimit rl{};
  if (::getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
    rl.rlim_cur = rl.rlim_max;
    ::setrlimit(RLIMIT_NOFILE, &rl);
  }
}

std::shared_ptr<const proxy_options> make_options(const config::config& cfg) {
  auto o = std::make_shared<proxy_options>();
  o->limits = cfg.limits;
  o->access_log = cfg.access_log;
  o->redirect_http = cfg.tls.redirect_http;
  return o;
}

}  // namespace

server::server(const config::config& cfg) : listen_(cfg.http), listen_https_(cfg.https) {
  std::size_t n = shard_count - 1;  // the last shard is the control thread's
  auto opts = make_options(cfg);
  for (std::size_t i = 0; i < n; ++i) {
    workers_.push_back(std::make_unique<worker>(i));
    workers_.back()->owner = this;
    workers_.back()->opts = opts;
  }
}

// Objects bound to one worker's io_context can be owned from another: an instance, kept by every
// worker's routes and by handlers queued to any worker, holds idle upstream connections of each.
// Destroying workers one by one, an instance that outlived the first worker's context ended in a
// later worker's destruction and closed a socket of the freed context (found in CI under ASan: a
// worker slow at shutdown left its queued handlers unrun, one of them the pool's clear). So every
// worker's handlers and coroutines go first, then what the workers share, then the contexts.
server::~server() {
  stop();
  for (auto& w : workers_) w->ioc.destroy_handlers();
  for (auto& w : workers_) {
    w->routes.reset();
    w->tunnels.clear();
    w->idle.clear();
  }
  workers_.clear();
}

std::vector<asio::any_io_executor> server::executors() {
  std::vector<asio::any_io_executor> ex;
  for (auto& w : workers_) ex.emplace_back(w->ioc.get_executor());
  return ex;
}

const char* limit_name(limit_hit l) noexcept {
  static constexpr const char* names[] = {"header_size", "header_count", "header_timeout", "idle_timeout",
                                          "body_size", "pipelined", "connections", "upstream_connect_timeout",
                                          "response_header_timeout", "request_timeout", "io_timeout"};
  static_assert(std::size(names) == static_cast<std::size_t>(limit_hit::count_));
  return names[static_cast<std::size_t>(l)];
}

tcp::endpoint server::start() {
  raise_open_file_limit();
  auto listen_all = [this](tcp::endpoint ep, std::optional<tcp::acceptor> worker::*which, listen_lock worker::*lock,
                           std::string_view name) {
    for (auto& w : workers_) {
      // Every thread listens on the same address (SO_REUSEPORT): the kernel spreads connections
      // and no accept is shared between threads.
      auto& acceptor = (*w).*which;
      acceptor.emplace(w->ioc);
      (*w).*lock = open_listener(*acceptor, ep, name, true, w == workers_.front());
      if (ep.port() == 0) ep = acceptor->local_endpoint();  // the others join the port we got
    }
    return ep;
  };
  auto ep = listen_all(listen_endpoint(listen_), &worker::acceptor, &worker::acceptor_lock, "http");
  if (listen_https_) {
    https_ep_ = listen_all(listen_endpoint(*listen_https_), &worker::tls_acceptor, &worker::tls_acceptor_lock, "https");
    for (auto& w : workers_) w->https_port = https_ep_->port();
  }
  for (auto& w : workers_) {
    w->work.emplace(w->ioc.get_executor());
    asio::co_spawn(w->ioc, accept_loop(*w, false), asio::detached);
    if (w->tls_acceptor) asio::co_spawn(w->ioc, accept_loop(*w, true), asio::detached);
    asio::co_spawn(w->ioc, trim_pools(*w), asio::detached);
    w->thread = std::thread([wp = w.get()] {
      this_shard = wp->index;
      // "wg-worker-N" in top -H, ps -L and /proc/PID/task/*/comm (bench/compare.sh reads it).
      std::string name = "wg-worker-" + std::to_string(wp->index);
      pthread_setname_np(pthread_self(), name.c_str());
      wp->ioc.run();
    });
  }
  started_ = true;
  return ep;
}

asio::awaitable<void> server::accept_loop(worker& w, bool tls) {
  constexpr auto tok = asio::as_tuple(asio::use_awaitable);
  asio::steady_timer backoff(w.ioc);
  auto& acceptor = tls ? w.tls_acceptor : w.acceptor;
  if (!w.accept_resume) {
    // Shared by the http and https loops; never expires, a closing connection cancels its waits.
    w.accept_resume.emplace(w.ioc);
    w.accept_resume->expires_at(asio::steady_timer::time_point::max());
  }
  while (acceptor && acceptor->is_open()) {
    // At max_connections (this thread's share): stop accepting until a connection closes. New
    // clients wait in the listen backlog; open connections are served as usual.
    std::size_t share = (w.opts->limits.max_connections + workers_.size() - 1) / workers_.size();
    if (w.open >= std::max<std::size_t>(share, 1)) {
      stats_.hit(limit_hit::connections);
      co_await w.accept_resume->async_wait(tok);
      continue;
    }
    auto [ec, sock] = co_await acceptor->async_accept(tok);
    if (ec == asio::error::operation_aborted) break;
    if (ec) {
      // Out of descriptors or memory: keep serving open connections, retry shortly.
      log::warn("accept failed", {{"error", ec.message()}});
      backoff.expires_after(std::chrono::milliseconds(50));
      co_await backoff.async_wait(tok);
      continue;
    }
    asio::co_spawn(w.ioc, tls ? run_tls_session(w, std::move(sock)) : run_session(w, std::move(sock)), asio::detached);
  }
}

// Once a second, each thread closes its idle instance connections that are past
// upstream_idle_timeout, or that the instance closed or sent anything on meanwhile (the reactor's
// input flag, proxy/idle_watch.hpp: no system call), as nginx's keepalive pool does. Before, they
// were only dropped when a request next looked into that pool, and sat in CLOSE-WAIT until then
// (found by black-box testing). Ends when the thread drains.
asio::awaitable<void> server::trim_pools(worker& w) {
  constexpr auto tok = asio::as_tuple(asio::use_awaitable);
  asio::steady_timer timer(w.ioc);
  for (;;) {
    timer.expires_after(std::chrono::seconds(1));
    auto [ec] = co_await timer.async_wait(tok);
    if (ec || w.draining) co_return;
    const std::int64_t now = now_ns();
    const std::int64_t max_idle =
        std::chrono::duration_cast<std::chrono::nanoseconds>(w.opts->limits.upstream_idle_timeout).count();
    for (const auto& app : w.routes->apps())
      for (const auto& inst : app->ready_view())
        std::erase_if(inst->pools[this_shard], [&](scaler::idle_connection& c) {
          return now - c.idle_since_ns > max_idle || idle_watch::input_since_park(c.socket);
        });
  }
}

void server::set_apps(const std::vector<scaler::app_ptr>& apps) {
  auto table = std::make_shared<const router>(apps);
  for (auto& w : workers_) asio::post(w->ioc, [wp = w.get(), table] { wp->routes = table; });
}

void server::set_certificates(std::shared_ptr<const tls::cert_set> certs) {
  for (auto& w : workers_) asio::post(w->ioc, [wp = w.get(), certs] { wp->certs = certs; });
}

void server::set_ticket_keys(std::shared_ptr<const tls::ticket_keys> keys) {
  for (auto& w : workers_)
    asio::post(w->ioc, [wp = w.get(), keys] {
      wp->tickets = keys;
      tls::set_thread_ticket_keys(keys.get());
    });
}

void server::set_challenges(std::shared_ptr<const tls::challenge_map> challenges) {
  for (auto& w : workers_) asio::post(w->ioc, [wp = w.get(), challenges] { wp->challenges = challenges; });
}

void server::set_options(const config::config& cfg) {
  auto opts = make_options(cfg);
  for (auto& w : workers_) asio::post(w->ioc, [wp = w.get(), opts] { wp->opts = opts; });
}

void server::begin_drain() {
  for (auto& w : workers_) {
    asio::post(w->ioc, [wp = w.get()] {
      wp->draining = true;
      boost::system::error_code ec;
      if (wp->acceptor) wp->acceptor->close(ec);
      if (wp->tls_acceptor) wp->tls_acceptor->close(ec);
      wp->acceptor_lock.release();  // a new wakegate may listen there while this one drains
      wp->tls_acceptor_lock.release();
      if (wp->accept_resume) wp->accept_resume->cancel();
      for (auto* s : wp->idle) s->cancel(ec);  // idle keep-alive: close now
      for (auto& end : wp->tunnels) end();               // tunnels (WebSocket ...): end now
    });
  }
}

void server::cut_all() {
  for (auto& w : workers_)
    asio::post(w->ioc, [wp = w.get()] {
      wp->cut = true;
      wp->deadlines.expire_all();
    });
}

void server::stop() {
  if (!started_) return;
  started_ = false;
  for (auto& w : workers_) {
    w->work.reset();
    w->ioc.stop();
  }
  for (auto& w : workers_)
    if (w->thread.joinable()) w->thread.join();
}

void server::write_metrics(metrics::text_writer& w) const {
  w.family("wakegate_connections_accepted_total", "counter", "Client connections accepted.");
  w.sample("wakegate_connections_accepted_total", {}, static_cast<double>(stats_.connections_accepted.value()));
  w.family("wakegate_open_connections", "gauge", "Client connections open now.");
  w.sample("wakegate_open_connections", {}, static_cast<double>(stats_.connections_open.value()));
  w.family("wakegate_open_tunnels", "gauge",
           "Upgraded connections (WebSocket) being relayed now; each also counts in wakegate_in_flight_requests.");
  w.sample("wakegate_open_tunnels", {}, static_cast<double>(stats_.tunnels_open.value()));
  w.family("wakegate_unrouted_requests_total", "counter", "Requests for a host no app serves (404).");
  w.sample("wakegate_unrouted_requests_total", {}, static_cast<double>(stats_.unrouted.value()));
  w.family("wakegate_bad_requests_total", "counter", "Requests refused before routing (400, 408, 431, 505).");
  w.sample("wakegate_bad_requests_total", {}, static_cast<double>(stats_.bad_requests.value()));
  if (listen_https_) {
    w.family("wakegate_tls_handshakes_total", "counter", "TLS handshakes on the https listener, by result.");
    w.sample("wakegate_tls_handshakes_total", {{"result", "full"}}, static_cast<double>(stats_.tls_full.value()));
    w.sample("wakegate_tls_handshakes_total", {{"result", "resumed"}}, static_cast<double>(stats_.tls_resumed.value()));
    w.sample("wakegate_tls_handshakes_total", {{"result", "failed"}}, static_cast<double>(stats_.tls_failed.value()));
    w.sample("wakegate_tls_handshakes_total", {{"result", "timeout"}}, static_cast<double>(stats_.tls_timeout.value()));
  }
  w.family("wakegate_limit_hits_total", "counter", "Requests or connections that reached a limit (limits: and per-app).");
  for (std::size_t i = 0; i < stats_.limits.size(); ++i)
    w.sample("wakegate_limit_hits_total", {{"limit", limit_name(static_cast<limit_hit>(i))}},
             static_cast<double>(stats_.limits[i].value()));
}

}  // namespace wakegate::proxy
