#include "tests/support/config_yaml.hpp"

#include <cstdio>

namespace wakegate::test {

std::string test_app_path() { return std::string(WAKEGATE_SOURCE_DIR) + "/tests/support/apps/test_app.py"; }

std::string raw_target(std::string_view raw) {
  std::string target = "/raw?r=";
  for (unsigned char ch : raw) {
    char hex[4];
    std::snprintf(hex, sizeof hex, "%%%02X", ch);
    target += hex;
  }
  return target;
}

std::vector<std::string> test_app_after_shell(const std::string& shell, const std::string& arg, const std::string& marker) {
  return {"/bin/sh", "-c", shell + " exec /usr/bin/python3 \"$1\" \"$2\" \"$3\"", arg, test_app_path(), "${PORT}",
          "--marker=" + marker};
}

std::vector<std::string> test_app_command(const std::string& marker) {
  return {"/usr/bin/python3", test_app_path(), "${PORT}", "--marker=" + marker};
}

std::string yaml_quote(const std::string& s) {
  std::string out = "\"";
  for (char c : s) {
    if (c == '"' || c == '\\') out += '\\';
    out += c;
  }
  out += '"';
  return out;
}

std::string yaml_flow_list(const std::vector<std::string>& items) {
  std::string out = "[";
  for (std::size_t i = 0; i < items.size(); ++i) {
    if (i) out += ", ";
    out += yaml_quote(items[i]);
  }
  return out + "]";
}

app_yaml::app_yaml(std::string name_, std::vector<std::string> hosts_, std::string marker_)
    : name(std::move(name_)), hosts(std::move(hosts_)), marker(std::move(marker_)) {}

app_yaml& app_yaml::set(const std::string& key, const std::string& raw_value) {
  for (auto& [k, v] : settings) {
    if (k == key) {
      v = raw_value;
      return *this;
    }
  }
  settings.emplace_back(key, raw_value);
  return *this;
}

app_yaml& app_yaml::env_var(const std::string& key, const std::string& value) {
  env.emplace_back(key, value);
  return *this;
}

app_yaml& app_yaml::with_command(std::vector<std::string> argv) {
  command = std::move(argv);
  return *this;
}

config_yaml& config_yaml::set_default(const std::string& key, const std::string& value) {
  for (auto& [k, v] : defaults) {
    if (k == key) {
      v = value;
      return *this;
    }
  }
  defaults.emplace_back(key, value);
  return *this;
}

std::string config_yaml::str() const {
  std::string y;
  y += "listen: { http: " + http + ", admin: " + admin + (https.empty() ? "" : ", https: " + https) + " }\n";
  y += "shutdown_timeout: " + shutdown_timeout + "\n";
  y += "scale_interval: " + scale_interval + "\n";
  for (const auto& line : extra) y += line + "\n";
  if (!defaults.empty() || !readiness.empty()) {
    y += "defaults:\n";
    for (const auto& [k, v] : defaults) y += "  " + k + ": " + v + "\n";
    if (!readiness.empty()) y += "  readiness: " + readiness + "\n";
  }
  y += "apps:\n";
  for (const auto& a : apps) {
    y += "  - name: " + a.name + "\n";
    y += "    hosts: " + yaml_flow_list(a.hosts) + "\n";
    for (const auto& [k, v] : a.settings) y += "    " + k + ": " + v + "\n";
    y += "    backend:\n";
    if (!a.raw_backend.empty()) {
      y += a.raw_backend;
      continue;
    }
    y += "      process:\n";
    y += "        command: " + yaml_flow_list(a.command.empty() ? test_app_command(a.marker) : a.command) + "\n";
    if (!a.env.empty()) {
      y += "        env:\n";
      for (const auto& [k, v] : a.env) y += "          " + k + ": " + yaml_quote(v) + "\n";
    }
    if (!a.stop_timeout.empty()) y += "        stop_timeout: " + a.stop_timeout + "\n";
  }
  return y;
}

}  // namespace wakegate::test
