// YAML -> config, with every problem reported as `FILE:LINE:COLUMN: message`.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "config/config.hpp"

namespace wakegate::config {

struct diagnostic {
  std::string file;
  int line = 0;    // 1-based
  int column = 0;  // 1-based
  std::string message;
  std::string str() const;  // "file:line:column: message"
};

struct load_result {
  std::optional<config> cfg;         // set only when `errors` is empty
  std::vector<diagnostic> errors;    // every problem found, in file order
  std::vector<diagnostic> warnings;  // not fatal
  bool ok() const { return errors.empty(); }
};

// One entry of a load_result's errors or warnings.
struct problem {
  const diagnostic* what;
  bool warning;
};

// Errors and warnings merged into file order (at the same position, the warning first).
std::vector<problem> in_file_order(const load_result& result);

// Reads and validates `path`. Never throws.
load_result load_file(const std::string& path);

// Validates YAML text; `file` names it in diagnostics, `base_dir` resolves relative paths.
load_result load_string(std::string_view yaml, const std::string& file, const std::string& base_dir);

// "250ms", "30s", "5m", "1h", "2d", "1m30s" -> milliseconds; nullopt when malformed,
// duration::max() when too large for 64-bit milliseconds (the loader refuses > max_duration).
std::optional<duration> parse_duration(std::string_view text);

// "65536", "64KiB", "10MiB", "1GiB" -> bytes; nullopt when malformed.
std::optional<std::uint64_t> parse_size(std::string_view text);

// "host:port", "[::1]:port" -> endpoint; nullopt when malformed.
std::optional<endpoint> parse_endpoint(std::string_view text);

}  // namespace wakegate::config
