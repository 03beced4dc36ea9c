// The TLS parts of a client session: handshake and close on the https listener, and what the
// plain http listener answers itself for TLS (ACME HTTP-01 challenges, redirect to https).
#pragma once

#include <string>
#include <string_view>

#include <boost/asio/awaitable.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/beast/http/buffer_body.hpp>
#include <boost/beast/http/message.hpp>

#include "config/config.hpp"
#include "proxy/deadline.hpp"
#include "proxy/tls_stream.hpp"

namespace wakegate::proxy {

struct worker;

// Waits, by `deadline_ns` (now_ns clock), for the first bytes of a new https connection, before
// anything of TLS is set up for it: a TLS stream costs about 80 KB (OpenSSL's state and Asio's
// record buffers), which a connection that sends nothing should not hold (found by black-box
// testing: 3000 silent connections took 260 MB). Listed idle meanwhile (a drain closes it). A
// timeout counts as a handshake timeout and a header_timeout hit. False: close.
boost::asio::awaitable<bool> await_first_bytes(boost::asio::ip::tcp::socket& s, worker& w, std::int64_t deadline_ns);

// Server handshake by `deadline_ns` (`slot`: the connection's deadline slot); counts
// wakegate_tls_handshakes_total (and a timeout as a header_timeout hit). False: close.
boost::asio::awaitable<bool> tls_handshake(tls_stream& s, worker& w, deadline_slot& slot, std::int64_t deadline_ns);

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
