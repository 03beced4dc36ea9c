#include "proxy/headers.hpp"

#include <array>
#include <random>

#include <boost/beast/http/field.hpp>

namespace wakegate::proxy {

namespace http = boost::beast::http;

namespace {

bool iequals(std::string_view a, std::string_view b) noexcept {
  if (a.size() != b.size()) return false;
  for (std::size_t i = 0; i < a.size(); ++i) {
    char x = a[i], y = b[i];
    if (x >= 'A' && x <= 'Z') x = static_cast<char>(x - 'A' + 'a');
    if (y >= 'A' && y <= 'Z') y = static_cast<char>(y - 'A' + 'a');
    if (x != y) return false;
  }
  return true;
}

std::string_view trim(std::string_view s) noexcept {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return s;
}

}  // namespace

void strip_hop_by_hop(http::fields& f) {
  // Headers named in Connection are hop-by-hop too. Collect names first: erasing invalidates.
  std::array<std::string_view, 16> named;
  std::size_t count = 0;
  for (auto it = f.find(http::field::connection); it != f.end() && it->name() == http::field::connection; ++it) {
    std::string_view v = it->value();
    while (!v.empty()) {
      auto comma = v.find(',');
      auto token = trim(v.substr(0, comma));
      v = comma == std::string_view::npos ? std::string_view{} : v.substr(comma + 1);
      if (token.empty() || iequals(token, "close") || iequals(token, "keep-alive")) continue;
      if (iequals(token, "host") || iequals(token, "content-length") || iequals(token, "transfer-encoding")) continue;
      if (count < named.size()) named[count++] = token;
    }
  }
  // One pass, comparing field codes: no lookups by name. The Connection values the names point
  // into are erased last, once nothing reads them any more.
  auto named_here = [&](std::string_view name) {
    for (std::size_t i = 0; i < count; ++i)
      if (iequals(name, named[i])) return true;
    return false;
  };
  for (auto it = f.begin(); it != f.end();) {
    switch (it->name()) {
      case http::field::keep_alive:
      case http::field::proxy_connection:
      case http::field::te:
      case http::field::trailer:
      case http::field::upgrade:
        it = f.erase(it);
        continue;
      case http::field::connection:
        ++it;
        continue;
      default:
        if (count > 0 && named_here(it->name_string())) {
          it = f.erase(it);
          continue;
        }
        ++it;
    }
  }
  f.erase(http::field::connection);
}

bool wants_upgrade(const http::fields& f) {
  auto up = f.find(http::field::upgrade);
  if (up == f.end() || trim(up->value()).empty()) return false;
  for (auto it = f.find(http::field::connection); it != f.end() && it->name() == http::field::connection; ++it) {
    std::string_view v = it->value();
    while (!v.empty()) {
      auto comma = v.find(',');
      if (iequals(trim(v.substr(0, comma)), "upgrade")) return true;
      v = comma == std::string_view::npos ? std::string_view{} : v.substr(comma + 1);
    }
  }
  return false;
}

void make_request_id(char (&out)[32]) noexcept {
  static constexpr char hex[] = "0123456789abcdef";
  thread_local std::mt19937_64 rng{std::random_device{}()};
  for (int half = 0; half < 2; ++half) {
    auto v = rng();
    for (int i = 0; i < 16; ++i) out[half * 16 + i] = hex[(v >> (i * 4)) & 15];
  }
}

std::string_view rewrite_request(http::fields& f, const forward_info& info) {
  strip_hop_by_hop(f);

  // One pass to find what is there; our own X-Forwarded-Proto/Host replace the client's.
  auto xff = f.end(), rid = f.end(), host = f.end();
  for (auto it = f.begin(); it != f.end();) {
    if (it->name() == http::field::host) {
      if (host == f.end()) host = it;
    } else if (it->name() == http::field::unknown) {
      auto n = it->name_string();
      if (n.size() == 15 && iequals(n, "x-forwarded-for")) {
        if (xff == f.end()) xff = it;
      } else if ((n.size() == 17 && iequals(n, "x-forwarded-proto")) || (n.size() == 16 && iequals(n, "x-forwarded-host"))) {
        it = f.erase(it);
        continue;
      } else if (n.size() == 12 && iequals(n, "x-request-id")) {
        if (rid == f.end() || rid->value().empty()) rid = it;
      }
    }
    ++it;
  }
  if (xff == f.end()) {
    f.insert("X-Forwarded-For", info.client_ip);
  } else {
    std::string joined;
    joined.reserve(xff->value().size() + 2 + info.client_ip.size());
    joined.append(xff->value()).append(", ").append(info.client_ip);
    f.set("X-Forwarded-For", joined);
  }
  f.insert("X-Forwarded-Proto", info.proto);
  if (host != f.end()) f.insert("X-Forwarded-Host", host->value());
  if (rid == f.end() || rid->value().empty()) {
    char id[32];
    make_request_id(id);
    if (rid != f.end()) f.erase("X-Request-Id");
    f.insert("X-Request-Id", std::string_view(id, sizeof id));
    rid = f.find("x-request-id");
  }
  return rid->value();
}

std::string_view prepare_forward(http::request<http::buffer_body>& req, const forward_info& info, bool close,
                                 bool upgrade) {
  std::string protocols;  // the Upgrade header, kept across the hop-by-hop removal
  if (upgrade) {
    for (auto it = req.find(http::field::upgrade); it != req.end() && it->name() == http::field::upgrade; ++it) {
      if (!protocols.empty()) protocols += ", ";
      protocols.append(it->value());
    }
  }
  auto id = rewrite_request(req, info);
  // Several Transfer-Encoding lines become one: Beast's serializer reads only the first line to
  // decide on chunked framing, while the instance would read all of them.
  auto te = req.find(http::field::transfer_encoding);
  if (te != req.end() && std::next(te) != req.end() && std::next(te)->name() == http::field::transfer_encoding) {
    std::string joined;
    for (; te != req.end() && te->name() == http::field::transfer_encoding; ++te) {
      if (!joined.empty()) joined += ", ";
      joined.append(te->value());
    }
    req.set(http::field::transfer_encoding, joined);
  }
  req.version(11);
  if (upgrade) {
    req.set(http::field::connection, "upgrade");
    req.set(http::field::upgrade, protocols);
    return id;  // a view into the X-Request-Id field, which stays where it is
  }
  req.keep_alive(!close);
  return id;
}

}  // namespace wakegate::proxy
