#include "tests/support/admin.hpp"

#include <unistd.h>

#include <boost/json/parse.hpp>
#include <cstdlib>
#include <sstream>

#include "tests/support/http_client.hpp"
#include "tests/support/process.hpp"
#include "tests/support/wait.hpp"

namespace wakegate::test {

namespace {

int int_field(const boost::json::object& o, const char* key) {
  auto v = json_number(o, key);
  return v ? static_cast<int>(*v) : 0;
}

std::string find_in_path(const std::string& name) {
  const char* path = std::getenv("PATH");
  std::string dirs = path ? path : "/usr/local/bin:/usr/bin:/bin";
  std::istringstream ss(dirs);
  std::string dir;
  while (std::getline(ss, dir, ':')) {
    if (dir.empty()) continue;
    std::string candidate = dir + "/" + name;
    if (::access(candidate.c_str(), X_OK) == 0) return candidate;
  }
  return {};
}

}  // namespace

// ---- /status -----------------------------------------------------------------------------------

std::optional<boost::json::value> fetch_status_json(std::uint16_t admin_port) {
  client_options o;
  o.io_timeout = 5s;
  auto r = http_get(admin_port, "127.0.0.1", "/status", {}, o);
  if (!r.ok() || r.status != 200) return std::nullopt;
  boost::system::error_code ec;
  auto v = boost::json::parse(r.body, ec);
  if (ec) return std::nullopt;
  return v;
}

int app_status::count(const std::string& state) const {
  int n = 0;
  for (const auto& i : instances)
    if (i.state == state) ++n;
  return n;
}

int app_status::live() const {
  int n = 0;
  for (const auto& i : instances)
    if (i.live()) ++n;
  return n;
}

const instance_status* app_status::find(const std::string& id) const {
  for (const auto& i : instances)
    if (i.id == id) return &i;
  return nullptr;
}

std::vector<std::string> app_status::ids(const std::string& state) const {
  std::vector<std::string> out;
  for (const auto& i : instances)
    if (state.empty() || i.state == state) out.push_back(i.id);
  return out;
}

std::optional<std::vector<app_status>> fetch_status(std::uint16_t admin_port) {
  auto v = fetch_status_json(admin_port);
  if (!v || !v->is_object()) return std::nullopt;
  const auto& root = v->as_object();
  auto apps_it = root.find("apps");
  if (apps_it == root.end() || !apps_it->value().is_array()) return std::nullopt;
  std::vector<app_status> out;
  for (const auto& a : apps_it->value().as_array()) {
    if (!a.is_object()) continue;
    const auto& ao = a.as_object();
    app_status s;
    s.name = json_string(ao, "name");
    if (auto h = ao.find("hosts"); h != ao.end() && h->value().is_array())
      for (const auto& host : h->value().as_array())
        if (host.is_string()) s.hosts.emplace_back(host.as_string());
    s.min_instances = int_field(ao, "min_instances");
    s.max_instances = int_field(ao, "max_instances");
    s.desired = int_field(ao, "desired");
    s.in_flight = int_field(ao, "in_flight");
    s.queue_length = int_field(ao, "queue_length");
    s.last_error = json_string(ao, "last_error");
    if (auto p = ao.find("panic"); p != ao.end() && p->value().is_bool()) s.panic = p->value().as_bool();
    s.start_estimate_seconds = json_number(ao, "start_estimate_seconds").value_or(0);
    s.keep_warm_seconds = json_number(ao, "keep_warm_seconds").value_or(0);
    if (auto is = ao.find("instances"); is != ao.end() && is->value().is_array()) {
      for (const auto& i : is->value().as_array()) {
        if (!i.is_object()) continue;
        const auto& io = i.as_object();
        instance_status in;
        in.id = json_string(io, "id");
        in.state = json_string(io, "state");
        in.address = json_string(io, "address");
        in.port = int_field(io, "port");
        in.pid = static_cast<pid_t>(int_field(io, "pid"));
        in.container = json_string(io, "container");
        in.in_flight = int_field(io, "in_flight");
        in.age_seconds = json_number(io, "age_seconds").value_or(0);
        if (auto o = io.find("outdated"); o != io.end() && o->value().is_bool()) in.outdated = o->value().as_bool();
        s.instances.push_back(std::move(in));
      }
    }
    out.push_back(std::move(s));
  }
  return out;
}

std::optional<app_status> fetch_app_status(std::uint16_t admin_port, const std::string& app) {
  auto all = fetch_status(admin_port);
  if (!all) return std::nullopt;
  for (auto& a : *all)
    if (a.name == app) return std::move(a);
  return std::nullopt;
}

bool wait_app(std::uint16_t admin_port, const std::string& app, const std::function<bool(const app_status&)>& pred,
              std::chrono::milliseconds timeout, app_status* last) {
  return wait_until(
      [&] {
        auto s = fetch_app_status(admin_port, app);
        if (!s) return false;
        if (last) *last = *s;
        return pred(*s);
      },
      timeout, std::chrono::milliseconds(20));
}

bool wait_one_ready(std::uint16_t admin_port, const std::string& app, std::chrono::milliseconds timeout,
                    app_status* last) {
  return wait_app(admin_port, app, [](const app_status& a) { return a.count("ready") == 1; }, timeout, last);
}

// ---- /metrics ----------------------------------------------------------------------------------

std::optional<std::string> fetch_metrics(std::uint16_t admin_port) {
  client_options o;
  o.io_timeout = 5s;
  auto r = http_get(admin_port, "127.0.0.1", "/metrics", {}, o);
  if (!r.ok() || r.status != 200) return std::nullopt;
  return r.body;
}

std::vector<metric_sample> parse_metrics(const std::string& text) {
  std::vector<metric_sample> out;
  std::istringstream in(text);
  std::string line;
  while (std::getline(in, line)) {
    if (line.empty() || line[0] == '#') continue;
    metric_sample s;
    std::size_t i = 0;
    while (i < line.size() && line[i] != '{' && line[i] != ' ' && line[i] != '\t') ++i;
    s.name = line.substr(0, i);
    if (i < line.size() && line[i] == '{') {
      ++i;
      for (;;) {
        while (i < line.size() && (line[i] == ' ' || line[i] == ',')) ++i;
        if (i >= line.size() || line[i] == '}') {
          ++i;
          break;
        }
        std::size_t eq = line.find('=', i);
        if (eq == std::string::npos) break;
        std::string key = line.substr(i, eq - i);
        i = eq + 1;
        if (i >= line.size() || line[i] != '"') break;
        ++i;
        std::string value;
        while (i < line.size() && line[i] != '"') {
          if (line[i] == '\\' && i + 1 < line.size()) {
            ++i;
            value += line[i] == 'n' ? '\n' : line[i];
          } else {
            value += line[i];
          }
          ++i;
        }
        ++i;  // closing quote
        s.labels[key] = value;
      }
    }
    while (i < line.size() && (line[i] == ' ' || line[i] == '\t')) ++i;
    std::size_t end = line.find_first_of(" \t", i);
    std::string number = line.substr(i, end == std::string::npos ? std::string::npos : end - i);
    if (number.empty()) continue;
    char* stop = nullptr;
    s.value = std::strtod(number.c_str(), &stop);
    if (stop == number.c_str()) continue;
    out.push_back(std::move(s));
  }
  return out;
}

std::optional<double> metric_value(const std::string& text, const std::string& name, const label_set& labels) {
  for (const auto& s : parse_metrics(text))
    if (s.name == name && s.labels == labels) return s.value;
  return std::nullopt;
}

double metric_sum(const std::string& text, const std::string& name, const label_set& labels) {
  double sum = 0;
  for (const auto& s : parse_metrics(text)) {
    if (s.name != name) continue;
    bool match = true;
    for (const auto& [k, v] : labels) {
      auto it = s.labels.find(k);
      if (it == s.labels.end() || it->second != v) {
        match = false;
        break;
      }
    }
    if (match) sum += s.value;
  }
  return sum;
}

std::string metric_type(const std::string& text, const std::string& family) {
  std::istringstream in(text);
  std::string line;
  std::string prefix = "# TYPE " + family + " ";
  while (std::getline(in, line))
    if (line.rfind(prefix, 0) == 0) return line.substr(prefix.size());
  return {};
}

std::optional<double> scrape_value(std::uint16_t admin_port, const std::string& name, const label_set& labels) {
  auto text = fetch_metrics(admin_port);
  if (!text) return std::nullopt;
  return metric_value(*text, name, labels);
}

bool wait_metric(std::uint16_t admin_port, const std::string& name, const label_set& labels, double expected,
                 std::chrono::milliseconds timeout, std::optional<double>* last, std::optional<double> absent) {
  return wait_until(
      [&] {
        auto text = fetch_metrics(admin_port);
        if (!text) return false;
        auto v = metric_value(*text, name, labels);
        if (!v) v = absent;
        if (last) *last = v;
        return v && *v == expected;
      },
      timeout, std::chrono::milliseconds(20));
}

promtool_result promtool_check_metrics(const std::string& text) {
  promtool_result r;
  std::string promtool = find_in_path("promtool");
  if (promtool.empty()) {
    r.output = "promtool not found in PATH";
    return r;
  }
  auto c = run_command({promtool, "check", "metrics"}, text, 30s);
  r.ran = !c.timed_out && c.exit_code != 127;
  r.exit_code = c.exit_code;
  r.output = c.out + c.err;
  return r;
}

}  // namespace wakegate::test
