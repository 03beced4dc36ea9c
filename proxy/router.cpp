#include "proxy/router.hpp"

namespace wakegate::proxy {

router::router(const std::vector<scaler::app_ptr>& apps) : apps_(apps) {
  for (const auto& a : apps) {
    route r{a, a->cfg_};
    for (const auto& h : a->cfg_->hosts) {
      if (h.starts_with("*.")) wildcard_.emplace(h.substr(2), r);
      else exact_.emplace(h, r);
    }
  }
}

bool router::normalize(std::string_view host, std::string& out) noexcept {
  out.clear();
  if (!host.empty() && host.front() == '[') {  // IPv6 literal
    auto close = host.find(']');
    if (close == std::string_view::npos) return false;
    host = host.substr(0, close + 1);
  } else if (auto colon = host.rfind(':'); colon != std::string_view::npos) {
    host = host.substr(0, colon);
  }
  if (!host.empty() && host.back() == '.') host.remove_suffix(1);  // absolute form "a.b."
  if (host.empty() || host.size() > 255) return false;
  for (char c : host) out.push_back(c >= 'A' && c <= 'Z' ? static_cast<char>(c - 'A' + 'a') : c);
  return true;
}

const route* router::find(std::string_view host) const noexcept {
  thread_local std::string name;
  name.reserve(256);
  if (!normalize(host, name)) return nullptr;
  if (auto it = exact_.find(std::string_view(name)); it != exact_.end()) return &it->second;
  if (wildcard_.empty()) return nullptr;
  auto dot = name.find('.');
  if (dot == std::string::npos || dot == 0) return nullptr;
  if (auto it = wildcard_.find(std::string_view(name).substr(dot + 1)); it != wildcard_.end()) return &it->second;
  return nullptr;
}

}  // namespace wakegate::proxy
