#include "proxy/headers.hpp"

#include <array>
#include <cstdint>
#include <random>
#include <vector>

#include <boost/beast/http/field.hpp>

#include "proxy/text_scan.hpp"

namespace wakegate::proxy {

namespace http = boost::beast::http;

namespace {

// The field names Connection fields list (hop-by-hop, RFC 9110 7.6.1), except the close and
// keep-alive options and the framing fields Host, Content-Length and Transfer-Encoding, which the
// message's own framing governs. Views into the field values: 16 in place, any more in `more`
// (found by black-box testing: names past the 16th were forwarded).
struct connection_names {
  std::array<std::string_view, 16> names;
  std::size_t count = 0;
  std::vector<std::string_view> more;

  void add_list(std::string_view v) {
    while (!v.empty()) {
      auto comma = v.find(',');
      auto token = trim_ows(v.substr(0, comma));
      v = comma == std::string_view::npos ? std::string_view{} : v.substr(comma + 1);
      if (token.empty() || iequals(token, "close") || iequals(token, "keep-alive")) continue;
      if (iequals(token, "host") || iequals(token, "content-length") || iequals(token, "transfer-encoding")) continue;
      if (count < names.size()) names[count++] = token;
      else more.push_back(token);
    }
  }
  bool contains(std::string_view name) const noexcept {
    for (std::size_t i = 0; i < count; ++i)
      if (iequals(name, names[i])) return true;
    for (auto n : more)
      if (iequals(name, n)) return true;
    return false;
  }
};

}  // namespace

void strip_hop_by_hop(http::fields& f) {
  // Headers named in Connection are hop-by-hop too. Collect names first: erasing invalidates.
  connection_names named;
  for (auto it = f.find(http::field::connection); it != f.end() && it->name() == http::field::connection; ++it)
    named.add_list(it->value());
  // One pass, comparing field codes: no lookups by name. The Connection values the names point
  // into are erased last, once nothing reads them any more.
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
        if (named.contains(it->name_string())) {
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
  if (up == f.end() || trim_ows(up->value()).empty()) return false;
  for (auto it = f.find(http::field::connection); it != f.end() && it->name() == http::field::connection; ++it) {
    std::string_view v = it->value();
    while (!v.empty()) {
      auto comma = v.find(',');
      if (iequals(trim_ows(v.substr(0, comma)), "upgrade")) return true;
      v = comma == std::string_view::npos ? std::string_view{} : v.substr(comma + 1);
    }
  }
  return false;
}

namespace {

// splitmix64 over a per-thread state seeded once from std::random_device: a few instructions per
// id (mt19937_64 and its thread_local guard cost ~15x more on every request). Not for secrets.
std::uint64_t next_id_bits() noexcept {
  thread_local std::uint64_t state = 0;  // constant-initialized: no guard on each access
  if (state == 0) {
    std::random_device rd;
    state = (static_cast<std::uint64_t>(rd()) << 32 ^ rd()) | 1;
  }
  std::uint64_t z = (state += 0x9e3779b97f4a7c15ULL);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
  return z ^ (z >> 31);
}

constexpr std::array<char, 512> make_hex_pairs() {
  constexpr char hex[] = "0123456789abcdef";
  std::array<char, 512> t{};
  for (int b = 0; b < 256; ++b) {
    t[static_cast<std::size_t>(2 * b)] = hex[b >> 4];
    t[static_cast<std::size_t>(2 * b + 1)] = hex[b & 15];
  }
  return t;
}
constexpr auto hex_pairs = make_hex_pairs();

}  // namespace

void make_request_id(char (&out)[32]) noexcept {
  for (int half = 0; half < 2; ++half) {
    std::uint64_t v = next_id_bits();
    for (int i = 0; i < 8; ++i, v >>= 8) {
      const char* pair = &hex_pairs[(v & 0xff) * 2];
      out[half * 16 + i * 2] = pair[0];
      out[half * 16 + i * 2 + 1] = pair[1];
    }
  }
}

std::string_view request_id_of(const http::fields& f, char (&buf)[32]) {
  for (const auto& field : f) {
    if (field.name() != http::field::unknown) continue;
    auto n = field.name_string();
    if (n.size() == 12 && iequals(n, "x-request-id") && !trim_ows(field.value()).empty()) return field.value();
  }
  make_request_id(buf);
  return {buf, sizeof buf};
}

namespace {

// lookalike: one of those names spelled with '_' for '-' (X_Forwarded_Proto). CGI and WSGI
// servers map both spellings to one variable, so a client's lookalike would be merged with
// wakegate's field: dropped, as nginx drops names with '_' (found by black-box testing).
enum class forwarded_field { none, xff, xfp, xfh, request_id, lookalike };

// `name` (lower case, '-' separated) in either spelling; `n` has its size.
bool is_spelling_of(std::string_view n, std::string_view name) noexcept {
  for (std::size_t i = 0; i < n.size(); ++i) {
    const char c = ascii_lower(n[i]);
    if (c != name[i] && !(c == '_' && name[i] == '-')) return false;
  }
  return true;
}

forwarded_field classify(std::string_view n) noexcept {
  auto exact_or_lookalike = [&](std::string_view name, forwarded_field f) {
    if (iequals(n, name)) return f;
    return n.find('_') != std::string_view::npos && is_spelling_of(n, name) ? forwarded_field::lookalike
                                                                            : forwarded_field::none;
  };
  switch (n.size()) {
    case 12:
      return exact_or_lookalike("x-request-id", forwarded_field::request_id);
    case 15:
      return exact_or_lookalike("x-forwarded-for", forwarded_field::xff);
    case 16:
      return exact_or_lookalike("x-forwarded-host", forwarded_field::xfh);
    case 17:
      return exact_or_lookalike("x-forwarded-proto", forwarded_field::xfp);
    default:
      return forwarded_field::none;
  }
}

void append_line(std::string& out, std::string_view name, std::string_view value) {
  out.append(name).append(": ").append(value).append("\r\n");
}

// Every value of the fields `which` (by code) or named `name`, joined with ", ".
void append_joined(std::string& out, const http::fields& f, http::field which) {
  bool first = true;
  for (const auto& field : f) {
    if (field.name() != which) continue;
    if (!first) out.append(", ");
    out.append(field.value());
    first = false;
  }
}

}  // namespace

void append_forward_request(const http::request_header<>& req, const forward_info& info,
                            std::string_view request_id, bool close, bool upgrade, std::string& out) {
  // Pass 1: the names listed in Connection, and what the fields after the client's depend on.
  connection_names named;
  std::string_view host;
  bool has_te = false, has_xff = false, has_upgrade = false;
  for (const auto& field : req) {
    switch (field.name()) {
      case http::field::connection:
        named.add_list(field.value());
        break;
      case http::field::host:
        if (host.empty()) host = field.value();
        break;
      case http::field::transfer_encoding:
        has_te = true;
        break;
      case http::field::upgrade:
        has_upgrade = true;
        break;
      case http::field::unknown:
        if (!has_xff && classify(field.name_string()) == forwarded_field::xff) has_xff = true;
        break;
      default:
        break;
    }
  }
  // Pass 2: the request line and the client's fields that go through as they are.
  out.append(req.method_string()).push_back(' ');
  out.append(req.target()).append(" HTTP/1.1\r\n");
  for (const auto& field : req) {
    switch (field.name()) {
      case http::field::connection:
      case http::field::keep_alive:
      case http::field::proxy_connection:
      case http::field::te:
      case http::field::trailer:
      case http::field::upgrade:
      case http::field::expect:
      case http::field::transfer_encoding:
        continue;
      case http::field::host:
      case http::field::content_length:
        break;  // framing: never dropped by a Connection name
      case http::field::unknown:
        if (classify(field.name_string()) != forwarded_field::none) continue;
        [[fallthrough]];
      default:
        if (named.contains(field.name_string())) continue;
        break;
    }
    append_line(out, field.name_string(), field.value());
  }

  // What wakegate sets.
  if (has_te) {
    out.append("Transfer-Encoding: ");
    append_joined(out, req, http::field::transfer_encoding);
    out.append("\r\n");
  }
  out.append("X-Forwarded-For: ");
  if (has_xff) {
    for (const auto& field : req) {
      // An empty value adds no element (it would leave ", client" behind).
      if (field.name() == http::field::unknown && classify(field.name_string()) == forwarded_field::xff &&
          !field.value().empty())
        out.append(field.value()).append(", ");
    }
  }
  out.append(info.client_ip).append("\r\n");
  append_line(out, "X-Forwarded-Proto", info.proto);
  if (!host.empty()) append_line(out, "X-Forwarded-Host", host);
  append_line(out, "X-Request-Id", request_id);
  if (upgrade) {
    out.append("Connection: upgrade\r\n");
    if (has_upgrade) {
      out.append("Upgrade: ");
      append_joined(out, req, http::field::upgrade);
      out.append("\r\n");
    }
  } else if (close) {
    out.append("Connection: close\r\n");
  }
  out.append("\r\n");
}

}  // namespace wakegate::proxy
