// Loading YAML text in config unit tests: paths resolve against the source tree, a leading newline
// (from a raw string literal) is dropped so that line numbers match what the test shows.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "config/loader.hpp"

namespace wakegate::test {

inline config::load_result load_yaml(std::string_view yaml) {
  if (yaml.starts_with('\n')) yaml.remove_prefix(1);
  return config::load_string(yaml, "t.yaml", WAKEGATE_SOURCE_DIR);
}

// Each error as "t.yaml:LINE:COLUMN: message".
inline std::vector<std::string> yaml_errors(std::string_view yaml) {
  std::vector<std::string> out;
  for (const auto& d : load_yaml(yaml).errors) out.push_back(d.str());
  return out;
}

}  // namespace wakegate::test
