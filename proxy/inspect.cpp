#include "proxy/inspect.hpp"

#include <array>

#include <boost/beast/http.hpp>

#include "proxy/framing.hpp"
#include "proxy/headers.hpp"
#include "proxy/request_check.hpp"
#include "proxy/wire.hpp"

namespace wakegate::proxy {

namespace beast = boost::beast;
namespace http = beast::http;

namespace {

// Appends the bytes of one gathered write (wire::gather), as the session sends them.
void append_gather(const wire::gather& g, std::string& out) {
  for (const auto& b : g.buffers()) out.append(static_cast<const char*>(b.data()), b.size());
}

}  // namespace

inspection inspect_request(std::string_view bytes, const config::limits_config& limits) {
  inspection r;
  std::size_t start = 0;
  while (bytes.substr(start, 2) == "\r\n") start += 2;  // empty lines before a request are ignored
  std::string_view data = bytes.substr(start);
  std::size_t end = find_head_end(data);
  if (end == std::string_view::npos) {
    r.status = 400;
    r.reason = "bare LF in header";
    return r;
  }
  if (end == 0 || end > limits.max_header_bytes) {
    if (data.size() >= limits.max_header_bytes || end > limits.max_header_bytes) {
      r.status = 431;
      r.reason = "request header too large";
    } else {
      r.need_more = true;
    }
    return r;
  }
  std::string_view head = data.substr(0, end);
  head_verdict v = check_head(head, limits.max_header_count);
  if (v.status != 0) {
    r.status = v.status;
    r.reason = v.reason;
    return r;
  }

  http::request_parser<http::buffer_body> p;
  p.header_limit(static_cast<std::uint32_t>(limits.max_header_bytes));
  p.body_limit(boost::none);
  beast::error_code ec;
  std::size_t used = p.put(boost::asio::buffer(head.data(), head.size()), ec);
  if (ec == http::error::need_buffer) ec = {};
  if (ec || used != head.size() || !p.is_header_done()) {
    r.status = 400;
    r.reason = "bad request: " + (ec ? ec.message() : std::string("header not parsed whole"));
    return r;
  }
  if (auto chk = check_request(p, v); chk.status != 0) {
    r.status = chk.status;
    r.reason = chk.reason;
    return r;
  }
  r.close_after = v.close_after;
  if (p.get().find(http::field::host) == p.get().end()) {  // HTTP/1.0 without Host: no app routes it
    r.status = 404;
    r.reason = "no app for host";
    return r;
  }

  auto& req = p.get();
  char id_buf[32];
  std::string fwd_text;
  append_forward_request(req, {"192.0.2.1", "http"}, request_id_of(req, id_buf), v.close_after, false, fwd_text);
  std::string_view fwd = fwd_text;
  const auto forward_fields = static_cast<std::size_t>(std::distance(req.begin(), req.end()));
  const bool chunked = v.framing == body_framing::chunked;  // all Transfer-Encoding lines (req.chunked() reads the first)

  // The body, relayed the way the session relays it: parsed by Beast into a buffer, framed again
  // by wire::gather (chunked stays chunked, a Content-Length body goes as it is).
  std::string_view rest = data.substr(end);
  std::array<char, 16 * 1024> buf;
  if (p.is_done()) {
    append_gather(wire::gather(fwd, nullptr, 0, chunked, true), r.forwarded);
  } else {
    for (;;) {
      req.body().data = buf.data();
      req.body().size = buf.size();
      std::size_t n = p.put(boost::asio::buffer(rest.data(), rest.size()), ec);
      rest.remove_prefix(n);
      if (ec == http::error::need_buffer) ec = {};
      if (ec == http::error::need_more) {
        ec = {};
        if (n == 0 && req.body().size == buf.size()) {
          r.need_more = true;
          r.forwarded.clear();
          return r;
        }
      }
      if (ec) {
        r.status = 400;
        r.reason = "bad request body: " + ec.message();
        r.forwarded.clear();
        return r;
      }
      std::size_t got = buf.size() - req.body().size;
      if (p.is_done() && v.framing == body_framing::chunked &&
          static_cast<std::size_t>(std::distance(req.begin(), req.end())) != forward_fields) {
        r.status = 400;  // trailer fields (Beast would add them to the header): see the session
        r.reason = "trailer fields are not supported";
        r.forwarded.clear();
        return r;
      }
      if (got == 0 && !p.is_done() && n == 0) {
        r.need_more = true;
        r.forwarded.clear();
        return r;
      }
      append_gather(wire::gather(fwd, buf.data(), got, chunked, p.is_done()), r.forwarded);
      fwd = {};
      if (p.is_done()) break;
    }
  }
  r.consumed = start + (data.size() - rest.size());
  return r;
}

}  // namespace wakegate::proxy
