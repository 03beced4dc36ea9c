// Did a pooled upstream connection receive anything (bytes, a FIN, a reset) while it sat idle?
// Such input answers no request of ours: reused, the connection would hand it to the next request
// as its response, and every later response one request late. nginx and HAProxy close an idle
// upstream connection as soon as epoll says it is readable; this is the same signal, read for free.
//
// Asio's epoll reactor watches every socket for input all the time (edge triggered), and each
// input event sets the socket's "try a read at once" flag. park() clears that flag when the
// connection goes idle; input_since_park() reads it when the connection is taken again; reuse()
// sets it back, so that reads on a reused connection behave exactly as on any other. Linux reports
// an edge only if the socket is still readable, so input already read never counts.
//
// park() is called as soon as the response has been read to its end (before it is written to the
// client), and that last read has room for more than the body: bytes after the body show there
// and make the connection not reusable. Not seen: a FIN in the same segment as the body's end
// (the read returns the data, not yet the end of stream), and input still in flight when the
// connection is taken. Both are the race every proxy has (the instance closes as the request
// leaves): an idempotent request is sent again on a new connection, and a request that cannot be
// retried also checks the socket itself (input_now).
//
// The flag is Asio's private state (Boost 1.81's epoll reactor, the one Debian 12 has). With any
// other Boost or reactor this falls back to one recv(MSG_PEEK) per reuse, which sees the same
// input at the cost of a system call (about 3% of small requests/s, measured with bench/ab.sh).
// Only the worker thread that owns the socket may call these.
#pragma once

#include <boost/asio/ip/tcp.hpp>

namespace wakegate::proxy::idle_watch {

void park(boost::asio::ip::tcp::socket& s) noexcept;
bool input_since_park(boost::asio::ip::tcp::socket& s) noexcept;
void reuse(boost::asio::ip::tcp::socket& s) noexcept;

// One recv(MSG_PEEK): input there now, whether or not the reactor has heard of it yet (a system
// call: for requests that must not go out on a closed connection, as they cannot be retried).
bool input_now(boost::asio::ip::tcp::socket& s) noexcept;

// True when the flag is used (Boost 1.81, epoll); false: the recv(MSG_PEEK) fallback.
bool uses_reactor_flag() noexcept;

}  // namespace wakegate::proxy::idle_watch
