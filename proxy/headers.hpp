// Header rewriting between client and instance: hop-by-hop removal, X-Forwarded-*, request ids.
#pragma once

#include <string>
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

// The request id a request is forwarded with: the client's first non-empty X-Request-Id, else a
// new one written to `buf`.
std::string_view request_id_of(const boost::beast::http::fields& f, char (&buf)[32]);

// Appends the request head an instance receives, written straight from the client's parsed
// header, which is left as it is:
//   "METHOD target HTTP/1.1", then the client's fields in their order, minus
//   - hop-by-hop ones: Connection, Keep-Alive, Proxy-Connection, TE, Trailer, Upgrade, and every
//     field named in Connection (except Host, Content-Length and Transfer-Encoding);
//   - Expect (wakegate answers 100-continue itself);
//   - X-Forwarded-For/-Proto/-Host and X-Request-Id, which follow as wakegate sets them;
//   then Transfer-Encoding (its lines joined into one: the instance must see exactly what
//   wakegate framed), X-Forwarded-For (the client's values, then `info.client_ip`),
//   X-Forwarded-Proto (`info.proto`: a client cannot claim https), X-Forwarded-Host (the Host),
//   X-Request-Id (`request_id`), and Connection: close when `close` (the connection is not reused).
// `upgrade` (see wants_upgrade): Upgrade is kept (its lines joined) and Connection is `upgrade`.
void append_forward_request(const boost::beast::http::request_header<>& req, const forward_info& info,
                            std::string_view request_id, bool close, bool upgrade, std::string& out);

// 32 lower-case hex characters from a per-thread generator (not for secrets).
void make_request_id(char (&out)[32]) noexcept;

}  // namespace wakegate::proxy
