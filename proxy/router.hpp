// Host -> app routing table. Built by the control thread on every config change, then each proxy
// thread gets the same immutable table; lookups allocate nothing.
#pragma once

#include <memory>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "config/config.hpp"
#include "scaler/app.hpp"

namespace wakegate::proxy {

struct route {
  scaler::app_ptr app;
  std::shared_ptr<const config::app_config> cfg;  // the config the table was built with
};

class router {
 public:
  router() = default;
  explicit router(const std::vector<scaler::app_ptr>& apps);

  // `host` is the Host header as received: case-insensitive, port ignored, exact names first,
  // then a `*.suffix` wildcard matching exactly one leading label. nullptr when nothing matches.
  const route* find(std::string_view host) const noexcept;

  // Lower-cases `host` and strips the port (":8080", or the brackets and port of "[::1]:8080")
  // into `out`; false when the name is too long or malformed.
  static bool normalize(std::string_view host, std::string& out) noexcept;

  // Every app of the table, once each.
  const std::vector<scaler::app_ptr>& apps() const noexcept { return apps_; }

 private:
  std::vector<scaler::app_ptr> apps_;
  struct hash {
    using is_transparent = void;
    std::size_t operator()(std::string_view s) const noexcept { return std::hash<std::string_view>{}(s); }
  };
  std::unordered_map<std::string, route, hash, std::equal_to<>> exact_;
  std::unordered_map<std::string, route, hash, std::equal_to<>> wildcard_;  // key: suffix after "*."
};

}  // namespace wakegate::proxy
