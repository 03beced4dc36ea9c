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

// The longest duration the loader accepts (ten years): run-time code adds durations to clock
// values in nanoseconds, which overflow beyond about 292 years from the clock's epoch.
inline constexpr duration max_duration = std::chrono::days(3650);

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

// backend.docker: a container per instance, run through the Docker Engine API.
enum class pull_policy { never, missing, always };

struct docker_backend {
  std::string image;                 // required, e.g. "nginx:1.25" or "registry.example.com/app@sha256:..."
  std::uint16_t port = 0;            // required: the port the app listens on inside the container
  std::vector<std::string> command;  // empty: the image's default command
  std::vector<std::pair<std::string, std::string>> env;     // never shown in /status or /metrics
  std::vector<std::pair<std::string, std::string>> labels;  // added to wakegate.app / wakegate.instance
  std::string network;               // empty: publish `port` on 127.0.0.1 (ephemeral host port)
  std::int64_t memory = 0;           // bytes; 0 = no limit
  std::int64_t nano_cpus = 0;        // cpus * 1e9; 0 = no limit
  pull_policy pull = pull_policy::missing;
  duration stop_timeout = 10s;       // SIGTERM, then SIGKILL after this (whole seconds, rounded up)
  bool operator==(const docker_backend&) const = default;
};

using backend = std::variant<process_backend, docker_backend>;

// `schedule:` -- min_instances raised during weekly time ranges, in a named time zone.
struct schedule_range {
  unsigned days = 0;        // bit d set: day d, 0 = Monday ... 6 = Sunday
  int from_minute = 0;      // minutes since local midnight, inclusive
  int to_minute = 24 * 60;  // exclusive; 24:00 allowed
  int min_instances = 0;
};
struct schedule_config {
  std::string time_zone = "UTC";  // a name under /usr/share/zoneinfo
  std::vector<schedule_range> ranges;
};

enum class scale_metric { concurrency, rps };

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
  // Knative-class policy (scaler/policy.hpp), Knative's defaults.
  scale_metric metric = scale_metric::concurrency;
  int target_rps = 100;             // with metric: rps, requests/s per instance
  duration panic_window = 6s;       // short window that detects bursts
  double panic_threshold = 2.0;     // 200%: panic when the panic window wants 2x the ready instances
  double target_utilization = 0.7;  // 70% of the target is what the scaler aims for
  double max_scale_up_rate = 1000;  // at most ceil(rate * ready) instances after one evaluation
  double max_scale_down_rate = 2;   // at least floor(ready / rate) instances after one evaluation
  int initial_instances = 1;        // started at once when the app wakes (or boots with min > 0)
  bool keep_warm_auto = false;      // keep_warm: auto
  schedule_config schedule;
  std::uint64_t max_body = 0;  // request body bytes; more: 413 (0 = no limit)
  duration request_timeout = duration::zero();  // request to end of response; 0 = none (then 504)
};

struct app_config {
  std::string name;
  std::vector<std::string> hosts;  // lower-case; exact or "*.suffix"
  app_settings settings;
  ::wakegate::config::backend backend;  // qualified: GCC rejects a member that reuses its type's name
  duration hsts{0};  // > 0: HTTPS responses carry Strict-Transport-Security: max-age=<seconds>
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

// tls.certificates[]: a PEM certificate chain and its private key (paths resolved against the config file).
struct certificate_file {
  std::string cert;
  std::string key;
  position pos;  // of the list item
};

// tls.acme: automatic certificates (RFC 8555) for app hosts no certificate file covers.
struct acme_config {
  std::string directory;          // the CA's directory URL (https://...)
  std::string email;              // account contact; may be empty
  std::string storage;            // directory for the account key, keys and certificates (0700)
  std::string ca_bundle;          // PEM roots to trust for the ACME server; empty: the system's
  duration renew_before = std::chrono::days(30);  // renew when the certificate expires sooner than this
  duration retry_after = 1min;    // first backoff after a failed order (doubles, at most 1 day)
  bool operator==(const acme_config&) const = default;
};

struct tls_config {
  std::vector<certificate_file> certificates;
  std::string default_certificate;  // a host name one certificate covers; empty: the first certificate
  bool redirect_http = false;       // plain-HTTP requests for covered hosts: 308 to https
  duration ticket_key_rotation = 12h;  // session-ticket encryption keys are replaced this often
  std::optional<acme_config> acme;
};

struct config {
  std::string file;      // the config file's path as given
  endpoint http{"0.0.0.0", 8080};
  std::optional<endpoint> https;  // listen.https; needs tls.certificates or tls.acme
  tls_config tls;
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
