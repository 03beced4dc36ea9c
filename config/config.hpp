// The configuration model: plain structs, filled and validated once by the loader (loader.hpp).
// Every duration and limit is a named field with its default here; docs/config.md documents them.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <utility>
#include <variant>
#include <vector>

namespace wakegate::config {

using duration = std::chrono::milliseconds;
using namespace std::chrono_literals;

// Where a value came from in the YAML file (1-based; 0 = not from the file).
struct position {
  int line = 0;
  int column = 0;
};

// A `host:port` listen address. `host` may be an IPv4 literal, an IPv6 literal written
// `[::1]:port` (stored without brackets) or `localhost`.
struct endpoint {
  std::string host;
  std::uint16_t port = 0;
  std::string text() const;  // "host:port", IPv6 in brackets
};

struct readiness_config {
  std::string path = "/";   // GET path; any status < 500 means ready
  duration interval = 25ms;  // probe period while an instance starts
  duration timeout = 1s;     // one probe's deadline
};

// backend.process: a local process per instance.
struct process_backend {
  std::vector<std::string> command;  // argv; `${PORT}` is replaced by the instance's port
  std::string cwd;                   // absolute (relative paths are resolved against the config file)
  std::vector<std::pair<std::string, std::string>> env;  // added to wakegate's environment; `${PORT}` expanded
  int stop_signal = 15;              // SIGTERM
  duration stop_timeout = 10s;       // then SIGKILL
};

using backend = std::variant<process_backend>;

// Keys that may be set under `defaults:` and overridden per app.
struct app_settings {
  int min_instances = 0;
  int max_instances = 10;
  int target_concurrency = 10;  // in-flight requests per instance the scaler aims for
  int max_concurrency = 0;      // hard per-instance limit; 0 = none
  duration scale_to_zero_after = 5min;
  duration scale_down_delay = 30s;
  duration stable_window = 60s;  // averaging window of in-flight requests
  int queue_size = 1000;         // requests held while no ready instance has room
  duration queue_timeout = 30s;  // held longer: 503 + Retry-After
  duration startup_timeout = 60s;
  readiness_config readiness;
  std::uint64_t max_body = 0;  // request body bytes; more: 413 (0 = no limit)
  duration request_timeout = duration::zero();  // request to end of response; 0 = none (then 504)
};

struct app_config {
  std::string name;
  std::vector<std::string> hosts;  // lower-case; exact or "*.suffix"
  app_settings settings;
  ::wakegate::config::backend backend;  // qualified: GCC rejects a member that reuses its type's name
  position pos;  // of the app's entry in `apps:`
};

// Connection and request limits of the edge, under `limits:` (docs/config.md).
struct limits_config {
  std::size_t max_header_bytes = 64 * 1024;  // request line + headers; more: 431
  std::size_t max_header_count = 100;        // header fields; more: 431
  std::size_t max_connections = 16384;       // open client connections; at the limit: stop accepting
  std::size_t max_pipelined = 16;            // requests sent ahead of their responses; then close
  duration header_timeout = 60s;             // to receive a request's headers
  duration idle_timeout = 60s;               // keep-alive connection with no request
  duration upstream_connect_timeout = 5s;
  duration upstream_header_timeout = 300s;   // from request sent to response headers: 504
  duration io_timeout = 300s;                // any one body read or write
  duration upstream_idle_timeout = 30s;      // pooled upstream connection unused this long: closed
  std::size_t upstream_idle_per_instance = 64;  // idle pooled connections kept per worker and instance
};

struct config {
  std::string file;      // the config file's path as given
  endpoint http{"0.0.0.0", 8080};
  endpoint admin{"127.0.0.1", 9090};
  duration shutdown_timeout = 30s;
  duration scale_interval = 1s;  // how often the scaler evaluates every app
  int workers = 0;               // proxy threads; 0 = number of cores
  bool access_log = true;        // one JSON line per request on stderr
  std::string admin_token;       // admin.token: bearer token required for /status; "" = none
  limits_config limits;
  std::vector<app_config> apps;
};

}  // namespace wakegate::config
