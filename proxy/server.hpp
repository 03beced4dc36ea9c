// The data plane: one io_context per proxy thread, each with its own SO_REUSEPORT listener,
// routing table and sessions. Nothing on the request path is shared between threads except the
// atomics of apps and instances.
#pragma once

#include <array>
#include <atomic>
#include <functional>
#include <list>
#include <memory>
#include <optional>
#include <thread>
#include <vector>

#include <boost/asio/awaitable.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/steady_timer.hpp>

#include "common/closable_context.hpp"
#include "common/metrics.hpp"
#include "config/config.hpp"
#include "proxy/deadline.hpp"
#include "proxy/listen.hpp"
#include "proxy/router.hpp"
#include "tls/challenges.hpp"
#include "tls/context.hpp"
#include "scaler/control.hpp"

namespace wakegate::proxy {

// Limits of limits_config / app_settings that were hit, one counter each (label `limit`).
enum class limit_hit : std::size_t {
  header_size,              // 431
  header_count,             // 431
  header_timeout,           // 408 + close (slowloris)
  idle_timeout,             // keep-alive connection closed after idle_timeout
  body_size,                // 413 (max_body)
  pipelined,                // connection closed after max_pipelined requests sent ahead
  connections,              // accepting paused at max_connections
  upstream_connect_timeout,  // 502
  response_header_timeout,  // 504
  request_timeout,          // 504 or close (request_timeout)
  io_timeout,               // 408, 504, a cut response or a closed tunnel (io_timeout)
  count_
};
const char* limit_name(limit_hit l) noexcept;

// Counters of the data plane that belong to no app.
struct proxy_metrics {
  metrics::counter connections_accepted;
  metrics::sharded_gauge connections_open;
  metrics::sharded_gauge tunnels_open;  // upgraded connections (WebSocket) being relayed
  metrics::counter unrouted;         // unknown host: 404
  metrics::counter bad_requests;     // refused before routing: 400/408/431/505
  // https listener: handshakes by result
  metrics::counter tls_full, tls_resumed, tls_failed, tls_timeout;
  std::array<metrics::counter, static_cast<std::size_t>(limit_hit::count_)> limits;
  void hit(limit_hit l) noexcept { limits[static_cast<std::size_t>(l)].add(); }
};

// Settings of the request path that a reload may change; each thread keeps its own copy.
struct proxy_options {
  config::limits_config limits;
  bool access_log = true;
  bool redirect_http = false;  // tls.redirect_http
};

class server;

// One proxy thread.
struct worker {
  // The io_context runs on this worker's thread only, and only that thread uses its sockets and
  // timers (the control plane posts to it): Asio need not lock each socket's reactor state
  // (BOOST_ASIO_CONCURRENCY_HINT_UNSAFE_IO; posts from other threads stay safe).
  explicit worker(std::size_t index_) : index(index_), ioc(BOOST_ASIO_CONCURRENCY_HINT_UNSAFE_IO) {
    deadlines.attach(ioc);
  }
  ~worker() { deadlines.detach(); }  // its timer goes before the io_context, its slot list after
  worker(const worker&) = delete;
  worker& operator=(const worker&) = delete;
  const std::size_t index;  // == this_shard on its thread
  // Timeouts of this thread's connections. Declared before ioc: the session frames the
  // io_context destroys still unregister from it.
  deadline_sweeper deadlines;
  closable_context ioc;
  std::optional<boost::asio::executor_work_guard<boost::asio::io_context::executor_type>> work;
  server* owner = nullptr;
  std::shared_ptr<const router> routes = std::make_shared<const router>();
  std::shared_ptr<const proxy_options> opts = std::make_shared<const proxy_options>();
  std::optional<boost::asio::ip::tcp::acceptor> acceptor;
  // Connections waiting for their next request; closed at once when draining.
  std::list<boost::asio::ip::tcp::socket*> idle;
  // Open tunnels (101 Switching Protocols, proxy/tunnel.hpp): each entry ends one; called when draining.
  std::list<std::function<void()>> tunnels;
  bool draining = false;
  bool cut = false;  // shutdown cut the requests still open (server::cut_all): their failures are ours
  // Client connections of this thread, and the accept loop's wait while at max_connections.
  std::size_t open = 0;
  std::optional<boost::asio::steady_timer> accept_resume;
  std::thread thread;
  // HTTPS (tls/): its listener, the certificates and ticket keys its handshakes use, and the
  // ACME HTTP-01 answers of the http listener; replaced by posts from the control thread.
  std::optional<boost::asio::ip::tcp::acceptor> tls_acceptor;
  listen_lock acceptor_lock, tls_acceptor_lock;  // the first worker's: held while it listens
  std::uint16_t https_port = 0;
  std::shared_ptr<const tls::cert_set> certs;
  std::shared_ptr<const tls::ticket_keys> tickets;
  std::shared_ptr<const tls::challenge_map> challenges;
};

class server {
 public:
  explicit server(const config::config& cfg);
  ~server();

  std::vector<boost::asio::any_io_executor> executors();
  // The control plane is built from executors(), so it is attached after construction.
  void attach(scaler::control_plane& control) noexcept { control_ = &control; }
  // After stop(), before the control plane is destroyed: the requests still open on the stopped
  // threads are destroyed with the server, after the control plane, and must not report to it.
  void detach() noexcept { control_ = nullptr; }
  // The shutdown deadline: every connection still open has its pending operation end as at a
  // timeout (deadline_sweeper::expire_all), so requests still running are cut now.
  void cut_all();

  // Binds the listeners (throws on failure, e.g. address in use) and starts the threads.
  // Returns the bound address (port filled in when the config said 0).
  boost::asio::ip::tcp::endpoint start();
  // The https listener's bound address once started (nullopt without listen.https).
  std::optional<boost::asio::ip::tcp::endpoint> https_endpoint() const { return https_ep_; }

  // Control thread: certificates, ticket keys and ACME challenge answers for every proxy thread.
  void set_certificates(std::shared_ptr<const tls::cert_set> certs);
  void set_ticket_keys(std::shared_ptr<const tls::ticket_keys> keys);
  void set_challenges(std::shared_ptr<const tls::challenge_map> challenges);

  // Control thread: a new set of apps to route (posted to every proxy thread).
  void set_apps(const std::vector<scaler::app_ptr>& apps);

  // Live-reloadable settings (access log on/off, limits).
  void set_options(const config::config& cfg);

  // Stop accepting, close idle keep-alive connections, let busy ones finish their response.
  void begin_drain();
  // Connections still open (any thread).
  std::int64_t open_connections() const { return stats_.connections_open.value(); }
  // Stops the threads (after drain or at the shutdown deadline) and joins them.
  void stop();

  void write_metrics(metrics::text_writer& w) const;

  scaler::control_plane& control() noexcept { return *control_; }
  scaler::control_plane* attached_control() noexcept { return control_; }  // nullptr after detach()
  proxy_metrics& stats() noexcept { return stats_; }

 private:
  boost::asio::awaitable<void> accept_loop(worker& w, bool tls);
  static boost::asio::awaitable<void> trim_pools(worker& w);

  config::endpoint listen_;
  std::optional<config::endpoint> listen_https_;
  std::optional<boost::asio::ip::tcp::endpoint> https_ep_;
  scaler::control_plane* control_ = nullptr;
  std::vector<std::unique_ptr<worker>> workers_;
  proxy_metrics stats_;
  bool started_ = false;
};

}  // namespace wakegate::proxy
