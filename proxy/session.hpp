// One client connection: read a request, route it, hold it if its app has no ready instance with
// room, forward it over a pooled upstream connection, stream the response back, log, repeat.
#pragma once

#include <boost/asio/awaitable.hpp>
#include <boost/asio/ip/tcp.hpp>

namespace wakegate::proxy {

struct worker;

// Runs the connection until it closes; the coroutine frame owns every piece of its state.
boost::asio::awaitable<void> run_session(worker& w, boost::asio::ip::tcp::socket socket);
// The same over TLS (https listener): handshake first, with the worker's certificates.
boost::asio::awaitable<void> run_tls_session(worker& w, boost::asio::ip::tcp::socket socket);

}  // namespace wakegate::proxy
