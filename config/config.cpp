#include "config/config.hpp"

namespace wakegate::config {

std::string endpoint::text() const {
  // Only IPv6 literals contain ':'; they need brackets to keep the port unambiguous.
  if (host.find(':') != std::string::npos) return "[" + host + "]:" + std::to_string(port);
  return host + ":" + std::to_string(port);
}

}  // namespace wakegate::config
