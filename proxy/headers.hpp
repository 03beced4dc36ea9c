// Header rewriting between client and instance: hop-by-hop removal, X-Forwarded-*, request ids.
#pragma once

#include <string_view>

#include <boost/beast/http/fields.hpp>
#include <boost/beast/http/buffer_body.hpp>
#include <boost/beast/http/message.hpp>

namespace wakegate::proxy {

// Removes hop-by-hop headers: Connection, Keep-Alive, Proxy-Connection, TE, Trailer, Upgrade,
// and every header named in Connection (except the framing headers Host, Content-Length and
// Transfer-Encoding, which the message's own framing governs).
void strip_hop_by_hop(boost::beast::http::fields& f);

// True when the header asks to switch protocols: an `upgrade` token in Connection and a
// non-empty Upgrade header (the caller also requires a GET without a body, HTTP/1.1).
bool wants_upgrade(const boost::beast::http::fields& f);

struct forward_info {
  std::string_view client_ip;  // peer address of the client connection
  std::string_view proto;      // "http" or "https"
};

// Request to an instance: hop-by-hop removed, X-Forwarded-For appended, X-Forwarded-Proto and
// X-Forwarded-Host set, X-Request-Id added when absent. Returns the request id in effect.
std::string_view rewrite_request(boost::beast::http::fields& f, const forward_info& info);

// The request header as an instance receives it: rewrite_request, then HTTP/1.1 and keep-alive,
// or Connection: close when `close` (the connection is not reused after this request).
// `upgrade` (see wants_upgrade): the Upgrade header is kept and Connection is `upgrade`; other
// headers named in Connection are still dropped.
std::string_view prepare_forward(boost::beast::http::request<boost::beast::http::buffer_body>& req, const forward_info& info, bool close,
                                 bool upgrade = false);

// 32 lower-case hex characters from a per-thread generator (not for secrets).
void make_request_id(char (&out)[32]) noexcept;

}  // namespace wakegate::proxy
