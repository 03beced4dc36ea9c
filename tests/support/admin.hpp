// The admin listener seen from tests: /status as JSON and as structs, /metrics samples, promtool.
#pragma once

#include <sys/types.h>

#include <boost/json/value.hpp>
#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <vector>

namespace wakegate::test {

// ---- /status -----------------------------------------------------------------------------------

// GET /status parsed; nullopt when the request failed, was not 200 or not JSON.
std::optional<boost::json::value> fetch_status_json(std::uint16_t admin_port);

struct instance_status {
  std::string id;
  std::string state;  // starting|ready|draining|stopped|failed
  std::string address;
  int port = 0;
  pid_t pid = 0;
  std::string container;  // "" for a process instance
  int in_flight = 0;
  double age_seconds = 0;
  bool outdated = false;  // runs a backend a reload replaced
  // starting, ready or draining: the instance counts against max_instances.
  bool live() const { return state == "starting" || state == "ready" || state == "draining"; }
};

struct app_status {
  std::string name;
  std::vector<std::string> hosts;
  int min_instances = 0;
  int max_instances = 0;
  int desired = 0;
  int in_flight = 0;
  int queue_length = 0;
  std::string last_error;
  bool panic = false;                 // the scaler is in panic mode
  double start_estimate_seconds = 0;  // moving estimate of an instance's start time
  double keep_warm_seconds = 0;       // idle period before the last instance goes
  std::vector<instance_status> instances;

  int count(const std::string& state) const;  // instances in `state`
  int live() const;                           // instances starting, ready or draining
  const instance_status* find(const std::string& id) const;
  std::vector<std::string> ids(const std::string& state = {}) const;  // all, or those in `state`
};

// Every app in /status (missing fields keep their defaults); nullopt when /status failed.
std::optional<std::vector<app_status>> fetch_status(std::uint16_t admin_port);
// One app; nullopt when /status failed or has no such app.
std::optional<app_status> fetch_app_status(std::uint16_t admin_port, const std::string& app);

// Polls /status until `pred` holds for `app` (which must be listed); the last status seen is copied
// to *last when given (for failure messages).
bool wait_app(std::uint16_t admin_port, const std::string& app, const std::function<bool(const app_status&)>& pred,
              std::chrono::milliseconds timeout, app_status* last = nullptr);

// wait_app until `app` has exactly one ready instance: how most tests wait for their app.
bool wait_one_ready(std::uint16_t admin_port, const std::string& app,
                    std::chrono::milliseconds timeout = std::chrono::seconds(15), app_status* last = nullptr);

// ---- /metrics ----------------------------------------------------------------------------------

using label_set = std::map<std::string, std::string>;

struct metric_sample {
  std::string name;
  label_set labels;
  double value = 0;
};

// GET /metrics body; nullopt when the request failed or was not 200.
std::optional<std::string> fetch_metrics(std::uint16_t admin_port);

// Parses the text exposition format (comments skipped, label values unescaped, +Inf/-Inf/NaN).
std::vector<metric_sample> parse_metrics(const std::string& text);

// The value of the sample `name` whose label set is exactly `labels`; nullopt if there is none.
std::optional<double> metric_value(const std::string& text, const std::string& name, const label_set& labels = {});
// The sum over samples `name` whose labels include all of `labels` (0 if none).
double metric_sum(const std::string& text, const std::string& name, const label_set& labels = {});
// The `# TYPE name <type>` of a family ("" if absent).
std::string metric_type(const std::string& text, const std::string& family);

// Fetches /metrics and returns metric_value(...); nullopt on failure or no such sample.
std::optional<double> scrape_value(std::uint16_t admin_port, const std::string& name, const label_set& labels = {});

// Polls /metrics until the sample equals `expected` (an absent sample counts as `absent`, by
// default never equal); the last value seen goes to *last when given.
bool wait_metric(std::uint16_t admin_port, const std::string& name, const label_set& labels, double expected,
                 std::chrono::milliseconds timeout, std::optional<double>* last = nullptr,
                 std::optional<double> absent = std::nullopt);

struct promtool_result {
  bool ran = false;  // promtool was found and ran
  int exit_code = -1;
  std::string output;  // stdout + stderr
};
// `promtool check metrics` with `text` on stdin.
promtool_result promtool_check_metrics(const std::string& text);

}  // namespace wakegate::test
