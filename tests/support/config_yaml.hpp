// Builds wakegate YAML configs for integration tests (short timings, the test app as backend).
#pragma once

#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace wakegate::test {

using key_values = std::vector<std::pair<std::string, std::string>>;

// <source dir>/tests/support/apps/test_app.py
std::string test_app_path();
// {/usr/bin/python3, test_app.py, "${PORT}", "--marker=<marker>"}
std::vector<std::string> test_app_command(const std::string& marker);
// The test app run by `/bin/sh -c "<shell> exec python3 test_app ..."`, with `arg` as the script's
// $0: the shell may exit first (a start that fails) or export settings (e.g. EXIT_AFTER_MS).
std::vector<std::string> test_app_after_shell(const std::string& shell, const std::string& arg, const std::string& marker);
// The test app's /raw target that makes the instance write `raw` as it is, then close.
std::string raw_target(std::string_view raw);

// A YAML double-quoted scalar ("..." with \\ and \" escaped).
std::string yaml_quote(const std::string& s);
// A YAML flow sequence of quoted scalars: ["a", "b"].
std::string yaml_flow_list(const std::vector<std::string>& items);

struct app_yaml {
  // The backend is the test app with --marker=<marker> unless command() sets another.
  app_yaml(std::string name_, std::vector<std::string> hosts_, std::string marker_);

  app_yaml& set(const std::string& key, const std::string& raw_value);  // a per-app key: set("min_instances", "1")
  app_yaml& env_var(const std::string& key, const std::string& value);  // backend.process.env (quoted)
  app_yaml& with_command(std::vector<std::string> argv);

  std::string name;
  std::vector<std::string> hosts;
  std::string marker;
  std::vector<std::string> command;  // empty: the test app
  key_values settings;               // raw YAML values
  key_values env;
  std::string stop_timeout = "2s";
  // When set: the lines under `backend:` (e.g. "      docker: {image: x, port: 8080}\n") instead
  // of the process backend.
  std::string raw_backend;
};

struct config_yaml {
  std::string http = "127.0.0.1:0";
  std::string admin = "127.0.0.1:0";
  std::string https;  // listen.https when set
  std::string shutdown_timeout = "5s";
  std::string scale_interval = "100ms";
  // `defaults:` keys, raw YAML values.
  key_values defaults{{"stable_window", "2s"}, {"scale_down_delay", "500ms"}, {"scale_to_zero_after", "2s"}};
  std::string readiness = "{ path: /, interval: 25ms, timeout: 1s }";  // under defaults; "" = none
  std::vector<std::string> extra;                                      // raw top-level lines
  std::vector<app_yaml> apps;

  std::string str() const;
  // Sets (or adds) a `defaults:` key.
  config_yaml& set_default(const std::string& key, const std::string& value);
};

}  // namespace wakegate::test
