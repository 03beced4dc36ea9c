#include "proxy/request_check.hpp"

#include <algorithm>
#include <string>

#include "proxy/text_scan.hpp"

namespace wakegate::proxy {

namespace http = boost::beast::http;

namespace {

// Not beast::iequals: in Boost 1.81 it reads one byte past the end after a mismatch in case only.
std::size_t scheme_length(std::string_view target) noexcept {
  auto starts = [&](std::string_view prefix) {
    return target.size() >= prefix.size() && iequals(target.substr(0, prefix.size()), prefix);
  };
  if (starts("http://")) return 7;
  if (starts("https://")) return 8;
  return 0;
}

}  // namespace

check_result check_request(http::request_parser<http::buffer_body>& p, const head_verdict& v) {
  if (v.status != 0) return {v.status, v.reason};
  auto& req = p.get();
  if (req.version() != 10 && req.version() != 11) return {505, "HTTP version not supported"};
  // Any token is a method (RFC 9110 9.1; check_head checked it): QUERY, BAN and the like are
  // forwarded as they are, as nginx and HAProxy do (found by black-box testing: Beast's verb
  // list decided). Beast names them verb::unknown: not idempotent, so never sent twice.

  int hosts = 0;
  for (auto it = req.find(http::field::host); it != req.end() && it->name() == http::field::host; ++it) ++hosts;
  if (hosts > 1) return {400, "several Host headers"};
  if (hosts == 0 && req.version() == 11) return {400, "missing Host header"};

  // Beast must frame the body exactly as the verdict says: it is Beast that reads and relays it.
  bool same = false;
  switch (v.framing) {
    case body_framing::none:
      same = !p.chunked() && !p.content_length() && p.is_done();
      break;
    case body_framing::length:
      same = !p.chunked() && p.content_length() && *p.content_length() == v.content_length;
      break;
    case body_framing::chunked:
      same = p.chunked() && !p.content_length();
      break;
  }
  if (!same) return {400, "ambiguous body framing"};
  const std::string_view target = req.target();
  if (!target.empty() && target.front() == '/') return {};  // origin-form: the common case
  if (target == "*" && req.method() == http::verb::options) return {};
  if (scheme_length(target) != 0) return to_origin_form(req);
  return {400, "request target must be an absolute path"};
}

check_result to_origin_form(http::request_header<>& req) {
  const std::string_view target = req.target();
  const std::size_t scheme = scheme_length(target);
  if (scheme == 0) return {};
  const std::string_view rest = target.substr(scheme);
  const std::size_t end = std::min(rest.find_first_of("/?#"), rest.size());
  const std::string_view authority = rest.substr(0, end);
  if (authority.empty() || authority.find('@') != std::string_view::npos || !valid_host_value(authority))
    return {400, "invalid authority in absolute-form request target"};
  if (rest.find('#', end) != std::string_view::npos) return {400, "fragment in request target"};
  std::string path;
  if (end == rest.size() && req.method() == http::verb::options) {
    path = "*";  // RFC 9112 3.2.4: OPTIONS of the server itself goes on as asterisk-form
  } else {
    if (end == rest.size() || rest[end] == '?') path.push_back('/');  // "http://h" and "http://h?q" have path "/"
    path.append(rest.substr(end));
  }
  std::string host(authority);
  req.target(path);
  req.set(http::field::host, host);
  return {};
}

}  // namespace wakegate::proxy
