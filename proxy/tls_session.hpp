// The TLS parts of a client session: handshake and close on the https listener, and what the
// plain http listener answers itself for TLS (ACME HTTP-01 challenges, redirect to https).
#pragma once

#include <string>
#include <string_view>

#include <boost/asio/awaitable.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/beast/http/buffer_body.hpp>
#include <boost/beast/http/message.hpp>
#include <boost/beast/ssl/ssl_stream.hpp>

#include "config/config.hpp"
#include "proxy/deadline.hpp"

namespace wakegate::proxy {

struct worker;
using tls_stream = boost::beast::ssl_stream<boost::asio::ip::tcp::socket>;

// Server handshake within the header timeout (`slot`: the connection's deadline slot); counts
// wakegate_tls_handshakes_total. False: close.
boost::asio::awaitable<bool> tls_handshake(tls_stream& s, worker& w, deadline_slot& slot);

// Sends close_notify (bounded wait for the peer's) when the peer is still there.
boost::asio::awaitable<void> tls_close(tls_stream& s, bool peer_there, deadline_sweeper& sweeper, deadline_slot& slot);

// A response the http listener gives without routing; status 0: none, route the request.
struct plain_answer {
  unsigned status = 0;
  std::string body;
  std::string location;
};
plain_answer plain_http_answer(const worker& w, const boost::beast::http::request<boost::beast::http::buffer_body>& req);

// "max-age=<seconds>" in `buf`; empty when `hsts` is 0.
std::string_view format_hsts(config::duration hsts, char (&buf)[40]) noexcept;

}  // namespace wakegate::proxy
