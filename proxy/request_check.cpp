#include "proxy/request_check.hpp"

namespace wakegate::proxy {

namespace http = boost::beast::http;

check_result check_request(const http::request_parser<http::buffer_body>& p, const head_verdict& v) noexcept {
  if (v.status != 0) return {v.status, v.reason};
  const auto& req = p.get();
  if (req.version() != 10 && req.version() != 11) return {505, "HTTP version not supported"};
  if (req.method() == http::verb::unknown) return {400, "unknown method"};

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
  if (req.target().empty() || (req.target().front() != '/' && req.method() != http::verb::options))
    return {400, "request target must be an absolute path"};
  return {};
}

}  // namespace wakegate::proxy
